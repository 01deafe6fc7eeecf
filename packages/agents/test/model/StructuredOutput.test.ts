import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted, Schema } from "effect"
import * as AnthropicModel from "../../src/model/AnthropicModel.ts"
import * as Model from "../../src/model/Model.ts"
import * as StructuredOutput from "../../src/model/StructuredOutput.ts"
import * as Fake from "../support/FakeAnthropicServer.ts"

const Answer = Schema.Struct({ proposals: Schema.Array(Schema.Struct({ lr: Schema.Number, format: Schema.String })) })

const ask = (server: Fake.FakeAnthropic, extra: Partial<StructuredOutput.Options<typeof Answer>> = {}) =>
  StructuredOutput.generateObject({
    schema: Answer,
    name: "answer",
    description: "answer",
    system: "s",
    messages: [Model.user("propose")],
    maxTokens: 256,
    maxRepairs: 1,
    ...extra
  }).pipe(Effect.provideService(Model.Model, AnthropicModel.make({ apiKey: Redacted.make("k"), baseURL: server.url })))

/** The text of the last user message's blocks: tool results and text. */
const lastUser = (r: Fake.Recorded): string =>
  (r.body.messages.at(-1).content as Array<any>).map((b) => (typeof b.content === "string" ? b.content : b.text ?? "")).join("\n")

describe("StructuredOutput", () => {
  it.live("an answer cut off at max_tokens says so, to the model and in the final error", () =>
    Effect.gen(function*() {
      const cut = (): Fake.Reply => ({ kind: "message", content: [Fake.toolUse("answer", {})], stopReason: "max_tokens" })
      const server = yield* Fake.make([cut(), cut()])
      const error = yield* Effect.flip(ask(server))
      assert.strictEqual(error._tag, "StructuredOutputError")
      assert.strictEqual(error.message, "no valid answer after 1 repairs: the answer was cut off at maxTokens (256): raise maxTokens")
      assert.isFalse(error.retryable, "asking again with the same maxTokens would be cut off again")
      const repair = lastUser(server.requests[1]!)
      assert.include(repair, "cut off at the output limit (256 tokens)")
      assert.notInclude(repair, "Missing key")
    }))

  it.live("every decode issue goes back to the model with its path, and the final error keeps the paths", () =>
    Effect.gen(function*() {
      const bad = () => Fake.message([Fake.toolUse("answer", { proposals: [{ lr: "fast" }, { lr: 1, format: "plain" }, { format: 3 }] })])
      const server = yield* Fake.make([bad(), bad()])
      const error = yield* Effect.flip(ask(server))
      const repair = lastUser(server.requests[1]!)
      for (const issue of ["proposals[0].lr: Expected number", "proposals[0].format: Missing key", "proposals[2].lr: Missing key", "proposals[2].format: Expected string"]) {
        assert.include(repair, issue)
        assert.include(error.message, issue)
      }
      assert.match(error.message, /^no valid answer after 1 repairs: proposals\[0\]\.lr: Expected number/)
      assert.isTrue(error.retryable, "a fresh ask may answer validly")
    }))

  it.live("an answer with no content is asked again without sending the empty turn back", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([
        { kind: "message", content: [], stopReason: "end_turn" },
        Fake.message([Fake.toolUse("answer", { proposals: [{ lr: 0.01, format: "plain" }] })])
      ])
      const value = yield* ask(server)
      assert.deepStrictEqual(value, { proposals: [{ lr: 0.01, format: "plain" }] })
      assert.include(lastUser(server.requests[1]!), "Answer by calling the answer tool.")
    }))

  it.live("a model that declines (stop reason refusal) is not asked for repairs, and the error says so and is not retryable", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make(() => ({ kind: "message", content: [Fake.text("I can't help with that.")], stopReason: "refusal" }))
      const error = yield* Effect.flip(ask(server))
      assert.strictEqual(server.requests.length, 1)
      assert.isFalse(error.retryable, "the same request would be declined again")
      assert.strictEqual(error.message, "no answer: the model declined to answer (stop reason refusal): I can't help with that.")
    }))

  it.live("an answer cut off by the model's context window is not repaired (a longer conversation fills it sooner): the error names the prompt", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make(() => ({ kind: "message", content: [Fake.toolUse("answer", { proposals: [{ lr: 0.01 }] })], stopReason: "model_context_window_exceeded" }))
      const error = yield* Effect.flip(ask(server))
      assert.strictEqual(server.requests.length, 1)
      assert.isFalse(error.retryable)
      assert.strictEqual(error.message, "no answer: the prompt and the answer filled the model's context window (stop reason model_context_window_exceeded): send a shorter prompt")
    }))

  it.live("a check's issues are sent back for repair like decode errors", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([
        Fake.message([Fake.toolUse("answer", { proposals: [{ lr: 7.5, format: "klingon" }] })]),
        Fake.message([Fake.toolUse("answer", { proposals: [{ lr: 0.01, format: "plain" }] })])
      ])
      const value = yield* ask(server, {
        check: (a) => a.proposals.flatMap((p, i) => (p.format === "plain" ? [] : [`proposals[${i}].format: must be one of plain | reversed`]))
      })
      assert.deepStrictEqual(value, { proposals: [{ lr: 0.01, format: "plain" }] })
      assert.include(lastUser(server.requests[1]!), "proposals[0].format: must be one of plain | reversed")
    }))
})
