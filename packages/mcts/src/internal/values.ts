import { Effect, Random } from "effect"
import type { ExperimentTree } from "@trex/core"

type Stats = ExperimentTree.Stats

/** Min-max normalise a utility into [0, 1] over the tree's succeeded nodes. */
export const normalise = (tree: ExperimentTree.TreeView, utility: number): number => {
  const range = tree.utilityRange()
  if (range === undefined) return 0
  const span = range.max - range.min
  return span <= 0 ? 1 : (utility - range.min) / span
}

/**
 * A subtree's value in [0, 1]: the mean (or max) normalised utility, where failures count 0
 * and pending trials count 0 as virtual loss. Because min-max normalisation is linear, the
 * normalised mean is the mean of normalised values.
 */
export const value = (tree: ExperimentTree.TreeView, s: Stats, backup: "mean" | "max", virtualLoss: boolean): number => {
  const n = s.visits + (virtualLoss ? s.pending : 0)
  if (n === 0 || s.successes === 0) return 0
  if (backup === "max") return normalise(tree, s.bestUtility)
  return (normalise(tree, s.valueSum / s.successes) * s.successes) / n
}

/**
 * Pick the item with the largest score; ties broken with Effect's Random (seeded). Without a tie
 * (the common case) no generator runs and nothing but the answer is allocated.
 */
export const argmax = <A>(items: ReadonlyArray<A>, score: (a: A) => number): Effect.Effect<A | undefined> => {
  let best: A | undefined
  let bestScore = -Infinity
  let ties: Array<A> | undefined
  for (const item of items) {
    const s = score(item)
    if (s > bestScore + 1e-12) {
      bestScore = s
      best = item
      ties = undefined
    } else if (Math.abs(s - bestScore) <= 1e-12) {
      if (ties === undefined) ties = [best as A]
      ties.push(item)
    }
  }
  if (ties === undefined) return Effect.succeed(best)
  const tied = ties
  return Effect.map(Random.nextIntBetween(0, tied.length - 1), (i) => tied[i])
}
