import { assert, describe, it } from "@effect/vitest"
import { Cost, ExperimentNode, ExperimentTree, Fingerprint, JournalEvent, type Researcher, Result, SearchSpace, Strategy, Task } from "@trex/core"
import { Effect, Random, Schema } from "effect"
import * as RandomResearcher from "../src/RandomResearcher.ts"
import { poolPoints, uniform } from "../src/internal/tpeSpace.ts"

const space: SearchSpace.SearchSpace = {
  parameters: [
    { path: "training.learningRate", kind: "log", values: [1e-4, 1e-3] },
    { path: "training.extra.layers", kind: "ordinal", values: [1, 2, 3] }
  ]
}
const task = Schema.decodeUnknownSync(Task.Task)({
  name: "toy",
  objective: "toy",
  metric: { name: "score", direction: "maximize" },
  searchSpace: space,
  defaultStrategy: { data: { sources: [{ name: "d" }] }, training: { learningRate: 1e-3, epochs: 1, batchSize: 1 } }
})

const contextOf = (tree: ExperimentTree.ExperimentTree): Researcher.ProposalContext => ({
  task,
  analysis: { summary: "", metricNotes: "", dataNotes: "", risks: [], notes: {} },
  tree: tree.view,
  parentId: ExperimentNode.ROOT,
  usage: { trials: tree.view.size, spent: Cost.zero, reserved: Cost.zero, elapsedSeconds: 0 },
  tried: (fp) => tree.view.byFingerprint(fp) !== undefined
})

const record = (tree: ExperimentTree.ExperimentTree, strategy: Strategy.Strategy, score: number) => {
  const id = `n${tree.view.size + 1}`
  tree.apply(JournalEvent.make("NodeProposed", {
    node: { id, parent: ExperimentNode.ROOT, strategy, fingerprint: Fingerprint.of(strategy), proposedAt: 0 },
    at: 0
  }))
  tree.apply(JournalEvent.make("NodeFinished", { nodeId: id, outcome: "Succeeded", result: Result.success({ score }, score), at: 0 }))
}

const sequence = (seed: number, steps: number) =>
  Effect.gen(function*() {
    const researcher = RandomResearcher.make()
    const tree = ExperimentTree.ExperimentTree.empty(task)
    const out: Array<string> = []
    for (let i = 0; i < steps; i++) {
      const [p] = yield* researcher.propose(contextOf(tree), 1)
      if (p === undefined) break
      out.push(Fingerprint.of(p.strategy))
      record(tree, p.strategy, i)
    }
    return out
  }).pipe(Random.withSeed(seed))

describe("RandomResearcher", () => {
  it.effect("is deterministic for a seed and differs across seeds", () =>
    Effect.gen(function*() {
      const a = yield* sequence(1, 6)
      const b = yield* sequence(1, 6)
      assert.deepStrictEqual(a, b)
      const others = yield* Effect.forEach([2, 3, 4], (s) => sequence(s, 6))
      assert.isTrue(others.some((o) => o.join() !== a.join()))
    }))

  it.effect("never proposes a tried fingerprint and stops when the space is exhausted", () =>
    Effect.gen(function*() {
      const seq = yield* sequence(7, 10)
      assert.strictEqual(seq.length, SearchSpace.size(space))
      assert.strictEqual(new Set(seq).size, seq.length)
    }))

  it.effect("a batch holds distinct strategies on the grid, within the space's size", () =>
    Effect.gen(function*() {
      const tree = ExperimentTree.ExperimentTree.empty(task)
      const batch = yield* RandomResearcher.make().propose(contextOf(tree), 10).pipe(Random.withSeed(3))
      assert.strictEqual(batch.length, 6)
      assert.strictEqual(new Set(batch.map((p) => Fingerprint.of(p.strategy))).size, 6)
      for (const p of batch) {
        assert.include([1e-4, 1e-3], p.strategy.training.learningRate)
        assert.include([1, 2, 3], p.strategy.training.extra["layers"])
      }
    }))

  it.effect("explains a task without a search space", () =>
    Effect.gen(function*() {
      const { searchSpace: _, ...bare } = task
      const err = yield* Effect.flip(RandomResearcher.make().analyze(bare))
      assert.strictEqual(err._tag, "ResearcherError")
      assert.include(err.message, "declares no searchSpace")
      const ok = yield* RandomResearcher.make().analyze(task)
      assert.include(ok.summary, "6 combinations")
    }))
})

describe("a finite pool's points", () => {
  const pool: SearchSpace.SearchSpace = { ...space, points: [[1e-3, 3], [1e-4, 1], [1e-3, 2], [1e-4, 3]] }

  it("are mapped to grid indices once per pool, not at every proposal (100,000 rows took 30 ms a proposal)", () => {
    const first = poolPoints(pool)!
    assert.deepStrictEqual(first, [[1, 2], [0, 0], [1, 1], [0, 2]])
    assert.strictEqual(poolPoints(pool), first, "the same pool: the same points, not mapped again")
    // other parameters over the same rows are mapped anew
    const reordered = { ...pool, parameters: [space.parameters[0]!, { ...space.parameters[1]!, values: [3, 2, 1] }] }
    assert.deepStrictEqual(poolPoints(reordered), [[1, 0], [0, 2], [1, 1], [0, 0]])
  })

  it.effect("are each drawn once when all are asked for", () =>
    Effect.gen(function*() {
      const s = { space: pool, base: task.defaultStrategy! }
      const drawn = yield* uniform(s, 10, () => true, "r").pipe(Random.withSeed(3))
      assert.strictEqual(drawn.length, 4)
      assert.sameDeepMembers(drawn.map((d) => [d.training.learningRate, d.training.extra["layers"]]), pool.points!.map((p) => [...p]))
    }))
})
