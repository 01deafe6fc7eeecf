/**
 * Asynchronous successive halving (ASHA) as a `Scheduler`: rungs at `minStep * eta^k` (or, with
 * `minStep: "auto"`, at `R / eta^2` and `R / eta`, R the length of a whole trial); a trial that
 * reaches a rung continues only if its metric there is in the top `1 / eta` of the trials that
 * reached the same rung. Off by default; enable with `--scheduler asha`.
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import { Errors, type ExperimentTree, Scheduler, TaskFile } from "@trex/core"

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

const OPTION_KEYS: ReadonlyArray<keyof Options> = ["metric", "minStep", "eta", "minTrialsPerRung"]

const show = (v: unknown): string => {
  if (typeof v === "number" || typeof v === "boolean" || v === undefined || v === null) return String(v)
  if (typeof v === "string") return JSON.stringify(v)
  return Array.isArray(v) ? "an array" : typeof v
}

/** The options' issues, each naming its option and the fix; empty when they are sound. */
const issuesOf = (options: Options): Array<string> => {
  if (typeof options !== "object" || options === null) {
    return [`the options must be an object such as { metric: { name: "loss", split: "eval", direction: "minimize" }, minStep: 1 }, got ${show(options)}`]
  }
  const o = options as unknown as Record<string, unknown>
  const issues: Array<string> = []
  for (const key of Object.keys(o)) {
    if ((OPTION_KEYS as ReadonlyArray<string>).includes(key)) continue
    const meant = TaskFile.closest(key, OPTION_KEYS)
    issues.push(`${key}: not an option${meant !== undefined ? `; did you mean "${meant}"?` : `; the options: ${OPTION_KEYS.join(", ")}`}`)
  }
  const metric = o.metric as Record<string, unknown> | undefined
  if (typeof metric !== "object" || metric === null) {
    issues.push(`metric: expected { name, split?, direction } (the intermediate metric the rungs compare), got ${show(metric)}`)
  } else {
    if (typeof metric.name !== "string" || metric.name === "") {
      issues.push(`metric.name: expected the name of an intermediate metric the trials report (e.g. "loss"), got ${show(metric.name)}`)
    }
    if (metric.split !== undefined && (typeof metric.split !== "string" || metric.split === "")) {
      issues.push(`metric.split: expected the split of the points to compare (e.g. "eval"), or leave it out for any split, got ${show(metric.split)}`)
    }
    if (metric.direction !== "maximize" && metric.direction !== "minimize") {
      issues.push(`metric.direction: expected "maximize" or "minimize", got ${show(metric.direction)}`)
    }
  }
  const minStep = o.minStep
  if (!(minStep === "auto" || (typeof minStep === "number" && Number.isFinite(minStep) && minStep > 0))) {
    issues.push(
      `minStep: expected a finite number greater than 0 (the step of the first rung, in the steps the trials report), or "auto" (two reductions below a whole trial's length), got ${show(minStep)}`
    )
  }
  const eta = o.eta
  if (eta !== undefined && !(typeof eta === "number" && Number.isFinite(eta) && eta > 1)) {
    issues.push(`eta: expected a finite number greater than 1 (each rung keeps the best 1 / eta of its trials; 3 is usual), or leave it out for 3, got ${show(eta)}`)
  }
  const least = o.minTrialsPerRung
  if (least !== undefined && !(typeof least === "number" && Number.isSafeInteger(least) && least >= 1)) {
    issues.push(`minTrialsPerRung: expected a whole number of at least 1 (trials at a rung before it prunes any), or leave it out for eta, got ${show(least)}`)
  }
  return issues
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
  Effect.suspend(() => {
    const issues = issuesOf(options)
    return issues.length > 0
      ? Effect.fail(new Errors.InvalidInput({ source: "Asha.make options", message: issues.join("\n") }))
      : Effect.succeed(unchecked(options))
  })

const unchecked = (options: Options): Scheduler.SchedulerShape => {
  const eta = options.eta ?? 3
  const minTrials = options.minTrialsPerRung ?? Math.ceil(eta)
  const sign = options.metric.direction === "maximize" ? 1 : -1
  return {
    name: "asha",
    decide: (tree: ExperimentTree.TreeView, nodeId: string) => {
      const node = tree.get(nodeId)
      if (node === undefined) return "continue"
      // the highest rung this trial has reached
      const rung = rungAt(tree, options, eta, lastStep(node.curve, options))
      if (rung === undefined) return "continue"
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
