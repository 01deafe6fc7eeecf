/**
 * The conformance suite every {@link Researcher.ResearcherShape} runs. Framework-neutral, like
 * the other suites: named effects that throw on a violation. Model-backed researchers run it
 * against a local model server.
 *
 * @since 0.1.0
 */
import assert from "node:assert/strict"
import { Effect, Random } from "effect"
import * as Budget from "../Budget.ts"
import * as Fingerprint from "../Fingerprint.ts"
import type * as Researcher from "../Researcher.ts"
import * as Strategy from "../Strategy.ts"
import type * as Task from "../Task.ts"
import * as TreeBuilder from "./TreeBuilder.ts"

/** One named case; `R` is what the researcher needs (a model, say). @since 0.1.0 @category models */
export interface Case<R> {
  readonly name: string
  readonly run: Effect.Effect<void, unknown, R>
}

const usage = (task: Task.Task) => new Budget.Ledger(task.budget).usage()

/**
 * @example
 * ```ts
 * import { ResearcherConformance } from "@trex/core/testing"
 * import { HeuristicResearcher } from "@trex/agents"
 * const cases = ResearcherConformance.cases(() => HeuristicResearcher.make())
 * ```
 * @since 0.1.0 @category constructors
 */
export const cases = <R = never>(
  make: () => Researcher.ResearcherShape,
  options: { readonly task?: Task.Task; readonly deterministic?: boolean; readonly provide?: <A, E>(e: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R> } = {}
): ReadonlyArray<Case<R>> => {
  const task = options.task ?? TreeBuilder.task()
  const wrap = options.provide ?? (<A, E>(e: Effect.Effect<A, E, R>) => e)
  const proposeUnder = (b: TreeBuilder.TreeBuilder, parentId: string, n: number, tried: (fp: string) => boolean) =>
    Effect.gen(function*() {
      const researcher = make()
      const analysis = yield* researcher.analyze(task)
      return yield* researcher.propose({ task, analysis, tree: b.view, parentId, usage: usage(task), tried }, n)
    })
  const triedIn = (b: TreeBuilder.TreeBuilder) => (fp: string) => b.view.byFingerprint(fp) !== undefined
  const cs: Array<Case<R>> = [
    {
      name: "analyze returns an analysis with a summary",
      run: wrap(Effect.gen(function*() {
        const a = yield* make().analyze(task)
        assert.equal(typeof a.summary, "string")
        assert.ok(a.summary.length > 0)
      }))
    },
    {
      name: "propose returns at most n valid strategies, none already tried, none repeated",
      run: wrap(Effect.gen(function*() {
        const b = new TreeBuilder.TreeBuilder(task)
        const n1 = b.succeed("root", {}, 0.4)
        b.succeed(n1, { "training.epochs": 2 }, 0.5)
        for (const parent of ["root", n1]) {
          const proposals = yield* proposeUnder(b, parent, 3, triedIn(b)).pipe(Random.withSeed(1))
          assert.ok(proposals.length <= 3, `asked for 3, got ${proposals.length}`)
          const fps = proposals.map((p) => {
            Strategy.decodeSync(Strategy.encode(p.strategy))
            return Fingerprint.of(p.strategy)
          })
          assert.equal(new Set(fps).size, fps.length, "a fingerprint was proposed twice")
          for (const fp of fps) assert.ok(!triedIn(b)(fp), `proposed the tried fingerprint ${fp}`)
          for (const p of proposals) if (p.prior !== undefined) assert.ok(p.prior >= 0 && Number.isFinite(p.prior))
        }
      }))
    },
    {
      name: "proposes nothing tried when told everything but one strategy was tried",
      run: wrap(Effect.gen(function*() {
        const b = new TreeBuilder.TreeBuilder(task)
        b.succeed("root", {}, 0.4)
        const proposals = yield* proposeUnder(b, "root", 2, () => true).pipe(Random.withSeed(2))
        assert.equal(proposals.length, 0, "every fingerprint counts as tried: nothing may be proposed")
      }))
    },
    {
      name: "distil returns insights whose evidence names nodes of the tree",
      run: wrap(Effect.gen(function*() {
        const b = new TreeBuilder.TreeBuilder(task)
        let parent = "root"
        for (let i = 0; i < 6; i++) {
          const base = b.succeed(parent, { "data.format": "plain", "training.epochs": 1 + (i % 4) }, 0.2 + i * 0.01)
          b.succeed(base, { "data.format": "reversed" }, 0.6 + i * 0.01)
          parent = base
        }
        const insights = yield* make().distill({ task, tree: b.view, now: 1 })
        for (const i of insights) {
          assert.ok(i.text.length > 0)
          for (const id of i.evidence) assert.ok(b.view.get(id) !== undefined, `insight ${i.id} cites unknown node ${id}`)
        }
      }))
    }
  ]
  if (options.deterministic !== false) {
    cs.push({
      name: "is deterministic for a seed",
      run: wrap(Effect.gen(function*() {
        const b = TreeBuilder.random(12, (() => {
          let s = 9
          return () => ((s = (s * 16807) % 2147483647) / 2147483647)
        })(), task)
        const best = b.view.best()?.id ?? "root"
        const a = yield* proposeUnder(b, best, 2, triedIn(b)).pipe(Random.withSeed(5))
        const c = yield* proposeUnder(b, best, 2, triedIn(b)).pipe(Random.withSeed(5))
        assert.deepEqual(a.map((p) => Fingerprint.of(p.strategy)), c.map((p) => Fingerprint.of(p.strategy)))
      }))
    })
  }
  return cs
}
