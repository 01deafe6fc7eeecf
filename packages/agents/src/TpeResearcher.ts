/**
 * A Tree-structured Parzen Estimator as a researcher (flat and categorical, as Optuna's
 * `TPESampler` treats categorical parameters): proposals are uniform draws until `startup` trials
 * have succeeded; then finished results are split into good (the best `gamma` fraction of the
 * successes) and bad (the rest, and every failure); each parameter gets smoothed
 * categorical densities l(x) over the good and g(x) over the bad; candidates are drawn from l
 * and the one with the largest l(x)/g(x) not yet tried is proposed. It ignores the parent, so
 * any search policy drives it as a flat sequential optimiser: the model-free baseline for the
 * recorded-table benchmarks. Seeded through Effect's `Random`.
 *
 * @since 0.1.0
 */
import { type Errors, ExperimentNode, OptionSpec, Researcher, Task } from "@trex/core"
import { Effect, Layer, Random } from "effect"
import { density, type Observation, sample, score, split } from "./internal/tpeModel.ts"
import { analysis, freshness, pointOf, poolPoints, spaceOf, strategyAt, uniform } from "./internal/tpeSpace.ts"

/** @since 0.1.0 @category models */
export interface Options {
  /** Fraction of successes counted as good, above 0 and below 1 (default 0.25). */
  readonly gamma?: number
  /** Successful trials before the model takes over (until then, uniform draws), a whole number of at least 0 (default 5). */
  readonly startup?: number
  /** Candidates drawn from l(x) per proposal, a whole number of at least 1 (default 24). */
  readonly candidates?: number
  /** Pseudo-count added to every value of every parameter, above 0 (default 1). */
  readonly prior?: number
}

/** What each option takes. */
const spec: { readonly [K in keyof Options]-?: OptionSpec.Rule } = {
  gamma: OptionSpec.number({ above: 0, below: 1 }, "the fraction of successes counted as good"),
  startup: OptionSpec.integer(0, "successful trials before the model takes over; until then, uniform draws"),
  candidates: OptionSpec.integer(1, "candidates drawn from l(x) per proposal"),
  prior: OptionSpec.number({ above: 0 }, "pseudo-count added to every value; 0 gives log 0 for values never seen")
}

/**
 * Build the researcher. Its options are checked first: a bad one throws an `InvalidInput` that
 * names each, before any trial runs; {@link layer} fails with it instead.
 *
 * @example
 * ```ts
 * import { TpeResearcher } from "@trex/agents"
 * const researcher = TpeResearcher.make({ gamma: 0.2, startup: 8 })
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = (options: Options = {}): Researcher.ResearcherShape => {
  OptionSpec.orThrow("TpeResearcher.make", spec, options)
  const gamma = options.gamma ?? 0.25
  const startup = options.startup ?? 5
  const candidates = options.candidates ?? 24
  const prior = options.prior ?? 1

  const propose = Effect.fn("TpeResearcher.propose")(function*(context: Researcher.ProposalContext, n: number) {
    const s = yield* spaceOf(context.task, "propose")
    const fresh = freshness(context.tried)
    const observations: Array<Observation> = []
    for (const node of context.tree.nodes()) {
      const tag = node.state._tag
      if (tag === "Succeeded") {
        const v = ExperimentNode.score(node)
        observations.push({ point: pointOf(s, node.strategy), utility: v === undefined ? undefined : Task.utility(context.task, v) })
      } else if (tag === "Failed" || tag === "Pruned") {
        observations.push({ point: pointOf(s, node.strategy), utility: undefined })
      }
    }
    const successes = observations.filter((o) => o.utility !== undefined).length
    if (successes < startup) {
      const strategies = yield* uniform(s, n, fresh, `TPE start-up: a uniform draw (${successes} of ${startup} results so far).`)
      return strategies.map((strategy) => ({ strategy }))
    }
    const { good, bad } = split(observations, gamma)
    const l = density(s.space, good, prior)
    const g = density(s.space, bad, prior)
    const rng = yield* Random.Random
    const next = () => rng.nextDoubleUnsafe()
    const out: Array<Researcher.Proposal> = []
    const pool = poolPoints(s.space)
    for (let i = 0; i < n; i++) {
      // candidates drawn from l; in a finite pool, a random sample of the pool's configurations
      const drawn = pool === undefined
        ? Array.from({ length: candidates }, () => sample(l, next))
        : Array.from({ length: Math.min(candidates * 4, pool.length) }, () => pool[Math.floor(next() * pool.length)]!)
      const ranked = drawn
        .map((point) => ({ point, ratio: score(point, l, g) }))
        .sort((a, b) => b.ratio - a.ratio)
      let chosen = false
      for (const c of ranked) {
        const strategy = strategyAt(
          s,
          c.point,
          `TPE: log l/g = ${c.ratio.toFixed(3)} (good ${good.length}, bad ${bad.length}, gamma ${gamma}).`
        )
        if (fresh(strategy)) {
          out.push({ strategy })
          chosen = true
          break
        }
      }
      if (!chosen) {
        // every candidate was tried: fall back to an untried uniform draw
        const fallback = yield* uniform(s, 1, fresh, "TPE: every candidate was tried; a uniform draw instead.")
        if (fallback.length === 0) break
        out.push({ strategy: fallback[0]! })
      }
    }
    return out
  })

  return {
    name: "tpe",
    analyze: (task) => Effect.map(spaceOf(task, "analyze"), (s) => analysis(task, s, "Categorical TPE")),
    propose,
    distill: () => Effect.succeed([])
  }
}

/**
 * The researcher as the `Researcher` service; bad options fail the layer with an `InvalidInput` naming each.
 * @since 0.1.0 @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Researcher.Researcher, Errors.InvalidInput> =>
  Layer.effect(Researcher.Researcher, OptionSpec.checked("TpeResearcher.make", spec, options, () => make(options)))
