import { assert, describe, it } from "@effect/vitest"
import { SearchSpace } from "@trex/core"
import { Schema } from "effect"
import * as Surrogate from "../src/internal/surrogate.ts"

// A smooth 2-D landscape with its peak at (0.7, 0.3), observed on a coarse grid that misses the peak.
const f = (x: ReadonlyArray<number>) => -((x[0]! - 0.7) ** 2) - (x[1]! - 0.3) ** 2
const grid = [0, 0.25, 0.5, 1].flatMap((a) => [0, 0.5, 1].map((b) => [a, b]))
const observations = grid.map((x) => ({ x, utility: f(x) }))

describe("surrogate (Gaussian process)", () => {
  it("interpolates what it has seen and predicts an unseen point's rank", () => {
    const model = Surrogate.fit(observations, { minObservations: 4, maxObservations: 64 })!
    for (const o of observations.slice(0, 4)) {
      const p = model.predict(o.x)
      assert.isBelow(p.sd, 0.5)
    }
    // near the peak is predicted better than a far corner
    assert.isAbove(model.predict([0.7, 0.3]).mean, model.predict([0, 1]).mean)
  })

  it("ranks the unseen region around the optimum first by expected improvement", () => {
    const model = Surrogate.fit(observations, { minObservations: 4, maxObservations: 64 })!
    const candidates = [[0.7, 0.3], [0, 1], [1, 1], [0.1, 0.9], [0.25, 1]]
    const ranked = [...candidates].sort((a, b) => model.expectedImprovement(b) - model.expectedImprovement(a))
    assert.deepStrictEqual(ranked[0], [0.7, 0.3])
  })

  it("needs enough successes and varying outputs; counts a failure as the worst success", () => {
    assert.isUndefined(Surrogate.fit(observations.slice(0, 3), { minObservations: 4, maxObservations: 64 }))
    assert.isUndefined(Surrogate.fit(grid.map((x) => ({ x, utility: 1 })), { minObservations: 4, maxObservations: 64 }))
    const withFailure = [...observations, { x: [0.7, 0.35], utility: undefined }]
    const model = Surrogate.fit(withFailure, { minObservations: 4, maxObservations: 64 })!
    // the failure pulls the prediction near it down, below the good neighbourhood's
    assert.isBelow(model.predict([0.7, 0.35]).mean, model.predict([0.5, 0.5]).mean)
  })

  it("keeps at most maxObservations and reuses given hyperparameters", () => {
    const many = Array.from({ length: 200 }, (_, i) => {
      const x = [(i * 37 % 200) / 200, (i * 91 % 200) / 200]
      return { x, utility: f(x) }
    })
    const model = Surrogate.fit(many, { minObservations: 4, maxObservations: 16, near: [0.7, 0.3] })!
    const again = Surrogate.fit(many, { minObservations: 4, maxObservations: 16, near: [0.7, 0.3], hyper: model.hyper })!
    assert.deepStrictEqual(again.hyper, model.hyper)
    assert.closeTo(again.predict([0.6, 0.4]).mean, model.predict([0.6, 0.4]).mean, 1e-9)
    assert.isAbove(model.predict([0.7, 0.3]).mean, model.predict([0.05, 0.95]).mean)
  })

  it("treats categorical features (negative codes) as equal or different", () => {
    const obs = [[-1, 0], [-2, 0], [-3, 0], [-1, 1], [-2, 1], [-3, 1]].map((x) => ({ x, utility: x[0] === -2 ? 1 : 0 }))
    const model = Surrogate.fit(obs, { minObservations: 4, maxObservations: 64 })!
    assert.isAbove(model.predict([-2, 0.5]).mean, model.predict([-3, 0.5]).mean)
  })

  it("models normal scores of the outputs: order matters, not how far a diverged run fell", () => {
    const scores = Surrogate.normalScores([3, 1, 2, 2, 10])
    // increasing with the value, ties equal, the middle rank at 0 and symmetric around it
    assert.isBelow(scores[1]!, scores[2]!)
    assert.strictEqual(scores[2], scores[3])
    assert.isBelow(scores[3]!, scores[0]!)
    assert.isBelow(scores[0]!, scores[4]!)
    assert.closeTo(Surrogate.normalScores([1, 2, 3])[1]!, 0, 1e-9)
    assert.closeTo(Surrogate.normalScores([1, 2, 3])[0]!, -Surrogate.normalScores([1, 2, 3])[2]!, 1e-9)
    // Φ(score) is rank / (n + 1): the lowest of 3 values at 1/4
    assert.closeTo(Surrogate.normalScores([5, 6, 7])[0]!, -0.6744897501960817, 1e-8)
    // a run that diverged far below the rest changes nothing the model predicts
    const mild = [...observations, { x: [0.9, 0.9], utility: -2 }]
    const wild = [...observations, { x: [0.9, 0.9], utility: -2000 }]
    const a = Surrogate.fit(mild, { minObservations: 4, maxObservations: 64 })!
    const b = Surrogate.fit(wild, { minObservations: 4, maxObservations: 64 })!
    for (const x of [[0.7, 0.3], [0.4, 0.6], [0.1, 0.1]]) assert.closeTo(a.predict(x).mean, b.predict(x).mean, 1e-12)
    assert.isAbove(b.predict([0.7, 0.3]).mean, b.predict([0.9, 0.9]).mean)
  })

  it("features: one grid step is as long for every parameter; a grid of more than 8 steps spans what 8 span", () => {
    const space = Schema.decodeUnknownSync(SearchSpace.SearchSpace)({
      parameters: [
        { path: "training.extra.heads", kind: "ordinal", values: [8, 16] },
        { path: "data.extra.bpe", kind: "ordinal", values: [1000, 2000, 4000, 8000, 16000, 32000] },
        { path: "training.learningRate", kind: "log", values: Array.from({ length: 17 }, (_, i) => 1e-5 * 2 ** i) },
        { path: "data.format", kind: "categorical", values: ["plain", "reversed", "chat"] },
        { path: "training.epochs", kind: "ordinal", values: [3] }
      ]
    })
    const at = (heads: number, bpe: number, lr: number, format: string) =>
      Surrogate.features(space, { data: { format, extra: { bpe } }, training: { learningRate: lr, epochs: 3, extra: { heads } } } as never)
    // the learning rate's 16 steps count as 8, the most of any parameter: every step is 1/8 long, whichever parameter takes it
    assert.deepStrictEqual(at(8, 1000, 1e-5, "plain"), [0, 0, 0, -1])
    assert.deepStrictEqual(at(16, 2000, 1e-5, "reversed"), [1 / 8, 1 / 8, 0, -2])
    assert.deepStrictEqual(at(8, 32000, 1e-5 * 2 ** 16, "chat"), [0, 5 / 8, 1, -3])
    // ...except the learning rate's own, compressed to span 8 steps' length; the one-valued parameter has no feature
    assert.strictEqual(at(8, 1000, 1e-5 * 2 ** 2, "plain")[2], 2 / 16)
  })
})
