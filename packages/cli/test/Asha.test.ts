// ASHA (`--scheduler asha`) as its users meet it: on the recorded learning curves of bench/data, replayed by
// the real simulator, through the same entry points as `trex run`.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Errors, ExperimentNode, type ExperimentTree } from "@trex/core"
import { TreeBuilder } from "@trex/core/testing"
import type { Explorer } from "@trex/mcts"
import { Effect, Fiber, Logger } from "effect"
import * as ReportModel from "../src/internal/reportModel.ts"
import * as LiveView from "../src/LiveView.ts"
import * as RunDir from "../src/RunDir.ts"
import * as Settings from "../src/Settings.ts"
import * as Status from "../src/Status.ts"
import * as Trex from "../src/Trex.ts"
import * as Wiring from "../src/Wiring.ts"
import * as LrLayersTask from "./support/lrLayersTask.ts"

const root = path.resolve(import.meta.dirname, "../../..")
const tedRuEn = path.join(root, "bench/tasks/nmtlc-ted-ru-en.yaml")
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "trex-asha-"))

/** The warnings a run with ASHA logs. */
const warningsOf = (taskFile: string, maxTrials: number) =>
  Effect.gen(function*() {
    const logged: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => void (logLevel === "Warn" && logged.push(String(message))))
    yield* Effect.gen(function*() {
      yield* Trex.runPrepared(yield* Trex.prepare({ taskFile, out: tmp(), maxTrials, scheduler: "asha", concurrency: 1, reuse: false }))
    }).pipe(Effect.provide(Logger.layer([logger])))
    return logged
  })

/** A run of the task with ASHA, sequential, to its end; its journal's events. */
const runAsha = (taskFile: string, maxTrials: number, seed = 0, onEvent?: Explorer.Options["onEvent"]) =>
  Effect.gen(function*() {
    const prepared = yield* Trex.prepare({ taskFile, out: tmp(), seed, maxTrials, scheduler: "asha", concurrency: 1, logLevel: "None" })
    yield* Trex.runPrepared(prepared, onEvent !== undefined ? { onEvent } : {})
    return { prepared, events: (yield* RunDir.readEntries(prepared.runDir)).map((e) => e.event) }
  })

/**
 * A table of `rows` runs whose curves (dev ppl_best, minimised) are level until their last checkpoint, where they
 * part: ASHA (rungs at 1, 3, 9...) can tell them apart only at the end of each run. Cost 600 s a checkpoint.
 */
