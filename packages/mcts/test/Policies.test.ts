import { assert, describe, it } from "@effect/vitest"
import { Errors, SearchPolicy } from "@trex/core"
import { SearchPolicyConformance, TreeBuilder } from "@trex/core/testing"
import { Effect, Layer, Random } from "effect"
import * as Asha from "../src/Asha.ts"
import * as BestFirst from "../src/BestFirst.ts"
import * as Greedy from "../src/Greedy.ts"
import * as ProgressiveWidening from "../src/ProgressiveWidening.ts"
import * as Puct from "../src/Puct.ts"
import * as RandomPolicy from "../src/RandomPolicy.ts"
import * as Uct from "../src/Uct.ts"
import { Argmax } from "../src/internal/values.ts"

const ctx = (overrides: Partial<SearchPolicy.SelectionContext> = {}): SearchPolicy.SelectionContext => ({
  budgetUsed: 0,
  inFlight: 0,
  concurrency: 1,
  finished: 0,
  exhausted: () => false,
  ...overrides
})

const policies: Record<string, () => SearchPolicy.SearchPolicyShape> = {
  uct: () => Uct.make(),
  "uct-mean": () => Uct.make({ backup: "mean", c: 0.7 }),
  puct: () => Puct.make(),
  greedy: () => Greedy.make(),
  "best-first": () => BestFirst.make(),
  random: () => RandomPolicy.make()
}

for (const [name, make] of Object.entries(policies)) {
  describe(`SearchPolicy conformance: ${name}`, () => {
    for (const c of SearchPolicyConformance.cases(make)) it.effect(c.name, () => c.run)
  })
}

/** root -> a (0.2) -> a1 (0.9); root -> b (0.5) */
const small = () => {
  const b = new TreeBuilder.TreeBuilder(TreeBuilder.task())
  const a = b.succeed("root", { "training.epochs": 2 }, 0.2)
  const bb = b.succeed("root", { "training.epochs": 3 }, 0.5)
  const a1 = b.succeed(a, { "training.learningRate": 0.001 }, 0.9)
  return { b, a, bb, a1 }
}

describe("Uct", () => {
  it.effect("with no exploration it expands the best node, like greedy", () =>
    Effect.gen(function*() {
      const { a1, b } = small()
      const sel = yield* Uct.make({ c: 0, drafts: 2 }).select(b.view, ctx())
      assert.deepStrictEqual(sel, SearchPolicy.expand(a1))
    }))

  it.effect("exploration sends some selections to less-visited subtrees", () =>
    Effect.gen(function*() {
      const { b, bb } = small()
      const picks = new Set<string>()
      for (let seed = 0; seed < 20; seed++) {
        const sel = yield* Uct.make({ c: 3 }).select(b.view, ctx()).pipe(Random.withSeed(seed))
        if (sel._tag === "Expand") picks.add(sel.nodeId)
      }
      assert.isTrue(picks.has(bb) || picks.has("root"), [...picks].join(","))
    }))

  it.effect("progressive widening caps children: a node at its cap is not expanded again", () =>
    Effect.gen(function*() {
      const b = new TreeBuilder.TreeBuilder(TreeBuilder.task())
      const n1 = b.succeed("root", {}, 0.9)
      b.succeed("root", { "training.epochs": 2 }, 0.1)
      // n1 has one visit: with k=1, alpha=0 it may have one child; give it one
      b.succeed(n1, { "training.epochs": 4 }, 0.2)
      const sel = yield* Uct.make({ c: 0, widening: { k: 1, alpha: 0 } }).select(b.view, ctx())
      assert.notDeepEqual(sel, SearchPolicy.expand(n1))
    }))

  it.effect("pending trials count as losses (virtual loss), spreading parallel selections", () =>
    Effect.gen(function*() {
      const b = new TreeBuilder.TreeBuilder(TreeBuilder.task())
      const good = b.succeed("root", {}, 0.8)
      b.succeed("root", { "training.epochs": 2 }, 0.7)
      for (let i = 0; i < 4; i++) b.start(b.propose(good, { "training.epochs": 1 + i }))
      const sel = yield* Uct.make({ c: 0.5, backup: "mean" }).select(b.view, ctx({ inFlight: 4 }))
      assert.notDeepEqual(sel, SearchPolicy.expand(good))
    }))

  it.effect("decay shrinks exploration as the budget is spent", () =>
    Effect.gen(function*() {
      const { a1, b } = small()
      const sel = yield* Uct.make({ c: 50, decay: 1, drafts: 2 }).select(b.view, ctx({ budgetUsed: 1 }))
      assert.deepStrictEqual(sel, SearchPolicy.expand(a1))
    }))
})

