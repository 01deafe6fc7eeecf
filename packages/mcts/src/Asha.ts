/**
 * Asynchronous successive halving (ASHA) as a `Scheduler`: rungs at `minStep * eta^k`; a trial
 * that reaches a rung continues only if its metric there is in the top `1 / eta` of the trials
 * that reached the same rung. Off by default; enable with `--scheduler asha`.
 *
 * @since 0.1.0
 */
import { Layer } from "effect"
import { type ExperimentTree, Scheduler } from "@trex/core"

/** @since 0.1.0 @category models */
export interface Options {
  /** The intermediate metric to compare (name and split), and whether larger is better. */
  readonly metric: { readonly name: string; readonly split?: string; readonly direction: "maximize" | "minimize" }
  /** First rung, in the trial's own step units. */
  readonly minStep: number
  /** Reduction factor (default 3). */
  readonly eta?: number
  /** Trials needed at a rung before it prunes anyone (default eta). */
  readonly minTrialsPerRung?: number
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
 * @example
 * ```ts
 * import { Asha } from "@trex/mcts"
 * const scheduler = Asha.make({ metric: { name: "ppl", split: "dev", direction: "minimize" }, minStep: 2 })
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = (options: Options): Scheduler.SchedulerShape => {
  const eta = options.eta ?? 3
  const minTrials = options.minTrialsPerRung ?? eta
  const sign = options.metric.direction === "maximize" ? 1 : -1
  return {
    name: "asha",
    decide: (tree: ExperimentTree.TreeView, nodeId: string) => {
      const node = tree.get(nodeId)
      if (node === undefined) return "continue"
      const reached = lastStep(node.curve, options)
      if (reached < options.minStep) return "continue"
      // the highest rung this trial has reached
      let rung = options.minStep
      while (rung * eta <= reached) rung *= eta
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

/** @since 0.1.0 @category layers */
export const layer = (options: Options): Layer.Layer<Scheduler.Scheduler> => Layer.succeed(Scheduler.Scheduler, make(options))
