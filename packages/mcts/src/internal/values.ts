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
 * A running argmax: offer items with their scores one at a time; scores within 1e-12 of the best
 * are ties. Allocates nothing until there is a tie.
 */
export class Argmax<A> {
  best: A | undefined = undefined
  bestScore = -Infinity
  ties: Array<A> | undefined = undefined
  offer(item: A, score: number): void {
    if (score > this.bestScore + 1e-12) {
      this.bestScore = score
      this.best = item
      this.ties = undefined
    } else if (Math.abs(score - this.bestScore) <= 1e-12) {
      if (this.ties === undefined) this.ties = [this.best as A]
      this.ties.push(item)
    }
  }
  /** The best item, a tie broken with Effect's Random (seeded). */
  pick(): Effect.Effect<A | undefined> {
    const tied = this.ties
    if (tied === undefined) return Effect.succeed(this.best)
    return Effect.map(Random.nextIntBetween(0, tied.length - 1), (i) => tied[i])
  }
}

/**
 * Pick the item with the largest score; ties broken with Effect's Random (seeded). Without a tie
 * (the common case) no generator runs and nothing but the answer is allocated.
 */
export const argmax = <A>(items: ReadonlyArray<A>, score: (a: A) => number): Effect.Effect<A | undefined> => {
  const m = new Argmax<A>()
  for (const item of items) m.offer(item, score(item))
  return m.pick()
}
