// ASHA (`--scheduler asha`) as its users meet it: on the recorded learning curves of bench/data, replayed by
// the real simulator, through the same entry points as `trex run`.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as RunDir from "../src/RunDir.ts"
import * as Trex from "../src/Trex.ts"

const root = path.resolve(import.meta.dirname, "../../..")
const tedRuEn = path.join(root, "bench/tasks/nmtlc-ted-ru-en.yaml")
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "trex-asha-"))

/** A run of the task with ASHA, sequential, to its end; its journal's events. */
const runAsha = (taskFile: string, maxTrials: number, seed = 0) =>
  Effect.gen(function*() {
    const prepared = yield* Trex.prepare({ taskFile, out: tmp(), seed, maxTrials, scheduler: "asha", concurrency: 1, logLevel: "None" })
    yield* Trex.runPrepared(prepared)
    return { prepared, events: (yield* RunDir.readEntries(prepared.runDir)).map((e) => e.event) }
  })

describe("ASHA on recorded learning curves", () => {
  it.live("a pruned trial's cost is charged to the budget: the checkpoints it ran, at the table's 600 s each", () =>
    Effect.gen(function*() {
      const { events } = yield* runAsha(tedRuEn, 12)
      const pruned = events.flatMap((e) => (e._tag === "NodeFinished" && e.outcome === "Pruned" ? [e.nodeId] : []))
      assert.isAtLeast(pruned.length, 3, "ASHA prunes on this table")
      for (const id of pruned) {
        const steps = events.flatMap((e) => (e._tag === "JobProgress" && e.nodeId === id ? e.metrics.map((p) => p.step) : []))
        const charged = events.filter((e) => e._tag === "BudgetCharged" && e.nodeId === id)
        assert.deepStrictEqual(charged.map((e) => e._tag === "BudgetCharged" && [e.reason, e.cost.gpuSeconds]), [["pruned trial", 600 * Math.max(...steps)]], id)
      }
    }), 60_000)
})
