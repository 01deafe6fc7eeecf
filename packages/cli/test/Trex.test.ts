import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import * as RunDir from "../src/RunDir.ts"
import * as Trex from "../src/Trex.ts"

const root = path.resolve(import.meta.dirname, "../../..")
const recorded = path.join(root, "examples/recorded-table/task.yaml")
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "trex-api-"))

describe("Trex: a new run gets a directory of its own", () => {
  it("RunDir.create: a second run in the same second takes the next free suffix, never the first's directory", () => {
    const out = path.join(tmp(), "runs")
    const now = new Date(Date.UTC(2026, 10, 22, 3, 15, 0))
    const ids = [1, 2, 3].map(() => RunDir.create(out, "Quick Start", now))
    assert.deepStrictEqual(ids.map((r) => r.runId), ["20261122-031500-quick-start", "20261122-031500-quick-start-2", "20261122-031500-quick-start-3"])
    for (const { runDir, runId } of ids) assert.strictEqual(runDir, path.resolve(out, runId))
    assert.deepStrictEqual(fs.readdirSync(out).sort(), ids.map((r) => r.runId), "ids sort in the order the runs started")
  })

  it.live("two runs of one task started in the same second run side by side, neither resuming the other", () =>
    Effect.gen(function*() {
      const out = tmp()
      // both prepared at one instant: the same second, so the same stamped id
      const [a, b] = yield* Effect.all(
        [1, 2].map((seed) => Trex.prepare({ taskFile: recorded, out, seed, maxTrials: 2 })),
        { concurrency: "unbounded" }
      ).pipe(Effect.provide(TestClock.layer()))
      assert.strictEqual(a!.runId, `${RunDir.newRunId("recorded-nmt-ja-en", new Date(0))}`)
      assert.strictEqual(b!.runId, `${a!.runId}-2`)
      assert.notStrictEqual(a!.runDir, b!.runDir)
      yield* Effect.all([a!, b!].map((p) => Trex.runPrepared(p)), { concurrency: "unbounded" })
      for (const [prepared, seed] of [[a!, 1], [b!, 2]] as const) {
        const events = (yield* RunDir.readEntries(prepared.runDir)).map((e) => e.event)
        const started = events.filter((e) => e._tag === "RunStarted")
        assert.deepStrictEqual(started.map((e) => [e.runId, e.seed]), [[prepared.runId, seed]])
        assert.isFalse(events.some((e) => e._tag === "RunResumed"), "not resumed")
        assert.isTrue(events.some((e) => e._tag === "RunFinished"))
      }
    }))
})
