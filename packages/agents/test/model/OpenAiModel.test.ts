import { assert, describe, it } from "@effect/vitest"
import { type Cost, CostMeter } from "@trex/core"
import { Effect, Fiber, Redacted, Schema, Stream } from "effect"
import * as Model from "../../src/model/Model.ts"
import * as OpenAiModel from "../../src/model/OpenAiModel.ts"
import * as StructuredOutput from "../../src/model/StructuredOutput.ts"
import { refusedEveryCall } from "../support/badTimings.ts"
import * as Fake from "../support/FakeOpenAiServer.ts"
import { closedPort, headersReceived } from "../support/RawReply.ts"

const realSleep = (ms: number) => Effect.promise(() => new Promise((r) => setTimeout(r, ms)))
const until = (cond: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 400 && !cond(); i++) yield* realSleep(10)
    assert.isTrue(cond(), "condition not reached in time")
  })

const tool: Model.ToolDefinition = { name: "pick", description: "Pick", inputSchema: { type: "object", properties: { lr: { type: "number" } } } }

describe("OpenAiModel", () => {
  it.live("probe: TREX_MODEL among the models GET /models lists; another name refused with what is served; a server that lists none", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([], { models: ["qwen3:8b", "llama3.1:8b"], apiKey: "local-key" })
      const probe = (name: string, key = "local-key", url = server.url) => OpenAiModel.make({ baseURL: url, model: name, apiKey: Redacted.make(key) }).probe!
      assert.deepStrictEqual(yield* probe("qwen3:8b"), { model: "qwen3:8b", detail: "one of the 2 models it lists", callUnchecked: "no free call of an OpenAI-compatible server shows it" })
      const other = yield* Effect.flip(probe("qwen3:7b"))
      assert.strictEqual(other.message, `${server.url} serves no model named qwen3:7b (TREX_MODEL): it serves qwen3:8b, llama3.1:8b; set TREX_MODEL to the name it lists`)
      assert.isFalse(other.retryable)
      const refused = yield* Effect.flip(probe("qwen3:8b", "wrong-key"))
      assert.strictEqual(refused.status, 401)
      assert.include(refused.message, "check OPENAI_API_KEY")
      assert.strictEqual(server.requests.length, 0)
      const bare = yield* Fake.make([])
      const unchecked = yield* probe("qwen3:8b", "local-key", bare.url)
      assert.strictEqual(unchecked.unchecked, `${bare.url}/models answers HTTP 404: the server does not list its models`)
    }))

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

  it.live("a content filter's stop (finish_reason content_filter) is a refusal, as Claude's: the agents do not ask again", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([{ kind: "message", content: "", finish: "content_filter" }, { kind: "message", content: "ok", finish: "content_filter" }])
      const model = OpenAiModel.make({ baseURL: server.url, model: "qwen3:8b" })
      const request = { system: "s", messages: [Model.user("hi")], maxTokens: 10 }
      assert.strictEqual((yield* model.generate(request)).stopReason, "refusal")
      const events = yield* Stream.runCollect(model.stream(request))
      const done = events.at(-1)
      assert.strictEqual(done?._tag === "Done" ? done.response.stopReason : undefined, "refusal")
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

  const once = { maxRetries: 0 }
  const ask: Model.Request = { system: "s", messages: [Model.user("go")], maxTokens: 50 }
  const completion = JSON.stringify({
    id: "c",
    object: "chat.completion",
    model: "llama",
    choices: [{ index: 0, message: { role: "assistant", content: "a complete answer" }, finish_reason: "stop" }],
    usage: { prompt_tokens: 3, completion_tokens: 4 }
  })

  it.live("generate: a 200 that is not a chat completion is a ModelError naming the URL and what came back", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([
        Fake.raw("text/html", "<!DOCTYPE html><title>Ollama is running</title>"),
        Fake.raw("application/json", JSON.stringify({ object: "list", data: [] })),
        Fake.raw("application/json", ""),
        Fake.raw("application/json", completion.slice(0, 50))
      ])
      const model = OpenAiModel.make({ baseURL: server.url, model: "llama", retry: once })
      const html = yield* Effect.flip(model.generate(ask))
      assert.strictEqual(html.provider, "openai-compatible")
      assert.isFalse(html.retryable)
      assert.include(html.message, `${server.url}/chat/completions answered 200 (text/html) with a body: "<!DOCTYPE html><title>Ollama is running</title>"`)
      assert.include(html.message, `not a chat completion (base URL ${server.url}, set by OPENAI_BASE_URL)`)
      const other = yield* Effect.flip(model.generate(ask))
      assert.isFalse(other.retryable)
      assert.include(other.message, "JSON without choices[0].message")
      const empty = yield* Effect.flip(model.generate(ask))
      assert.isTrue(empty.retryable)
      assert.include(empty.message, "an empty body")
      const truncated = yield* Effect.flip(model.generate(ask))
      assert.isTrue(truncated.retryable)
      assert.include(truncated.message, "JSON that does not parse")
    }))

  it.live("generate: a connection cut while the body is read is retryable; a refused one names OPENAI_BASE_URL", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([Fake.raw("application/json", completion, { cutAfter: 30 }), Fake.raw("application/json", completion)])
      const model = OpenAiModel.make({ baseURL: server.url, model: "llama", retry: { baseDelay: "1 millis" } })
      assert.strictEqual(Model.text(yield* model.generate(ask)), "a complete answer")
      assert.strictEqual(server.requests.length, 2)
      const cut = yield* Fake.make([Fake.raw("application/json", completion, { cutAfter: 30 })])
      const error = yield* Effect.flip(OpenAiModel.make({ baseURL: cut.url, model: "llama", retry: once }).generate(ask))
      assert.isTrue(error.retryable)
      assert.match(error.message, /^connection error: terminated/)
      const url = `http://127.0.0.1:${yield* closedPort}/v1`
      const refused = yield* Effect.flip(OpenAiModel.make({ baseURL: url, model: "llama", retry: once }).generate(ask))
      assert.isTrue(refused.retryable)
      assert.include(refused.message, "ECONNREFUSED")
      assert.include(refused.message, `(base URL ${url}, set by OPENAI_BASE_URL)`)
    }))

  it.live("a 401 names OPENAI_API_KEY; retry-after as an HTTP date and retry-after-ms are honoured, one of hours fails at once", () =>
    Effect.gen(function*() {
      const inTenSeconds = new Date(Date.now() + 10_000).toUTCString()
      const server = yield* Fake.make([
        { kind: "error", status: 401, body: "missing api key" },
        { kind: "error", status: 429, body: "slow down", headers: { "retry-after": inTenSeconds } },
        { kind: "error", status: 429, body: "slow down", headers: { "retry-after-ms": "1500", "retry-after": "9" } },
        { kind: "error", status: 429, body: "quota exceeded", headers: { "retry-after": "7200" } }
      ])
      const model = OpenAiModel.make({ baseURL: server.url, model: "llama", retry: once })
      const unauthorized = yield* Effect.flip(model.generate(ask))
      assert.include(unauthorized.message, "(check OPENAI_API_KEY)")
      const dated = yield* Effect.flip(model.generate(ask))
      assert.isTrue(dated.retryable)
      // an HTTP date has whole seconds: 9 to 10 seconds from now
      assert.isAtLeast(dated.retryAfterMs ?? 0, 8_000)
      assert.isAtMost(dated.retryAfterMs ?? 0, 10_000)
      const ms = yield* Effect.flip(model.generate(ask))
      assert.strictEqual(ms.retryAfterMs, 1500)
      // two hours is not waited out (Model.RetryOptions.maxRetryAfter, 60 s): the call fails, not retryable, saying so
      const quota = yield* Effect.flip(OpenAiModel.make({ baseURL: server.url, model: "llama" }).generate(ask))
      assert.isFalse(quota.retryable)
      assert.include(quota.message, "quota exceeded\"}}: the server asked to wait 7200 s (retry-after) before calling again, longer than maxRetryAfter (60 s)")
      assert.strictEqual(server.requests.length, 4)
    }))

  it.live("stream: a 200 that is not an event stream, or one that ends early, fails; one without data: [DONE] after its finish_reason completes", () =>
    Effect.gen(function*() {
      const chunk = (c: unknown) => `data: ${JSON.stringify(c)}\n\n`
      const finished = chunk({ choices: [{ index: 0, delta: { content: "all of it" } }] }) + chunk({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }] })
      const server = yield* Fake.make([
        Fake.raw("text/html", "<html>502 Bad Gateway</html>"),
        Fake.raw("text/event-stream", ""),
        Fake.raw("text/event-stream", chunk({ choices: [{ index: 0, delta: { content: "half an ans" } }] })),
        Fake.raw("text/event-stream", finished)
      ])
      const model = OpenAiModel.make({ baseURL: server.url, model: "llama", retry: once })
      const html = yield* Effect.flip(Stream.runCollect(model.stream(ask)))
      assert.isFalse(html.retryable)
      assert.include(html.message, "answered 200 (text/html) with a body: \"<html>502 Bad Gateway</html>\", not an event stream")
      const empty = yield* Effect.flip(Stream.runCollect(model.stream(ask)))
      assert.isTrue(empty.retryable)
      assert.include(empty.message, "ended before its finish_reason")
      const partial = yield* Effect.flip(Stream.runCollect(model.stream(ask)))
      assert.isFalse(partial.retryable, "a delta went out: a retry would repeat it")
      assert.include(partial.message, "ended before its finish_reason")
      const events = yield* Stream.runCollect(model.stream(ask))
      const done = events.at(-1)!
      if (done._tag !== "Done") return assert.fail("no Done")
      assert.strictEqual(Model.text(done.response), "all of it")
    }))

  // a dollar a million input tokens, two a million output tokens: an estimate has a price to show
  const priced = { input: 1, output: 2, cacheWrite: 0, cacheRead: 0 }
  const recordingMeter = () => {
    const records: Array<{ cost: Cost.Cost; reason: string }> = []
    return { records, meter: { record: (cost: Cost.Cost, reason: string) => Effect.sync(() => void records.push({ cost, reason })) } }
  }
  const shown = (records: ReadonlyArray<{ cost: Cost.Cost; reason: string }>) =>
    records.map((r) => [r.reason, r.cost.inputTokens, r.cost.outputTokens, Number(r.cost.dollars.toFixed(9))])

  it.live("a stream cut after its first chunk is charged its input and what it generated, estimated (its usage comes last); one cut before, nothing", () =>
    Effect.gen(function*() {
      const answer = "a long answer, streamed in pieces of six characters"
      const server = yield* Fake.make([
        // the headers, and no chunk: the prompt may not have been read, and nothing went out, so it is retried
        { kind: "message", content: answer, cutAfterChunks: 0 },
        // three chunks of six characters, then the connection dies: the deltas went out, so it fails
        { kind: "message", content: answer, cutAfterChunks: 3 },
        // every content chunk, not the finish_reason
        { kind: "message", content: answer, cutAfterChunks: Math.ceil(answer.length / 6) }
      ])
      const model = OpenAiModel.make({ baseURL: server.url, model: "gpt-x", prices: priced, retry: { baseDelay: "1 millis" } })
      const { meter, records } = recordingMeter()
      const streamed = Effect.flip(Stream.runDrain(model.stream({ ...ask, reason: "test" })).pipe(Effect.provideService(CostMeter.CostMeter, meter)))
      const cut = yield* streamed
      assert.strictEqual(server.requests.length, 2)
      assert.isFalse(cut.retryable)
      assert.include(cut.message, "connection error: terminated")
      // the request body's 164 characters, by runs (Model.tokenWeight: a word 5/32 a letter and at least 3/4, punctuation at least 1)
      const input = Model.estimatedTokens(JSON.stringify(server.requests[0]!.body))
      assert.strictEqual(input, 50)
      // the 18 characters sent: "a long answer, str"
      assert.deepStrictEqual(cut.usage, { inputTokens: input, outputTokens: Model.estimatedTokens(answer.slice(0, 18)), cacheReadTokens: 0, cacheWriteTokens: 0, estimated: true })
      const late = yield* streamed
      assert.include(late.message, "connection error: terminated")
      assert.deepStrictEqual(late.usage?.outputTokens, Model.estimatedTokens(answer))
      assert.deepStrictEqual(shown(records), [
        // 50 * 1 + 5 * 2 micro-dollars, then 50 * 1 + 11 * 2
        ["openai-compatible:test (failed attempt, tokens estimated)", 50, 5, 0.00006],
        ["openai-compatible:test (failed attempt, tokens estimated)", 50, 11, 0.000072]
      ])
    }))

  it.live("a stream cut after its finish_reason, before its usage chunk, gives its whole answer, charged estimated; so does one whose server sends no usage", () =>
    Effect.gen(function*() {
      const answer = "a long answer, streamed in pieces of six characters"
      const call = { id: "call_1", name: "pick", arguments: "{\"lr\":0.003}" }
      const chunk = (c: unknown) => `data: ${JSON.stringify(c)}\n\n`
      const server = yield* Fake.make([
        // every content chunk and the finish_reason, then the connection dies where the usage chunk was due
        { kind: "message", content: answer, cutAfterChunks: Math.ceil(answer.length / 6) + 1 },
        // a tool call's chunks and its finish_reason, cut alike
        { kind: "message", toolCalls: [call], cutAfterChunks: 1 + Math.ceil(call.arguments.length / 8) + 1 },
        // a server that ignores stream_options.include_usage: the whole answer and [DONE], no usage
        Fake.raw("text/event-stream", chunk({ choices: [{ index: 0, delta: { content: "all of it" } }] }) + chunk({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }] }) + "data: [DONE]\n\n")
      ])
      const model = OpenAiModel.make({ baseURL: server.url, model: "gpt-x", prices: priced, retry: { baseDelay: "1 millis" } })
      const { meter, records } = recordingMeter()
      const streamed = Stream.runCollect(model.stream({ ...ask, reason: "test" })).pipe(Effect.provideService(CostMeter.CostMeter, meter))
      const text = (yield* streamed).at(-1)!
      const input = Model.estimatedTokens(JSON.stringify(server.requests[0]!.body))
      if (text._tag !== "Done") return assert.fail("no Done")
      assert.strictEqual(Model.text(text.response), answer)
      assert.strictEqual(text.response.stopReason, "end_turn")
      assert.deepStrictEqual(text.response.usage, { inputTokens: input, outputTokens: Model.estimatedTokens(answer), cacheReadTokens: 0, cacheWriteTokens: 0, estimated: true })
      const tool = (yield* streamed).at(-1)!
      if (tool._tag !== "Done") return assert.fail("no Done")
      assert.deepStrictEqual(Model.toolCalls(tool.response), [{ type: "tool_use", id: "call_1", name: "pick", input: { lr: 0.003 } }])
      assert.strictEqual(tool.response.stopReason, "tool_use")
      const bare = (yield* streamed).at(-1)!
      if (bare._tag !== "Done") return assert.fail("no Done")
      assert.strictEqual(Model.text(bare.response), "all of it")
      assert.strictEqual(server.requests.length, 3, "none retried")
      // the tool call: its name and arguments weighed as one text, pick{"lr":0.003}: pick 3/4, { 1, " 7/32, lr 3/4, ":
      // 7/32 + 1, 0 1, . 3/16, 003 3/2, } 1 (8, as o200k_base counts them)
      assert.deepStrictEqual(shown(records), [
        ["openai-compatible:test (tokens estimated)", input, Model.estimatedTokens(answer), (input + 2 * Model.estimatedTokens(answer)) / 1e6],
        ["openai-compatible:test (tokens estimated)", input, 8, (input + 2 * 8) / 1e6],
        ["openai-compatible:test (tokens estimated)", input, Model.estimatedTokens("all of it"), (input + 2 * Model.estimatedTokens("all of it")) / 1e6]
      ])
    }))

  it.live("a stream without usage is charged its content and each parallel tool call weighed as texts of their own, an emoji split between two deltas as one character", () =>
    Effect.gen(function*() {
      const chunk = (delta: object, finish: string | null = null) => `data: ${JSON.stringify({ choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
      const answer = (chunks: ReadonlyArray<object>, finish: string) => Fake.raw("text/event-stream", chunks.map((d) => chunk(d)).join("") + chunk({}, finish) + "data: [DONE]\n\n")
      // four rockets, each cut between its two UTF-16 halves
      const rockets = ["go \ud83d", "\ude80\ud83d", "\ude80\ud83d", "\ude80\ud83d", "\ude80 now"]
      // two calls whose arguments come interleaved, each piece starting with the kind of character the other's ends in
      const first = ["{\"lr\":\"lo", "w\"}"]
      const second = ["{\"lr\":\"hi", "gh\"}"]
      const call = (index: number, args: string, name?: string) =>
        ({ tool_calls: [{ index, ...(name ? { id: `call_${index}`, type: "function" } : {}), function: { ...(name ? { name } : {}), arguments: args } }] })
      const server = yield* Fake.make([
        answer(rockets.map((content) => ({ content })), "stop"),
        answer([{ content: "I pick:" }, call(0, "", "pick"), call(1, "", "pick"), call(0, first[0]!), call(1, second[0]!), call(0, first[1]!), call(1, second[1]!)], "tool_calls")
      ])
      const model = OpenAiModel.make({ baseURL: server.url, model: "gpt-x" })
      const done = (yield* Stream.runCollect(model.stream(ask))).at(-1)!
      if (done._tag !== "Done") return assert.fail("no Done")
      assert.strictEqual(Model.text(done.response), rockets.join(""))
      // as the whole text is weighed: a rocket is one token, not one and a half
      assert.deepStrictEqual(done.response.usage.outputTokens, Model.estimatedTokens(rockets.join("")))
      const calls = (yield* Stream.runCollect(model.stream(ask))).at(-1)!
      if (calls._tag !== "Done") return assert.fail("no Done")
      assert.deepStrictEqual(Model.toolCalls(calls.response).map((c) => c.input), [{ lr: "low" }, { lr: "high" }])
      const weight = ["I pick:", "pick", first.join(""), "pick", second.join("")].reduce((sum, text) => sum + Model.tokenWeight(text), 0)
      assert.deepStrictEqual(calls.response.usage.outputTokens, Math.ceil(weight))
    }))

  it.live("a Chinese answer cut before its usage is charged about a token a character, not 4 characters a token", () =>
    Effect.gen(function*() {
      // 38 characters of Chinese, in chunks of six, and the finish_reason: cut where the usage chunk was due
      const answer = "学习率是微调语言模型时最重要的超参数。太高，损失会发散；太低，训练几乎不动。"
      const server = yield* Fake.make([{ kind: "message", content: answer, cutAfterChunks: Math.ceil(answer.length / 6) + 1 }])
      const model = OpenAiModel.make({ baseURL: server.url, model: "qwen3:8b", prices: priced })
      const { meter, records } = recordingMeter()
      const done = (yield* Stream.runCollect(model.stream({ ...ask, messages: [Model.user("选一个学习率。")], reason: "test" })).pipe(Effect.provideService(CostMeter.CostMeter, meter))).at(-1)!
      if (done._tag !== "Done") return assert.fail("no Done")
      assert.strictEqual(Model.text(done.response), answer)
      // the request body: its ASCII characters by kind, and the prompt's 7 Chinese characters 1 each
      const body = JSON.stringify(server.requests[0]!.body)
      const input = Math.ceil(Model.tokenWeight(body.replace(/[^\x00-\x7f]/g, "")) + 7)
      assert.deepStrictEqual(shown(records), [["openai-compatible:test (tokens estimated)", input, answer.length, (input + 2 * answer.length) / 1e6]])
    }))

  it.live("a timeoutMs or endGraceMs no timer can wait (negative, NaN, infinite, past 2^31 - 1 ms) fails every call at once, naming it, not retried; a timeout with a fraction of a millisecond is taken", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([{ kind: "message", content: "ok" }, { kind: "message", content: "ok" }], { models: ["qwen3:8b"] })
      const make = (timings: { timeoutMs?: number; endGraceMs?: number }) =>
        OpenAiModel.make({ baseURL: server.url, model: "qwen3:8b", retry: { maxRetries: 0 }, ...timings })
      yield* refusedEveryCall(make, () => server.requests.length)
      // AbortSignal.timeout takes whole milliseconds: a fraction (--model-timeout 0.0005, say) threw a RangeError
      const edge = make({ timeoutMs: 60_000.5, endGraceMs: 0 })
      const meter: CostMeter.CostMeterShape = { record: () => Effect.void }
      assert.strictEqual(Model.text(yield* edge.generate({ system: "s", messages: [Model.user("hi")], maxTokens: 8 }).pipe(Effect.provideService(CostMeter.CostMeter, meter))), "ok")
      const streamed = (yield* Stream.runCollect(edge.stream({ system: "s", messages: [Model.user("hi")], maxTokens: 8 })).pipe(
        Effect.provideService(CostMeter.CostMeter, meter)
      )).at(-1) as Extract<Model.StreamEvent, { _tag: "Done" }>
      assert.strictEqual(Model.text(streamed.response), "ok")
    }))

  it.live("a stream held open after its finish_reason gives its whole answer after a short grace, not timeoutMs (10 minutes here); a usage chunk within the grace is read as usual", () =>
    Effect.gen(function*() {
      const answer = "a long answer, streamed in pieces of six characters"
      const usage = { prompt_tokens: 41, completion_tokens: 12 }
      // the content chunks, the finish_reason, the usage: then [DONE]
      const chunks = Math.ceil(answer.length / 6) + 2
      const server = yield* Fake.make([
        // held open where the usage chunk was due
        { kind: "message", content: answer, usage, stallAfterChunks: chunks - 1 },
        // held open after the usage chunk, where [DONE] was due
        { kind: "message", content: answer, usage, stallAfterChunks: chunks },
        // the usage chunk and [DONE] a little late, within the grace; then as late, past a grace of 100 ms (endGraceMs)
        { kind: "message", content: answer, usage, holdLastMs: 300 },
        { kind: "message", content: answer, usage, holdLastMs: 300 }
      ])
      // a client that waited for timeoutMs would outlast the test's timeout (60 s)
      const model = OpenAiModel.make({ baseURL: server.url, model: "gpt-x", prices: priced, timeoutMs: 600_000, retry: { baseDelay: "1 millis" } })
      const { meter, records } = recordingMeter()
      const streamed = Stream.runCollect(model.stream({ ...ask, reason: "test" })).pipe(Effect.provideService(CostMeter.CostMeter, meter))
      for (let i = 0; i < 3; i++) {
        const done = (yield* streamed).at(-1)!
        if (done._tag !== "Done") return assert.fail("no Done")
        assert.strictEqual(Model.text(done.response), answer)
        assert.strictEqual(done.response.stopReason, "end_turn")
      }
      assert.strictEqual(server.requests.length, 3, "none retried")
      // the two held open were closed by the client; the late one ended as the server sent it
      yield* until(() => server.aborted() === 2)
      const input = Model.estimatedTokens(JSON.stringify(server.requests[0]!.body))
      assert.deepStrictEqual(shown(records), [
        ["openai-compatible:test (tokens estimated)", input, Model.estimatedTokens(answer), (input + 2 * Model.estimatedTokens(answer)) / 1e6],
        ["openai-compatible:test", 41, 12, (41 + 2 * 12) / 1e6],
        ["openai-compatible:test", 41, 12, (41 + 2 * 12) / 1e6]
      ])
      // a grace of the client's own: the late usage chunk is not waited for (the client closes the stream), the answer
      // given all the same, its usage estimated
      const brief = OpenAiModel.make({ baseURL: server.url, model: "gpt-x", prices: priced, timeoutMs: 600_000, endGraceMs: 100, retry: { baseDelay: "1 millis" } })
      const cut = (yield* Stream.runCollect(brief.stream({ ...ask, reason: "test" })).pipe(Effect.provideService(CostMeter.CostMeter, meter))).at(-1)!
      if (cut._tag !== "Done") return assert.fail("no Done")
      assert.strictEqual(Model.text(cut.response), answer)
      yield* until(() => server.aborted() === 3)
      assert.deepStrictEqual(shown(records).slice(3), [["openai-compatible:test (tokens estimated)", input, Model.estimatedTokens(answer), (input + 2 * Model.estimatedTokens(answer)) / 1e6]])
    }), { timeout: 60_000 })

  it.live("a stream its consumer stops (interrupted, or no longer pulled) is charged what it was billed for, estimated; one stopped before its first chunk, nothing", () =>
    Effect.gen(function*() {
      const answer = "a long answer, streamed in pieces of six characters"
      const server = yield* Fake.make([
        { kind: "message", content: answer, stallAfterChunks: 2 },
        { kind: "message", content: answer },
        { kind: "message", content: answer, stallAfterChunks: 0 }
      ])
      const model = OpenAiModel.make({ baseURL: server.url, model: "gpt-x", prices: priced, retry: once })
      const { meter, records } = recordingMeter()
      const request = { ...ask, reason: "test" }
      // two chunks of six characters, then the server holds the stream open: the run is stopped
      let seen = 0
      const fiber = yield* Effect.forkChild(Stream.runForEach(model.stream(request), () => Effect.sync(() => void seen++)).pipe(Effect.provideService(CostMeter.CostMeter, meter)))
      yield* until(() => seen >= 2)
      yield* Fiber.interrupt(fiber)
      const input = Model.estimatedTokens(JSON.stringify(server.requests[0]!.body))
      assert.deepStrictEqual(shown(records), [["openai-compatible:test (stopped, tokens estimated)", input, 3, (input + 2 * 3) / 1e6]])
      // its consumer takes the first delta and pulls no more
      const first = yield* Stream.runCollect(Stream.take(model.stream(request), 1)).pipe(Effect.provideService(CostMeter.CostMeter, meter))
      assert.deepStrictEqual(first.map((e) => e._tag), ["TextDelta"])
      assert.strictEqual(records.length, 2)
      assert.strictEqual(records[1]!.reason, "openai-compatible:test (stopped, tokens estimated)")
      assert.strictEqual(records[1]!.cost.inputTokens, input)
      assert.isAtLeast(records[1]!.cost.outputTokens, 2)
      // the headers and no chunk: the prompt may not have been read
      const before = yield* Effect.forkChild(Stream.runDrain(model.stream(request)).pipe(Effect.provideService(CostMeter.CostMeter, meter)))
      yield* until(() => server.requests.length === 3)
      yield* Fiber.interrupt(before)
      assert.strictEqual(records.length, 2)
    }))

  it.live("a generate cut or stalled while its body is read is charged the whole answer, estimated: its input, and its body's content-length", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([
        Fake.raw("application/json", completion, { cutAfter: 30 }),
        Fake.raw("application/json", completion, { holdAfter: 30 })
      ])
      const model = OpenAiModel.make({ baseURL: server.url, model: "gpt-x", prices: priced, timeoutMs: 500, retry: once })
      const { meter, records } = recordingMeter()
      const cut = yield* Effect.flip(model.generate({ ...ask, reason: "test" }).pipe(Effect.provideService(CostMeter.CostMeter, meter)))
      assert.isTrue(cut.retryable)
      assert.match(cut.message, /^connection error: terminated/)
      const stalled = yield* Effect.flip(model.generate({ ...ask, reason: "test" }).pipe(Effect.provideService(CostMeter.CostMeter, meter)))
      assert.isTrue(stalled.retryable)
      assert.include(stalled.message, "within 500 ms")
      const input = Model.estimatedTokens(JSON.stringify(server.requests[0]!.body))
      // the body's content-length, at the weight of the 30 bytes that came
      const output = Math.ceil(Buffer.byteLength(completion) * Model.tokenWeight(completion.slice(0, 30)) / 30)
      assert.deepStrictEqual(cut.usage, { inputTokens: input, outputTokens: output, cacheReadTokens: 0, cacheWriteTokens: 0, estimated: true })
      assert.deepStrictEqual(shown(records), [
        ["openai-compatible:test (failed attempt, tokens estimated)", input, output, (input + 2 * output) / 1e6],
        ["openai-compatible:test (failed attempt, tokens estimated)", input, output, (input + 2 * output) / 1e6]
      ])
    }))

  it.live("a generate its caller stops after the 200's headers is charged the whole answer, estimated, as a cut one", () =>
    Effect.gen(function*() {
      const headers = yield* headersReceived
      const server = yield* Fake.make([Fake.raw("application/json", completion, { holdAfter: 30 })])
      const model = OpenAiModel.make({ baseURL: server.url, model: "gpt-x", prices: priced, retry: once })
      const { meter, records } = recordingMeter()
      const fiber = yield* Effect.forkChild(model.generate({ ...ask, reason: "test" }).pipe(Effect.provideService(CostMeter.CostMeter, meter)))
      yield* until(() => headers() === 1)
      yield* Fiber.interrupt(fiber)
      const input = Model.estimatedTokens(JSON.stringify(server.requests[0]!.body))
      // the body's content-length, at the weight of the 30 bytes sent with the headers, or 4 bytes a token if the client
      // was stopped before it read them
      const output = records[0]!.cost.outputTokens
      assert.include([Math.ceil(Buffer.byteLength(completion) * Model.tokenWeight(completion.slice(0, 30)) / 30), Math.ceil(Buffer.byteLength(completion) / 4)], output)
      assert.deepStrictEqual(shown(records), [["openai-compatible:test (stopped, tokens estimated)", input, output, (input + 2 * output) / 1e6]])
      yield* until(() => server.aborted() === 1)
    }))

  it.live("probeTurn: a key that lists the models and is refused chat completions passes the free probe and fails a 1-token turn, once; one taken is metered", () =>
    Effect.gen(function*() {
      // a restricted key, or a proxy's per-model access: GET /models lists, chat completions refuse (even with a retry-after)
      const server = yield* Fake.make((request) =>
        request.body.model === "gpt-barred"
          ? { kind: "error", status: 403, body: "this key may not use gpt-barred", headers: { "retry-after": "1" } }
          : { kind: "message", content: "Yes", finish: "length", usage: { prompt_tokens: 19, completion_tokens: 1 } }, { models: ["gpt-barred", "gpt-x"] })
      const barred = OpenAiModel.make({ baseURL: server.url, model: "gpt-barred", prices: priced, retry: { baseDelay: "1 millis" } })
      const probed = yield* barred.probe!
      assert.strictEqual(probed.callUnchecked, "no free call of an OpenAI-compatible server shows it")
      assert.strictEqual(server.requests.length, 0, "the probe is free")
      const refused = yield* Effect.flip(barred.probeTurn!)
      assert.strictEqual(refused.status, 403)
      assert.include(refused.message, "this key may not use gpt-barred")
      assert.include(refused.message, "(check OPENAI_API_KEY: the key may not use this model, set by TREX_MODEL, or this endpoint)")
      assert.strictEqual(server.requests.length, 1, "one attempt")
      assert.deepStrictEqual([server.requests[0]!.body.max_tokens, server.requests[0]!.body.stream], [1, undefined])
      const { meter, records } = recordingMeter()
      const taken = yield* OpenAiModel.make({ baseURL: server.url, model: "gpt-x", prices: priced }).probeTurn!.pipe(Effect.provideService(CostMeter.CostMeter, meter))
      assert.strictEqual(taken.stopReason, "max_tokens")
      assert.deepStrictEqual(shown(records), [["openai-compatible:trex check", 19, 1, 0.000021]])
    }))
})
