/**
 * The conformance suite every {@link SearchPolicy.SearchPolicyShape} runs, ours and users'.
 * Framework-neutral: {@link cases} returns named effects that throw (`node:assert/strict`) on a
 * violation, so any test runner can run them.
 *
 * @since 0.1.0
 */
import assert from "node:assert/strict"
import { Effect, Random } from "effect"
import type * as ExperimentTree from "../ExperimentTree.ts"
import * as SearchPolicy from "../SearchPolicy.ts"
import * as TreeBuilder from "./TreeBuilder.ts"

/** One named case. @since 0.1.0 @category models */
export interface Case {
  readonly name: string
  readonly run: Effect.Effect<void>
}

const context = (overrides: Partial<SearchPolicy.SelectionContext> = {}): SearchPolicy.SelectionContext => ({
  budgetUsed: 0.3,
  inFlight: 0,
  concurrency: 1,
  finished: 0,
  exhausted: () => false,
  ...overrides
})

/** A deterministic stream in [0, 1) for building trees. */
const lcg = (seed: number) => {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

const checkValid = (tree: ExperimentTree.TreeView, ctx: SearchPolicy.SelectionContext, sel: SearchPolicy.Selection, name: string) => {
  const wrong = SearchPolicy.check(tree, ctx, sel)
  assert.ok(wrong === undefined, `${name}: ${wrong}`)
}

/**
 * @example
 * ```ts
 * import { SearchPolicyConformance } from "@trex/core/testing"
 * import { Uct } from "@trex/mcts"
 * for (const c of SearchPolicyConformance.cases(() => Uct.make())) {
 *   // it.effect(c.name, () => c.run)
 * }
 * ```
 * @since 0.1.0 @category constructors
 */
export const cases = (make: () => SearchPolicy.SearchPolicyShape): ReadonlyArray<Case> => [
  {
    name: "expands the root of an empty tree",
    run: Effect.gen(function*() {
      const b = new TreeBuilder.TreeBuilder(TreeBuilder.task())
      const sel = yield* make().select(b.view, context())
      assert.deepEqual(sel, SearchPolicy.expand("root"))
    })
  },
  {
    name: "only ever expands the root or a finished, non-exhausted, non-cancelled node",
    run: Effect.gen(function*() {
      for (let seed = 0; seed < 30; seed++) {
        const b = TreeBuilder.random(5 + seed * 3, lcg(seed))
        const exhausted = new Set([...b.view.nodes()].filter((_, i) => i % 4 === 0).map((n) => n.id))
        const ctx = context({ exhausted: (id) => exhausted.has(id), inFlight: 1 })
        const sel = yield* make().select(b.view, ctx).pipe(Random.withSeed(seed))
        checkValid(b.view, ctx, sel, make().name)
      }
    })
  },
  {
    name: "is deterministic for a seed",
    run: Effect.gen(function*() {
      const b = TreeBuilder.random(40, lcg(7))
      const policy = make()
      const ctx = context({ inFlight: 1 })
      const a = yield* policy.select(b.view, ctx).pipe(Random.withSeed("s"))
      const c = yield* policy.select(b.view, ctx).pipe(Random.withSeed("s"))
      assert.deepEqual(a, c)
    })
  },
  {
    name: "stops or waits, never expands, when every node is exhausted",
    run: Effect.gen(function*() {
      const b = TreeBuilder.random(20, lcg(3))
      const idle = yield* make().select(b.view, context({ exhausted: () => true }))
      assert.equal(idle._tag, "Stop", `with nothing in flight the policy must stop, got ${idle._tag}`)
      const busy = yield* make().select(b.view, context({ exhausted: () => true, inFlight: 2 }))
      assert.notEqual(busy._tag, "Expand")
    })
  },
  {
    name: "expands something while any node can be expanded and nothing is in flight",
    run: Effect.gen(function*() {
      for (let seed = 0; seed < 10; seed++) {
        const b = TreeBuilder.random(15, lcg(100 + seed))
        const ctx = context()
        const sel = yield* make().select(b.view, ctx).pipe(Random.withSeed(seed))
        assert.equal(sel._tag, "Expand", `seed ${seed}: ${JSON.stringify(sel)}`)
        checkValid(b.view, ctx, sel, make().name)
      }
    })
  }
]
