// Every search policy refuses a mistyped option (out of range, not finite, a fraction for a whole
// number, a string from a JSON config, a misspelt key) with an InvalidInput that names it, the
// value and what it takes: `make` throws it where it is written, `layer` fails with it before the
// run journals or runs anything. Good options, the edges of each range included, still run.
import { inspect } from "node:util"
import { assert, describe, it } from "@effect/vitest"
import { Errors, Journal, SearchPolicy } from "@trex/core"
import { OptionsConformance, TreeBuilder } from "@trex/core/testing"
import { Effect, Layer } from "effect"
import * as BestFirst from "../src/BestFirst.ts"
import * as Explorer from "../src/Explorer.ts"
import * as Greedy from "../src/Greedy.ts"
import * as Puct from "../src/Puct.ts"
import * as RandomPolicy from "../src/RandomPolicy.ts"
import * as Uct from "../src/Uct.ts"
import { type ExecLog, functionExecutor, gridResearcher, layers, makeTask } from "./support/toy.ts"

/** Options as a test's name shows them: `{ c: NaN }`, `{ c: '0.5' }` (JSON would show both as strings or null). */
const label = (options: unknown) => inspect(options, { breakLength: Infinity, depth: 4 })

type Make = (options: never) => SearchPolicy.SearchPolicyShape
type MakeLayer = (options: never) => Layer.Layer<SearchPolicy.SearchPolicy, Errors.InvalidInput>

/** [constructor, options as an untyped caller or a JSON config gives them, each line the message must hold] */
const bad: ReadonlyArray<readonly [string, Make, unknown, ReadonlyArray<string>]> = [
  ["Uct.make", Uct.make, { c: -1 }, ["c: expected a number of at least 0 (the exploration constant", "got -1"]],
  ["Uct.make", Uct.make, { c: Number.NaN }, ["c: expected a number of at least 0", "got NaN"]],
  ["Uct.make", Uct.make, { c: Number.POSITIVE_INFINITY }, ["c: expected a number of at least 0", "got Infinity"]],
  ["Uct.make", Uct.make, { c: "0.5" }, [`c: expected a number of at least 0`, `got "0.5" (a string: write 0.5 without quotes)`]],
  ["Uct.make", Uct.make, { exploration: 0.5 }, [`exploration: not an option; did you mean "c"?`]],
  ["Uct.make", Uct.make, { backup: "avg" }, [`backup: expected "max" or "mean" (how a subtree is valued: its best result or its mean), got "avg"`]],
  ["Uct.make", Uct.make, { backup: "maxx" }, [`backup: expected "max" or "mean"`, `got "maxx"; did you mean "max"?`]],
  ["Uct.make", Uct.make, { decay: -0.5 }, ["decay: expected a number of at least 0", "got -0.5"]],
  ["Uct.make", Uct.make, { drafts: 0 }, ["drafts: expected an integer of at least 1", "got 0"]],
  ["Uct.make", Uct.make, { drafts: 2.5 }, ["drafts: expected an integer of at least 1", "got 2.5"]],
  ["Uct.make", Uct.make, { drafts: "4" }, [`drafts: expected an integer of at least 1`, `got "4" (a string: write 4 without quotes)`]],
  ["Uct.make", Uct.make, { widening: { k: 0, alpha: 0.5 } }, ["widening.k: expected a number above 0 (children allowed at the first visit), got 0"]],
  ["Uct.make", Uct.make, { widening: { k: 2, alpha: 2 } }, ["widening.alpha: expected a number from 0 to 1", "got 2"]],
  ["Uct.make", Uct.make, { widening: { k: 2, alfa: 0.5 } }, [`widening.alfa: not an option; did you mean "alpha"?`, "widening.alpha: expected a number from 0 to 1", "got undefined"]],
  ["Uct.make", Uct.make, { widening: 2 }, ["widening: expected an object (progressive widening: { k, alpha }), got 2"]],
  ["Uct.make", Uct.make, { virtualLoss: "false" }, [`virtualLoss: expected true or false`, `got "false" (a string: write false without quotes)`]],
  ["Uct.make", Uct.make, { usePriors: 1 }, ["usePriors: expected true or false", "got 1"]],
  ["Uct.make", Uct.make, null, ["options: expected an object, got null"]],
  ["Puct.make", Puct.make, { c: -1 }, ["c: expected a number of at least 0", "got -1"]],
  ["Puct.make", Puct.make, { cPuct: 2 }, [`cPuct: not an option; did you mean "c"?`]],
  ["Puct.make", Puct.make, { usePriors: false }, [`usePriors: not an option; the options: c, decay, backup, drafts, widening, virtualLoss`]],
  ["Puct.make", Puct.make, { drafts: Number.NaN }, ["drafts: expected an integer of at least 1", "got NaN"]],
  ["Greedy.make", Greedy.make, { drafts: 0 }, ["drafts: expected an integer of at least 1 (first-level strategies to try before improving the best), got 0"]],
  ["Greedy.make", Greedy.make, { drafts: Number.POSITIVE_INFINITY }, ["drafts: expected an integer of at least 1", "got Infinity"]],
  ["Greedy.make", Greedy.make, { debugProbability: 2 }, ["debugProbability: expected a number from 0 to 1", "got 2"]],
  ["Greedy.make", Greedy.make, { draft: 1 }, [`draft: not an option; did you mean "drafts"?`]],
  ["BestFirst.make", BestFirst.make, { maxChildren: 0 }, ["maxChildren: expected an integer of at least 1 (children per node before it is set aside), got 0"]],
  ["BestFirst.make", BestFirst.make, { maxChildren: 1.5 }, ["maxChildren: expected an integer of at least 1", "got 1.5"]],
  ["BestFirst.make", BestFirst.make, { maxChildren: "2" }, [`got "2" (a string: write 2 without quotes)`]],
  ["RandomPolicy.make", RandomPolicy.make, { seed: 7 }, ["seed: not an option; there are none here"]]
]

