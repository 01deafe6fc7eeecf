import { assert, describe, it } from "@effect/vitest"
import { type Cost, CostMeter } from "@trex/core"
import { Effect, Fiber, Redacted, Schema, Stream } from "effect"
import * as Model from "../../src/model/Model.ts"
import * as OpenAiModel from "../../src/model/OpenAiModel.ts"
import * as StructuredOutput from "../../src/model/StructuredOutput.ts"
import * as Fake from "../support/FakeOpenAiServer.ts"

const realSleep = (ms: number) => Effect.promise(() => new Promise((r) => setTimeout(r, ms)))
const until = (cond: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 400 && !cond(); i++) yield* realSleep(10)
    assert.isTrue(cond(), "condition not reached in time")
  })

const tool: Model.ToolDefinition = { name: "pick", description: "Pick", inputSchema: { type: "object", properties: { lr: { type: "number" } } } }

describe("OpenAiModel", () => {
  it.live("generate: tool calls both ways, tool results as role tool, usage free by default", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([{ kind: "message", content: "ok", toolCalls: [{ id: "call_9", name: "pick", arguments: "{\"lr\":0.01}" }] }])
      const model = OpenAiModel.make({ baseURL: server.url, model: "qwen3:8b", apiKey: Redacted.make("local-key") })
      const records: Array<Cost.Cost> = []
      const response = yield* model.generate({
        system: "sys",
        messages: [
          Model.user("first"),
          { role: "assistant", content: [{ type: "tool_use", id: "call_1", name: "pick", input: { lr: 1 } }] },
          { role: "user", content: [{ type: "tool_result", toolUseId: "call_1", content: "too big", isError: true }] }
        ],
        tools: [tool],
        toolChoice: { type: "tool", name: "pick" },
        maxTokens: 100
      }).pipe(Effect.provideService(CostMeter.CostMeter, { record: (c) => Effect.sync(() => void records.push(c)) }))
      assert.strictEqual(Model.text(response), "ok")
      assert.deepStrictEqual(Model.toolCalls(response), [{ type: "tool_use", id: "call_9", name: "pick", input: { lr: 0.01 } }])
      assert.strictEqual(response.stopReason, "tool_use")
      const body = server.requests[0]!.body
      assert.deepStrictEqual(body.messages.map((m: any) => m.role), ["system", "user", "assistant", "tool"])
      assert.deepStrictEqual(body.messages[3], { role: "tool", tool_call_id: "call_1", content: "ERROR: too big" })
      assert.deepStrictEqual(body.tool_choice, { type: "function", function: { name: "pick" } })
      assert.strictEqual(server.requests[0]!.headers.authorization, "Bearer local-key")
      assert.deepStrictEqual(records.map((r) => [r.inputTokens, r.outputTokens, r.dollars]), [[20, 7, 0]])
    }))

  it.live("stream: deltas, then tool calls and usage assembled", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([{ kind: "message", content: "let me pick", toolCalls: [{ id: "c1", name: "pick", arguments: "{\"lr\":0.003}" }], usage: { prompt_tokens: 50, completion_tokens: 9 } }])
      const model = OpenAiModel.make({ baseURL: server.url, model: "llama" })
      const events = yield* Stream.runCollect(model.stream({ system: "s", messages: [Model.user("go")], tools: [tool], maxTokens: 50 }))
      assert.strictEqual(events.filter((e) => e._tag === "TextDelta").map((e) => e.text).join(""), "let me pick")
      const done = events.at(-1)!
      if (done._tag !== "Done") return assert.fail("no Done")
      assert.deepStrictEqual(Model.toolCalls(done.response)[0]!.input, { lr: 0.003 })
      assert.strictEqual(done.response.usage.inputTokens, 50)
      assert.strictEqual(server.requests[0]!.body.stream, true)
    }))

  it.live("retries a 503 then succeeds; a repair follows arguments that are not valid JSON", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([
        { kind: "error", status: 503, body: "loading model" },
        { kind: "message", toolCalls: [{ id: "c1", name: "answer", arguments: "{\"lr\": 0.01," }] },
        { kind: "message", toolCalls: [{ id: "c2", name: "answer", arguments: "{\"lr\": 0.01}" }] }
      ])
      const model = OpenAiModel.make({ baseURL: server.url, model: "llama", retry: { baseDelay: "1 millis" } })
      const value = yield* StructuredOutput.generateObject({
        schema: Schema.Struct({ lr: Schema.Number }),
        name: "answer",
        description: "answer",
        system: "s",
        messages: [Model.user("pick")]
      }).pipe(Effect.provideService(Model.Model, model))
      assert.deepStrictEqual(value, { lr: 0.01 })
      assert.strictEqual(server.requests.length, 3)
      const repair = server.requests[2]!.body.messages.at(-1)
      assert.strictEqual(repair.role, "tool")
      assert.match(repair.content, /^ERROR: Invalid input for answer/)
    }))

  it.live("interrupting a stream closes the connection", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([{ kind: "message", content: "a long long story", stallAfterChunks: 2 }])
      const model = OpenAiModel.make({ baseURL: server.url, model: "llama" })
      let seen = 0
      const fiber = yield* Effect.forkChild(Stream.runForEach(model.stream({ system: "s", messages: [Model.user("go")], maxTokens: 50 }), () => Effect.sync(() => void seen++)))
      yield* until(() => seen >= 1)
      yield* Fiber.interrupt(fiber)
      yield* until(() => server.aborted() === 1)
    }))
})
