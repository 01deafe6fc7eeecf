/**
 * The offline researcher: no model, deterministic for a seed. It reads a declared search space
 * (the task's, or one given), proposes children by mutating the parent's strategy — log-scale
 * steps for rates, neighbour moves for ordinals, swaps for categoricals, crossover with good
 * siblings — avoids fingerprints already tried, and distils insights from statistics over
 * finished results ("data.format=reversed beat its comparison in 5 of 6 pairs, +0.12 on
 * average"), which then bias the mutations it makes (see `followInsights`). Its own controlled
 * comparisons also say which parameters have no effect at all (changing one alone left the
 * result identical): a candidate that differs from a finished trial only in such parameters is a
 * near-duplicate and ranked last, and an insight says which parameter made no difference.
 * The embedded default, and the baseline every model-backed researcher must beat.
 *
 * @since 0.1.0
 */
import {
  Errors,
  ExperimentNode,
  type ExperimentTree,
  Fingerprint,
  type Insight,
  OptionSpec,
  Researcher,
  SearchSpace,
  type Strategy,
  Task
} from "@trex/core"
import { Effect, Layer, Random } from "effect"
import * as Corner from "./internal/corner.ts"
import { ObservationSet } from "./internal/observations.ts"
import { maskedKey, Sensitivity } from "./internal/sensitivity.ts"
import * as Surrogate from "./internal/surrogate.ts"
import { distillInsights, emptyTallies, showValue, type Tallies, type ValueEffect } from "./internal/heuristicInsights.ts"

/** @since 0.1.0 @category models */
export interface Options {
  /** The space to search; default: the task's `searchSpace`. */
  readonly space?: SearchSpace.SearchSpace
  /** Probability of a second mutation in one child (default 0.3). */
  readonly secondMutation?: number
  /** Probability of crossover with a better sibling or the best node (default 0.2). */
  readonly crossover?: number
  /**
   * Probability of following an insight when one applies (default 0.5): a mutation takes the
   * winning value. With the surrogate on a pool of up to 2,048 points every untried point competes
   * anyway, so following changes the rationale of what is run, not the choice (docs/benchmarks.md,
   * "Do insights help?"); it can matter with `surrogate: false`, with `jumps: 0`, and in a space that
   * is not a pool of up to 2,048 points.
   */
  readonly followInsights?: number
  /** Pairs needed before a statistic becomes an insight, a whole number of at least 1 (default 3). */
  readonly minPairs?: number
  /** First-level children after the baseline are random configurations (default true); else mutations of the default. */
  readonly randomDrafts?: boolean
  /** Candidates tried per proposal before giving up on a node, a whole number of at least 1 (default 64). */
  readonly maxCandidates?: number
  /**
   * Rank candidate children by the expected improvement of a Gaussian-process surrogate fitted
   * to the finished results (default true): mutations of the parent still make the candidates,
   * the model picks which of them to run. `false` proposes the first fresh mutations.
   */
  readonly surrogate?: boolean
  /**
   * Random configurations (or, in a pool of up to 2,048 points, every untried point) that compete
   * with the parent's mutations when the surrogate ranks candidates (default 64; 0: local moves only).
   */
  readonly jumps?: number
  /** Successes needed before the surrogate ranks candidates, at least 1 (default 4). */
  readonly surrogateMinObservations?: number
  /** Observations the surrogate is fitted to at most, at least 2: the best half and the nearest to the parent (default 64). */
  readonly surrogateMaxObservations?: number
}

/** What each option takes. */
const spec: { readonly [K in keyof Options]-?: OptionSpec.Rule } = {
  space: OptionSpec.refine(
    OptionSpec.schema(SearchSpace.SearchSpace),
    (space) => (space as SearchSpace.SearchSpace).parameters.length === 0 ? "has no parameters: list at least one, or leave space out to search the task's searchSpace" : undefined
  ),
  secondMutation: OptionSpec.probability("of a second mutation in one child"),
  crossover: OptionSpec.probability("of crossover with a better sibling or the best node"),
  followInsights: OptionSpec.probability("of following an insight when one applies"),
  minPairs: OptionSpec.integer(1, "comparisons needed before a statistic becomes an insight"),
  randomDrafts: OptionSpec.boolean("random first-level children; false: mutations of the default strategy"),
  maxCandidates: OptionSpec.integer(1, "candidates tried per proposal before giving up on a node"),
  surrogate: OptionSpec.boolean("rank candidates by a Gaussian-process surrogate"),
  jumps: OptionSpec.integer(0, "random configurations that compete with the mutations; 0: local moves only"),
  surrogateMinObservations: OptionSpec.integer(1, "successes needed before the surrogate ranks candidates"),
  surrogateMaxObservations: OptionSpec.integer(2, "observations the surrogate is fitted to at most: the best half and the nearest to the parent")
}

