/**
 * Asynchronous successive halving (ASHA) as a `Scheduler`: rungs at `minStep * eta^k` (or, with
 * `minStep: "auto"`, at `R / eta^2` and `R / eta`, R the length of a whole trial); a trial that
 * reaches a rung continues only if its metric there is in the top `1 / eta` of the trials that
 * reached the same rung. It is judged once at each rung, by the report that takes it there (given
 * `decide`'s `reported` points; without them, at every call). Off by default; enable with
 * `--scheduler asha`.
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import { type Errors, type ExperimentTree, OptionSpec, type Result, Scheduler } from "@trex/core"

/** @since 0.1.0 @category models */
export interface Options {
  /** The intermediate metric to compare (name and split), and whether larger is better. */
  readonly metric: { readonly name: string; readonly split?: string; readonly direction: "maximize" | "minimize" }
  /**
   * First rung, in the trial's own step units (a number greater than 0; rungs then at `minStep * eta^k`
   * for every k), or `"auto"`: two reductions below the length of a whole trial, R, the median last step
   * of the trials that ran to their end so far (rungs at `R / eta^2` and `R / eta` only, so a trial past a
   * third of a whole one is let finish; none is pruned before a trial has run to its end). A fixed first
   * step of 1 (the first evaluation) stops trials on their first point, which often ranks them poorly:
   * see docs/benchmarks.md, "Early stopping (ASHA)".
   */
  readonly minStep: number | "auto"
  /** Reduction factor, greater than 1 (default 3): a rung keeps the best `1 / eta` of the trials that reached it. */
  readonly eta?: number
  /** Trials needed at a rung before it prunes anyone (default eta, rounded up). */
  readonly minTrialsPerRung?: number
}

/** What each option takes. */
const SPEC: { readonly [K in keyof Options]-?: OptionSpec.Rule } = {
  metric: OptionSpec.required(OptionSpec.struct({
    name: OptionSpec.required(OptionSpec.nonEmptyString("the name of an intermediate metric the trials report, e.g. \"loss\"")),
    split: OptionSpec.nonEmptyString("the split of the points to compare, e.g. \"eval\"; leave it out for any split"),
    direction: OptionSpec.required(OptionSpec.literal(["maximize", "minimize"], "whether larger is better"))
  }, "the intermediate metric the rungs compare: { name, split?, direction }")),
  minStep: OptionSpec.required({
    issues: (v, path) =>
      v === "auto" || (typeof v === "number" && Number.isFinite(v) && v > 0)
        ? []
        : [`${path}: expected a number above 0 (the step of the first rung, in the steps the trials report), or "auto" (two reductions below a whole trial's length), got ${OptionSpec.show(v)}`]
  }),
  eta: OptionSpec.number({ above: 1 }, "each rung keeps the best 1 / eta of its trials; 3 is usual"),
  minTrialsPerRung: OptionSpec.integer(1, "trials at a rung before it prunes any")
}

/** The value a trial had at a step: its last point at or before it. */
const valueAt = (curve: ReadonlyArray<{ step: number; split: string; name: string; value: number }>, opts: Options, step: number) => {
  let v: number | undefined
  for (const p of curve) {
    if (p.name !== opts.metric.name || (opts.metric.split !== undefined && p.split !== opts.metric.split)) continue
    if (p.step <= step) v = p.value
  }
  return v
}

const lastStep = (curve: ReadonlyArray<{ step: number; name: string; split: string }>, opts: Options) => {
  let s = -1
  for (const p of curve) {
    if (p.name === opts.metric.name && (opts.metric.split === undefined || p.split === opts.metric.split)) s = Math.max(s, p.step)
  }
  return s
}

/**
 * Whether `reported` (points just folded into `curve`) took the trial to `rung`: one of them is at
 * or past it, and none of the trial's earlier points was.
 */