const runWith = (policy: Layer.Layer<SearchPolicy.SearchPolicy, Errors.InvalidInput>, log: ExecLog, journal = Journal.makeMemory()) =>
  Explorer.run(makeTask({ maxTrials: 6 }), { runId: "o", runDir: "/tmp/unused", seed: 3 }).pipe(
    Effect.provide(Layer.mergeAll(Layer.succeed(Journal.Journal, journal), policy, layers(gridResearcher, functionExecutor(log))))
  )

describe("search policy options", () => {
  for (const [name, make, options, lines] of bad) {
    it(`${name}(${label(options)}) throws an InvalidInput that names the option`, () => {
      assert.isUndefined(OptionsConformance.refusal(name, make, options, lines))
    })
  }

  const layerCases: ReadonlyArray<readonly [string, MakeLayer, unknown, string]> = [
    ["Uct.make", Uct.layer, { c: Number.NaN }, "c: expected a number of at least 0"],
    ["Puct.make", Puct.layer, { widening: { k: -1, alpha: 0.5 } }, "widening.k: expected a number above 0"],
    ["Greedy.make", Greedy.layer, { debugProbability: -0.1 }, "debugProbability: expected a number from 0 to 1"],
    ["BestFirst.make", BestFirst.layer, { maxChildern: 2 }, `maxChildern: not an option; did you mean "maxChildren"?`]
  ]
  for (const [name, layer, options, line] of layerCases) {
    it.live(`a run with ${name}'s layer given ${label(options)} fails with the InvalidInput before any trial`, () =>
      Effect.gen(function*() {
        const log: ExecLog = { runs: [] }
        const journal = Journal.makeMemory()
        const error = yield* Effect.flip(runWith(layer(options as never), log, journal))
        assert.strictEqual(error._tag, "InvalidInput")
        assert.strictEqual((error as Errors.InvalidInput).source, `${name} options`)
        assert.include(error.message, line)
        assert.lengthOf(log.runs, 0)
        assert.lengthOf(yield* journal.read(), 0)
      }))
  }

  const good: ReadonlyArray<readonly [string, Layer.Layer<SearchPolicy.SearchPolicy, Errors.InvalidInput>]> = [
    ["Uct, the low edges", Uct.layer({ c: 0, decay: 0, drafts: 1, widening: { k: 0.5, alpha: 0 }, virtualLoss: false, backup: "mean", usePriors: false })],
    ["Uct, the high edges", Uct.layer({ c: 1e6, decay: 100, drafts: 1000, widening: { k: 100, alpha: 1 } })],
    ["Uct, undefined counts as left out", Uct.layer({ c: undefined, backup: undefined, widening: undefined } as unknown as Uct.Options)],
    ["Puct", Puct.layer({ c: 0, drafts: 2, widening: { k: 1, alpha: 1 } })],
    ["Greedy", Greedy.layer({ drafts: 1, debugProbability: 1 })],
    ["BestFirst", BestFirst.layer({ maxChildren: 1 })],
    ["RandomPolicy", RandomPolicy.layer]
  ]
  for (const [name, layer] of good) {
    it.live(`${name}: good options run to the budget`, () =>
      Effect.gen(function*() {
        const log: ExecLog = { runs: [] }
        const summary = yield* runWith(layer, log)
        assert.strictEqual(summary.reason, "budget: maxTrials")
        assert.lengthOf(log.runs, 6)
      }))
  }

  it.effect("Puct.make({ c: undefined }) keeps PUCT's default c of 1.5 (it took UCT's 0.1)", () =>
    Effect.gen(function*() {
      // root -> a (0.9) -> a1..a4 (0.5 each); root -> b (0.8): a's value is higher, b is less visited,
      // and the exploration constant decides between them (b from c = 0.61 up)
      const t = new TreeBuilder.TreeBuilder(TreeBuilder.task())
      const a = t.succeed("root", { "training.epochs": 2 }, 0.9)
      for (let i = 0; i < 4; i++) t.succeed(a, { "training.learningRate": 0.001 * (i + 1) }, 0.5)
      const b = t.succeed("root", { "training.epochs": 3 }, 0.8)
      const ctx: SearchPolicy.SelectionContext = { budgetUsed: 0, inFlight: 0, concurrency: 1, finished: 6, exhausted: () => false }
      const select = (options: Puct.Options) => Puct.make({ drafts: 1, ...options }).select(t.view, ctx)
      assert.deepStrictEqual(yield* select({}), SearchPolicy.expand(b))
      assert.notDeepEqual(yield* select({ c: 0.1 }), SearchPolicy.expand(b))
      assert.deepStrictEqual(yield* select({ c: undefined } as unknown as Puct.Options), SearchPolicy.expand(b))
    }))
})
