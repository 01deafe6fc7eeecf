/**
 * The chaos campaigns in their `--quick` mode (see docs/reliability.md for the full ones):
 * each figure that must be zero is asserted zero.
 */
import { assert, describe, it } from "@effect/vitest"
import * as BadInput from "./chaos/badinput.ts"
import * as Concurrency from "./chaos/concurrency.ts"
import * as Crash from "./chaos/crash.ts"
import * as Faults from "./chaos/faults.ts"
import { type CampaignResult, print, violations } from "./chaos/lib.ts"
import * as Secrets from "./chaos/secrets.ts"

const check = (result: CampaignResult) => {
  print(result)
  assert.deepStrictEqual(violations(result), [], result.findings.join("\n"))
}

describe("chaos campaigns (quick)", () => {
  it("crash and resume: no finished trial lost, no job run twice, journals open, trees as uninterrupted", async () => {
    const result = await Crash.run({ quick: true, seed: 1 })
    assert.isAtLeast(result.figures["kills"] as number, 2)
    check(result)
  }, 180_000)

  it("faults: every failure recorded with its kind, retries bounded, budget kept", async () => {
    const result = await Faults.run({ quick: true, seed: 1 })
    assert.strictEqual(result.figures["model-fault runs completed"], 1)
    check(result)
  }, 180_000)

  it("bad input: typed errors naming the field, nothing recorded lost", async () => {
    const result = await BadInput.run({ quick: true, seed: 1 })
    assert.isAtLeast(result.figures["task files refused naming the field"] as number, 50)
    check(result)
  }, 180_000)

  it("secrets and isolation: no secret in any artifact or job environment, no shell, no escape", async () => {
    check(await Secrets.run({ quick: true, seed: 1 }))
  }, 180_000)

  it("concurrency: a second controller on the same run refuses, never interleaves", async () => {
    check(await Concurrency.run({ quick: true, seed: 1 }))
  }, 180_000)
})