/** Newest nodes scanned per proposal for results the surrogate has not seen yet. */
const OBSERVATION_WINDOW = 256
/**
 * The number of results at which the kernel's hyperparameters were last searched, given `n`: every
 * count below 32, then each time the data has grown by a quarter (32, 40, 50, 63, 79, ...).
 */
const searchPoint = (n: number): number => {
  if (n < 32) return n
  let p = 32
  for (;;) {
    const q = Math.ceil(p * 1.25)
    if (q > n) return p
    p = q
  }
}
/** Newest nodes scanned per distillation for results not counted yet. */
const DISTILL_WINDOW = 2000
/** Pools up to this size are scored whole for jumps; larger spaces by random configurations. */
const JUMP_POOL = 2048

const fail = (operation: string, message: string) => new Errors.ResearcherError({ operation, message, retryable: false })

/**
 * Build the researcher. Its options are checked first: a bad one (a probability above 1,
 * `maxCandidates: 0`, `jumps: Infinity`, a string where a number goes, a misspelt key) throws an
 * `InvalidInput` that names each, before any trial runs; {@link layer} fails with it instead.
 *
 * @example
 * ```ts
 * import { HeuristicResearcher } from "@trex/agents"
 * const researcher = HeuristicResearcher.make({ crossover: 0.3 })
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = (options: Options = {}): Researcher.ResearcherShape => {
  OptionSpec.orThrow("HeuristicResearcher.make", spec, options)
  const spaceOf = (task: Task.Task) => options.space ?? task.searchSpace

  const analyze = (task: Task.Task) =>
    Effect.gen(function*() {
      const space = spaceOf(task)
      if (space === undefined || space.parameters.length === 0) {
        return yield* fail("analyze", `task "${task.name}" declares no searchSpace: add searchSpace.parameters to the task file`)
      }
      if (task.defaultStrategy === undefined) {
        return yield* fail("analyze", `task "${task.name}" has no defaultStrategy to start from: add one to the task file`)
      }
      return {
        summary: `Heuristic search over ${space.parameters.length} parameters (${SearchSpace.distinct(space)} combinations), ` +
          `${task.metric.direction === "maximize" ? "maximising" : "minimising"} ${task.metric.name}.`,
        metricNotes: task.metric.target !== undefined ? `target ${task.metric.target}` : "",
        dataNotes: task.datasets.map((d) => d.name).join(", "),
        risks: [],
        notes: { parameters: space.parameters.map((p) => p.path) }
      } satisfies Researcher.Analysis
    })

  const propose = (context: Researcher.ProposalContext, n: number) =>
    Effect.gen(function*() {
      const { task, tree, parentId } = context
      const space = spaceOf(task)
      if (space === undefined || task.defaultStrategy === undefined) {
        return yield* fail("propose", `task "${task.name}" needs a searchSpace and a defaultStrategy`)
      }
      const parent = parentId === ExperimentNode.ROOT ? undefined : tree.get(parentId)
      const base = parent?.strategy ?? task.defaultStrategy
      const effects = insightEffects(tree.insights)
      const out: Array<Researcher.Proposal> = []
      const seen = new Set<string>()
      const fresh = (s: Strategy.Strategy) => {
        const fp = Fingerprint.of(s)
        if (context.tried(fp) || seen.has(fp)) return false
        seen.add(fp)
        return true
      }
      const maxCandidates = options.maxCandidates ?? 64
      // Parameters whose condition does not hold are held at the default strategy's value, before
      // freshness is checked (the explorer does the same to whatever a researcher proposes).
      const defaults = task.defaultStrategy
      // On a grid of mixture weights, a strategy's mixture is the one its grid point makes (see `gridMixture`).
      const mixture = gridMixture(space, defaults)
      const hold = mixture === undefined
        ? (s: Strategy.Strategy) => SearchSpace.normalize(space, s, defaults)
        : (s: Strategy.Strategy) => mixture.place(SearchSpace.normalize(space, s, defaults))
      // The first child of the root is the default strategy itself: the baseline to beat. Held as the
      // explorer holds it (a conditional parameter the default leaves unset takes its first value), so
      // once run it is tried: checked as written, it was offered again on every later ask at the root.
      const baseline = hold(task.defaultStrategy)
      if (parent === undefined && fresh(baseline)) {
        out.push({ strategy: { ...baseline, rationale: "Baseline: the task's default strategy." } })
      }
      const pool = space.points !== undefined && space.points.length > 0 ? space.points : undefined
      // A finite pool whose every configuration was run has nothing left for any node: said at once, rather
      // than after fitting the model and trying every candidate (a second or so for each node of a big tree).
      if (pool !== undefined && poolFingerprints(space, pool, hold(task.defaultStrategy)).every((fp) => context.tried(fp) || seen.has(fp))) return out
      const fitted = useSurrogate ? surrogateFor(tree, space, parent) : undefined
      const model = fitted?.model
      // A candidate that differs from a finished trial only in parameters measured to have no effect
      // is a near-duplicate: ranked after every other candidate.
      const score = (x: ReadonlyArray<number>) => (fitted!.nearDuplicate(x) ? -1 : fitted!.model.expectedImprovement(x))
      // In a finite pool scored whole, the untried configurations of the corner the results point at go
      // first while few of them are left (see internal/corner.ts): `first` marks them.
      const corner = fitted !== undefined && pool !== undefined && pool.length <= JUMP_POOL ? cornerToComplete(space, pool, task.defaultStrategy, hold, fitted, context.tried) : undefined
      const first = (x: ReadonlyArray<number>) => corner !== undefined && Corner.contains(corner, x) && !fitted!.nearDuplicate(x)
      const before = (a: { readonly first: boolean; readonly ei: number }, b: { readonly first: boolean; readonly ei: number }) =>
        a.first !== b.first ? (a.first ? -1 : 1) : b.ei - a.ei
      // Keeps the `n` candidates ranked highest: the corner's first, then by expected improvement (all of them without a model).
      // A candidate marked `unchecked` is checked for freshness only if it makes the cut.
      const ranked: Array<{ readonly strategy: Strategy.Strategy; readonly rationale: string; readonly ei: number; readonly first: boolean; readonly unchecked: boolean }> = []
      const offer = (strategy: Strategy.Strategy, rationale: string, unchecked = false, x?: ReadonlyArray<number>) => {
        if (model === undefined) {
          out.push({ strategy: { ...strategy, rationale } })
          return
        }
        const at = x ?? Surrogate.features(space, strategy)
        ranked.push({ strategy, rationale, ei: score(at), first: first(at), unchecked })
      }
      const done = () => model === undefined && out.length >= n
      const finish = () => {
        ranked.sort(before)
        for (const r of ranked) {
          if (out.length >= n) break
          if (r.unchecked && !fresh(r.strategy)) continue
          const why = r.first ? `; completes the corner ${cornerName(space, corner!, r.strategy)}, whose results have the best mean so far` : ""
          const rationale = `${r.rationale.replace(/\.$/, "")}${why} (expected improvement ${r.ei.toFixed(3)} by the surrogate).`
          out.push({ strategy: { ...r.strategy, rationale } })
        }
        return out
      }
      // Other first-level children are drafts: random configurations, for a global view before local moves.
      if (parent === undefined && (options.randomDrafts ?? true)) {
        for (let i = 0; i < maxCandidates && !done(); i++) {
          const strategy = hold(yield* randomDraft(space, defaults))
          if (fresh(strategy)) offer(strategy, "Draft: a random configuration of the search space, for a global view.")
        }
        return finish()
      }
      // Crossover donors: better-scoring siblings of the parent, and the best node.
      const best = tree.best()
      // (the newest 16 siblings, read from the end of the live child list rather than a copy of all of them)
      const siblings = parent !== undefined ? tree.children(parent.parent).slice(-17).filter((s) => s.id !== parent.id).slice(-16) : []
      const donors = [...siblings, ...(best !== undefined ? [best] : [])]
        .filter((d) => d.state._tag === "Succeeded" && d.id !== parent?.id)
      // Pool points applied to the parent's strategy in this proposal, with their fingerprints.
      const applied = new Map<number, { readonly strategy: Strategy.Strategy; readonly fp: string }>()
      for (let i = 0; i < maxCandidates && !done(); i++) {
        // In a finite pool, a move lands on the nearest configuration that exists and is untried.
        const mutated = yield* mutate(space, base, donors, parent, effects, options, mixture?.set ?? SearchSpace.set)
        const candidate = { ...mutated, strategy: hold(mutated.strategy) }
        const landed = pool === undefined ? candidate : snap(space, pool, base, candidate, applied, (fp) => !context.tried(fp) && !seen.has(fp))
        if (landed !== undefined && fresh(landed.strategy)) offer(landed.strategy, landed.rationale)
      }
      // Jumps: configurations anywhere in the space compete with the local moves on the model's terms.
      if (model !== undefined && jumps > 0) {
        const why = "Jump: a configuration anywhere in the space that the model rates highly."
        if (pool !== undefined && pool.length <= JUMP_POOL) {
          // Every pool point is scored on its cached features; strategies are built for the best only.
          const xs = poolFeatures(space, pool, task.defaultStrategy)
          const scored = pool.map((pt, i) => ({ pt, ei: score(xs[i]!), first: first(xs[i]!) })).sort(before)
          let taken = 0
          for (const { pt } of scored) {
            if (taken >= n) break
            const st = SearchSpace.applyPoint(space, task.defaultStrategy, pt)
            if (context.tried(Fingerprint.of(st)) || seen.has(Fingerprint.of(st))) continue
            offer(st, why, true)
            taken++
          }
        } else {
          for (let i = 0; i < jumps; i++) offer(hold(yield* randomDraft(space, defaults)), why, true)
        }
      }
      return finish()
    })

  // What is computed once per pool, each part when first needed: its points' features (for jumps) and
  // their fingerprints as strategies (for the check that every point has run).
  const poolCache = new WeakMap<object, { features?: ReadonlyArray<ReadonlyArray<number>>; fingerprints?: ReadonlyArray<string> }>()
  const cached = (pool: ReadonlyArray<ReadonlyArray<SearchSpace.Value>>) => {
    let entry = poolCache.get(pool)
    if (entry === undefined) poolCache.set(pool, (entry = {}))
    return entry
  }
  const poolFeatures = (space: SearchSpace.SearchSpace, pool: ReadonlyArray<ReadonlyArray<SearchSpace.Value>>, base: Strategy.Strategy) => {
    const entry = cached(pool)
    return (entry.features ??= pool.map((pt) => Surrogate.features(space, SearchSpace.applyPoint(space, base, pt))))
  }
  const poolFingerprints = (space: SearchSpace.SearchSpace, pool: ReadonlyArray<ReadonlyArray<SearchSpace.Value>>, base: Strategy.Strategy) => {
    const entry = cached(pool)
    return (entry.fingerprints ??= pool.map((pt) => Fingerprint.of(SearchSpace.applyPoint(space, base, pt))))
  }
  /**
   * The corner whose untried configurations go first (see internal/corner.ts): the pair of settings
   * with the best mean result among the observations the researcher keeps (every one up to 64; beyond, the best 32 and
   * the newest), while at most `Corner.MAX_LEFT` of the pool's configurations in it are
   * untried and not near-duplicates of a finished one; else `undefined`.
   */
  const cornerToComplete = (
    space: SearchSpace.SearchSpace,
    pool: ReadonlyArray<ReadonlyArray<SearchSpace.Value>>,
    base: Strategy.Strategy,
    hold: (s: Strategy.Strategy) => Strategy.Strategy,
    fitted: { readonly observations: ReadonlyArray<Surrogate.Observation>; readonly inert: ReadonlySet<number>; readonly nearDuplicate: (x: ReadonlyArray<number>) => boolean },
    tried: (fp: string) => boolean
  ) => {
    const corner = Corner.best(fitted.observations, fitted.inert)
    if (corner === undefined) return undefined
    const xs = poolFeatures(space, pool, base)
    const fps = poolFingerprints(space, pool, hold(base))
    let left = 0
    for (let k = 0; k < pool.length; k++) {
      if (Corner.contains(corner, xs[k]!) && !fitted.nearDuplicate(xs[k]!) && !tried(fps[k]!) && ++left > Corner.MAX_LEFT) return undefined
    }
    return corner
  }
  const useSurrogate = options.surrogate ?? true
  const jumps = options.jumps ?? 64
  const maxObservations = options.surrogateMaxObservations ?? 64
  // The model sees at most `maxObservations`: the best half and the rest nearest to the parent.
  // Those are chosen from the best so far (kept sorted, bounded) and the newest observations
  // (bounded), so a proposal costs the same in a tree of 100 nodes and of 100,000.
  const bestKept = Math.floor(maxObservations / 2)
  const recentKept = maxObservations * 8
  // Observations per tree, gathered incrementally from the newest nodes.
  const observed = new WeakMap<object, {
    readonly set: ObservationSet
    /** The kernel's hyperparameters as searched at `hyperAt` results (see `searchPoint`). */
    hyper: Surrogate.Hyper | undefined
    hyperAt: number
    /** Single-parameter comparisons: which parameters have shown no effect. */
    readonly sensitivity: Sensitivity
    /** Every finished trial's observation, in the order added; and their keys with the inert dimensions (as of `inertKey`) masked. */
    readonly history: Array<{ readonly id: string; readonly o: Surrogate.Observation }>
    keys: Set<string>
    inertKey: string
  }>()
  const observationSet = () => new ObservationSet({ all: maxObservations, bestKept, recentKept })
  /** The tree's observations, with every result finished since the last call added. */
  const ingest = (tree: ExperimentTree.TreeView, space: SearchSpace.SearchSpace) => {
    let cache = observed.get(tree)
    // A tree first seen here (a resumed run, a fresh researcher) is read whole, oldest first, as a
    // researcher that saw it grow one trial at a time added its results; after that, the newest nodes
    // hold every result not yet seen. (Reading only the newest on first sight made a resumed run of
    // more than 256 trials propose differently from an uninterrupted one.)
    const scan = cache === undefined ? tree.latest(tree.size) : tree.latest(OBSERVATION_WINDOW)
    if (cache === undefined) {
      observed.set(tree, (cache = {
        set: observationSet(),
        hyper: undefined,
        hyperAt: -1,
        sensitivity: new Sensitivity(),
        history: [],
        keys: new Set(),
        inertKey: ""
      }))
    }
    const set = cache.set
    const before = cache.history.length
    for (const nd of scan) {
      if (set.has(nd.id) || (nd.state._tag !== "Succeeded" && nd.state._tag !== "Failed")) continue
      const score = ExperimentNode.score(nd)
      const o = { x: Surrogate.features(space, nd.strategy), utility: score === undefined ? undefined : Task.utility(tree.task, score) }
      set.add(nd.id, o)
      cache.sensitivity.add(o.x, o.utility, nd.id)
      cache.history.push({ id: nd.id, o })
    }
    // The finished configurations up to inert parameters: rebuilt when the inert set changes (rarely), else extended.
    const inert = cache.sensitivity.inert()
    const inertKey = [...inert].join(",")
    if (inertKey !== cache.inertKey) {
      cache.inertKey = inertKey
      cache.keys = inert.size > 0 ? new Set(cache.history.map((h) => maskedKey(h.o.x, inert))) : new Set()
    } else if (inert.size > 0) {
      for (let i = before; i < cache.history.length; i++) cache.keys.add(maskedKey(cache.history[i]!.o.x, inert))
    }
    return { cache, inert }
  }

  const surrogateFor = (tree: ExperimentTree.TreeView, space: SearchSpace.SearchSpace, parent: ExperimentTree.NodeView | undefined) => {
    const { cache, inert } = ingest(tree, space)
    const set = cache.set
    const keys = cache.keys
    const list = set.list()
    const n = set.count
    const fitOptions = { minObservations: options.surrogateMinObservations ?? 4, maxObservations }
    const near = parent !== undefined ? { near: Surrogate.features(space, parent.strategy) } : {}
    // The hyperparameters in use are those searched on the data as of the last search point: a
    // function of the results alone, not of when proposals were asked for, so a researcher that
    // first sees a tree (a resumed run) fits the model one that saw it grow fits.
    const at = searchPoint(n)
    let model: Surrogate.Model | undefined
    if (at === n && list.length <= maxObservations) {
      // all the data is in the model, wherever the parent is: one search does both
      model = Surrogate.fit(list, { ...fitOptions, ...near })
      cache.hyper = model?.hyper
      cache.hyperAt = at
    } else {
      if (cache.hyperAt !== at) {
        let past = list
        if (at !== n) {
          const then = observationSet()
          for (const h of cache.history.slice(0, at)) then.add(h.id, h.o)
          past = then.list()
        }
        cache.hyper = Surrogate.fit(past, fitOptions)?.hyper
        cache.hyperAt = at
      }
      model = Surrogate.fit(list, { ...fitOptions, ...near, ...(cache.hyper !== undefined ? { hyper: cache.hyper } : {}) })
    }
    return model === undefined ? undefined : {
      model,
      // (every result while there are at most `maxObservations`; beyond, a bounded selection: see ObservationSet)
      observations: list,
      inert,
      nearDuplicate: (x: ReadonlyArray<number>) => inert.size > 0 && keys.has(maskedKey(x, inert))
    }
  }

  // Tallies per tree, so each distillation only counts what finished since the last one.
  const tallies = new WeakMap<object, Tallies>()
  const distill = (context: Researcher.DistillContext) =>
    Effect.sync(() => {
      const space = spaceOf(context.task)
      if (space === undefined) return []
      const key = context.tree
      let t = tallies.get(key)
      // a tree first seen here is counted whole (as one seen growing was), afterwards its newest nodes
      const window = t === undefined ? context.tree.size : DISTILL_WINDOW
      if (t === undefined) tallies.set(key, (t = emptyTallies()))
      const insights = distillInsights(context.tree, space, context.now, options.minPairs ?? 3, t, window)
      // parameters measured to make no difference (the ones near-duplicates are judged by)
      const { cache, inert } = ingest(context.tree, space)
      const varied = space.parameters.filter((p) => p.values.length > 1)
      const known = new Set(context.tree.insights.map((i) => i.id))
      for (const d of [...inert].sort((a, b) => a - b)) {
        const path = varied[d]!.path
        const id = `heuristic:${path}:no-effect`
        if (known.has(id)) continue
        const { pairs, ties, evidence } = cache.sensitivity.counts(d)
        insights.push({
          id,
          text: `${path} made no difference: ${ties} of ${pairs} changes of it alone left ${context.task.metric.name} exactly the same` +
            (useSurrogate ? " (configurations that differ from a tried one only in it are now tried last)" : ""),
          evidence: [...evidence].sort(),
          createdAt: context.now,
          data: { path, effect: "none", ties, pairs }
        })
      }
      return insights
    })

  return { name: "heuristic", analyze, propose, distill }
}

