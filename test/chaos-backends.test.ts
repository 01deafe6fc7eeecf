/**
 * The crash-and-resume campaign in its `--quick` mode on the real remote backends that
 * scripts/services/start-all.sh starts (Docker Engine, Podman, Slurm through slurmrestd, Grid
 * Engine, sshd on 127.0.0.1:2222; facts in scripts/services/.env): the controller SIGKILLed after
 * a trial finished, after one started and inside `submit`, then `trex resume`, until the run
 * finishes. Each job logs its start where it ran, so a job run twice is counted on the engine's
 * side. (test/chaos.test.ts runs it on the local and simulator backends.)
 */
import { assert, describe, it } from "@effect/vitest"
import * as Crash from "./chaos/crash.ts"
import { print, violations } from "./chaos/lib.ts"

describe("chaos campaigns (quick) on the remote backends", () => {
  for (const backend of Crash.remotes) {
    it(`crash and resume on ${backend}: no finished trial lost, no job run twice, trees as uninterrupted`, async () => {
      const result = await Crash.run({ quick: true, seed: 1, backends: [backend] })
      print(result)
      assert.isAtLeast(result.figures[`${backend}: kills`] as number, 1)
      assert.deepStrictEqual(violations(result), [], result.findings.join("\n"))
    }, 180_000)
  }
})
