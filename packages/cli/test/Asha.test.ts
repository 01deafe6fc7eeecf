// ASHA (`--scheduler asha`) as its users meet it: on the recorded learning curves of bench/data, replayed by
// the real simulator, through the same entry points as `trex run`.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Errors } from "@trex/core"
import { TreeBuilder } from "@trex/core/testing"
import { Effect } from "effect"
import * as RunDir from "../src/RunDir.ts"
import * as Settings from "../src/Settings.ts"
import * as Trex from "../src/Trex.ts"
import * as Wiring from "../src/Wiring.ts"

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

/**
 * A table of `rows` runs whose curves (dev ppl_best, minimised) are level until their last checkpoint, where they
 * part: ASHA (rungs at 1, 3, 9...) can tell them apart only at the end of each run. Cost 600 s a checkpoint.
 */
const levelTable = (dir: string, options: { readonly checkpoints: number; readonly curve?: boolean; readonly metricName?: string } = { checkpoints: 3 }) => {
  const rows = ["lr,layers,ppl_best,n_checkpoints,ppl_curve"]
  let k = 0
  for (const lr of [1e-4, 3e-4, 1e-3]) {
    for (const layers of [1, 2, 4]) {
      const final = 10 + k++
      const curve = [...Array(options.checkpoints - 1).fill(20), final]
      rows.push(`${lr},${layers},${final},${options.checkpoints},"${JSON.stringify(curve)}"`)
    }
  }
  fs.writeFileSync(path.join(dir, "runs.csv"), rows.join("\n") + "\n")
  const task = path.join(dir, "task.yaml")
  fs.writeFileSync(task, [
    "name: level",
    "objective: pick the learning rate and depth",
    `metric: { name: ${options.metricName ?? "ppl_best"}, direction: minimize }`,
    "budget: { maxTrials: 9 }",
    "backend:",
    "  kind: simulator",
    "  table: runs.csv",
    "  parameters:",
    "    - { column: lr, path: training.learningRate, kind: log }",
    "    - { column: layers, path: training.extra.layers, kind: ordinal }",
    "  metric: { column: ppl_best }",
    "  cost: { column: n_checkpoints, scale: 600 }",
    ...(options.curve === false ? [] : ["  curve: { column: ppl_curve, split: dev }"]),
    ""
  ].join("\n"))
  return task
}

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

  it.live("it compares the points the table replays, named as its curve: a task metric named otherwise is no reason to prune nothing", () =>
    Effect.gen(function*() {
      // the task's metric is "ppl"; the table's column, and so its curve's points, "ppl_best"
      const dir = tmp()
      fs.writeFileSync(path.join(dir, "task.yaml"), fs.readFileSync(tedRuEn, "utf8")
        .replace("metric: { name: ppl_best, direction: minimize }", "metric: { name: ppl, direction: minimize }")
        .replace("table: ../data/", `table: ${path.join(root, "bench/data")}/`))
      const { events } = yield* runAsha(path.join(dir, "task.yaml"), 12)
      assert.isAtLeast(events.filter((e) => e._tag === "NodeFinished" && e.outcome === "Pruned").length, 3)
    }), 60_000)

  it.effect("a table without a curve is refused before the run starts, --scheduler named with the fix", () =>
    Effect.gen(function*() {
      const out = tmp()
      const e = yield* Effect.flip(Trex.prepare({ taskFile: levelTable(tmp(), { checkpoints: 3, curve: false }), out, scheduler: "asha" }))
      assert.instanceOf(e, Errors.InvalidInput)
      assert.strictEqual(e.source, "--scheduler")
      assert.match(e.message, /the task's table has no curve \(backend\.curve\): its trials report none, so asha would prune nothing/)
      assert.match(e.message, /leave out --scheduler asha/)
      assert.deepStrictEqual(fs.readdirSync(out), [], "no run directory")
    }))
})

describe("ASHA on a recipe's points", () => {
  const settings = (scheduler: Settings.Settings["scheduler"]): Settings.Settings => ({ ...Settings.defaults, scheduler, taskFile: "task.yaml", taskDir: "." })
  it.effect("it compares the task metric's eval points only, not the final test point (nor train points) a recipe also reports", () =>
    Effect.gen(function*() {
      const b = new TreeBuilder.TreeBuilder(TreeBuilder.task())
      // three trials level on eval at step 1, far apart on the test point each reports at the same step at its end
      const ids = [0.9, 0.5, 0.1].map((test, i) => {
        const id = b.start(b.propose("root", { "training.epochs": 1 + i }))
        b.progress(id, 1, 0.6, "score", "eval")
        return b.progress(id, 1, test, "score", "test")
      })
      const asha = (yield* Wiring.scheduler(settings("asha"), b.view.task))!
      assert.deepStrictEqual(ids.map((id) => asha.decide(b.view, id)), ["continue", "continue", "continue"])
      assert.isUndefined(yield* Wiring.scheduler(settings("none"), b.view.task))
    }))
})