/** The insights' machine-readable payloads, as value effects. */
const insightEffects = (insights: ReadonlyArray<Insight.Insight>): ReadonlyArray<ValueEffect> =>
  insights.flatMap((i) => {
    const d = i.data as Partial<ValueEffect>
    return typeof d.path === "string" && d.value !== undefined && typeof d.delta === "number" ? [d as ValueEffect] : []
  })

/** A corner as its two settings, read from a strategy in it: "training.extra.num_embed=512, training.learningRate=0.0003". */
const cornerName = (space: SearchSpace.SearchSpace, corner: Corner.Corner, strategy: Strategy.Strategy) => {
  const varied = space.parameters.filter((p) => p.values.length > 1)
  return [corner.i, corner.j].map((d) => `${varied[d]!.path}=${describe(SearchSpace.get(strategy, varied[d]!.path))}`).join(", ")
}

/** A parameter's value as declared (`showValue`), a string quoted. */
const describe = (v: unknown) => (typeof v === "string" ? JSON.stringify(v) : showValue(v))
/** A mean difference, to 4 significant digits. */
const describeDelta = (v: number) => Number(v.toPrecision(4)).toString()

/** One child of `base`: one or two mutations, sometimes a crossover, sometimes an insight followed. */
const mutate = (
  space: SearchSpace.SearchSpace,
  base: Strategy.Strategy,
  donors: ReadonlyArray<ExperimentTree.NodeView>,
  parent: ExperimentTree.NodeView | undefined,
  effects: ReadonlyArray<ValueEffect>,
  options: Options,
  set: (strategy: Strategy.Strategy, path: string, value: SearchSpace.Value) => Strategy.Strategy
) =>
  Effect.gen(function*() {
    const params = space.parameters
    let strategy = base
    const notes: Array<string> = []
    // Follow an insight: move a parameter to a value that has been winning.
    const good = effects.filter((e) => {
      const p = params.find((q) => q.path === e.path)
      return e.delta > 0 && SearchSpace.get(strategy, e.path) !== e.value && (p === undefined || SearchSpace.isActive(p, strategy))
    })
    if (good.length > 0 && (yield* Random.next) < (options.followInsights ?? 0.5)) {
      const e = good[yield* Random.nextIntBetween(0, good.length - 1)]!
      strategy = set(strategy, e.path, e.value)
      notes.push(`set ${e.path}=${describe(e.value)} (insight: it won ${e.wins} of ${e.pairs} comparisons, ${e.delta > 0 ? "+" : ""}${describeDelta(e.delta)} on average)`)
    }
    // Crossover: take one parameter from a better sibling or the best node.
    if (notes.length === 0 && donors.length > 0 && (yield* Random.next) < (options.crossover ?? 0.2)) {
      const donor = donors[yield* Random.nextIntBetween(0, donors.length - 1)]!
      // (a value the donor leaves unset is no value to take: the baseline's, where the default strategy has none)
      const differing = params.filter((p) => {
        const v = SearchSpace.get(donor.strategy, p.path)
        return v !== undefined && SearchSpace.isActive(p, donor.strategy) && v !== SearchSpace.get(strategy, p.path)
      })
      if (differing.length > 0) {
        const p = differing[yield* Random.nextIntBetween(0, differing.length - 1)]!
        const v = SearchSpace.get(donor.strategy, p.path) as SearchSpace.Value
        strategy = set(strategy, p.path, v)
        notes.push(`took ${p.path}=${describe(v)} from ${donor.id} (crossover)`)
      }
    }
    // Mutations.
    const count = notes.length === 0 ? ((yield* Random.next) < (options.secondMutation ?? 0.3) ? 2 : 1) : 0
    const used = new Set<string>()
    for (let m = 0; m < count; m++) {
      const choices = params.filter((p) => !used.has(p.path) && p.values.length > 1 && SearchSpace.isActive(p, strategy))
      if (choices.length === 0) break
      const p = choices[yield* Random.nextIntBetween(0, choices.length - 1)]!
      used.add(p.path)
      const from = SearchSpace.indexOf(p, strategy)
      let to: number
      if (p.kind === "categorical") {
        to = yield* Random.nextIntBetween(0, p.values.length - 2)
        if (to >= from) to++
      } else {
        const step = p.kind === "log" && (yield* Random.next) < 0.25 ? 2 : 1
        const dir = from === 0 ? 1 : from === p.values.length - 1 ? -1 : (yield* Random.nextBoolean) ? 1 : -1
        to = Math.min(p.values.length - 1, Math.max(0, from + dir * step))
      }
      const before = SearchSpace.get(strategy, p.path)
      strategy = set(strategy, p.path, p.values[to]!)
      const how = p.kind === "log" ? "log-scale step" : p.kind === "ordinal" ? "neighbour move" : "swap"
      notes.push(`${p.path} ${describe(before)} -> ${describe(p.values[to])} (${how})`)
    }
    const origin = parent === undefined ? "the default strategy" : parent.id
    return { strategy, rationale: `From ${origin}: ${notes.join("; ")}.` }
  })

