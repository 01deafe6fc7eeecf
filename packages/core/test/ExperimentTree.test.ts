import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import * as ExperimentNode from "../src/ExperimentNode.ts"
import * as ExperimentTree from "../src/ExperimentTree.ts"
import * as JournalEvent from "../src/JournalEvent.ts"
import * as Result from "../src/Result.ts"
import * as Task from "../src/Task.ts"
import { interpret, journal, makeTask, strategy } from "./support/events.ts"

/** Everything a reader can observe, deep-copied (views share the tree's live arrays and stats). */
const snapshot = (tree: ExperimentTree.ExperimentTree) => {
  const v = tree.view
  const fingerprints = new Set([...v.nodes()].map((n) => n.fingerprint))
  return structuredClone({
    applied: tree.applied,
    size: v.size,
    root: { stats: ExperimentTree.copyStats(v.root.stats), children: v.root.children },
    nodes: [...v.nodes()].map((n) => ({
      id: n.id,
      parent: n.parent,
      depth: n.depth,
      state: n.state,
      stats: ExperimentTree.copyStats(n.stats),
      children: n.children,
      progress: n.progress,
      curve: n.curve
    })),
    best: v.best()?.id,
    frontier: v.frontier().map((n) => n.id),
    insights: v.insights.map((i) => i.id),
    analysis: v.analysis,
    utilityRange: v.utilityRange(),
    byFingerprint: [...fingerprints].map((fp) => [fp, v.byFingerprint(fp)?.id])
  })
}

/** Recompute every node's stats from the node states alone, and compare with the tree's. */
const checkStats = (tree: ExperimentTree.ExperimentTree, task: Task.Task) => {
  const v = tree.view
  const subtree = (id: string): Array<ExperimentTree.NodeView> => v.children(id).flatMap((c) => [c, ...subtree(c.id)])
  const expected = (nodes: ReadonlyArray<ExperimentTree.NodeView>): ExperimentTree.Stats => {
    const utilities = nodes.flatMap((n) => {
      const s = ExperimentNode.score(n)
      return s === undefined ? [] : [Task.utility(task, s)]
    })
    return {
      visits: nodes.filter((n) => ExperimentNode.isFinished(n) && n.state._tag !== "Cancelled").length,
      successes: utilities.length,
      valueSum: utilities.reduce((a, b) => a + b, 0),
      bestUtility: Math.max(-Infinity, ...utilities),
      pending: nodes.filter((n) => n.state._tag === "Queued" || n.state._tag === "Running").length,
      open: nodes.filter((n) => ["Succeeded", "Failed", "Pruned"].includes(n.state._tag) && !v.isExhausted(n.id)).length
    }
  }
  const compare = (actual: ExperimentTree.Stats, want: ExperimentTree.Stats, where: string) => {
    assert.strictEqual(actual.visits, want.visits, `visits at ${where}`)
    assert.strictEqual(actual.successes, want.successes, `successes at ${where}`)
    assert.closeTo(actual.valueSum, want.valueSum, 1e-9, `valueSum at ${where}`)
    assert.strictEqual(actual.bestUtility, want.bestUtility, `bestUtility at ${where}`)
    assert.strictEqual(actual.pending, want.pending, `pending at ${where}`)
    assert.strictEqual(actual.open, want.open, `open at ${where}`)
    assert.isAtLeast(actual.pending, 0)
    assert.isAtMost(actual.successes, actual.visits)
  }
  compare(v.root.stats, expected([...v.nodes()]), "root")
  for (const n of v.nodes()) compare(n.stats, expected([n, ...subtree(n.id)]), n.id)
}

