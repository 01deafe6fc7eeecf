// The offline researchers refuse a mistyped option (out of range, not finite, a fraction for a
// whole number, a string from a JSON config, a misspelt key) with an InvalidInput that names it,
// the value and what it takes: `make` throws it, `layer` fails with it. Before, `maxCandidates` or
// `jumps` of Infinity hung the first proposal, `surrogateMaxObservations` below 2 crashed it, and the
// rest changed the search in silence. Good options, the edges of each range included, still propose.
import { inspect } from "node:util"
import { assert, describe, it } from "@effect/vitest"
import { Budget, Errors, ExperimentNode, ExperimentTree, Fingerprint, JournalEvent, Researcher, Result, SearchSpace, Strategy, Task } from "@trex/core"
import { OptionsConformance } from "@trex/core/testing"
import { Effect, Layer, Random, Schema } from "effect"
import * as HeuristicResearcher from "../src/HeuristicResearcher.ts"
import * as RandomResearcher from "../src/RandomResearcher.ts"
import * as TpeResearcher from "../src/TpeResearcher.ts"

/** Options as a test's name shows them: `{ gamma: NaN }`, `{ crossover: '0.3' }`. */
const label = (options: unknown) => inspect(options, { breakLength: Infinity, depth: 4 })

type Make = (options: never) => Researcher.ResearcherShape
type MakeLayer = (options: never) => Layer.Layer<Researcher.Researcher, Errors.InvalidInput>

/** [constructor, options as an untyped caller or a JSON config gives them, each line the message must hold] */
const bad: ReadonlyArray<readonly [string, Make, unknown, ReadonlyArray<string>]> = [
  ["HeuristicResearcher.make", HeuristicResearcher.make, { crossover: 2 }, ["crossover: expected a number from 0 to 1", "got 2"]],
  ["HeuristicResearcher.make", HeuristicResearcher.make, { secondMutation: -0.1 }, ["secondMutation: expected a number from 0 to 1", "got -0.1"]],
  ["HeuristicResearcher.make", HeuristicResearcher.make, { followInsights: Number.NaN }, ["followInsights: expected a number from 0 to 1", "got NaN"]],
  ["HeuristicResearcher.make", HeuristicResearcher.make, { crossover: "0.3" }, [`got "0.3" (a string: write 0.3 without quotes)`]],
  ["HeuristicResearcher.make", HeuristicResearcher.make, { crosover: 0.3 }, [`crosover: not an option; did you mean "crossover"?`]],
  ["HeuristicResearcher.make", HeuristicResearcher.make, { minPairs: 0 }, ["minPairs: expected an integer of at least 1", "got 0"]],
  ["HeuristicResearcher.make", HeuristicResearcher.make, { maxCandidates: 0 }, ["maxCandidates: expected an integer of at least 1 (candidates tried per proposal before giving up on a node), got 0"]],
  ["HeuristicResearcher.make", HeuristicResearcher.make, { maxCandidates: Number.POSITIVE_INFINITY }, ["maxCandidates: expected an integer of at least 1", "got Infinity"]],
  ["HeuristicResearcher.make", HeuristicResearcher.make, { maxCandidates: 2.5 }, ["maxCandidates: expected an integer of at least 1", "got 2.5"]],
  ["HeuristicResearcher.make", HeuristicResearcher.make, { jumps: Number.POSITIVE_INFINITY }, ["jumps: expected an integer of at least 0", "got Infinity"]],
  ["HeuristicResearcher.make", HeuristicResearcher.make, { jumps: -1 }, ["jumps: expected an integer of at least 0", "got -1"]],
  ["HeuristicResearcher.make", HeuristicResearcher.make, { surrogateMinObservations: 0 }, ["surrogateMinObservations: expected an integer of at least 1", "got 0"]],
  ["HeuristicResearcher.make", HeuristicResearcher.make, { surrogateMaxObservations: 1 }, ["surrogateMaxObservations: expected an integer of at least 2", "got 1"]],
  ["HeuristicResearcher.make", HeuristicResearcher.make, { surrogate: "false" }, [`surrogate: expected true or false`, `got "false" (a string: write false without quotes)`]],
  ["HeuristicResearcher.make", HeuristicResearcher.make, { randomDrafts: 0 }, ["randomDrafts: expected true or false", "got 0"]],
  ["HeuristicResearcher.make", HeuristicResearcher.make, { poolNeighbour: 5 }, ["poolNeighbour: not an option"]],
  ["HeuristicResearcher.make", HeuristicResearcher.make, { space: { parameters: "x" } }, ["space: parameters: Expected array"]],
  ["HeuristicResearcher.make", HeuristicResearcher.make, { space: { parameters: [] } }, ["space: has no parameters: list at least one, or leave space out"]],
  ["TpeResearcher.make", TpeResearcher.make, { gamma: 0 }, ["gamma: expected a number above 0 and below 1 (the fraction of successes counted as good), got 0"]],
  ["TpeResearcher.make", TpeResearcher.make, { gamma: 1 }, ["gamma: expected a number above 0 and below 1", "got 1"]],
  ["TpeResearcher.make", TpeResearcher.make, { gamma: Number.NaN }, ["gamma: expected a number above 0 and below 1", "got NaN"]],
  ["TpeResearcher.make", TpeResearcher.make, { startup: -1 }, ["startup: expected an integer of at least 0", "got -1"]],
  ["TpeResearcher.make", TpeResearcher.make, { startup: Number.POSITIVE_INFINITY }, ["startup: expected an integer of at least 0", "got Infinity"]],
  ["TpeResearcher.make", TpeResearcher.make, { candidates: 0 }, ["candidates: expected an integer of at least 1", "got 0"]],
  ["TpeResearcher.make", TpeResearcher.make, { candidates: Number.POSITIVE_INFINITY }, ["candidates: expected an integer of at least 1", "got Infinity"]],
  ["TpeResearcher.make", TpeResearcher.make, { prior: 0 }, ["prior: expected a number above 0", "got 0"]],
  ["TpeResearcher.make", TpeResearcher.make, { gama: 0.2 }, [`gama: not an option; did you mean "gamma"?`]],
  ["RandomResearcher.make", RandomResearcher.make, { attempts: 0 }, ["attempts: expected an integer of at least 1 (draws per proposal before a large space counts as exhausted), got 0"]],
  ["RandomResearcher.make", RandomResearcher.make, { attempts: 0.5 }, ["attempts: expected an integer of at least 1", "got 0.5"]],
  ["RandomResearcher.make", RandomResearcher.make, { attempts: "64" }, [`got "64" (a string: write 64 without quotes)`]],
  ["RandomResearcher.make", RandomResearcher.make, { seed: 3 }, [`seed: not an option; the options: attempts`]]
]