/**
 * On a grid (no pool) with mixture weights, the mixture a strategy runs is the one its point of the grid
 * makes: `place` sets the space's weights together, as `SearchSpace.applyPoint` does, on the default
 * strategy's sources (the sources the space does not name share the rest in the default's proportions),
 * and leaves out every source at 0, so one mixture has one fingerprint; `set` moves one weight and holds
 * the others at their values. (Set one at a time, a move rescaled the other weights off the grid; a
 * source set to 0 stayed in the strategy while one whose share dropped to 0 was left out; and sources
 * came in the order they were added: one mixture ran under several fingerprints.) A strategy whose
 * weights are not all grid values is left as it is. `undefined` for a pool (each point applied as it is)
 * or a space without mixture weights.
 */
const gridMixture = (space: SearchSpace.SearchSpace, defaults: Strategy.Strategy) => {
  if (space.points !== undefined && space.points.length > 0) return undefined
  const weights = space.parameters.filter((p) => p.path.startsWith("data.mixture."))
  if (weights.length === 0) return undefined
  const only: SearchSpace.SearchSpace = { parameters: weights }
  const apply = (strategy: Strategy.Strategy, point: ReadonlyArray<SearchSpace.Value>): Strategy.Strategy => {
    const out = SearchSpace.applyPoint(only, { ...strategy, data: { ...strategy.data, sources: defaults.data.sources } }, point)
    const sources = out.data.sources.filter((s) => s.weight > 0)
    return sources.length === 0 || sources.length === out.data.sources.length ? out : { ...out, data: { ...out.data, sources } }
  }
  /** The declared value of each weight (as `SearchSpace.get` rounds a share), or `undefined` when one is off the grid. */
  const pointOf = (strategy: Strategy.Strategy): ReadonlyArray<SearchSpace.Value> | undefined => {
    const point: Array<SearchSpace.Value> = []
    for (const p of weights) {
      const declared = SearchSpace.declaredValue(p, SearchSpace.get(strategy, p.path))
      if (declared === undefined) return undefined
      point.push(declared)
    }
    return point
  }
  return {
    place: (strategy: Strategy.Strategy): Strategy.Strategy => {
      const point = pointOf(strategy)
      return point === undefined ? strategy : apply(strategy, point)
    },
    set: (strategy: Strategy.Strategy, path: string, value: SearchSpace.Value): Strategy.Strategy =>
      path.startsWith("data.mixture.") && weights.some((p) => p.path === path)
        ? apply(strategy, weights.map((p) => (p.path === path ? value : SearchSpace.get(strategy, p.path) as SearchSpace.Value)))
        : SearchSpace.set(strategy, path, value)
  }
}

