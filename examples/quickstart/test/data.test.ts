// The three answer formats round-trip, and the held-out sets are fixed, distinct and never trained on.
import { assert, describe, it } from "vitest"
import { answerText, decode, decodeAnswer, encode, FORMATS, heldOut, HELD_OUT_SIZE, problemKey, promptText, trainingProblems } from "../src/data.ts"
import { deserialize, serialize } from "../src/base-cache.ts"
import { initBase } from "../src/model.ts"
import { makeRng } from "../src/rng.ts"
import { parseStrategy, StrategyError } from "../src/strategy.ts"

describe("answer formats", () => {
  it("write the documented texts", () => {
    const p = { a: 12, b: 34 }
    assert.equal(promptText(p), "012+034=")
    assert.equal(answerText(p, "plain"), "0046$")
    assert.equal(answerText(p, "reversed"), "6400$")
    assert.equal(answerText(p, "scratchpad"), "6.4.0.0$")
    assert.equal(answerText({ a: 999, b: 999 }, "scratchpad"), "8C9C9C1$")
    assert.equal(answerText({ a: 999, b: 999 }, "plain"), "1998$")
  })

  it("round-trip through symbols and back to the sum for every format", () => {
    const rng = makeRng(3)
    const problems = [{ a: 0, b: 0 }, { a: 999, b: 999 }, { a: 500, b: 500 }, ...trainingProblems(300, { add3: 0.5, add2: 0.5 }, rng)]
    for (const format of FORMATS) {
      for (const p of problems) {
        const text = promptText(p) + answerText(p, format)
        assert.equal(decode(encode(text)), text)
        assert.equal(decodeAnswer(answerText(p, format), format), p.a + p.b, `${format} ${p.a}+${p.b}`)
      }
    }
  })

  it("reject malformed or inconsistent answers", () => {
    assert.isUndefined(decodeAnswer("6400", "reversed"))
    assert.isUndefined(decodeAnswer("640$", "plain"))
    assert.isUndefined(decodeAnswer("6.4.0.1$", "scratchpad")) // last carry '.' but final digit 1
    assert.throws(() => encode("12x"), /not in vocabulary/)
  })
})

describe("held-out sets", () => {
  it("are fixed, distinct and within their operand ranges", () => {
    for (const source of ["add3", "add2"] as const) {
      const set = heldOut(source)
      assert.equal(set.length, HELD_OUT_SIZE)
      assert.equal(new Set(set.map(problemKey)).size, HELD_OUT_SIZE)
      const [lo, hi] = source === "add3" ? [100, 999] : [0, 99]
      for (const p of set) assert.isTrue(p.a >= lo && p.a <= hi && p.b >= lo && p.b <= hi)
    }
    assert.deepEqual(heldOut("add3").slice(0, 3), heldOut("add3").slice(0, 3))
  })

  it("are disjoint from training data, which follows the mixture", () => {
    const held = new Set([...heldOut("add3"), ...heldOut("add2")].map(problemKey))
    const train = trainingProblems(16000, { add3: 0.7, add2: 0.3 }, makeRng(11))
    assert.equal(train.length, 16000)
    assert.equal(train.filter((p) => p.source === "add2").length, 4800)
    for (const p of train) assert.isFalse(held.has(problemKey(p)), `${p.a}+${p.b} is held out`)
  })
})

describe("strategy parsing", () => {
  it("fills defaults, ignores unknown fields and normalises source weights", () => {
    const cfg = parseStrategy({ data: { sources: [{ name: "add3", weight: 3 }, { name: "add2", weight: 1 }], whatever: 1 }, training: { extra: { trainable: "head" } } })
    assert.deepEqual(cfg.weights, { add3: 0.75, add2: 0.25 })
    assert.equal(cfg.format, "reversed")
    assert.equal(cfg.trainable, "head")
    assert.equal(parseStrategy({ data: { mixture: { add2: 0.3 } } }).weights.add2, 0.3)
  })

  it("names the invalid field", () => {
    const bad: Array<[unknown, string]> = [
      [{ data: { format: "words" } }, "data.format"],
      [{ training: { learningRate: 0 } }, "training.learningRate"],
      [{ training: { epochs: 1.5 } }, "training.epochs"],
      [{ data: { sources: [{ name: "add4", weight: 1 }] } }, "data.sources[0].name"],
      [{ training: { lora: { rank: -1 } } }, "training.lora.rank"]
    ]
    for (const [s, field] of bad) {
      try {
        parseStrategy(s)
        assert.fail(`accepted invalid ${field}`)
      } catch (e) {
        assert.instanceOf(e, StrategyError)
        assert.equal((e as StrategyError).field, field)
      }
    }
  })
})

describe("weight files", () => {
  it("round-trip bit for bit", () => {
    const w = initBase(makeRng(5))
    const back = deserialize(serialize(w))
    assert.deepEqual(back.W1, w.W1)
    assert.deepEqual(back.b2, w.b2)
    assert.throws(() => deserialize(Buffer.alloc(12)), /expected/)
  })
})