/** 5 parameters of 10 values: too large to enumerate, so the random researcher samples with `attempts`. */
const ten = (value: (i: number) => number) => Array.from({ length: 10 }, (_, i) => value(i))
const parameters: ReadonlyArray<SearchSpace.Parameter> = [
  { path: "training.learningRate", kind: "log", values: ten((i) => 2e-4 * 2 ** (i - 5)) },
  { path: "training.epochs", kind: "ordinal", values: ten((i) => i + 1) },
  { path: "training.batchSize", kind: "ordinal", values: ten((i) => 4 * (i + 1)) },
  { path: "data.numExamples", kind: "ordinal", values: ten((i) => 500 * (i + 1)) },
  { path: "training.warmupRatio", kind: "ordinal", values: ten((i) => i / 100) }
]
const task = Schema.decodeUnknownSync(Task.Task)({
  name: "toy",
  objective: "toy",
  metric: { name: "score", direction: "maximize" },
  searchSpace: { parameters },
  defaultStrategy: { data: { sources: [{ name: "d" }], numExamples: 4000 }, training: { learningRate: 2e-4, epochs: 5, batchSize: 24, warmupRatio: 0.03 } }
})
/** A known landscape: the closer to the middle of every parameter, the better. */
const scoreOf = (s: Strategy.Strategy): number =>
  1 - parameters.reduce((acc, p) => acc + Math.abs(SearchSpace.indexOf(p, s) - 5), 0) / 25

/**
 * A short sequential search driven by the researcher alone: each proposal for the best node so far
 * (the root first) is scored and recorded, `trials` times. Returns the trials recorded.
 */