const levelTable = (dir: string, options: { readonly checkpoints: number; readonly curve?: boolean; readonly metricName?: string } = { checkpoints: 3 }) =>
  LrLayersTask.write(dir, {
    name: "level",
    metric: { name: options.metricName ?? "ppl_best", direction: "minimize" },
    columns: "ppl_best,n_checkpoints,ppl_curve",
    row: (i, layers) => {
      const final = 10 + 3 * i + LrLayersTask.layerCounts.indexOf(layers as 1 | 2 | 4)
      const curve = [...Array(options.checkpoints - 1).fill(20), final]
      return `${final},${options.checkpoints},"${JSON.stringify(curve)}"`
    },
    metricColumn: "ppl_best",
    cost: { column: "n_checkpoints", scale: 600 },
    ...(options.curve === false ? {} : { curveColumn: "ppl_curve" })
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

  it.live("a pruned trial says where and on what it was stopped: in the journal, the live view, report.md and trex status", () =>
    Effect.gen(function*() {
      let live = ""
      const view = LiveView.make({ tty: false, write: (s) => void (live += s), intervalMs: 60_000 })
      const { prepared, events } = yield* runAsha(tedRuEn, 12, 0, view.onEvent)
      view.close()
      const pruned = events.flatMap((e) => (e._tag === "NodeFinished" && e.outcome === "Pruned" ? [e] : []))
      assert.isAtLeast(pruned.length, 3)
      const report = fs.readFileSync(path.join(prepared.runDir, "report.md"), "utf8")
      const status = Status.toText(yield* RunDir.load(prepared.runDir), prepared.runDir)
      for (const e of pruned) {
        const last = events.flatMap((x) => (x._tag === "JobProgress" && x.nodeId === e.nodeId ? x.metrics : [])).at(-1)!
        const reason = `stopped early by the scheduler (asha) at step ${last.step}: dev/ppl_best ${Number(last.value.toPrecision(6))}`
        assert.strictEqual(e.reason, reason)
        assert.match(live, new RegExp(`^done   ${e.nodeId} pruned: ${reason.replace(/[().]/g, "\\$&")}  \\|`, "m"))
        const row = report.split("\n").find((l) => l.startsWith(`| ${e.nodeId} |`))
        // (the report escapes Markdown in the reason)
        assert.isTrue(row?.endsWith(`| Pruned | - | ${reason.replace(/_/g, "\\_")} |`), row)
        assert.match(status, new RegExp(`─ ${e.nodeId} pruned at step ${last.step}$`, "m"))
      }
      assert.notInclude(report, "Cancelled: cancelled")
      // the HTML report's trial panel: "Pruned because <reason>", with no cancel shown as its failure
      const model = ReportModel.build(yield* RunDir.readEntries(prepared.runDir))!
      for (const e of pruned) {
        const n = model.nodes.find((x) => x.id === e.nodeId)!
        assert.deepStrictEqual([n.state, n.reason, n.failure], ["Pruned", e.reason, undefined])
        assert.isAbove(n.cost.gpuSeconds, 0)
      }
    }), 60_000)

  it.live("a run killed mid-flight resumes with ASHA's decisions: what was pruned stays pruned, and the rungs, rebuilt from the journal, decide as in an uninterrupted run", () =>
    Effect.gen(function*() {
      const shape = (tree: ExperimentTree.TreeView) =>
        [...tree.nodes()].map((n) => `${n.id}<${n.parent}:${n.fingerprint}:${n.state._tag}:${ExperimentNode.score(n) ?? "-"}`)
      const options = { taskFile: tedRuEn, seed: 3, maxTrials: 14, scheduler: "asha", concurrency: 1, logLevel: "None", reuse: false } as const
      const first = yield* Trex.prepare({ ...options, out: tmp() })
      const reference = yield* Trex.runPrepared(first)
      assert.isAtLeast([...reference.tree.nodes()].filter((n) => n.state._tag === "Pruned").length, 3)
      // killed just after the first prune, half way, and near the end
      const journal = (yield* RunDir.readEntries(first.runDir)).map((e) => e.event)
      const firstPruned = journal.findIndex((e) => e._tag === "NodeFinished" && e.outcome === "Pruned")
      let prunedAtKills = 0
      for (const killAt of [firstPruned + 3, Math.floor(journal.length / 2), journal.length - 12]) {
        const prepared = yield* Trex.prepare({ ...options, out: tmp() })
        let seen = 0
        const fiber = yield* Trex.runPrepared(prepared, { onEvent: () => void seen++ }).pipe(Effect.forkChild)
        while (seen < killAt) yield* Effect.sleep("1 millis")
        yield* Fiber.interrupt(fiber)
        const before = (yield* RunDir.readEntries(prepared.runDir)).map((e) => e.event)
        const prunedBefore = before.flatMap((e) => (e._tag === "NodeFinished" && e.outcome === "Pruned" ? [e.nodeId] : []))
        const resumed = yield* Trex.runPrepared(yield* Trex.prepare({ resume: prepared.runDir, logLevel: "None" }))
        assert.deepStrictEqual(shape(resumed.tree), shape(reference.tree), `kill at event ${killAt}`)
        const after = (yield* RunDir.readEntries(prepared.runDir)).map((e) => e.event).slice(before.length)
        assert.isTrue(after.some((e) => e._tag === "RunResumed"))
        // a trial pruned before the kill is not run again, nor finished again
        for (const id of prunedBefore) assert.isFalse(after.some((e) => "nodeId" in e && e.nodeId === id), `${id} after the resume`)
        assert.isFalse(before.some((e) => e._tag === "RunFinished"), `killed mid-run (at event ${killAt})`)
        prunedAtKills += prunedBefore.length
      }
      assert.isAtLeast(prunedAtKills, 2, "some trials were pruned before a kill")
    }), 120_000)

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

  it.live("a recipe whose trials report no eval points of the metric: the user is told once that asha has nothing to act on, and what they did report", () =>
    Effect.gen(function*() {
      // the toy job reports train/loss at three steps, and its score only in result.json
      process.env["TREX_TOY_MS"] = "30"
      const logged = yield* warningsOf(path.join(import.meta.dirname, "fixtures/toy.task.yaml"), 3)
      const told = logged.filter((l) => l.includes("--scheduler asha"))
      assert.strictEqual(told.length, 1, logged.join("\n"))
      assert.match(told[0]!, /compares the eval\/score points a trial reports as it trains, and trial n1 finished with none \(it reported train\/loss\): asha has nothing to act on/)
      assert.match(told[0]!, /Report score on split eval at each evaluation \(docs\/job-protocol\.md\), or run without --scheduler asha/)
      // a table with curves has something to act on: no such warning
      assert.deepStrictEqual((yield* warningsOf(tedRuEn, 3)).filter((l) => l.includes("--scheduler asha")), [])
    }), 60_000)
})