/** A uniformly random configuration: a pool point, or a value per parameter. */
const randomDraft = (space: SearchSpace.SearchSpace, base: Strategy.Strategy) =>
  Effect.gen(function*() {
    if (space.points !== undefined && space.points.length > 0) {
      return SearchSpace.applyPoint(space, base, space.points[yield* Random.nextIntBetween(0, space.points.length - 1)]!)
    }
    const point: Array<SearchSpace.Value> = []
    for (const p of space.parameters) point.push(p.values[yield* Random.nextIntBetween(0, p.values.length - 1)]!)
    return SearchSpace.applyPoint(space, base, point)
  })

/** Positions of a pool's points, computed once per pool. */
const positionCache = new WeakMap<object, ReadonlyArray<ReadonlyArray<number>>>()
const pointPositions = (space: SearchSpace.SearchSpace, points: ReadonlyArray<ReadonlyArray<SearchSpace.Value>>) => {
  let out = positionCache.get(points)
  if (out === undefined) positionCache.set(points, (out = points.map((pt) => SearchSpace.pointPosition(space, pt))))
  return out
}

/** The untried pool point nearest to a mutated candidate (L1 over parameter positions). */
const snap = (
  space: SearchSpace.SearchSpace,
  points: ReadonlyArray<ReadonlyArray<SearchSpace.Value>>,
  base: Strategy.Strategy,
  candidate: { readonly strategy: Strategy.Strategy; readonly rationale: string },
  applied: Map<number, { readonly strategy: Strategy.Strategy; readonly fp: string }>,
  untried: (fp: string) => boolean
) => {
  const target = SearchSpace.position(space, candidate.strategy)
  const positions = pointPositions(space, points)
  const d = new Float64Array(points.length)
  for (let k = 0; k < points.length; k++) {
    const pos = positions[k]!
    let acc = 0
    for (let i = 0; i < pos.length; i++) acc += Math.abs(pos[i]! - target[i]!)
    d[k] = acc
  }
  // Nearest first (ties in pool order); usually the first one is untried.
  for (let tries = 0; tries < points.length; tries++) {
    let k = -1
    for (let j = 0; j < d.length; j++) if (d[j]! !== Infinity && (k < 0 || d[j]! < d[k]!)) k = j
    if (k < 0) break
    const dist = d[k]!
    d[k] = Infinity
    let entry = applied.get(k)
    if (entry === undefined) {
      const st = SearchSpace.applyPoint(space, base, points[k]!)
      applied.set(k, (entry = { strategy: st, fp: Fingerprint.of(st) }))
    }
    const strategy = entry.strategy
    if (!untried(entry.fp)) continue
    return { strategy, rationale: dist === 0 ? candidate.rationale : `${candidate.rationale.replace(/\.$/, "")}; nearest recorded configuration (distance ${dist.toFixed(2)}).` }
  }
  return undefined
}

/**
 * The heuristic researcher as the `Researcher` service; bad options fail the layer with an
 * `InvalidInput` naming each.
 * @since 0.1.0 @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Researcher.Researcher, Errors.InvalidInput> =>
  Layer.effect(Researcher.Researcher, OptionSpec.checked("HeuristicResearcher.make", spec, options, () => make(options)))