const search = (researcher: Researcher.ResearcherShape, trials: number) =>
  Effect.gen(function*() {
    const tree = ExperimentTree.ExperimentTree.empty(task)
    const analysis = yield* researcher.analyze(task)
    for (let i = 0; i < trials; i++) {
      const context = (parentId: string): Researcher.ProposalContext => ({
        task,
        analysis,
        tree: tree.view,
        parentId,
        usage: new Budget.Ledger(task.budget).usage(),
        tried: (fp) => tree.view.byFingerprint(fp) !== undefined
      })
      // the best node, or the root when the researcher has nothing new under it
      let parent = tree.view.best()?.id ?? ExperimentNode.ROOT
      let [p] = yield* researcher.propose(context(parent), 1)
      if (p === undefined && parent !== ExperimentNode.ROOT) [p] = yield* researcher.propose(context(parent = ExperimentNode.ROOT), 1)
      if (p === undefined) break
      const id = `n${tree.view.size + 1}`
      tree.apply(JournalEvent.make("NodeProposed", {
        node: { id, parent, strategy: p.strategy, fingerprint: Fingerprint.of(p.strategy), proposedAt: 0 },
        at: 0
      }))
      const score = scoreOf(p.strategy)
      tree.apply(JournalEvent.make("NodeFinished", { nodeId: id, outcome: "Succeeded", result: Result.success({ score }, score), at: 0 }))
    }
    return tree.view.size
  }).pipe(Random.withSeed(5))

describe("researcher options", () => {
  for (const [name, make, options, lines] of bad) {
    it(`${name}(${label(options)}) throws an InvalidInput that names the option`, () => {
      assert.isUndefined(OptionsConformance.refusal(name, make, options, lines))
    })
  }

  const layerCases: ReadonlyArray<readonly [string, MakeLayer, unknown, string]> = [
    ["HeuristicResearcher.make", HeuristicResearcher.layer, { jumps: Number.POSITIVE_INFINITY }, "jumps: expected an integer of at least 0"],
    ["TpeResearcher.make", TpeResearcher.layer, { prior: -1 }, "prior: expected a number above 0"],
    ["RandomResearcher.make", RandomResearcher.layer, { atempts: 8 }, `atempts: not an option; did you mean "attempts"?`]
  ]
  for (const [name, layer, options, line] of layerCases) {
    it.effect(`${name}'s layer given ${label(options)} fails with the InvalidInput`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Effect.scoped(Layer.build(layer(options as never))))
        assert.strictEqual(error._tag, "InvalidInput")
        assert.strictEqual(error.source, `${name} options`)
        assert.include(error.message, line)
      }))
  }

  const good: ReadonlyArray<readonly [string, Layer.Layer<Researcher.Researcher, Errors.InvalidInput>]> = [
    ["HeuristicResearcher, the low edges", HeuristicResearcher.layer({
      secondMutation: 0, crossover: 0, followInsights: 0, minPairs: 1, randomDrafts: false, maxCandidates: 1, surrogate: true,
      jumps: 0, surrogateMinObservations: 1, surrogateMaxObservations: 2
    })],
    ["HeuristicResearcher, the high edges", HeuristicResearcher.layer({
      secondMutation: 1, crossover: 1, followInsights: 1, minPairs: 50, maxCandidates: 200, jumps: 200, surrogateMaxObservations: 500,
      space: { parameters: parameters.slice(0, 2) }
    })],
    ["TpeResearcher, the edges", TpeResearcher.layer({ gamma: 0.01, startup: 0, candidates: 1, prior: 0.001 })],
    ["TpeResearcher, gamma near 1", TpeResearcher.layer({ gamma: 0.99, startup: 2, candidates: 100 })],
    ["RandomResearcher, one attempt", RandomResearcher.layer({ attempts: 1 })]
  ]
  for (const [name, layer] of good) {
    it.effect(`${name}: good options still propose`, () =>
      Effect.gen(function*() {
        const researcher = yield* Researcher.Researcher
        assert.strictEqual(yield* search(researcher, 12), 12)
      }).pipe(Effect.provide(layer)))
  }
})
