import { assert, describe, it } from "@effect/vitest"
import { Result } from "@trex/core"

describe("Result.Curves", () => {
  it("keeps at most max points, thinning the longest series evenly: its first and latest point, every other series whole", () => {
    const curves = new Result.Curves(100)
    for (let step = 0; step < 100_000; step++) {
      curves.add({ step, split: "train", name: "loss", value: 1 / (step + 1) })
      if (step % 10_000 === 0) curves.add({ step, split: "eval", name: "acc", value: step / 1e5 })
    }
    const points = curves.points()
    assert.isAtMost(points.length, 100)
    assert.isTrue(curves.thinned)
    const train = points.filter((p) => p.split === "train").map((p) => p.step)
    assert.deepStrictEqual([train[0], train.at(-1)], [0, 99_999])
    assert.isAtMost(Math.max(...train.slice(1).map((s, i) => s - train[i]!)), 100_000 / 30)
    assert.deepStrictEqual(points.filter((p) => p.split === "eval").map((p) => p.step), [0, 10_000, 20_000, 30_000, 40_000, 50_000, 60_000, 70_000, 80_000, 90_000])
  })

  it("a point reported again replaces its value and is not news; under max nothing is left out", () => {
    const curves = new Result.Curves(10)
    assert.isTrue(curves.add({ step: 1, split: "train", name: "loss", value: 0.5 }))
    assert.isFalse(curves.add({ step: 1, split: "train", name: "loss", value: 0.5 }))
    assert.isTrue(curves.add({ step: 1, split: "train", name: "loss", value: 0.4 }))
    assert.isTrue(curves.add({ step: 2, split: "train", name: "loss", value: 0.3 }))
    assert.deepStrictEqual(curves.points().map((p) => [p.step, p.value]), [[1, 0.4], [2, 0.3]])
    assert.isFalse(curves.thinned)
  })
})
