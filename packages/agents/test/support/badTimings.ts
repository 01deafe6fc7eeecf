/** What both model adapters must do with a `timeoutMs` or `endGraceMs` they cannot use: refuse every call, send nothing. */
import { assert } from "@effect/vitest"
import { CostMeter } from "@trex/core"
import { Effect, Stream } from "effect"
import * as Http from "../../src/internal/modelHttp.ts"
import * as Model from "../../src/model/Model.ts"

/** Values no timer can wait (a NaN, negative or over-long wait fires after 1 ms; an infinite one never bounds the wait). */
export const BAD: ReadonlyArray<readonly ["timeoutMs" | "endGraceMs", number]> = [
  ["timeoutMs", -1],
  ["timeoutMs", 0],
  ["timeoutMs", Number.NaN],
  ["timeoutMs", Number.POSITIVE_INFINITY],
  ["timeoutMs", Model.MAX_TIMEOUT_MS + 1],
  ["endGraceMs", -5],
  ["endGraceMs", Number.NaN],
  ["endGraceMs", Number.POSITIVE_INFINITY],
  ["endGraceMs", Model.MAX_TIMEOUT_MS + 1]
]

const request: Model.Request = { system: "Be brief.", messages: [Model.user("Hi")], maxTokens: 16, reason: "test" }

/**
 * For each bad value, the model `make` gives fails `generate`, `stream`, `probe` and `probeTurn` at once with a
 * `ModelError` that is not retryable, names the option and the value, and reads as a refusal of the settings; the
 * server (`requests`: what it was sent) is asked nothing.
 */
export const refusedEveryCall = (make: (timings: Http.Timings) => Model.ModelShape, requests: () => number) =>
  Effect.gen(function*() {
    for (const [option, value] of BAD) {
      const model = make({ [option]: value })
      const errors = yield* Effect.all([
        Effect.flip(model.generate(request)),
        Effect.flip(Stream.runDrain(model.stream(request))),
        Effect.flip(model.probe ?? Effect.die("no probe")),
        Effect.flip(model.probeTurn ?? Effect.die("no probeTurn"))
      ])
      for (const e of errors) {
        assert.strictEqual(e._tag, "ModelError")
        assert.strictEqual(e.option, option, e.message)
        assert.isFalse(e.retryable, e.message)
        assert.include(e.message, `the model's ${option} must be a number of milliseconds`)
        assert.include(e.message, `, got ${value}: `)
        assert.isTrue(Http.refusesSettings(e), "every call with these options would fail alike")
      }
    }
    assert.strictEqual(requests(), 0, "nothing sent")
  }).pipe(Effect.provideService(CostMeter.CostMeter, { record: () => Effect.void }))
