import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import fc from "fast-check"
import * as Fingerprint from "../src/Fingerprint.ts"
import * as SearchSpace from "../src/SearchSpace.ts"
import * as Strategy from "../src/Strategy.ts"
import { strategyEncoded } from "./support/arbitraries.ts"

const base = Strategy.decodeSync({
  data: { sources: [{ name: "add3", weight: 0.9 }, { name: "add2", weight: 0.1 }], format: "reversed" },
  training: { learningRate: 0.003, epochs: 5, batchSize: 32 }
})

const totalWeight = (s: Strategy.Strategy) => s.data.sources.reduce((a, x) => a + x.weight, 0)

describe("SearchSpace", () => {
  it("get/set round-trip on plain paths, creating missing objects", () => {
    const paths: ReadonlyArray<[string, SearchSpace.Value]> = [
      ["training.learningRate", 0.01],
      ["training.epochs", 8],
      ["training.schedule", "linear"],
      ["data.format", "scratchpad"],
      ["data.numExamples", 4000],
      ["training.lora.rank", 16],
      ["training.extra.trainable", "head"],
      ["evaluation.extra.flag", true]
    ]
    fc.assert(
      fc.property(strategyEncoded, fc.constantFrom(...paths), (input, [path, value]) => {
        const s = Strategy.decodeSync(input)
        const t = SearchSpace.set(s, path, value)
        assert.strictEqual(SearchSpace.get(t, path), value)
        // nothing else changes, and the input is not mutated
        for (const [other] of paths) if (other !== path) assert.deepStrictEqual(SearchSpace.get(t, other), SearchSpace.get(s, other))
        assert.deepStrictEqual(t.data.sources, s.data.sources)
        assert.strictEqual(t.rationale, s.rationale)
        assert.deepStrictEqual(s, Strategy.decodeSync(input))
      }),
      { numRuns: 200 }
    )
  })

  it("set keeps the rest of the strategy, and an object it makes has decoding's defaults: the decoded strategy, fingerprint and all", () => {
    const t = SearchSpace.set(base, "training.lora.rank", 8)
    // (without the defaults, { rank: 8 } was no valid strategy and hashed apart from the same strategy decoded: it could run twice)
    assert.deepStrictEqual(t.training.lora, { rank: 8, alpha: 16, dropout: 0 })
    assert.isTrue(Strategy.is(t))
    const decoded = Strategy.decodeSync(Strategy.encode(t))
    assert.deepStrictEqual(t, decoded)
    assert.strictEqual(Fingerprint.of(t), Fingerprint.of(decoded))
    assert.strictEqual(t.training.learningRate, base.training.learningRate)
    assert.deepStrictEqual(t.data, base.data)
    // an object the strategy has already is only copied along the path
    const u = SearchSpace.set(t, "training.lora.rank", 16)
    assert.deepStrictEqual(u.training.lora, { rank: 16, alpha: 16, dropout: 0 })
    assert.strictEqual(u.data, t.data)
    // a conditional parameter held at its first value, on a reference without it, is a valid strategy as well
    const space: SearchSpace.SearchSpace = {
      parameters: [
        { path: "training.method", kind: "categorical", values: ["full", "lora"] },
        { path: "training.lora.rank", kind: "ordinal", values: [4, 8], when: { path: "training.method", values: ["lora"] } }
      ]
    }
    const held = SearchSpace.normalize(space, base, base)
    assert.isTrue(Strategy.is(held))
    assert.strictEqual(SearchSpace.get(held, "training.lora.rank"), 4)
  })

  it("normalize: a parameter whose condition names an inactive one is inactive too, whatever value that one is held at", () => {
    // the alpha matters only at rank 16, the rank only under LoRA; the default holds the rank at 16
    const space: SearchSpace.SearchSpace = {
      parameters: [
        { path: "training.extra.method", kind: "categorical", values: ["full", "lora"] },
        { path: "training.extra.rank", kind: "ordinal", values: [4, 16], when: { path: "training.extra.method", values: ["lora"] } },
        { path: "training.extra.alpha", kind: "ordinal", values: [8, 16, 32], when: { path: "training.extra.rank", values: [16] } }
      ]
    }
    const reference = SearchSpace.set(SearchSpace.set(SearchSpace.set(base, "training.extra.method", "full"), "training.extra.rank", 16), "training.extra.alpha", 8)
    const at = (method: string, rank: number, alpha: number) =>
      SearchSpace.normalize(space, SearchSpace.applyPoint(space, reference, [method, rank, alpha]), reference)
    // a full fine-tune is one strategy, whatever alpha it was given (it ran once per alpha)
    const full = [8, 16, 32].map((alpha) => Fingerprint.of(at("full", 16, alpha)))
    assert.strictEqual(new Set(full).size, 1)
    assert.strictEqual(SearchSpace.get(at("full", 16, 32), "training.extra.alpha"), 8)
    // under LoRA at rank 16 the alpha matters; at rank 4 it does not
    assert.strictEqual(new Set([8, 16, 32].map((alpha) => Fingerprint.of(at("lora", 16, alpha)))).size, 3)
    assert.strictEqual(new Set([8, 16, 32].map((alpha) => Fingerprint.of(at("lora", 4, alpha)))).size, 1)
  })

  it("mixture weights keep summing to 1 and the named source gets its value", () => {
    const source = fc.record({ name: fc.constantFrom("a", "b", "c", "d"), weight: fc.oneof(fc.constant(0), fc.double({ min: 0.01, max: 5, noNaN: true })) })
    fc.assert(
      fc.property(
        // at least two distinct sources, so some other source than the named one always exists
        fc.uniqueArray(source, { minLength: 2, maxLength: 4, selector: (s) => s.name }),
        fc.constantFrom("a", "b", "c", "d", "e"),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (sources, name, w) => {
          const s = Strategy.decodeSync({ ...base, data: { ...base.data, sources } })
          const t = SearchSpace.set(s, `data.mixture.${name}`, w)
          assert.closeTo(totalWeight(t), 1, 1e-8)
          assert.closeTo(SearchSpace.get(t, `data.mixture.${name}`) as number, w, 1e-8)
          assert.isTrue(t.data.sources.every((x) => x.weight >= 0))
          // the original order of sources is kept, a new source goes last
          const names = t.data.sources.map((x) => x.name)
          const kept: ReadonlyArray<string> = sources.map((x) => x.name).filter((n) => names.includes(n))
          assert.deepStrictEqual(names.filter((n) => kept.includes(n)), kept)
          if (!sources.some((x) => x.name === name)) assert.strictEqual(names.at(-1), name)
          // other sources keep their proportions
          const before = sources.filter((x) => x.name !== name && x.weight > 0)
          if (before.length >= 2 && w < 0.9) {
            const [x, y] = before
            const tx = t.data.sources.find((q) => q.name === x!.name)!.weight
            const ty = t.data.sources.find((q) => q.name === y!.name)!.weight
            assert.closeTo(tx / (tx + ty), x!.weight / (x!.weight + y!.weight), 1e-6)
          }
        }
      ),
      { numRuns: 500 }
    )
  })

  it("mixture: the replay ratio of the quickstart", () => {
    const t = SearchSpace.set(base, "data.mixture.add2", 0.3)
    assert.deepStrictEqual(t.data.sources.map((s) => [s.name, s.weight]), [["add3", 0.7], ["add2", 0.3]])
    assert.strictEqual(SearchSpace.get(base, "data.mixture.add2"), 0.1)
    assert.strictEqual(SearchSpace.get(base, "data.mixture.none"), 0)
    const clamped = SearchSpace.set(base, "data.mixture.add2", 7)
    assert.deepStrictEqual(clamped.data.sources.map((s) => [s.name, s.weight]), [["add2", 1]])
  })

  it("mixture: the only source takes weight 1, however small the value set (no infinite weight)", () => {
    const none = Strategy.decodeSync({ ...base, data: { ...base.data, sources: [] } })
    for (const w of [5e-324, 1e-300, 0.25]) {
      const t = SearchSpace.set(none, "data.mixture.b", w)
      assert.deepStrictEqual(t.data.sources.map((s) => [s.name, s.weight]), [["b", 1]], `weight ${w}`)
      assert.deepStrictEqual(Strategy.decodeSync(Strategy.encode(t)), t)
    }
  })

  it("indexOf: exact value, else the nearest, on a log scale for log parameters", () => {
    const values = [0.0003, 0.001, 0.003, 0.01, 0.03]
    const log: SearchSpace.Parameter = { path: "training.learningRate", kind: "log", values }
    const ordinal: SearchSpace.Parameter = { ...log, kind: "ordinal" }
    const at = (lr: number) => SearchSpace.set(base, "training.learningRate", lr)
    assert.strictEqual(SearchSpace.indexOf(log, at(0.01)), 3)
    // 0.0019 is nearer 0.001 linearly but nearer 0.003 in ratio
    assert.strictEqual(SearchSpace.indexOf(log, at(0.0019)), 2)
    assert.strictEqual(SearchSpace.indexOf(ordinal, at(0.0019)), 1)
    assert.strictEqual(SearchSpace.indexOf(log, at(1)), 4)
    assert.strictEqual(SearchSpace.indexOf(log, at(1e-9)), 0)
    fc.assert(
      fc.property(fc.double({ min: 1e-6, max: 1, noNaN: true }), (lr) => {
        const i = SearchSpace.indexOf(log, at(lr))
        const d = (x: number) => Math.abs(Math.log(x / lr))
        for (const v of values) assert.isAtMost(d(values[i]!), d(v) + 1e-12)
      })
    )
    const format: SearchSpace.Parameter = { path: "data.format", kind: "categorical", values: ["plain", "reversed", "scratchpad"] }
    assert.strictEqual(SearchSpace.indexOf(format, base), 1)
    assert.strictEqual(SearchSpace.indexOf(format, SearchSpace.set(base, "data.format", "other")), 0)
  })

  it("applyPoint sets every parameter; position and pointPosition agree on grid points", () => {
    const space: SearchSpace.SearchSpace = {
      parameters: [
        { path: "training.learningRate", kind: "log", values: [0.001, 0.003, 0.01] },
        { path: "data.format", kind: "categorical", values: ["plain", "reversed"] },
        { path: "data.mixture.add2", kind: "ordinal", values: [0, 0.1, 0.2, 0.3, 0.4] },
        { path: "training.seed", kind: "ordinal", values: [0] }
      ]
    }
    const point: ReadonlyArray<SearchSpace.Value> = [0.01, "plain", 0.2, 0]
    const s = SearchSpace.applyPoint(space, base, point)
    assert.strictEqual(s.training.learningRate, 0.01)
    assert.strictEqual(s.data.format, "plain")
    assert.strictEqual(SearchSpace.get(s, "data.mixture.add2"), 0.2)
    assert.deepStrictEqual(SearchSpace.position(space, s), [1, 0, 0.5, 0])
    assert.deepStrictEqual(SearchSpace.pointPosition(space, point), SearchSpace.position(space, s))
    assert.deepStrictEqual(SearchSpace.position(space, base), [0.5, 1, 0.25, 0])
  })

  describe("applyPoint with mixture weights", () => {
    const space: SearchSpace.SearchSpace = {
      parameters: [
        { path: "data.mixture.a", kind: "ordinal", values: [0.1, 0.2, 0.5, 0.6] },
        { path: "data.mixture.b", kind: "ordinal", values: [0.1, 0.3, 0.5] },
        { path: "data.mixture.c", kind: "ordinal", values: [0.1, 0.3, 0.8] },
        { path: "training.epochs", kind: "ordinal", values: [1, 2] }
      ],
      points: [[0.6, 0.3, 0.1, 1], [0.2, 0.5, 0.3, 2], [0.1, 0.1, 0.8, 1]]
    }
    const mixed = (weights: ReadonlyArray<number>) =>
      Strategy.decodeSync({
        data: { sources: ["a", "b", "c", "extra"].map((name, i) => ({ name, weight: weights[i] })) },
        training: { learningRate: 1e-4, epochs: 1, batchSize: 8 }
      })

    it("a point's weights come out exactly, the same strategy whatever it is applied to", () => {
      // (set one weight at a time, each set rescaled the earlier ones: the point [0.6, 0.3, 0.1]
      // came out differently from each of these strategies, so a row run from one parent looked
      // untried from the next)
      const bases = [mixed([0.2, 0.6, 0.2, 0]), mixed([0.05, 0.05, 0.1, 0.8]), mixed([0.7, 0.1, 0.2, 0])]
      for (const point of space.points!) {
        const strategies = bases.map((b) => SearchSpace.applyPoint(space, b, point))
        for (const s of strategies) {
          assert.deepStrictEqual(space.parameters.map((p) => SearchSpace.get(s, p.path)), [...point])
          assert.closeTo(totalWeight(s), 1, 1e-8)
        }
        assert.deepStrictEqual(strategies[1], strategies[0])
        assert.deepStrictEqual(strategies[2], strategies[0])
      }
    })

    it("sources the space does not name share what the point leaves, in their proportions", () => {
      const partial: SearchSpace.SearchSpace = { parameters: [space.parameters[0]!], points: [[0.6]] }
      const s = SearchSpace.applyPoint(partial, mixed([0.1, 0.3, 0.1, 0.5]), [0.6])
      assert.closeTo(SearchSpace.get(s, "data.mixture.a") as number, 0.6, 1e-9)
      assert.closeTo(SearchSpace.get(s, "data.mixture.b") as number, 0.4 * 0.3 / 0.9, 1e-9)
      assert.closeTo(SearchSpace.get(s, "data.mixture.extra") as number, 0.4 * 0.5 / 0.9, 1e-9)
      assert.deepStrictEqual(s.data.sources.map((x) => x.name), ["a", "b", "c", "extra"])
    })

    it("weights summing to more than 1, or with no other source to take the rest, are scaled to sum to 1", () => {
      const over = SearchSpace.applyPoint(space, mixed([0.25, 0.25, 0.25, 0.25]), [0.6, 0.5, 0.8, 1])
      assert.closeTo(totalWeight(over), 1, 1e-8)
      assert.deepStrictEqual(over.data.sources.map((x) => x.name), ["a", "b", "c"])
      assert.closeTo(SearchSpace.get(over, "data.mixture.a") as number, 0.6 / 1.9, 1e-9)
      // the other sources all at 0: the first of them takes the rest, the point's weights stay
      const zero = SearchSpace.applyPoint(space, mixed([0.2, 0.3, 0.5, 0]), [0.2, 0.1, 0.1, 1])
      assert.deepStrictEqual(zero.data.sources.map((x) => [x.name, x.weight]), [["a", 0.2], ["b", 0.1], ["c", 0.1], ["extra", 0.6]])
      // no other source at all: the point's weights are scaled to sum to 1
      const only = SearchSpace.applyPoint(space, Strategy.decodeSync({ ...Strategy.encode(mixed([0, 0, 0, 0])), data: { sources: [{ name: "a" }, { name: "b" }] } }), [0.2, 0.1, 0.2, 1])
      assert.deepStrictEqual(only.data.sources.map((x) => [x.name, x.weight]), [["a", 0.4], ["b", 0.2], ["c", 0.4]])
      // a source the strategy did not have is added after the others
      const added = SearchSpace.applyPoint({ parameters: [{ path: "data.mixture.new", kind: "ordinal", values: [0.3] }] }, mixed([0.5, 0.5, 0, 0]), [0.3])
      assert.deepStrictEqual(added.data.sources.map((x) => [x.name, x.weight]), [["a", 0.35], ["b", 0.35], ["new", 0.3]])
    })
  })

  it("declaredValue: the declared value a value read is; a mixture share to the 9 decimals get rounds it to, an equal value first", () => {
    const share: SearchSpace.Parameter = { path: "data.mixture.web", kind: "ordinal", values: [5e-324, 0, 1 / 3] }
    assert.strictEqual(SearchSpace.declaredValue(share, 0.333333333), 1 / 3)
    assert.strictEqual(SearchSpace.declaredValue(share, 0), 0)
    assert.strictEqual(SearchSpace.declaredValue(share, 0.25), undefined)
    // other parameters are compared as they are
    assert.strictEqual(SearchSpace.declaredValue({ path: "training.epochs", kind: "ordinal", values: [1 / 3] }, 0.333333333), undefined)
    assert.strictEqual(SearchSpace.declaredValue({ path: "data.format", kind: "categorical", values: ["a"] }, undefined), undefined)
  })

  it("distinct counts a conditional space's strategies: points that differ only where a parameter does not matter are one", () => {
    // the quickstart's conditions: the method matters only when all layers train, the rank only under LoRA
    const space = Schema.decodeUnknownSync(SearchSpace.SearchSpace)({
      parameters: [
        { path: "training.learningRate", kind: "log", values: [1, 2, 3] },
        { path: "training.extra.trainable", kind: "categorical", values: ["all", "head"] },
        { path: "training.method", kind: "categorical", values: ["full", "lora"], when: { path: "training.extra.trainable", values: ["all"] } },
        { path: "training.lora.rank", kind: "ordinal", values: [2, 4, 8, 16], when: { path: "training.method", values: ["lora"] } }
      ]
    })
    assert.strictEqual(SearchSpace.size(space), 48)
    // per learning rate: head (method and rank held), all + full (rank held), all + lora x 4 ranks
    assert.strictEqual(SearchSpace.distinct(space), 3 * (1 + 1 + 4))
    // each of them is one strategy once normalized, and no two are the same
    const reference = SearchSpace.applyPoint(space, base, [1, "all", "full", 8])
    const seen = new Set<string>()
    for (const lr of [1, 2, 3]) {
      for (const trainable of ["all", "head"]) {
        for (const method of ["full", "lora"]) {
          for (const rank of [2, 4, 8, 16]) {
            seen.add(JSON.stringify(SearchSpace.normalize(space, SearchSpace.applyPoint(space, reference, [lr, trainable, method, rank]), reference)))
          }
        }
      }
    }
    assert.strictEqual(seen.size, SearchSpace.distinct(space))
  })

  it("size is the product of the value counts; the schema requires at least one value", () => {
    const space = Schema.decodeUnknownSync(SearchSpace.SearchSpace)({
      parameters: [
        { path: "training.learningRate", kind: "log", values: [1, 2, 3] },
        { path: "data.format", kind: "categorical", values: ["a", "b"] }
      ]
    })
    assert.strictEqual(SearchSpace.size(space), 6)
    assert.strictEqual(SearchSpace.size({ parameters: [] }), 1)
    assert.strictEqual(SearchSpace.size({ ...space, points: [[1, "a"], [3, "b"]] }), 2)
    assert.strictEqual(SearchSpace.distinct(space), 6, "without conditions, every point is a strategy of its own")
    assert.throws(() => Schema.decodeUnknownSync(SearchSpace.Parameter)({ path: "x", kind: "log", values: [] }), /values/)
    assert.throws(() => Schema.decodeUnknownSync(SearchSpace.Parameter)({ path: "x", kind: "grid", values: [1] }), /kind/)
  })

  describe("conditions (when)", () => {
    const conditional: SearchSpace.SearchSpace = {
      parameters: [
        { path: "training.extra.trainable", kind: "categorical", values: ["all", "head"] },
        { path: "training.method", kind: "categorical", values: ["full", "lora"], when: { path: "training.extra.trainable", values: ["all"] } },
        { path: "training.lora.rank", kind: "ordinal", values: [2, 4, 8, 16], when: { path: "training.method", values: ["lora"] } }
      ]
    }
    const rank = conditional.parameters[2]!
    const reference = SearchSpace.set(SearchSpace.set(SearchSpace.set(base, "training.extra.trainable", "all"), "training.method", "full"), "training.lora.rank", 8)

    it("a parameter is active only while its condition holds", () => {
      assert.isFalse(SearchSpace.isActive(rank, reference))
      assert.isTrue(SearchSpace.isActive(rank, SearchSpace.set(reference, "training.method", "lora")))
      assert.isTrue(SearchSpace.isActive(conditional.parameters[0]!, reference))
      assert.isTrue(SearchSpace.isConditional(conditional))
      assert.isFalse(SearchSpace.isConditional({ parameters: [conditional.parameters[0]!] }))
    })

    it("normalize holds inactive parameters at the reference's value, along chains of conditions", () => {
      // full fine-tuning with rank 2: the rank does not matter, so it goes back to the reference's 8
      const full2 = SearchSpace.set(reference, "training.lora.rank", 2)
      assert.strictEqual(SearchSpace.get(SearchSpace.normalize(conditional, full2, reference), "training.lora.rank"), 8)
      // under LoRA the rank is kept, and a strategy with nothing to change comes back as itself
      const lora2 = SearchSpace.set(full2, "training.method", "lora")
      assert.strictEqual(SearchSpace.normalize(conditional, lora2, reference), lora2)
      // head-only training: the method goes back to "full", and then the rank to 8
      const head = SearchSpace.set(lora2, "training.extra.trainable", "head")
      const held = SearchSpace.normalize(conditional, head, reference)
      assert.strictEqual(SearchSpace.get(held, "training.method"), "full")
      assert.strictEqual(SearchSpace.get(held, "training.lora.rank"), 8)
      assert.strictEqual(SearchSpace.get(held, "training.extra.trainable"), "head")
      // normalising twice changes nothing more
      assert.deepStrictEqual(SearchSpace.normalize(conditional, held, reference), held)
    })

    it("decoding rejects a condition on an unknown, later or same parameter, or on values it does not have", () => {
      const decode = Schema.decodeUnknownExit(SearchSpace.SearchSpace)
      const cases: ReadonlyArray<[SearchSpace.Condition, RegExp]> = [
        [{ path: "training.methd", values: ["lora"] }, /"training\.methd" is not another parameter of the search space; name one of: training\.extra\.trainable, training\.method/],
        [{ path: "training.lora.rank", values: [2] }, /is not another parameter/],
        [{ path: "training.method", values: ["qlora", "lora"] }, /"qlora" not among the values of "training\.method": "full", "lora"/]
      ]
      for (const [when, message] of cases) {
        const exit = decode({ parameters: [...conditional.parameters.slice(0, 2), { ...rank, when }] })
        assert.isTrue(exit._tag === "Failure")
        assert.match(String(exit._tag === "Failure" ? exit.cause : ""), message)
      }
      const later = decode({ parameters: [conditional.parameters[0]!, { ...rank, when: { path: "training.method", values: ["lora"] } }, conditional.parameters[1]!] })
      assert.match(String(later._tag === "Failure" ? later.cause : "no failure"), /declared after "training\.lora\.rank"; declare it first/)
      assert.strictEqual(decode(conditional)._tag, "Success")
    })
  })
})

