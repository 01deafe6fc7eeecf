import { assert, describe, it } from "@effect/vitest"
import { maskedKey, Sensitivity } from "../src/internal/sensitivity.ts"

describe("Sensitivity", () => {
  it("a dimension whose single changes left the result identical is inert", () => {
    const s = new Sensitivity()
    s.add([0, 0, 0], 1)
    s.add([1, 0, 0], 2)
    assert.deepStrictEqual([...s.inert()], [])
    // differs from the first only in dimension 2, same result
    s.add([0, 0, 1], 1)
    assert.deepStrictEqual([...s.inert()], [2])
    assert.deepStrictEqual({ ...s.counts(2), evidence: [...s.counts(2).evidence] }, { pairs: 1, ties: 1, evidence: [] })
  })

  it("evidence to the contrary undoes it, and failures are not compared", () => {
    const s = new Sensitivity()
    s.add([0, 0], 1)
    s.add([0, 1], 1)
    s.add([1, 0], undefined)
    s.add([1, 1], 3)
    assert.deepStrictEqual([...s.inert()], [1])
    s.add([1, 0], 5)
    s.add([2, 0], 4)
    s.add([2, 1], 0)
    // dimension 1: one tie, two changes
    assert.strictEqual(s.counts(1).pairs, 3)
    assert.strictEqual(s.counts(1).ties, 1)
    assert.deepStrictEqual([...s.inert()], [])
  })

  it("never every dimension, and needs minTies", () => {
    const s = new Sensitivity(2)
    s.add([0, 0], 1)
    s.add([1, 0], 1)
    s.add([0, 1], 1)
    assert.deepStrictEqual([...s.inert()], [])
    s.add([1, 1], 1)
    assert.strictEqual(s.inert().size, 1)
  })

  it("masked keys equate configurations up to inert dimensions", () => {
    assert.strictEqual(maskedKey([0, 0.5, -2], new Set([1])), maskedKey([0, 1, -2], new Set([1])))
    assert.notStrictEqual(maskedKey([0, 0.5, -2], new Set([1])), maskedKey([0, 0.5, -1], new Set([1])))
  })

  it("names the trials of the first ties as evidence", () => {
    const s = new Sensitivity()
    s.add([0, 0], 1, "n1")
    s.add([0, 1], 1, "n2")
    s.add([1, 0], 2, "n3")
    s.add([1, 1], 2, "n4")
    s.add([2, 0], 5, "n5")
    s.add([2, 1], 6, "n6")
    assert.deepStrictEqual([...s.inert()], [1])
    assert.deepStrictEqual([...s.counts(1).evidence].sort(), ["n1", "n2", "n3", "n4"])
    assert.deepStrictEqual([...s.counts(0).evidence], [])
  })
})
