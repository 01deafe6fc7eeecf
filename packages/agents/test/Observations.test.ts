import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import { ObservationSet } from "../src/internal/observations.ts"
import type { Observation } from "../src/internal/surrogate.ts"

/** What the set must give, from every observation in arrival order. */
const expected = (every: ReadonlyArray<Observation>, all: number, bestKept: number) => {
  if (every.length <= all) return { best: [], list: every }
  const best = every
    .map((o, i) => ({ o, i }))
    .filter(({ o }) => o.utility !== undefined)
    .sort((a, b) => b.o.utility! - a.o.utility! || a.i - b.i)
    .slice(0, bestKept)
    .map(({ o }) => o)
  return { best, list: undefined }
}

describe("ObservationSet", () => {
  it("all observations while few; then the best (sorted, ties in arrival order) and the newest others, bounded", () => {
    fc.assert(
      fc.property(
        fc.array(fc.option(fc.integer({ min: 0, max: 40 }), { nil: undefined, freq: 6 }), { minLength: 1, maxLength: 400 }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 30 }),
        (utilities, all, bestKept, recentKept) => {
          const set = new ObservationSet({ all, bestKept, recentKept })
          const every: Array<Observation> = []
          utilities.forEach((u, i) => {
            const o: Observation = { x: [i], utility: u }
            every.push(o)
            set.add(`n${i}`, o)
            set.add(`n${i}`, { x: [-1], utility: 1000 }) // a second add of the same node is ignored
            const list = set.list()
            const want = expected(every, all, bestKept)
            assert.strictEqual(set.count, every.length)
            if (want.list !== undefined) {
              assert.deepStrictEqual(list, want.list)
              return
            }
            // the best come first, exactly those of all observations so far
            assert.deepStrictEqual(list.slice(0, want.best.length), want.best)
            const rest = list.slice(want.best.length)
            // then others only, newest last, in arrival order, a suffix of every observation but the best
            const others = every.filter((o) => !want.best.includes(o))
            assert.deepStrictEqual(rest, others.slice(others.length - rest.length))
            const kept = Math.max(recentKept, all)
            assert.isAtLeast(rest.length, Math.min(others.length, kept - bestKept))
            assert.isAtMost(list.length, bestKept + 2 * kept)
          })
        }
      ),
      { numRuns: 200 }
    )
  })
})