describe("Puct", () => {
  it.effect("follows the researcher's priors between equally good children", () =>
    Effect.gen(function*() {
      const b = new TreeBuilder.TreeBuilder(TreeBuilder.task())
      const x = b.propose("root", { "training.epochs": 2 }, 0.9)
      b.finish(b.start(x), 0.5)
      const y = b.propose("root", { "training.epochs": 3 }, 0.1)
      b.finish(b.start(y), 0.5)
      const sel = yield* Puct.make({ c: 1, widening: { k: 1, alpha: 0 }, drafts: 1 }).select(b.view, ctx())
      assert.deepStrictEqual(sel, SearchPolicy.expand(x))
    }))
})

describe("Greedy, BestFirst, Random", () => {
  it.effect("greedy drafts first-level strategies, then improves the best", () =>
    Effect.gen(function*() {
      const b = new TreeBuilder.TreeBuilder(TreeBuilder.task())
      assert.deepStrictEqual(yield* Greedy.make({ drafts: 2 }).select(b.view, ctx()), SearchPolicy.expand("root"))
      b.succeed("root", {}, 0.3)
      const best = b.succeed("root", { "training.epochs": 2 }, 0.6)
      assert.deepStrictEqual(yield* Greedy.make({ drafts: 2, debugProbability: 0 }).select(b.view, ctx()), SearchPolicy.expand(best))
    }))

  it.effect("greedy debugs a failed node when told to always", () =>
    Effect.gen(function*() {
      const b = new TreeBuilder.TreeBuilder(TreeBuilder.task())
      b.succeed("root", {}, 0.3)
      const bad = b.fail("root", { "training.epochs": 2 }, "OOM")
      assert.deepStrictEqual(yield* Greedy.make({ drafts: 1, debugProbability: 1 }).select(b.view, ctx()), SearchPolicy.expand(bad))
    }))

  it.effect("best-first moves on once the best node has its children", () =>
    Effect.gen(function*() {
      const b = new TreeBuilder.TreeBuilder(TreeBuilder.task())
      const best = b.succeed("root", {}, 0.9)
      const second = b.succeed("root", { "training.epochs": 2 }, 0.5)
      b.succeed(best, { "training.epochs": 3 }, 0.1)
      b.succeed(best, { "training.epochs": 4 }, 0.1)
      assert.deepStrictEqual(yield* BestFirst.make({ maxChildren: 2 }).select(b.view, ctx()), SearchPolicy.expand(second))
    }))

  it.effect("random reaches every expandable node", () =>
    Effect.gen(function*() {
      const { b } = small()
      const seen = new Set<string>()
      for (let seed = 0; seed < 60; seed++) {
        const sel = yield* RandomPolicy.make().select(b.view, ctx()).pipe(Random.withSeed(seed))
        if (sel._tag === "Expand") seen.add(sel.nodeId)
      }
      assert.strictEqual(seen.size, 4)
    }))
})

describe("ProgressiveWidening", () => {
  it("allows ceil(k (visits + 1)^alpha) children", () => {
    assert.strictEqual(ProgressiveWidening.allowed(0, { k: 2, alpha: 0.5 }), 2)
    assert.strictEqual(ProgressiveWidening.allowed(8, { k: 1, alpha: 0.5 }), 3)
    assert.strictEqual(ProgressiveWidening.allowed(99, { k: 1, alpha: 0.5 }), 10)
    assert.strictEqual(ProgressiveWidening.allowed(5, { k: 1, alpha: 0 }), 1)
  })
})

