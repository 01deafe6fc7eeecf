import { assert, describe, it } from "@effect/vitest"
import * as Corner from "../src/internal/corner.ts"

describe("Corner", () => {
  it("the pair of settings seen at least twice with the best mean result; a pair seen once and an inert dimension do not count", () => {
    const observations = [
      { x: [0, 0, 0], utility: 5 }, // the best result, but each of its pairs is seen once
      { x: [1, 1, 0], utility: 4 },
      { x: [1, 1, 1], utility: 3 }, // (dim 0 = 1, dim 1 = 1) seen twice, mean of the 2nd and 3rd best
      { x: [2, 0, 2], utility: 1 },
      { x: [2, 2, 2], utility: undefined } // a failure counts as the worst success
    ]
    const corner = Corner.best(observations, new Set())
    assert.deepInclude(corner, { i: 0, a: 1, j: 1, b: 1, count: 2 })
    assert.isTrue(Corner.contains(corner!, [1, 1, 2]))
    assert.isFalse(Corner.contains(corner!, [1, 0, 1]))
    // with dimension 1 inert, the pairs left are of dimensions 0 and 2: (0 = 2, 2 = 2) is the only one seen twice
    assert.deepInclude(Corner.best(observations, new Set([1])), { i: 0, a: 2, j: 2, b: 2, count: 2 })
    assert.isUndefined(Corner.best(observations.slice(0, 2), new Set()))
  })

  it("a function of the results alone: in any order they came in, the same pair; equal means go to the lower dimensions and values", () => {
    // two pairs of equal means: (0 = 1, 1 = 1) and (0 = 2, 1 = 2), each seen twice with the same results
    const observations = [
      { x: [2, 2, 0], utility: 3 },
      { x: [2, 2, 1], utility: 1 },
      { x: [1, 1, 0], utility: 3 },
      { x: [1, 1, 1], utility: 1 },
      { x: [0, 0, 2], utility: 2 }
    ]
    const orders = [observations, [...observations].reverse(), [2, 0, 4, 3, 1].map((k) => observations[k]!)]
    const found = orders.map((o) => Corner.best(o, new Set()))
    assert.deepInclude(found[0], { i: 0, a: 1, j: 1, b: 1, count: 2 })
    for (const f of found) assert.deepStrictEqual(f, found[0])
  })
})