const crosses = (
  curve: ReadonlyArray<Result.MetricPoint>,
  reported: ReadonlyArray<Result.MetricPoint>,
  opts: Options,
  rung: number
): boolean => {
  const isNew = new Set<string>()
  for (const p of reported) isNew.add(`${p.step}\u0000${p.split}\u0000${p.name}`)
  if (lastStep(reported, opts) < rung) return false
  for (const p of curve) {
    if (p.step < rung || p.name !== opts.metric.name || (opts.metric.split !== undefined && p.split !== opts.metric.split)) continue
    if (!isNew.has(`${p.step}\u0000${p.split}\u0000${p.name}`)) return false
  }
  return true
}

/** The length of a whole trial: the median last step of the trials that succeeded (the lower one of an even count). */
const wholeLength = (tree: ExperimentTree.TreeView, opts: Options): number | undefined => {
  const ends: Array<number> = []
  for (const n of tree.nodes()) {
    if (n.state._tag !== "Succeeded") continue
    const end = lastStep(n.curve, opts)
    if (end >= 0) ends.push(end)
  }
  if (ends.length === 0) return undefined
  ends.sort((a, b) => a - b)
  return ends[(ends.length - 1) >> 1]
}

/** The highest rung at or below `reached`, if any. */
const rungAt = (tree: ExperimentTree.TreeView, opts: Options, eta: number, reached: number): number | undefined => {
  if (opts.minStep !== "auto") {
    if (reached < opts.minStep) return undefined
    let rung = opts.minStep
    while (rung * eta <= reached) rung *= eta
    return rung
  }
  const whole = wholeLength(tree, opts)
  if (whole === undefined) return undefined
  return reached >= whole / eta ? whole / eta : reached >= whole / (eta * eta) ? whole / (eta * eta) : undefined
}

/**
 * Build an ASHA scheduler. Fails with `InvalidInput` naming each bad option and what it takes (an
 * `eta` of 1 or less, a `minStep` that is not a positive finite number, a misspelt option...),
 * which would otherwise make a scheduler that loops for ever or prunes at random.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Asha } from "@trex/mcts"
 * const program = Effect.gen(function*() {
 *   const scheduler = yield* Asha.make({ metric: { name: "ppl", split: "dev", direction: "minimize" }, minStep: "auto" })
 *   return scheduler.name
 * })
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = (options: Options): Effect.Effect<Scheduler.SchedulerShape, Errors.InvalidInput> =>
  OptionSpec.checked("Asha.make", SPEC, options, () => unchecked(options))

const unchecked = (options: Options): Scheduler.SchedulerShape => {
  const eta = options.eta ?? 3
  const minTrials = options.minTrialsPerRung ?? Math.ceil(eta)
  const sign = options.metric.direction === "maximize" ? 1 : -1
  return {
    name: "asha",
    decide: (tree: ExperimentTree.TreeView, nodeId: string, reported?: ReadonlyArray<Result.MetricPoint>) => {
      const node = tree.get(nodeId)
      if (node === undefined) return "continue"
      // the highest rung this trial has reached
      const rung = rungAt(tree, options, eta, lastStep(node.curve, options))
      if (rung === undefined) return "continue"
      // judged once at a rung, by the report that took it there: one let go on is not judged again there
      // as more trials reach the rung (with several trials at once), as in ASHA, where a promotion stands
      if (reported !== undefined && !crosses(node.curve, reported, options, rung)) return "continue"
      const mine = valueAt(node.curve, options, rung)
      if (mine === undefined) return "continue"
      const peers: Array<number> = []
      for (const other of tree.nodes()) {
        if (other.id === nodeId || lastStep(other.curve, options) < rung) continue
        const v = valueAt(other.curve, options, rung)
        if (v !== undefined) peers.push(sign * v)
      }
      if (peers.length + 1 < minTrials) return "continue"
      peers.push(sign * mine)
      peers.sort((a, b) => b - a)
      const keep = Math.max(1, Math.floor(peers.length / eta))
      return sign * mine >= peers[keep - 1]! ? "continue" : "prune"
    }
  }
}

/**
 * ASHA as the `Scheduler` service, which `Explorer.run` uses when its options name no scheduler.
 * Fails to build with `InvalidInput` on bad options (see {@link make}).
 * @since 0.1.0 @category layers
 */
export const layer = (options: Options): Layer.Layer<Scheduler.Scheduler, Errors.InvalidInput> => Layer.effect(Scheduler.Scheduler, make(options))