describe("Asha", () => {
  const asha = (options: Asha.Options) => Effect.runSync(Asha.make(options))
  const build = () => {
    const b = new TreeBuilder.TreeBuilder(TreeBuilder.task())
    const ids = [0.9, 0.8, 0.7, 0.2].map((v, i) => {
      const id = b.start(b.propose("root", { "training.epochs": 1 + i }))
      b.progress(id, 1, v)
      return id
    })
    return { b, ids }
  }
  it("prunes a trial outside the top 1/eta at its rung, keeps the leaders", () => {
    const { b, ids } = build()
    const s = asha({ metric: { name: "score", direction: "maximize" }, minStep: 1, eta: 2 })
    assert.strictEqual(s.decide(b.view, ids[0]!), "continue")
    assert.strictEqual(s.decide(b.view, ids[1]!), "continue")
    assert.strictEqual(s.decide(b.view, ids[3]!), "prune")
  })
  it("respects the direction: when minimising, the low value leads", () => {
    const { b, ids } = build()
    const s = asha({ metric: { name: "score", direction: "minimize" }, minStep: 1, eta: 2 })
    assert.strictEqual(s.decide(b.view, ids[3]!), "continue")
    assert.strictEqual(s.decide(b.view, ids[0]!), "prune")
  })
  it("waits for enough trials at a rung", () => {
    const b = new TreeBuilder.TreeBuilder(TreeBuilder.task())
    const id = b.progress(b.start(b.propose("root", {})), 1, 0.1)
    assert.strictEqual(asha({ metric: { name: "score", direction: "maximize" }, minStep: 1 }).decide(b.view, id), "continue")
  })

  it("judges a trial once at a rung, by the report that takes it there: trials reaching the rung later do not prune one let go on", () => {
    const b = new TreeBuilder.TreeBuilder(TreeBuilder.task())
    const s = asha({ metric: { name: "score", split: "eval", direction: "maximize" }, minStep: 1, eta: 3, minTrialsPerRung: 2 })
    const point = (step: number, value: number) => ({ step, split: "eval", name: "score", value })
    const start = (k: number) => b.start(b.propose("root", { "training.epochs": 1 + k }))
    const [x, p1] = [start(0), start(1)]
    b.progress(p1, 1, 0.4)
    b.progress(x, 1, 0.5)
    // at rung 1 with one peer (behind it): let go on
    assert.strictEqual(s.decide(b.view, x, [point(1, 0.5)]), "continue")
    // two better trials reach rung 1 while x runs on to step 2
    for (const [k, v] of [[2, 0.9], [3, 0.8]] as const) b.progress(start(k), 1, v)
    b.progress(x, 2, 0.6)
    assert.strictEqual(s.decide(b.view, x, [point(2, 0.6)]), "continue", "not judged again at rung 1")
    // without the report, every call judges at the highest rung reached: now outside the top third
    assert.strictEqual(s.decide(b.view, x), "prune")
    // a trial whose report takes it to rung 1 now is judged against all four
    const late = start(4)
    b.progress(late, 1, 0.45)
    assert.strictEqual(s.decide(b.view, late, [point(1, 0.45)]), "prune")
    // x's next rung (3) is judged when a report takes it there (alone at it: let go on)
    b.progress(x, 3, 0.7)
    assert.strictEqual(s.decide(b.view, x, [point(3, 0.7)]), "continue")
  })

  describe('minStep "auto": rungs at a ninth and a third of a whole trial (eta 3)', () => {
    const auto = asha({ metric: { name: "score", direction: "maximize" }, minStep: "auto" })
    /** A trial that reports `values` at steps 1, 2, ...; finished (succeeded) or still running. */
    const trial = (b: TreeBuilder.TreeBuilder, k: number, values: ReadonlyArray<number>, finished: boolean) => {
      const id = b.start(b.propose("root", { "training.epochs": 1 + (k % 6), "training.learningRate": 10 ** -(1 + k) }))
      values.forEach((v, i) => b.progress(id, i + 1, v))
      return finished ? b.finish(id, values.at(-1)!) : id
    }
    it("prunes nothing before a trial has run to its end, however far behind", () => {
      const b = new TreeBuilder.TreeBuilder(TreeBuilder.task())
      const ids = [0.9, 0.8, 0.1].map((v, k) => trial(b, k, Array(20).fill(v), false))
      assert.strictEqual(auto.decide(b.view, ids[2]!), "continue")
    })
    it("with whole trials of 3, 9 and 27 steps (median 9): rungs at steps 1 and 3, none later", () => {
      const b = new TreeBuilder.TreeBuilder(TreeBuilder.task())
      for (const [k, length] of [3, 9, 27].entries()) trial(b, k, Array(length).fill(0.9 - k / 100), true)
      // behind at step 1 (a ninth of 9): pruned there
      assert.strictEqual(auto.decide(b.view, trial(b, 3, [0.1], false)), "prune")
      // level at step 1, behind at step 3: pruned at step 3
      assert.strictEqual(auto.decide(b.view, trial(b, 4, [0.9, 0.9, 0.1], false)), "prune")
      // level at step 3 and behind from step 4 on, to its end (step 9): let finish (a fixed first rung of 1 would stop it at step 9)
      const late = trial(b, 5, [0.9, 0.9, 0.9, ...Array(6).fill(0.1)], false)
      assert.strictEqual(auto.decide(b.view, late), "continue")
      assert.strictEqual(asha({ metric: { name: "score", direction: "maximize" }, minStep: 1 }).decide(b.view, late), "prune")
    })
  })

  // Each of these made a scheduler that looped for ever at the first report (eta <= 1, minStep <= 0),
  // pruned every trial, the best included (eta NaN), never pruned (minStep Infinity or NaN, a
  // misspelt minStep) or minimised a metric meant to be maximised (a direction it did not know).
  const metric = { name: "score", direction: "maximize" } as const
  const refused: ReadonlyArray<readonly [string, unknown, RegExp]> = [
    ["eta of 1", { metric, minStep: 1, eta: 1 }, /^ {2}eta: expected a number above 1 .*got 1$/m],
    ["eta below 1", { metric, minStep: 1, eta: 0.5 }, /^ {2}eta: .*got 0\.5$/m],
    ["eta NaN", { metric, minStep: 1, eta: NaN }, /^ {2}eta: .*got NaN$/m],
    ["minStep 0", { metric, minStep: 0 }, /^ {2}minStep: expected a number above 0 .*got 0$/m],
    ["minStep negative", { metric, minStep: -2 }, /^ {2}minStep: .*got -2$/m],
    ["minStep Infinity", { metric, minStep: Infinity }, /^ {2}minStep: .*got Infinity$/m],
    ["minStep neither a number nor \"auto\"", { metric, minStep: "Auto" }, /^ {2}minStep: expected a number above 0 .*, or "auto" .*got "Auto"$/m],
    ["minStep missing, min_step given", { metric, min_step: 1 }, /^ {2}min_step: not an option; did you mean "minStep"\?\n {2}minStep: .*got undefined$/m],
    ["minTrialsPerRung 0", { metric, minStep: 1, minTrialsPerRung: 0 }, /^ {2}minTrialsPerRung: expected an integer of at least 1 .*got 0$/m],
    ["minTrialsPerRung 1.5", { metric, minStep: 1, minTrialsPerRung: 1.5 }, /^ {2}minTrialsPerRung: .*got 1\.5$/m],
    ["a direction it does not know", { metric: { name: "score", direction: "max" }, minStep: 1 }, /^ {2}metric\.direction: expected "maximize" or "minimize" .*got "max"/m],
    ["no metric name", { metric: { name: "", direction: "minimize" }, minStep: 1 }, /^ {2}metric\.name: /m],
    ["an empty split", { metric: { name: "loss", split: "", direction: "minimize" }, minStep: 1 }, /^ {2}metric\.split: /m]
  ]
  for (const [what, options, message] of refused) {
    it.effect(`refuses ${what} with InvalidInput naming the option and what it takes`, () =>
      Effect.gen(function*() {
        const e = yield* Effect.flip(Asha.make(options as Asha.Options))
        assert.instanceOf(e, Errors.InvalidInput)
        assert.strictEqual(e.source, "Asha.make options")
        assert.match(e.message, message)
      }))
  }
  it.effect("every bad option is named at once; the layer fails to build with the same error", () =>
    Effect.gen(function*() {
      const options = { metric: { name: "score", direction: "up" }, minStep: 0, eta: 1 } as unknown as Asha.Options
      const e = yield* Effect.flip(Asha.make(options))
      assert.deepStrictEqual(e.message.split("\n").map((l) => l.trim().split(":")[0]), ["invalid Asha.make options", "metric.direction", "minStep", "eta"])
      const built = yield* Effect.flip(Layer.build(Asha.layer(options)).pipe(Effect.scoped))
      assert.strictEqual(built.message, e.message)
    }))
})

