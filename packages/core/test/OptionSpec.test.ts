import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Budget from "../src/Budget.ts"
import * as Errors from "../src/Errors.ts"
import * as OptionSpec from "../src/OptionSpec.ts"

const spec: OptionSpec.Spec = {
  rate: OptionSpec.probability("how often"),
  tries: OptionSpec.integer(1, "tries per step"),
  scale: OptionSpec.aliased(OptionSpec.number({ above: 0, below: 10 }, "the step"), ["stepSize"]),
  mode: OptionSpec.literal(["fast", "slow", "exact"], "how"),
  on: OptionSpec.boolean("whether"),
  name: OptionSpec.required(OptionSpec.nonEmptyString()),
  inner: OptionSpec.struct({ k: OptionSpec.required(OptionSpec.number({ min: 0 }, "k")) }, "the inner options"),
  budget: OptionSpec.schema(Budget.Budget),
  onEvent: OptionSpec.fn(),
  extra: OptionSpec.unchecked
}

describe("OptionSpec", () => {
  it("sound options have no issues; left out and undefined are the same, for an unknown key too", () => {
    assert.deepStrictEqual(OptionSpec.issues(spec, { name: "x" }), [])
    assert.deepStrictEqual(
      OptionSpec.issues(spec, {
        name: "x", rate: 0, tries: 1, scale: 9.5, mode: "exact", on: false, inner: { k: 0 }, budget: { maxTrials: 2 },
        onEvent: () => undefined, extra: { anything: [1] }, mood: undefined
      }),
      []
    )
    assert.isUndefined(OptionSpec.check("Thing.make", spec, { name: "x", rate: undefined }))
  })

  it("each issue names the option, the value and what it takes, with the fix where there is one", () => {
    const wrong = OptionSpec.check("Thing.make", spec, {
      rate: 1.5,
      tries: 2.5,
      scale: "3",
      mode: "fats",
      on: "true",
      inner: { k: -1, kk: 2 },
      budget: { maxTrails: 3 },
      onEvent: 5,
      rte: 0.5,
      stepSize: 2
    })
    assert.instanceOf(wrong, Errors.InvalidInput)
    assert.strictEqual(wrong!.source, "Thing.make options")
    assert.deepStrictEqual(wrong!.message.split("\n").slice(0, 1), ["invalid Thing.make options:"])
    const lines = wrong!.message.split("\n").slice(1).map((l) => l.trim())
    assert.includeMembers(lines, [
      `rte: not an option; did you mean "rate"?`,
      `stepSize: not an option; did you mean "scale"?`,
      "rate: expected a number from 0 to 1 (how often), got 1.5",
      "tries: expected an integer of at least 1 (tries per step), got 2.5",
      `scale: expected a number above 0 and below 10 (the step), got "3" (a string: write 3 without quotes)`,
      `mode: expected one of "fast", "slow", "exact" (how), got "fats"; did you mean "fast"?`,
      `on: expected true or false (whether), got "true" (a string: write true without quotes)`,
      "name: expected a non-empty string, got undefined",
      `inner.kk: not an option; did you mean "k"?`,
      "inner.k: expected a number of at least 0 (k), got -1",
      "onEvent: expected a function, got 5"
    ])
    assert.include(lines, `budget: maxTrails: Expected no excess property; did you mean "maxTrials"?`)
  })

  it("options that are not an object, and non-finite numbers, are refused", () => {
    assert.deepStrictEqual(OptionSpec.issues(spec, null), ["options: expected an object, got null"])
    assert.deepStrictEqual(OptionSpec.issues(spec, [1]), ["options: expected an object, got an array"])
    assert.deepStrictEqual(OptionSpec.issues({ n: OptionSpec.number({ min: 0 }, "n") }, { n: Number.POSITIVE_INFINITY }), [
      "n: expected a number of at least 0 (n), got Infinity"
    ])
    assert.deepStrictEqual(OptionSpec.issues({}, { seed: 1 }), ["seed: not an option; there are none here"])
  })

  it.effect("orThrow throws the InvalidInput; checked fails with it and builds only sound options", () =>
    Effect.gen(function*() {
      assert.throws(() => OptionSpec.orThrow("Thing.make", spec, { name: "" }), /name: expected a non-empty string, got ""/)
      let built = 0
      const error = yield* Effect.flip(OptionSpec.checked("Thing.make", spec, { name: "x", tries: 0 }, () => ++built))
      assert.strictEqual(error._tag, "InvalidInput")
      assert.strictEqual(built, 0)
      assert.strictEqual(yield* OptionSpec.checked("Thing.make", spec, { name: "x" }, () => ++built), 1)
    }))
})