describe("ExperimentTree", () => {
  it("replaying any prefix of a journal gives the tree that existed at that point", () => {
    fc.assert(
      fc.property(journal, ({ events }) => {
        const incremental = ExperimentTree.fold(events.slice(0, 1))!
        const snapshots = [snapshot(incremental)]
        for (const e of events.slice(1)) {
          incremental.apply(e)
          snapshots.push(snapshot(incremental))
        }
        assert.isUndefined(ExperimentTree.fold(events.slice(0, 0)))
        for (let k = 1; k <= events.length; k++) {
          assert.deepStrictEqual(snapshot(ExperimentTree.fold(events.slice(0, k))!), snapshots[k - 1], `prefix ${k}`)
        }
      }),
      { numRuns: 150 }
    )
  })

  it("stats along every path equal sums over subtrees; best, range and frontier agree with the nodes", () => {
    fc.assert(
      fc.property(journal, ({ events, task }) => {
        const tree = ExperimentTree.fold([])
        assert.isUndefined(tree)
        const t = ExperimentTree.fold(events.slice(0, 1))!
        for (const e of events.slice(1)) {
          t.apply(e)
          checkStats(t, task)
        }
        const v = t.view
        const succeeded = [...v.nodes()].filter((n) => ExperimentNode.score(n) !== undefined)
        const utilities = succeeded.map((n) => Task.utility(task, ExperimentNode.score(n)!))
        if (succeeded.length === 0) {
          assert.isUndefined(v.best())
          assert.isUndefined(v.utilityRange())
        } else {
          const max = Math.max(...utilities)
          // the first node to reach the best utility wins ties
          const first = [...events].find((e) =>
            e._tag === "NodeFinished" && e.outcome === "Succeeded" && e.result?.score !== undefined &&
            succeeded.some((n) => n.id === e.nodeId) && Task.utility(task, e.result.score) === max
          ) as JournalEvent.Of<"NodeFinished">
          assert.strictEqual(v.best()?.id, first.nodeId)
          assert.deepStrictEqual(v.utilityRange(), { min: Math.min(...utilities), max })
          assert.strictEqual(v.root.stats.bestUtility, max)
        }
        assert.deepStrictEqual(v.frontier().map((n) => n.id), [...v.nodes()].filter(ExperimentNode.isFinished).map((n) => n.id))
        for (const n of v.nodes()) {
          const path = v.path(n.id)
          assert.strictEqual(path.length, n.depth)
          assert.strictEqual(path.at(-1)?.id, n.id)
          assert.strictEqual(path[0]?.parent, ExperimentNode.ROOT)
          for (let i = 1; i < path.length; i++) assert.strictEqual(path[i]!.parent, path[i - 1]!.id)
          const siblings = v.siblings(n.id).map((s) => s.id)
          const parentChildren = n.parent === ExperimentNode.ROOT ? v.root.children : v.get(n.parent)!.children
          assert.deepStrictEqual(siblings, parentChildren.filter((c) => c !== n.id))
        }
      }),
      { numRuns: 150 }
    )
  })

  const finishEvents = (direction: Task.Direction) => {
    const task = makeTask(direction)
    const propose = (id: string, parent: string, at: number) =>
      JournalEvent.make("NodeProposed", { node: { id, parent, strategy, fingerprint: `fp-${id}`, proposedAt: at }, at })
    const succeed = (id: string, score: number, at: number) =>
      JournalEvent.make("NodeFinished", { nodeId: id, outcome: "Succeeded", result: Result.success({ m: score }, score), at })
    return interpret(task, []).concat([
      propose("a", "root", 1),
      propose("b", "root", 2),
      propose("a1", "a", 3),
      propose("a2", "a", 4),
      propose("a1x", "a1", 5),
      JournalEvent.make("NodeAdmitted", { nodeId: "a", estimate: { gpuSeconds: 1, wallSeconds: 0, dollars: 0, inputTokens: 0, outputTokens: 0 }, at: 5 }),
      succeed("a", 0.5, 6),
      succeed("b", 0.2, 7),
      succeed("a1", 0.9, 8),
      JournalEvent.make("NodeFinished", { nodeId: "a2", outcome: "Failed", result: Result.failure("OOM", "oom"), at: 9 }),
      JournalEvent.make("JobSubmitted", { nodeId: "a1x", job: { backend: "t", id: "j", data: {} }, at: 10 }),
      JournalEvent.make("JobProgress", { nodeId: "a1x", fraction: 0.25, metrics: [], at: 11 })
    ])
  }

  it("a hand-built maximise tree: best, stats, frontier, path, siblings, progress", () => {
    const tree = ExperimentTree.fold(finishEvents("maximize"))!
    const v = tree.view
    assert.strictEqual(v.size, 5)
    assert.strictEqual(v.best()?.id, "a1")
    assert.deepStrictEqual(v.root.children, ["a", "b"])
    assert.deepStrictEqual(ExperimentTree.copyStats(v.get("a")!.stats), { visits: 3, successes: 2, valueSum: 1.4, bestUtility: 0.9, pending: 1, open: 3 })
    assert.deepStrictEqual(ExperimentTree.copyStats(v.root.stats), { visits: 4, successes: 3, valueSum: 1.6, bestUtility: 0.9, pending: 1, open: 4 })
    assert.deepStrictEqual(v.frontier().map((n) => n.id), ["a", "b", "a1", "a2"])
    assert.deepStrictEqual(v.path("a1x").map((n) => n.id), ["a", "a1", "a1x"])
    assert.deepStrictEqual(v.siblings("a1").map((n) => n.id), ["a2"])
    assert.deepStrictEqual(v.siblings("a").map((n) => n.id), ["b"])
    assert.deepStrictEqual(v.siblings("nope"), [])
    assert.deepStrictEqual(v.path("nope"), [])
    assert.strictEqual(v.get("a1x")?.progress, 0.25)
    assert.strictEqual(v.get("a1x")?.state._tag, "Running")
    assert.strictEqual(v.get("a1x")?.depth, 3)
    assert.deepStrictEqual(v.utilityRange(), { min: 0.2, max: 0.9 })
    assert.strictEqual(v.byFingerprint("fp-b")?.id, "b")
    assert.strictEqual(tree.runId, "run-1")
    assert.strictEqual(tree.seed, 3)
    assert.deepStrictEqual([...tree.ids()], ["a", "b", "a1", "a2", "a1x"])
  })

  it("a minimise task flips utility: the lowest score is best", () => {
    const v = ExperimentTree.fold(finishEvents("minimize"))!.view
    assert.strictEqual(v.best()?.id, "b")
    assert.strictEqual(v.root.stats.bestUtility, -0.2)
    assert.closeTo(v.get("a")!.stats.valueSum, -1.4, 1e-12)
    assert.deepStrictEqual(v.utilityRange(), { min: -0.9, max: -0.2 })
  })

  it("a tree far larger than its first statistics buffer: live stats, incremental = replay, copies and JSON", () => {
    // a spine of 120 levels with 24 leaves on each (3,000 nodes; the buffer starts at 1,024)
    const task = makeTask("maximize")
    const events = interpret(task, [])
    let tip: string = ExperimentNode.ROOT
    let at = 0
    const estimate = { gpuSeconds: 1, wallSeconds: 0, dollars: 0, inputTokens: 0, outputTokens: 0 }
    for (let i = 1; i <= 3000; i++) {
      const id = `n${i}`
      events.push(JournalEvent.make("NodeProposed", { node: { id, parent: tip, strategy, fingerprint: `fp-${id}`, proposedAt: ++at }, at }))
      events.push(JournalEvent.make("NodeAdmitted", { nodeId: id, estimate, at: ++at }))
      // every 7th stays running; the others succeed with score i / 3000
      if (i % 7 !== 0) events.push(JournalEvent.make("NodeFinished", { nodeId: id, outcome: "Succeeded", result: Result.success({ m: i / 3000 }, i / 3000), at: ++at }))
      if (i % 25 === 0) tip = id
    }
    const incremental = ExperimentTree.ExperimentTree.empty(task, "run-1", 3)
    // a view taken before the tree grows stays live
    let early: ExperimentTree.Stats | undefined
    for (const e of events) {
      incremental.apply(e)
      if (early === undefined && incremental.view.get("n1") !== undefined) early = incremental.view.get("n1")!.stats
    }
    checkStats(incremental, task)
    const replayed = ExperimentTree.fold(events)!
    assert.deepStrictEqual(snapshot(incremental), snapshot(replayed))
    const root = ExperimentTree.copyStats(replayed.view.root.stats)
    const finished = 3000 - Math.floor(3000 / 7)
    assert.strictEqual(root.visits, finished)
    assert.strictEqual(root.pending, Math.floor(3000 / 7))
    assert.strictEqual(root.bestUtility, 1)
    // n1's subtree is itself only (n25 is the first spine node)
    assert.deepStrictEqual(ExperimentTree.copyStats(early!), { visits: 1, successes: 1, valueSum: 1 / 3000, bestUtility: 1 / 3000, pending: 0, open: 1 })
    // the deepest spine node carries its own subtree: n2975 and the 24 leaves below it
    const deep = replayed.view.get("n2975")!
    assert.strictEqual(deep.depth, 119)
    assert.strictEqual(deep.stats.visits + deep.stats.pending, 1 + 25)
    assert.deepStrictEqual(JSON.parse(JSON.stringify(replayed.view.root.stats)), root)
  })

  it("a cancelled trial releases its virtual loss without counting a visit", () => {
    const task = makeTask("maximize")
    const events = interpret(task, []).concat([
      JournalEvent.make("NodeProposed", { node: { id: "x", parent: "root", strategy, fingerprint: "f", proposedAt: 1 }, at: 1 }),
      JournalEvent.make("NodeAdmitted", { nodeId: "x", estimate: { gpuSeconds: 1, wallSeconds: 0, dollars: 0, inputTokens: 0, outputTokens: 0 }, at: 2 }),
      JournalEvent.make("JobSubmitted", { nodeId: "x", job: { backend: "t", id: "j", data: {} }, at: 3 })
    ])
    const running = ExperimentTree.fold(events)!.view
    assert.strictEqual(running.root.stats.pending, 1)
    const done = ExperimentTree.fold(events.concat([JournalEvent.make("NodeFinished", { nodeId: "x", outcome: "Cancelled", reason: "user", at: 4 })]))!.view
    assert.deepStrictEqual(ExperimentTree.copyStats(done.root.stats), { visits: 0, successes: 0, valueSum: 0, bestUtility: -Infinity, pending: 0, open: 0 })
    assert.deepStrictEqual(done.get("x")?.state, { _tag: "Cancelled", reason: "user", finishedAt: 4 })
  })

  it("keeps the run's analysis: none before AnalysisCompleted, then the first one journaled", () => {
    const task = makeTask("maximize")
    const analysis = (summary: string) => ({ summary, metricNotes: "m", dataNotes: "d", risks: ["r"], notes: { k: [1] } })
    const events = interpret(task, [])
    assert.strictEqual(ExperimentTree.fold(events)!.view.analysis, undefined)
    const first = JournalEvent.make("AnalysisCompleted", { analysis: analysis("first"), at: 1 })
    const second = JournalEvent.make("AnalysisCompleted", { analysis: analysis("second"), at: 2 })
    const replayed = ExperimentTree.fold([...events, first, second])!
    assert.deepStrictEqual(replayed.view.analysis, analysis("first"))
    assert.strictEqual(replayed.applied, 3)
    // incrementally, as the explorer applies it
    const live = ExperimentTree.ExperimentTree.empty(task)
    const view = live.view
    live.apply(first)
    assert.strictEqual(view.analysis?.summary, "first")
    live.apply(second)
    assert.strictEqual(view.analysis?.summary, "first")
  })
})
