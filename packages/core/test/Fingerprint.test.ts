import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import * as Fingerprint from "../src/Fingerprint.ts"
import * as SearchSpace from "../src/SearchSpace.ts"
import * as Strategy from "../src/Strategy.ts"
import { strategyEncoded } from "./support/arbitraries.ts"

/** Rebuild a value with every object's keys in the order given by `order` (a permutation source). */
const reorder = (value: unknown, rand: () => number): unknown => {
  if (Array.isArray(value)) return value.map((v) => reorder(v, rand))
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value)
    for (let i = keys.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1))
      ;[keys[i], keys[j]] = [keys[j]!, keys[i]!]
    }
    // fromEntries defines own properties, so a "__proto__" key stays a key (assignment would set the prototype)
    return Object.fromEntries(keys.map((k) => [k, reorder((value as Record<string, unknown>)[k], rand)]))
  }
  return value
}

/** JSON text with numbers written differently: exponent form, and integers with a trailing `.0`. */
const reformatNumbers = (value: unknown, style: "exponent" | "decimal"): string => {
  if (typeof value === "number") {
    if (style === "exponent") return value.toExponential()
    return Number.isInteger(value) && Math.abs(value) < 1e21 ? `${value}.0` : JSON.stringify(value)
  }
  if (Array.isArray(value)) return `[${value.map((v) => reformatNumbers(v, style)).join(", ")}]`
  if (value !== null && typeof value === "object") {
    return `{ ${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)} : ${reformatNumbers(v, style)}`).join(",\n")} }`
  }
  return JSON.stringify(value)
}

const fp = (input: unknown) => Fingerprint.of(Strategy.decodeSync(input))

const base = { data: { sources: [{ name: "a" }] }, training: { learningRate: 0.001, epochs: 1, batchSize: 8 } }

describe("Fingerprint", () => {
  it("is 16 hex digits and deterministic", () => {
    assert.match(fp(base), /^[0-9a-f]{16}$/)
    assert.strictEqual(fp(base), fp(structuredClone(base)))
  })

  it("stays the same across versions (journals and result caches of earlier runs hold fingerprints)", () => {
    // Pinned: a change to the canonical JSON or the hash would make every recorded result unreachable.
    assert.strictEqual(fp(base), "0196baac6e1c1199")
    const recipe = (sources: ReadonlyArray<{ name: string; weight: number }>) =>
      Strategy.decodeSync({
        data: { sources, numExamples: 4000, extra: { bpe: 32000, "é\"x": [1, -0, null] } },
        training: { method: "lora", lora: { rank: 16 }, learningRate: 2e-4, epochs: 3, batchSize: 24, warmupRatio: 0.03 }
      })
    // a mixture in canonical form (shares, in the order of the names) has the fingerprint it always had
    assert.strictEqual(Fingerprint.of(recipe([{ name: "code", weight: 0.3 }, { name: "wiki", weight: 0.7 }])), "1f29e1c1dc9c9ddd")
    // one written otherwise had its own until 2026-12-05 ("fed4cb1a8da755ce": ExperimentTree and ResultCache find a node
    // journaled with it by the fingerprint of its strategy now), and has the canonical form's now
    const mixed = recipe([{ name: "wiki", weight: 0.7 }, { name: "code", weight: 0.3 }])
    assert.strictEqual(Fingerprint.of(mixed), "1f29e1c1dc9c9ddd")
    assert.strictEqual(
      Fingerprint.canonicalJson(mixed.data),
      `{"extra":{"bpe":32000,"é\\"x":[1,0,null]},"filters":[],"format":"default","numExamples":4000,"sources":[{"name":"wiki","weight":0.7},{"name":"code","weight":0.3}],"transforms":[]}`
    )
  })

  it("is invariant under key order, recursively", () => {
    fc.assert(
      fc.property(strategyEncoded, fc.integer(), (s, seed) => {
        let x = seed
        const rand = () => ((x = (x * 1103515245 + 12345) & 0x7fffffff) / 0x80000000)
        assert.strictEqual(fp(reorder(s, rand)), fp(s))
      }),
      { numRuns: 200 }
    )
  })

  it("is invariant under number formatting in the JSON text", () => {
    assert.strictEqual(
      fp(JSON.parse('{"data":{"sources":[{"name":"a","weight":1.0}]},"training":{"learningRate":1e-3,"epochs":1.0,"batchSize":8}}')),
      fp(JSON.parse('{"data":{"sources":[{"name":"a","weight":1}]},"training":{"learningRate":0.001,"epochs":1,"batchSize":8}}'))
    )
    fc.assert(
      fc.property(strategyEncoded, fc.constantFrom("exponent" as const, "decimal" as const), (s, style) => {
        const text = reformatNumbers(s, style)
        assert.notStrictEqual(text, JSON.stringify(s))
        assert.strictEqual(fp(JSON.parse(text)), fp(s))
      }),
      { numRuns: 200 }
    )
  })

  it("ignores the rationale", () => {
    fc.assert(
      fc.property(strategyEncoded, fc.string(), (s, rationale) => {
        assert.strictEqual(fp({ ...s, rationale }), fp(s))
      }),
      { numRuns: 100 }
    )
  })

  it("is invariant under writing out the defaults that decoding fills in", () => {
    assert.strictEqual(fp({ ...base, training: { ...base.training, schedule: "cosine" } }), fp(base))
    assert.strictEqual(fp({ ...base, training: { ...base.training, method: "full", seed: 0, warmupRatio: 0, extra: {} } }), fp(base))
    assert.strictEqual(fp({ ...base, evaluation: { splits: [], extra: {} } }), fp(base))
    assert.strictEqual(fp({ ...base, data: { sources: [{ name: "a", weight: 1 }], format: "default", filters: [] } }), fp(base))
    fc.assert(
      fc.property(strategyEncoded, (s) => {
        // the encoded form of the decoded strategy has every default written out
        const explicit = Strategy.encode(Strategy.decodeSync(s))
        assert.strictEqual(fp(explicit), fp(s))
      }),
      { numRuns: 200 }
    )
  })

  it("changes with any change to an executable field", () => {
    type Enc = Strategy.StrategyEncoded
    const mutations: ReadonlyArray<[string, (s: Strategy.Strategy) => Strategy.Strategy]> = [
      ["learningRate", (s) => ({ ...s, training: { ...s.training, learningRate: s.training.learningRate * 2 } })],
      ["epochs", (s) => ({ ...s, training: { ...s.training, epochs: s.training.epochs + 1 } })],
      ["batchSize", (s) => ({ ...s, training: { ...s.training, batchSize: s.training.batchSize + 1 } })],
      ["seed", (s) => ({ ...s, training: { ...s.training, seed: s.training.seed + 1 } })],
      ["schedule", (s) => ({ ...s, training: { ...s.training, schedule: s.training.schedule === "linear" ? "constant" : "linear" } })],
      ["method", (s) => ({ ...s, training: { ...s.training, method: s.training.method === "qlora" ? "full" : "qlora" } })],
      ["training.extra", (s) => ({ ...s, training: { ...s.training, extra: { ...s.training.extra, zz_new: 1 } } })],
      ["format", (s) => ({ ...s, data: { ...s.data, format: `${s.data.format}x` } })],
      ["source added", (s) => ({ ...s, data: { ...s.data, sources: [...s.data.sources, { name: "zz-new", weight: 1 }] } })],
      ["filter added", (s) => ({ ...s, data: { ...s.data, filters: [...s.data.filters, { kind: "dedupe", params: {} }] } })],
      ["numExamples", (s) => ({ ...s, data: { ...s.data, numExamples: (s.data.numExamples ?? 1) + 1 } })],
      ["evaluation.splits", (s) => ({ ...s, evaluation: { ...s.evaluation, splits: [...s.evaluation.splits, "zz"] } })],
      ["evaluation.extra", (s) => ({ ...s, evaluation: { ...s.evaluation, extra: { ...s.evaluation.extra, zz_new: true } } })]
    ]
    fc.assert(
      fc.property(strategyEncoded, fc.constantFrom(...mutations), (input: Enc, [, mutate]) => {
        const s = Strategy.decodeSync(input)
        const t = Strategy.decodeSync(Strategy.encode(mutate(s)))
        assert.notStrictEqual(Fingerprint.of(t), Fingerprint.of(s))
      }),
      { numRuns: 300 }
    )
  })

  it("gives one mixture one fingerprint, however it is written: weights as shares, sources in any order, those at 0 left out", () => {
    const of = (sources: ReadonlyArray<{ name: string; weight?: number; split?: string }>) => fp({ ...base, data: { sources } })
    const half = of([{ name: "code", weight: 0.5 }, { name: "web", weight: 0.5 }])
    assert.strictEqual(of([{ name: "web", weight: 0.5 }, { name: "code", weight: 0.5 }]), half)
    assert.strictEqual(of([{ name: "web" }, { name: "code" }]), half)
    assert.strictEqual(of([{ name: "web", weight: 3 }, { name: "toy", weight: 0 }, { name: "code", weight: 3 }]), half)
    // weights rescaled one at a time, rounded apart: the same shares to 9 decimals
    assert.strictEqual(of([{ name: "web", weight: 0.500000000001 }, { name: "code", weight: 0.499999999999 }]), half)
    assert.strictEqual(of([{ name: "a", weight: 2 }]), fp(base))
    // other shares, another split of a source: another mixture
    assert.notStrictEqual(of([{ name: "code", weight: 0.4 }, { name: "web", weight: 0.6 }]), half)
    assert.notStrictEqual(of([{ name: "code", weight: 0.5 }, { name: "web", weight: 0.5, split: "train" }]), half)
    assert.notStrictEqual(of([{ name: "web", weight: 0.5 }, { name: "web", weight: 0.5, split: "train" }]), of([{ name: "web" }]))
    fc.assert(
      fc.property(strategyEncoded, fc.integer({ min: 1, max: 1000 }), fc.integer(), (s, scale, seed) => {
        let x = seed
        const rand = () => ((x = (x * 1103515245 + 12345) & 0x7fffffff) / 0x80000000)
        const sources = Strategy.decodeSync(s).data.sources.map((src) => ({ ...src, weight: src.weight * scale }))
        // (a mixture whose weights sum to 0 is left as it is written)
        fc.pre(sources.some((src) => src.weight > 0))
        for (let i = sources.length - 1; i > 0; i--) {
          const j = Math.floor(rand() * (i + 1))
          ;[sources[i], sources[j]] = [sources[j]!, sources[i]!]
        }
        assert.strictEqual(fp({ ...s, data: { ...s.data, sources: [...sources, { name: "zz-none", weight: 0 }] } }), fp(s))
      }),
      { numRuns: 200 }
    )
  })

  it("gives a mixture's shares as exact arithmetic rounds them, whatever the order its weights are summed in", () => {
    // summed in floating point, these and the same reversed differed in the last bit, and 0.345's share is within
    // 3e-8 of a half billionth (0.1123046875): 112304687 one way, 112304688 the other, two fingerprints for one
    // mixture. In exact arithmetic on the doubles the weights are, it is just under the half.
    const written = [0.86, 0.95, 0.917, 0.345].map((weight, i) => ({ name: `s${i}`, weight }))
    assert.strictEqual(fp({ ...base, data: { sources: [...written].reverse() } }), fp({ ...base, data: { sources: written } }))
    assert.deepStrictEqual(Fingerprint.mixture(written).map((s) => s.weight), [0.279947917, 0.309244792, 0.298502604, 0.112304687])
    assert.deepStrictEqual(Fingerprint.mixture([...written].reverse()).map((s) => s.weight), [0.279947917, 0.309244792, 0.298502604, 0.112304687])
    // thousandths that sum to 1.024: an odd number of them is a share at a half billionth
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 5 }), fc.integer(), (parts, seed) => {
        const rest = 1024 - parts.reduce((a, b) => a + b, 0)
        fc.pre(rest > 0)
        const thousandths = [...parts, rest]
        const sources = thousandths.map((k, i) => ({ name: `s${i}`, weight: k / 1000 }))
        // the doubles are not exactly k / 1000: each share is one of the two billionths next to k / 1024
        const shares = Fingerprint.mixture(sources)
        thousandths.forEach((k, i) => assert.isAtMost(Math.abs(shares[i]!.weight * 1e9 - (k * 1e9) / 1024), 0.5 + 1e-6, `share ${i}`))
        // a search space reads each share as the fingerprint keeps it
        const strategy = Strategy.decodeSync({ ...base, data: { sources } })
        sources.forEach((source, i) => assert.strictEqual(SearchSpace.get(strategy, `data.mixture.${source.name}`), shares[i]!.weight, source.name))
        let x = seed
        const rand = () => ((x = (x * 1103515245 + 12345) & 0x7fffffff) / 0x80000000)
        const shuffled = [...sources]
        for (let i = shuffled.length - 1; i > 0; i--) {
          const j = Math.floor(rand() * (i + 1))
          ;[shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!]
        }
        assert.strictEqual(fp({ ...base, data: { sources: shuffled } }), fp({ ...base, data: { sources } }))
        assert.strictEqual(fp({ ...base, data: { sources: [...sources].reverse() } }), fp({ ...base, data: { sources } }))
      }),
      { numRuns: 500 }
    )
  })

  it("the absolute counts and an order a trainer reads live in fields the fingerprint keeps as written: numExamples, a source's maxExamples, data.extra", () => {
    type Src = { name: string; weight?: number; maxExamples?: number }
    const of = (sources: ReadonlyArray<Src>, data: { numExamples?: number; extra?: Record<string, unknown> } = {}) =>
      fp({ ...base, data: { sources, ...data } })
    const capped = of([{ name: "web", weight: 1, maxExamples: 100 }, { name: "code", weight: 1 }], { numExamples: 1000 })
    // the same shares, caps and total, written another way: one strategy
    assert.strictEqual(of([{ name: "code", weight: 2 }, { name: "web", weight: 2, maxExamples: 100 }], { numExamples: 1000 }), capped)
    // a cap on the other source, another cap, another total, no total: another strategy each
    assert.notStrictEqual(of([{ name: "web", weight: 1 }, { name: "code", weight: 1, maxExamples: 100 }], { numExamples: 1000 }), capped)
    assert.notStrictEqual(of([{ name: "web", weight: 1, maxExamples: 200 }, { name: "code", weight: 1 }], { numExamples: 1000 }), capped)
    assert.notStrictEqual(of([{ name: "web", weight: 1, maxExamples: 100 }, { name: "code", weight: 1 }], { numExamples: 2000 }), capped)
    assert.notStrictEqual(of([{ name: "web", weight: 1, maxExamples: 100 }, { name: "code", weight: 1 }]), capped)
    // a curriculum names its order in a field of its own, kept as written; the list's order is not one
    const curriculum = (order: ReadonlyArray<string>) => of([{ name: "web" }, { name: "code" }], { extra: { order } })
    assert.notStrictEqual(curriculum(["web", "code"]), curriculum(["code", "web"]))
    assert.strictEqual(of([{ name: "code" }, { name: "web" }], { extra: { order: ["web", "code"] } }), curriculum(["web", "code"]))
  })

  it("mixture: the canonical form, and the sources themselves when they are in it", () => {
    const sources = [{ name: "web", weight: 1 }, { name: "toy", weight: 0 }, { name: "code", weight: 3 }]
    assert.deepStrictEqual(Fingerprint.mixture(sources), [{ name: "code", weight: 0.75 }, { name: "web", weight: 0.25 }])
    const canonical = [{ name: "code", weight: 0.75 }, { name: "web", weight: 0.25 }]
    assert.strictEqual(Fingerprint.mixture(canonical), canonical)
    const none = [{ name: "b", weight: 0 }, { name: "a", weight: 0 }]
    assert.strictEqual(Fingerprint.mixture(none), none)
  })
})