describe("Argmax (the tie-breaking every policy shares)", () => {
  it.effect("keeps the first best, collects scores within 1e-12 as ties and breaks them with the seeded Random", () =>
    Effect.gen(function*() {
      const single = new Argmax<string>()
      for (const [item, score] of [["a", 1], ["b", 3], ["c", 2]] as const) single.offer(item, score)
      assert.strictEqual(single.best, "b")
      assert.isUndefined(single.ties)
      assert.strictEqual(yield* single.pick(), "b")

      const tied = new Argmax<string>()
      for (const [item, score] of [["a", 1], ["b", 2], ["c", 2 + 1e-13], ["d", 2]] as const) tied.offer(item, score)
      assert.deepStrictEqual(tied.ties, ["b", "c", "d"])
      const picks = new Set<string | undefined>()
      for (let seed = 0; seed < 30; seed++) picks.add(yield* tied.pick().pipe(Random.withSeed(seed)))
      assert.deepStrictEqual([...picks].sort(), ["b", "c", "d"])
      // the same seed, the same pick
      assert.strictEqual(yield* tied.pick().pipe(Random.withSeed(4)), yield* tied.pick().pipe(Random.withSeed(4)))
      // a strictly better score ends the tie
      tied.offer("e", 2.5)
      assert.isUndefined(tied.ties)
      assert.strictEqual(tied.best, "e")
    }))
})