describe("canonicalJson", () => {
  it("sorts keys, drops undefined members, writes -0 as 0", () => {
    assert.strictEqual(Fingerprint.canonicalJson({ b: 1, a: [1, { d: undefined, c: -0 }], e: undefined }), '{"a":[1,{"c":0}],"b":1}')
    assert.strictEqual(Fingerprint.canonicalJson([undefined, null, "x", true]), '[null,null,"x",true]')
  })

  it("keeps a \"__proto__\" key that came from JSON", () => {
    const v = JSON.parse('{"b":1,"__proto__":{"x":false}}')
    assert.strictEqual(Fingerprint.canonicalJson(v), '{"__proto__":{"x":false},"b":1}')
  })

  it("rejects non-finite numbers and non-JSON values", () => {
    assert.throws(() => Fingerprint.canonicalJson({ a: NaN }), RangeError)
    assert.throws(() => Fingerprint.canonicalJson([Infinity]), RangeError)
    assert.throws(() => Fingerprint.canonicalJson({ a: -Infinity }), RangeError)
    assert.throws(() => Fingerprint.canonicalJson({ f: () => 1 }), TypeError)
    assert.throws(() => Fingerprint.canonicalJson(10n), TypeError)
  })

  it("is valid JSON for the same value and does not depend on key order (generated JSON)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.integer(), (v, seed) => {
        let x = seed
        const rand = () => ((x = (x * 1103515245 + 12345) & 0x7fffffff) / 0x80000000)
        const text = Fingerprint.canonicalJson(v)
        assert.deepStrictEqual(JSON.parse(text), JSON.parse(JSON.stringify(v)))
        assert.strictEqual(Fingerprint.canonicalJson(reorder(v, rand)), text)
      }),
      { numRuns: 300 }
    )
  })
})
