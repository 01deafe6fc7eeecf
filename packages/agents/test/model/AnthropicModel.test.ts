import { assert, describe, it } from "@effect/vitest"
import { Cost, CostMeter } from "@trex/core"
import { Effect, Fiber, Logger, Redacted, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as AnthropicModel from "../../src/model/AnthropicModel.ts"
import * as Model from "../../src/model/Model.ts"
import { refusedEveryCall } from "../support/badTimings.ts"
import * as Fake from "../support/FakeAnthropicServer.ts"
import { closedPort, headersReceived } from "../support/RawReply.ts"

const KEY = "fake-anthropic-key-SECRET-0123456789"
const realSleep = (ms: number) => Effect.promise(() => new Promise((r) => setTimeout(r, ms)))
const until = (cond: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 400 && !cond(); i++) yield* realSleep(10)
    assert.isTrue(cond(), "condition not reached in time")
  })

const request: Model.Request = {
  system: "You are terse.",
  messages: [Model.user("Pick a learning rate.")],
  tools: [{ name: "pick", description: "Pick one", inputSchema: { type: "object", properties: { lr: { type: "number" } } } }],
  toolChoice: { type: "tool", name: "pick" },
  maxTokens: 256,
  reason: "test"
}

const recordingMeter = () => {
  const records: Array<{ cost: Cost.Cost; reason: string }> = []
  const meter: CostMeter.CostMeterShape = { record: (cost, reason) => Effect.sync(() => void records.push({ cost, reason })) }
  return { records, meter }
}

describe("AnthropicModel", () => {
  it.live("probe: the model described without a call; a refused key, an unknown name, a gateway that does not describe models", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([], { apiKey: KEY, models: [{ id: "claude-sonnet-5-5", display_name: "Claude Sonnet 5.5", max_input_tokens: 1_000_000 }] })
      const probe = (key: string, name: string, url = server.url) => AnthropicModel.make({ apiKey: Redacted.make(key), baseURL: url, model: name }).probe!
      assert.deepStrictEqual(yield* probe(KEY, "claude-sonnet-5-5"), { model: "claude-sonnet-5-5", detail: "Claude Sonnet 5.5, a context window of 1000000 tokens" })
      const unknown = yield* Effect.flip(probe(KEY, "claude-sonet-5-5"))
      assert.include(unknown.message, "the API serves no model named claude-sonet-5-5 (TREX_MODEL)")
      assert.strictEqual(unknown.status, 404)
      assert.isFalse(unknown.retryable)
      const refused = yield* Effect.flip(probe("test-key-revoked", "claude-sonnet-5-5"))
      assert.strictEqual(refused.status, 401)
      assert.include(refused.message, "check ANTHROPIC_API_KEY")
      assert.notInclude(refused.message, "test-key-revoked")
      // no turn was taken, so nothing was spent
      assert.strictEqual(server.requests.length, 0)
      assert.deepStrictEqual(server.described, ["claude-sonnet-5-5", "claude-sonet-5-5", "claude-sonnet-5-5"])
      const gateway = yield* Fake.make([], { describesModels: false })
      const unchecked = yield* probe(KEY, "claude-sonnet-5-5", gateway.url)
      assert.strictEqual(unchecked.model, "claude-sonnet-5-5")
      assert.include(unchecked.unchecked ?? "", "does not describe its models (GET /v1/models/claude-sonnet-5-5: HTTP 404)")
      const down = yield* Effect.flip(probe(KEY, "claude-sonnet-5-5", `http://127.0.0.1:${yield* closedPort}`))
      assert.isTrue(down.retryable)
      assert.isUndefined(down.status)
    }))

  it.live("probe: a model the key's workspace may not use (messages refused with a 403, while its description passes) fails, asked of count_tokens, which costs nothing", () =>
    Effect.gen(function*() {
      const models = [{ id: "claude-sonnet-5-5" }, { id: "claude-opus-5-5" }]
      const server = yield* Fake.make([], { apiKey: KEY, models, forbidden: ["claude-opus-5-5"] })
      const probe = (name: string, url = server.url) => AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: url, model: name }).probe!
      const barred = yield* Effect.flip(probe("claude-opus-5-5"))
      assert.strictEqual(barred.status, 403)
      assert.isFalse(barred.retryable)
      assert.strictEqual(
        barred.message,
        "the API serves claude-opus-5-5, but the key may not send it messages (POST /v1/messages/count_tokens): HTTP 403 permission_error: " +
          "Your API key does not have permission to use the specified resource. (check ANTHROPIC_API_KEY: the key may not use this model, set by TREX_MODEL, or this endpoint)"
      )
      assert.deepStrictEqual(yield* probe("claude-sonnet-5-5"), { model: "claude-sonnet-5-5", detail: "claude-sonnet-5-5" })
      assert.deepStrictEqual(server.counted, ["claude-opus-5-5", "claude-sonnet-5-5"])
      // no turn was taken
      assert.strictEqual(server.requests.length, 0)
      // a gateway that serves messages and the model list but not count_tokens: the permission is left to the run, and said so
      const gateway = yield* Fake.make([], { models, countsTokens: false })
      const unchecked = yield* probe("claude-sonnet-5-5", gateway.url)
      assert.strictEqual(unchecked.detail, "claude-sonnet-5-5")
      assert.strictEqual(unchecked.callUnchecked, "POST /v1/messages/count_tokens: HTTP 404")
      assert.isUndefined(unchecked.unchecked)
      assert.strictEqual(gateway.requests.length, 0)
    }))

  it.live("generate: tool use round trip, cache_control on the stable prefix, cost recorded", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([
        Fake.message([Fake.toolUse("pick", { lr: 0.001 })], {
          input_tokens: 1000,
          output_tokens: 200,
          cache_creation_input_tokens: 4000,
          cache_read_input_tokens: 10000
        })
      ])
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, model: "claude-sonnet-5-5" })
      const { meter, records } = recordingMeter()
      const response = yield* model.generate(request).pipe(Effect.provideService(CostMeter.CostMeter, meter))
      assert.deepStrictEqual(Model.toolCalls(response).map((c) => c.input), [{ lr: 0.001 }])
      assert.strictEqual(response.stopReason, "tool_use")
      const body = server.requests[0]!.body
      assert.deepStrictEqual(body.system[0].cache_control, { type: "ephemeral" })
      assert.deepStrictEqual(body.tools[0].cache_control, { type: "ephemeral" })
      assert.deepStrictEqual(body.messages[0].content[0].cache_control, { type: "ephemeral" })
      assert.deepStrictEqual(body.tool_choice, { type: "tool", name: "pick" })
      const h = server.requests[0]!.headers
      assert.include(`${h["x-api-key"] ?? ""} ${h["authorization"] ?? ""}`, KEY)
      assert.strictEqual(records.length, 1)
      assert.strictEqual(records[0]!.cost.inputTokens, 15000)
      assert.strictEqual(records[0]!.cost.outputTokens, 200)
      // 1000*3 + 200*15 + 4000*3.75 + 10000*0.3 = 24000 micro-dollars
      assert.closeTo(records[0]!.cost.dollars, 0.024, 1e-9)
      assert.strictEqual(records[0]!.reason, "anthropic:test")
    }))

  it.live("web searches are charged at $0.01 each with the tokens, whether generated or streamed", () =>
    Effect.gen(function*() {
      const usage = { input_tokens: 1000, output_tokens: 200, server_tool_use: { web_search_requests: 3 } }
      const server = yield* Fake.make([Fake.message([Fake.text("found")], usage), Fake.message([Fake.text("found")], usage)])
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, model: "claude-sonnet-5-5" })
      const { meter, records } = recordingMeter()
      const response = yield* model.generate(request).pipe(Effect.provideService(CostMeter.CostMeter, meter))
      assert.strictEqual(response.usage.webSearches, 3)
      yield* Stream.runDrain(model.stream(request)).pipe(Effect.provideService(CostMeter.CostMeter, meter))
      // 1000 * 3 + 200 * 15 micro-dollars of tokens, and 3 searches at a cent each
      assert.deepStrictEqual(records.map((r) => Number(r.cost.dollars.toFixed(9))), [0.036, 0.036])
    }))

  it.live("stream: text and tool-input deltas, then the assembled response", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([
        Fake.message([Fake.text("Thinking about rates..."), Fake.toolUse("pick", { lr: 0.0003, note: "small" })])
      ])
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url })
      const events = yield* Stream.runCollect(model.stream(request))
      const deltas = events.filter((e) => e._tag === "TextDelta").map((e) => e.text).join("")
      assert.strictEqual(deltas, "Thinking about rates...")
      assert.isTrue(events.some((e) => e._tag === "ToolInputDelta"))
      const done = events[events.length - 1]!
      assert.strictEqual(done._tag, "Done")
      if (done._tag !== "Done") return
      assert.strictEqual(Model.text(done.response), "Thinking about rates...")
      assert.deepStrictEqual(Model.toolCalls(done.response)[0]!.input, { lr: 0.0003, note: "small" })
      assert.strictEqual(server.requests[0]!.body.stream, true)
    }))

  it.effect("retries 429 and 529, waiting at least retry-after (TestClock)", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([
        Fake.error(429, "rate_limit_error", "slow down", { "retry-after": "7" }),
        Fake.error(529, "overloaded_error", "overloaded"),
        Fake.message([Fake.text("ok")])
      ])
      const model = AnthropicModel.make({
        apiKey: Redacted.make(KEY),
        baseURL: server.url,
        retry: { baseDelay: "10 millis", maxDelay: "1 second", maxRetries: 3 }
      })
      const fiber = yield* Effect.forkChild(model.generate(request))
      yield* until(() => server.requests.length === 1)
      // The client schedules its wait only once the 429 has reached it, which may be after the server
      // recorded the request: move the test clock a second at a time until the retry comes, and count.
      const secondsUntil = (requests: number) =>
        Effect.gen(function*() {
          let seconds = 0
          while (server.requests.length < requests) {
            assert.isBelow(seconds, 60, `no request ${requests} after 60 s of test time`)
            yield* TestClock.adjust("1 second")
            seconds++
            yield* realSleep(20)
          }
          return seconds
        })
      assert.isAtLeast(yield* secondsUntil(2), 7, "not retried before retry-after (7 s) elapsed")
      yield* secondsUntil(3)
      const response = yield* Fiber.join(fiber)
      assert.strictEqual(Model.text(response), "ok")
    }))

  it.live("a retry-after longer than maxRetryAfter (default 60 s) fails the call at once, saying how long the server asked for; a shorter one is waited out", () =>
    Effect.gen(function*() {
      const inAnHour = new Date(Date.now() + 3_600_000).toUTCString()
      const server = yield* Fake.make([
        Fake.error(429, "rate_limit_error", "daily limit reached", { "retry-after": "3600" }),
        Fake.error(429, "rate_limit_error", "daily limit reached", { "retry-after": inAnHour }),
        Fake.error(429, "rate_limit_error", "slow down", { "retry-after-ms": "50" }),
        Fake.message([Fake.text("ok")]),
        Fake.error(429, "rate_limit_error", "slow down", { "retry-after-ms": "500" })
      ])
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, retry: { baseDelay: "1 millis" } })
      const hours = yield* Effect.flip(model.generate(request))
      assert.strictEqual(
        hours.message,
        "HTTP 429 rate_limit_error: daily limit reached: the server asked to wait 3600 s (retry-after) before calling again, longer than " +
          "maxRetryAfter (60 s): call again once that time has passed (a run stopped by it resumes then), or raise the model's retry.maxRetryAfter (trex run or resume --max-retry-after <seconds>) to wait that long"
      )
      assert.isFalse(hours.retryable)
      assert.strictEqual(hours.status, 429)
      assert.strictEqual(hours.retryAfterMs, 3_600_000)
      assert.strictEqual(server.requests.length, 1)
      // an HTTP date, and a stream, alike
      const streamed = yield* Effect.flip(Stream.runDrain(model.stream(request)))
      assert.match(streamed.message, /the server asked to wait 3\d{3} s \(retry-after\)/)
      assert.isFalse(streamed.retryable)
      assert.strictEqual(server.requests.length, 2)
      // within the bound it is waited out, as before
      const bounded = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, retry: { baseDelay: "1 millis", maxRetryAfter: "200 millis" } })
      assert.strictEqual(Model.text(yield* bounded.generate(request)), "ok")
      assert.strictEqual(server.requests.length, 4)
      const longer = yield* Effect.flip(bounded.generate(request))
      assert.include(longer.message, "the server asked to wait 500 ms (retry-after) before calling again, longer than maxRetryAfter (200 ms)")
      assert.strictEqual(server.requests.length, 5)
    }))

  it.live("retries exhausted: a retryable ModelError with the status", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make(() => Fake.error(529, "overloaded_error", "overloaded"))
      const model = AnthropicModel.make({
        apiKey: Redacted.make(KEY),
        baseURL: server.url,
        retry: { baseDelay: "1 millis", maxDelay: "5 millis", maxRetries: 2 }
      })
      const error = yield* Effect.flip(model.generate(request))
      assert.strictEqual(error._tag, "ModelError")
      assert.strictEqual(error.status, 529)
      assert.isTrue(error.retryable)
      assert.include(error.message, "overloaded")
      assert.strictEqual(server.requests.length, 3)
    }))

  it.live("a 400 is not retried", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make(() => Fake.error(400, "invalid_request_error", "bad tool schema"))
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, retry: { baseDelay: "1 millis" } })
      const error = yield* Effect.flip(model.generate(request))
      assert.isFalse(error.retryable)
      assert.strictEqual(error.status, 400)
      assert.strictEqual(server.requests.length, 1)
    }))

  it.live("the server's x-should-retry overrides the status, as in the SDK", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([
        Fake.error(529, "overloaded_error", "overloaded", { "x-should-retry": "false" }),
        Fake.error(400, "invalid_request_error", "try again", { "x-should-retry": "true" }),
        Fake.message([Fake.text("ok")])
      ])
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, retry: { baseDelay: "1 millis" } })
      const error = yield* Effect.flip(model.generate(request))
      assert.isFalse(error.retryable)
      assert.strictEqual(server.requests.length, 1)
      assert.strictEqual(Model.text(yield* model.generate(request)), "ok")
      assert.strictEqual(server.requests.length, 3)
    }))

  it.live("interrupting a stream closes the HTTP connection", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([{ ...Fake.message([Fake.text("a long answer that never ends")]), stallAfterEvents: 3 } as Fake.Reply])
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url })
      let seen = 0
      const fiber = yield* Effect.forkChild(Stream.runForEach(model.stream(request), () => Effect.sync(() => void seen++)))
      yield* until(() => seen >= 1)
      yield* Fiber.interrupt(fiber)
      yield* until(() => server.aborted() === 1)
    }))

  it.live("the API key never appears in errors or logs", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make(() => Fake.error(401, "authentication_error", `invalid x-api-key: ${KEY}`))
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url })
      const error = yield* Effect.flip(model.generate(request))
      const logged: Array<string> = []
      yield* Effect.logError("model call failed", error).pipe(
        Effect.provide(Logger.layer([Logger.make((o) => void logged.push(JSON.stringify(o.message)))]))
      )
      for (const text of [error.message, String(error), JSON.stringify(error), ...logged]) {
        assert.notInclude(text, KEY)
      }
      assert.include(error.message, "[redacted]")
      assert.strictEqual(error.status, 401)
      assert.include(error.message, "(check ANTHROPIC_API_KEY)")
    }))

  it.live("a 403 (a key its workspace does not let use the model) names the key and TREX_MODEL, and is not retried", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make(() => Fake.error(403, "permission_error", "Your API key does not have permission to use the specified resource."))
      const error = yield* Effect.flip(AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url }).generate(request))
      assert.strictEqual(error.message, "HTTP 403 permission_error: Your API key does not have permission to use the specified resource. " +
        "(check ANTHROPIC_API_KEY: the key may not use this model, set by TREX_MODEL, or this endpoint)")
      assert.isFalse(error.retryable)
      assert.strictEqual(server.requests.length, 1)
    }))

  const once = { maxRetries: 0 }
  const messageJson = (model: string) =>
    JSON.stringify({
      id: "msg_1",
      type: "message",
      role: "assistant",
      model,
      content: [{ type: "text", text: "a complete answer" }],
      stop_reason: "end_turn",
      stop_sequence: null,
      usage: { input_tokens: 3, output_tokens: 4 }
    })

  it.live("generate: a 200 that is not a Messages response is a ModelError naming the URL and what came back", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([
        Fake.raw("text/html; charset=utf-8", "<!doctype html><html><body>Welcome to the captive portal</body></html>"),
        Fake.raw("application/json", JSON.stringify({ status: "ok", service: "not the Messages API" })),
        Fake.raw("application/json", ""),
        Fake.raw("application/json", messageJson("m").slice(0, 40))
      ])
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, retry: once })
      const html = yield* Effect.flip(model.generate(request))
      assert.strictEqual(html._tag, "ModelError")
      assert.strictEqual(html.provider, "anthropic")
      assert.isFalse(html.retryable)
      assert.include(html.message, `${server.url}/v1/messages answered 200 (text/html; charset=utf-8)`)
      assert.include(html.message, "<!doctype html><html><body>Welcome to the captive portal")
      assert.include(html.message, `not a Messages API response (base URL ${server.url}, set by ANTHROPIC_BASE_URL)`)
      const other = yield* Effect.flip(model.generate(request))
      assert.isFalse(other.retryable)
      assert.include(other.message, "JSON without a content list")
      assert.include(other.message, "not the Messages API")
      // an empty or cut-off body is a transient failure: retryable
      const empty = yield* Effect.flip(model.generate(request))
      assert.isTrue(empty.retryable)
      assert.include(empty.message, "with an empty body")
      const truncated = yield* Effect.flip(model.generate(request))
      assert.isTrue(truncated.retryable)
      assert.include(truncated.message, "JSON that does not parse")
    }))

  it.live("generate: a connection cut while the body is read is a retryable connection error, and is retried", () =>
    Effect.gen(function*() {
      const body = messageJson("claude-sonnet-5-5")
      const server = yield* Fake.make([
        Fake.raw("application/json", body, { cutAfter: 30 }),
        Fake.raw("application/json", body, { cutAfter: 30 }),
        Fake.message([Fake.text("ok")])
      ])
      const cut = yield* Effect.flip(AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, retry: once }).generate(request))
      assert.isTrue(cut.retryable, cut.message)
      assert.match(cut.message, /^connection error: /)
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, retry: { baseDelay: "1 millis" } })
      const response = yield* model.generate(request)
      assert.strictEqual(Model.text(response), "ok")
      assert.strictEqual(server.requests.length, 3)
    }))

  it.live("a refused connection names the base URL and ANTHROPIC_BASE_URL, and is retryable", () =>
    Effect.gen(function*() {
      const url = `http://127.0.0.1:${yield* closedPort}`
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: url, retry: once })
      const error = yield* Effect.flip(model.generate(request))
      assert.isTrue(error.retryable)
      assert.match(error.message, /^connection error: fetch failed: connect ECONNREFUSED /)
      assert.include(error.message, `(base URL ${url}, set by ANTHROPIC_BASE_URL)`)
      const streamed = yield* Effect.flip(Stream.runDrain(model.stream(request)))
      assert.include(streamed.message, `(base URL ${url}, set by ANTHROPIC_BASE_URL)`)
    }))

  it.live("stream: a 200 that is not an event stream, or one that ends before message_stop, fails with a ModelError", () =>
    Effect.gen(function*() {
      const start = `event: message_start\ndata: ${JSON.stringify({ type: "message_start", message: { id: "m", type: "message", role: "assistant", model: "m", content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 1, output_tokens: 1 } } })}\n\n`
      const text = `event: content_block_start\ndata: ${JSON.stringify({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } })}\n\n` +
        `event: content_block_delta\ndata: ${JSON.stringify({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "half an ans" } })}\n\n`
      const server = yield* Fake.make([
        Fake.raw("text/html", "<html>Bad gateway, but with a 200</html>"),
        Fake.raw("application/json", "{\"id\":\"msg_1\",\"content\":[{\"type\":\"te"),
        Fake.raw("text/event-stream", start),
        Fake.raw("text/event-stream", start + text)
      ])
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, retry: once })
      const html = yield* Effect.flip(Stream.runCollect(model.stream(request)))
      assert.isFalse(html.retryable)
      assert.include(html.message, "answered 200 (text/html) with a body: \"<html>Bad gateway, but with a 200</html>\", not an event stream")
      const json = yield* Effect.flip(Stream.runCollect(model.stream(request)))
      assert.isTrue(json.retryable)
      assert.include(json.message, "(application/json) with JSON that does not parse")
      const early = yield* Effect.flip(Stream.runCollect(model.stream(request)))
      assert.isTrue(early.retryable, "nothing was emitted: a retry delivers nothing twice")
      assert.include(early.message, "ended before message_stop")
      const seen: Array<Model.StreamEvent> = []
      const partial = yield* Effect.flip(Stream.runForEach(model.stream(request), (e) => Effect.sync(() => void seen.push(e))))
      assert.deepStrictEqual(seen.map((e) => e._tag), ["TextDelta"])
      assert.isFalse(partial.retryable, "a delta went out: a retry would repeat it")
      assert.include(partial.message, "ended before message_stop")
    }))

  /** An event stream as the API writes it: `event: <name>` and `data: <json>` for each event. */
  const sse = (events: ReadonlyArray<readonly [string, unknown]>) =>
    events.map(([name, data]) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`).join("")
  const started = ["message_start", {
    type: "message_start",
    message: { id: "m", type: "message", role: "assistant", model: "m", content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 7, output_tokens: 1 } }
  }] as const
  const textBlock = (text: string) => [
    ["content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }],
    ["content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text } }],
    ["content_block_stop", { type: "content_block_stop", index: 0 }]
  ] as const
  const ended = [
    ["message_delta", { type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: 3 } }],
    ["message_stop", { type: "message_stop" }]
  ] as const
  const overloaded = ["error", { type: "error", error: { type: "overloaded_error", message: "Overloaded" } }] as const

  it.live("a stream cut before message_delta is charged each content block weighed as its own text, an emoji split between two deltas as one character", () =>
    Effect.gen(function*() {
      const start = (index: number, block: object) => ["content_block_start", { type: "content_block_start", index, content_block: block }] as const
      const delta = (index: number, d: object) => ["content_block_delta", { type: "content_block_delta", index, delta: d }] as const
      const stop = (index: number) => ["content_block_stop", { type: "content_block_stop", index }] as const
      // four rockets, each cut between its two UTF-16 halves
      const rockets = ["go \ud83d", "\ude80\ud83d", "\ude80\ud83d", "\ude80\ud83d", "\ude80 now"]
      // a thinking block, a text block and a tool call's input, each starting with the kind of character the one before ends in
      const thought = ["a thought to weigh:", "\n"]
      const said = ["--", "> and a few words:"]
      const input = ["{\"lr\":", "\"low\"}"]
      const server = yield* Fake.make([
        Fake.raw("text/event-stream", sse([started, start(0, { type: "text", text: "" }), ...rockets.map((text) => delta(0, { type: "text_delta", text })), stop(0)])),
        Fake.raw("text/event-stream", sse([
          started,
          start(0, { type: "thinking", thinking: "", signature: "" }), ...thought.map((thinking) => delta(0, { type: "thinking_delta", thinking })), stop(0),
          start(1, { type: "text", text: "" }), ...said.map((text) => delta(1, { type: "text_delta", text })), stop(1),
          start(2, { type: "tool_use", id: "toolu_1", name: "pick", input: {} }), ...input.map((partial_json) => delta(2, { type: "input_json_delta", partial_json })), stop(2)
        ]))
      ])
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, retry: once })
      const split = yield* Effect.flip(Stream.runDrain(model.stream(request)))
      // message_start's 1 output token, and the text as the whole is weighed: a rocket is one token, not one and a half
      assert.deepStrictEqual(split.usage?.outputTokens, 1 + Model.estimatedTokens(rockets.join("")))
      const blocks = yield* Effect.flip(Stream.runDrain(model.stream(request)))
      // each block its own text: the thinking's newline, the text's `--` and the input's `{` are runs of their own
      const weight = Model.tokenWeight(thought.join("")) + Model.tokenWeight(said.join("")) + Model.tokenWeight(input.join(""))
      assert.deepStrictEqual(blocks.usage?.outputTokens, 1 + Math.ceil(weight))
    }))

  it.live("stream: an error event (overloaded) before any delta is retryable and retried; after a delta it fails naming it", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([
        Fake.raw("text/event-stream", sse([started, overloaded])),
        Fake.raw("text/event-stream", sse([started, ...textBlock("ok"), ...ended])),
        Fake.raw("text/event-stream", sse([started, ...textBlock("half"), overloaded]))
      ])
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, retry: { baseDelay: "1 millis" } })
      const events = yield* Stream.runCollect(model.stream(request))
      assert.deepStrictEqual(events.map((e) => e._tag), ["TextDelta", "Done"])
      assert.strictEqual(server.requests.length, 2)
      const seen: Array<Model.StreamEvent> = []
      const error = yield* Effect.flip(Stream.runForEach(model.stream(request), (e) => Effect.sync(() => void seen.push(e))))
      assert.deepStrictEqual(seen.map((e) => e._tag), ["TextDelta"])
      assert.isFalse(error.retryable, "a delta went out: a retry would repeat it")
      assert.include(error.message, "overloaded_error: Overloaded")
      assert.strictEqual(server.requests.length, 3)
    }))

  it.live("stream: an error event, or the body's end, after message_delta gives the whole answer, not retried", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([
        Fake.raw("text/event-stream", sse([started, ...textBlock("ok"), ended[0], overloaded])),
        Fake.raw("text/event-stream", sse([started, ...textBlock("ok"), ended[0]]))
      ])
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, retry: { baseDelay: "1 millis" } })
      for (let i = 0; i < 2; i++) {
        const events = yield* Stream.runCollect(model.stream(request))
        assert.deepStrictEqual(events.map((e) => e._tag), ["TextDelta", "Done"])
        const done = events[1] as Extract<Model.StreamEvent, { _tag: "Done" }>
        assert.strictEqual(Model.text(done.response), "ok")
        assert.deepStrictEqual(done.response.usage, { inputTokens: 7, outputTokens: 3, cacheReadTokens: 0, cacheWriteTokens: 0 })
      }
      assert.strictEqual(server.requests.length, 2)
    }))

  it.live("stream: ping events and event types this adapter does not know are passed over", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([
        Fake.raw("text/event-stream", sse([started, ["ping", { type: "ping" }], ...textBlock("ok"), ["some_future_event", { type: "some_future_event" }], ...ended]))
      ])
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, retry: once })
      const events = yield* Stream.runCollect(model.stream(request))
      assert.deepStrictEqual(events.map((e) => e._tag), ["TextDelta", "Done"])
    }))

  it.live("stream: a tool call cut off at max_tokens ends with its response (input {}, stop reason max_tokens), not a malformed stream", () =>
    Effect.gen(function*() {
      const cut = [
        ["content_block_start", { type: "content_block_start", index: 0, content_block: { type: "tool_use", id: "toolu_1", name: "pick", input: {} } }],
        ["content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "input_json_delta", partial_json: "{\"lr\": 0.0" } }],
        ["content_block_stop", { type: "content_block_stop", index: 0 }],
        ["message_delta", { type: "message_delta", delta: { stop_reason: "max_tokens", stop_sequence: null }, usage: { output_tokens: 256 } }],
        ["message_stop", { type: "message_stop" }]
      ] as const
      const server = yield* Fake.make([
        Fake.raw("text/event-stream", sse([started, ...cut])),
        Fake.raw("text/event-stream", sse([started, ...cut.slice(0, 3), ...ended]))
      ])
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, retry: once })
      const done = (yield* Stream.runCollect(model.stream(request))).at(-1)
      if (done?._tag !== "Done") return assert.fail(`no Done: ${JSON.stringify(done)}`)
      assert.strictEqual(done.response.stopReason, "max_tokens")
      assert.deepStrictEqual(Model.toolCalls(done.response), [{ type: "tool_use", id: "toolu_1", name: "pick", input: {} }])
      // input that does not parse in an answer that was not cut off is the stream's fault, not a call to make
      const malformed = yield* Effect.flip(Stream.runCollect(model.stream(request)))
      assert.match(malformed.message, /^malformed stream event message_stop: /)
    }))

  it.live("a stream cut or stalled after message_start: the tokens it reported are counted in the cost, retried or not", () =>
    Effect.gen(function*() {
      const usage = { input_tokens: 1200, output_tokens: 40 }
      const answer = Fake.message([Fake.text("a long answer, streamed in pieces")], usage)
      const events = 1 + 1 + Math.ceil("a long answer, streamed in pieces".length / 8) + 1 + 1 + 1
      const server = yield* Fake.make([
        // before message_start: nothing was billed
        { ...answer, stallAfterEvents: 0 } as Fake.Reply,
        // message_start alone, then the connection dies: its input tokens were billed; nothing went out, so it is retried
        { ...answer, cutAfterEvents: 1 } as Fake.Reply,
        // everything before message_delta (which would make it whole), then a stall: deltas went out, so it fails
        { ...answer, stallAfterEvents: events - 2 } as Fake.Reply
      ])
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, model: "claude-sonnet-5-5", timeoutMs: 1000, retry: { baseDelay: "1 millis" } })
      const { meter, records } = recordingMeter()
      const error = yield* Effect.flip(Stream.runDrain(model.stream(request)).pipe(Effect.provideService(CostMeter.CostMeter, meter)))
      assert.strictEqual(server.requests.length, 3)
      assert.isFalse(error.retryable)
      assert.include(error.message, "no event from")
      // message_start's 1 output token, and the 33 characters of text since (32 letters and spaces at 7/32 a token, a comma 1/2)
      assert.deepStrictEqual(error.usage, { inputTokens: 1200, outputTokens: 9, cacheReadTokens: 0, cacheWriteTokens: 0, estimated: true })
      assert.deepStrictEqual(records.map((r) => [r.reason, r.cost.inputTokens, r.cost.outputTokens, Number(r.cost.dollars.toFixed(9))]), [
        // 1200 * 3 + 1 * 15 micro-dollars (message_start's usage), then 1200 * 3 + 9 * 15
        ["anthropic:test (failed attempt)", 1200, 1, 0.003615],
        ["anthropic:test (failed attempt, tokens estimated)", 1200, 9, 0.003735]
      ])
    }), { timeout: 20_000 })

  it.live("a stream cut between message_start and message_delta is charged the text it sent since, estimated", () =>
    Effect.gen(function*() {
      const answer = Fake.message([Fake.text("a long answer, streamed in pieces")], { input_tokens: 1200, output_tokens: 40 })
      // message_start, content_block_start and three deltas of 8 characters, then the connection dies
      const server = yield* Fake.make([{ ...answer, cutAfterEvents: 5 } as Fake.Reply])
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, model: "claude-sonnet-5-5", retry: once })
      const { meter, records } = recordingMeter()
      const error = yield* Effect.flip(Stream.runDrain(model.stream(request)).pipe(Effect.provideService(CostMeter.CostMeter, meter)))
      // message_start's 1 output token, and 24 characters (23 letters and spaces at 7/32 a token, a comma 1/2)
      assert.deepStrictEqual(error.usage, { inputTokens: 1200, outputTokens: 7, cacheReadTokens: 0, cacheWriteTokens: 0, estimated: true })
      assert.deepStrictEqual(records.map((r) => [r.reason, r.cost.inputTokens, r.cost.outputTokens, Number(r.cost.dollars.toFixed(9))]), [
        ["anthropic:test (failed attempt, tokens estimated)", 1200, 7, 0.003705]
      ])
    }))

  it.live("a stream cut after its message_delta, before message_stop, gives its whole answer, charged the usage message_delta said, not retried; one cut before it still fails", () =>
    Effect.gen(function*() {
      const usage = { input_tokens: 1200, output_tokens: 40 }
      const answer = Fake.message([Fake.text("a long answer, streamed in pieces")], usage)
      const call = Fake.message([Fake.text("Trying 3e-4."), Fake.toolUse("pick", { lr: 0.0003 })], usage)
      // message_start, content_block_start, 5 deltas of 8 characters, content_block_stop, message_delta: message_stop never comes
      const cut = (reply: Fake.Reply, before: number) => ({ ...reply, cutAfterEvents: before }) as Fake.Reply
      const server = yield* Fake.make([
        cut(answer, 9),
        // text (2 deltas) and a tool call (2 deltas of its input): 9 events, then message_delta
        cut(call, 10),
        // the same answer cut after content_block_stop: no stop reason yet, so it is incomplete, as before
        cut(answer, 8),
        // held open after message_delta: the answer, once timeoutMs has passed
        { ...answer, stallAfterEvents: 9 } as Fake.Reply
      ])
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, model: "claude-sonnet-5-5", retry: { baseDelay: "1 millis" } })
      const { meter, records } = recordingMeter()
      const streamed = (r: Model.Request) => Stream.runCollect(model.stream(r)).pipe(Effect.provideService(CostMeter.CostMeter, meter))
      const events = yield* streamed(request)
      assert.deepStrictEqual(events.map((e) => e._tag), ["TextDelta", "TextDelta", "TextDelta", "TextDelta", "TextDelta", "Done"])
      const done = events[events.length - 1] as Extract<Model.StreamEvent, { _tag: "Done" }>
      assert.strictEqual(Model.text(done.response), "a long answer, streamed in pieces")
      assert.strictEqual(done.response.stopReason, "end_turn")
      assert.deepStrictEqual(done.response.usage, { inputTokens: 1200, outputTokens: 40, cacheReadTokens: 0, cacheWriteTokens: 0 })
      const withCall = (yield* streamed(request)).at(-1) as Extract<Model.StreamEvent, { _tag: "Done" }>
      assert.strictEqual(withCall.response.stopReason, "tool_use")
      assert.strictEqual(Model.text(withCall.response), "Trying 3e-4.")
      assert.deepStrictEqual(Model.toolCalls(withCall.response).map((c) => [c.name, c.input]), [["pick", { lr: 0.0003 }]])
      // nothing asked again: one request for each
      assert.strictEqual(server.requests.length, 2)
      const incomplete = yield* Effect.flip(streamed(request))
      assert.isFalse(incomplete.retryable)
      assert.match(incomplete.message, /^connection error: terminated/)
      assert.strictEqual(server.requests.length, 3)
      const held = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, model: "claude-sonnet-5-5", timeoutMs: 300, retry: { baseDelay: "1 millis" } })
      const stalled = (yield* Stream.runCollect(held.stream(request)).pipe(Effect.provideService(CostMeter.CostMeter, meter))).at(-1) as Extract<Model.StreamEvent, { _tag: "Done" }>
      assert.strictEqual(Model.text(stalled.response), "a long answer, streamed in pieces")
      assert.strictEqual(server.requests.length, 4)
      assert.deepStrictEqual(records.map((r) => [r.reason, r.cost.inputTokens, r.cost.outputTokens, Number(r.cost.dollars.toFixed(9))]), [
        // 1200 * 3 + 40 * 15 micro-dollars, as message_delta said: not estimated
        ["anthropic:test", 1200, 40, 0.0042],
        ["anthropic:test", 1200, 40, 0.0042],
        // message_start's 1 output token, and the 33 characters of text since (32 letters and spaces at 7/32 a token, a comma 1/2)
        ["anthropic:test (failed attempt, tokens estimated)", 1200, 9, 0.003735],
        ["anthropic:test", 1200, 40, 0.0042]
      ])
    }), { timeout: 20_000 })

  it.live("a stream held open after its message_delta gives its whole answer after a short grace, not timeoutMs (10 minutes here), charged the usage it said; a message_stop within the grace is read as usual", () =>
    Effect.gen(function*() {
      const usage = { input_tokens: 1200, output_tokens: 40 }
      const answer = Fake.message([Fake.text("a long answer, streamed in pieces")], usage)
      const call = Fake.message([Fake.text("Trying 3e-4."), Fake.toolUse("pick", { lr: 0.0003 })], usage)
      const server = yield* Fake.make([
        // every event but message_stop (9 and 10 events), then the connection held open
        { ...answer, stallAfterEvents: 9 } as Fake.Reply,
        { ...call, stallAfterEvents: 10 } as Fake.Reply,
        // message_stop a little late, within the grace; then as late, past a grace of 100 ms (endGraceMs)
        { ...answer, holdLastMs: 300 } as Fake.Reply,
        { ...answer, holdLastMs: 300 } as Fake.Reply
      ])
      // a client that waited for timeoutMs would outlast the test's timeout (60 s)
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, model: "claude-sonnet-5-5", timeoutMs: 600_000, retry: { baseDelay: "1 millis" } })
      const { meter, records } = recordingMeter()
      const streamed = Stream.runCollect(model.stream(request)).pipe(Effect.provideService(CostMeter.CostMeter, meter))
      const held = (yield* streamed).at(-1) as Extract<Model.StreamEvent, { _tag: "Done" }>
      assert.strictEqual(Model.text(held.response), "a long answer, streamed in pieces")
      assert.strictEqual(held.response.stopReason, "end_turn")
      const withCall = (yield* streamed).at(-1) as Extract<Model.StreamEvent, { _tag: "Done" }>
      assert.strictEqual(withCall.response.stopReason, "tool_use")
      assert.deepStrictEqual(Model.toolCalls(withCall.response).map((c) => [c.name, c.input]), [["pick", { lr: 0.0003 }]])
      const late = (yield* streamed).at(-1) as Extract<Model.StreamEvent, { _tag: "Done" }>
      assert.strictEqual(Model.text(late.response), "a long answer, streamed in pieces")
      assert.strictEqual(server.requests.length, 3, "none retried")
      // the two held open were closed by the client; the late one ended as the server sent it
      yield* until(() => server.aborted() === 2)
      // 1200 * 3 + 40 * 15 micro-dollars each, as message_delta said: not estimated
      assert.deepStrictEqual(records.map((r) => [r.reason, r.cost.inputTokens, r.cost.outputTokens, Number(r.cost.dollars.toFixed(9))]), [
        ["anthropic:test", 1200, 40, 0.0042],
        ["anthropic:test", 1200, 40, 0.0042],
        ["anthropic:test", 1200, 40, 0.0042]
      ])
      // a grace of the client's own: the late message_stop is not waited for (the client closes the stream), the answer
      // and the usage message_delta said given all the same
      const brief = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, model: "claude-sonnet-5-5", timeoutMs: 600_000, endGraceMs: 100, retry: { baseDelay: "1 millis" } })
      const cut = (yield* Stream.runCollect(brief.stream(request)).pipe(Effect.provideService(CostMeter.CostMeter, meter))).at(-1) as Extract<Model.StreamEvent, { _tag: "Done" }>
      assert.strictEqual(Model.text(cut.response), "a long answer, streamed in pieces")
      yield* until(() => server.aborted() === 3)
      assert.deepStrictEqual(records.slice(3).map((r) => [r.reason, r.cost.inputTokens, r.cost.outputTokens]), [["anthropic:test", 1200, 40]])
    }), { timeout: 60_000 })

  it.live("a stream its consumer stops after message_start is charged what was billed: its input, and the text it sent, estimated; one stopped before, nothing", () =>
    Effect.gen(function*() {
      const answer = Fake.message([Fake.text("a long answer, streamed in pieces")], { input_tokens: 1200, output_tokens: 40 })
      const server = yield* Fake.make([
        // message_start, content_block_start and three deltas of 8 characters, then the server holds the stream open
        { ...answer, stallAfterEvents: 5 } as Fake.Reply,
        { ...answer, stallAfterEvents: 0 } as Fake.Reply
      ])
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, model: "claude-sonnet-5-5", retry: once })
      const { meter, records } = recordingMeter()
      let seen = 0
      const fiber = yield* Effect.forkChild(Stream.runForEach(model.stream(request), () => Effect.sync(() => void seen++)).pipe(Effect.provideService(CostMeter.CostMeter, meter)))
      yield* until(() => seen >= 3)
      yield* Fiber.interrupt(fiber)
      // message_start's 1 output token, and 24 characters (23 letters and spaces at 7/32 a token, a comma 1/2)
      assert.deepStrictEqual(records.map((r) => [r.reason, r.cost.inputTokens, r.cost.outputTokens, Number(r.cost.dollars.toFixed(9))]), [
        ["anthropic:test (stopped, tokens estimated)", 1200, 7, 0.003705]
      ])
      yield* until(() => server.aborted() === 1)
      // the headers, and not message_start: nothing billed that the server said
      const before = yield* Effect.forkChild(Stream.runDrain(model.stream(request)).pipe(Effect.provideService(CostMeter.CostMeter, meter)))
      yield* until(() => server.requests.length === 2)
      yield* Fiber.interrupt(before)
      assert.strictEqual(records.length, 1)
    }))

  it.live("a generate its caller stops after the 200's headers is charged the whole answer, estimated, as a cut one", () =>
    Effect.gen(function*() {
      const headers = yield* headersReceived
      const body = messageJson("claude-sonnet-5-5")
      const server = yield* Fake.make([Fake.raw("application/json", body, { holdAfter: 30 })])
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, model: "claude-sonnet-5-5", retry: once })
      const { meter, records } = recordingMeter()
      const fiber = yield* Effect.forkChild(model.generate(request).pipe(Effect.provideService(CostMeter.CostMeter, meter)))
      yield* until(() => headers() === 1)
      yield* Fiber.interrupt(fiber)
      const input = Model.estimatedTokens(JSON.stringify(server.requests[0]!.body))
      // the body's content-length, at the weight of the 30 bytes sent with the headers, or 4 bytes a token if the client
      // was stopped before it read them
      const output = records[0]!.cost.outputTokens
      assert.include([Math.ceil(Buffer.byteLength(body) * Model.tokenWeight(body.slice(0, 30)) / 30), Math.ceil(Buffer.byteLength(body) / 4)], output)
      assert.deepStrictEqual(records.map((r) => [r.reason, r.cost.inputTokens, r.cost.outputTokens, Number(r.cost.dollars.toFixed(9))]), [
        ["anthropic:test (stopped, tokens estimated)", input, output, Number(((input * 3 + output * 15) / 1e6).toFixed(9))]
      ])
      yield* until(() => server.aborted() === 1)
    }))

  it.live("a timeoutMs or endGraceMs no timer can wait (negative, NaN, infinite, past 2^31 - 1 ms) fails every call at once, naming it, not retried; the bounds themselves are taken", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([Fake.message([Fake.text("ok")], { input_tokens: 5, output_tokens: 1 })], {
        apiKey: KEY,
        models: [{ id: "claude-sonnet-5-5", display_name: "Claude Sonnet 5.5", max_input_tokens: 1_000_000 }]
      })
      const make = (timings: { timeoutMs?: number; endGraceMs?: number }) =>
        AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, model: "claude-sonnet-5-5", retry: { maxRetries: 0 }, ...timings })
      yield* refusedEveryCall(make, () => server.requests.length + server.described.length + server.counted.length)
      // the longest timeout a timer keeps (the bound the CLI's --model-timeout reads), and no grace: a whole answer is
      // taken as soon as it is whole
      assert.strictEqual(Model.MAX_TIMEOUT_MS, 2 ** 31 - 1)
      const { meter } = recordingMeter()
      const done = (yield* Stream.runCollect(make({ timeoutMs: Model.MAX_TIMEOUT_MS, endGraceMs: 0 }).stream(request)).pipe(
        Effect.provideService(CostMeter.CostMeter, meter)
      )).at(-1) as Extract<Model.StreamEvent, { _tag: "Done" }>
      assert.strictEqual(Model.text(done.response), "ok")
    }))

  it.live("a server that stalls after its headers: generate and stream give up after timeoutMs, retryable, and are retried", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make([
        Fake.raw("application/json", messageJson("m"), { holdAfter: 30 }),
        Fake.raw("application/json", messageJson("m"), { holdAfter: 30 }),
        Fake.message([Fake.text("ok")]),
        { ...Fake.message([Fake.text("never")]), stallAfterEvents: 1 } as Fake.Reply,
        Fake.message([Fake.text("ok")])
      ])
      const stalled = yield* Effect.flip(AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, timeoutMs: 300, retry: once }).generate(request))
      assert.isTrue(stalled.retryable)
      assert.strictEqual(stalled.message, `no answer from ${server.url}/v1/messages within 300 ms (timeoutMs)`)
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, timeoutMs: 300, retry: { baseDelay: "1 millis" } })
      assert.strictEqual(Model.text(yield* model.generate(request)), "ok")
      const events = yield* Stream.runCollect(model.stream(request))
      assert.deepStrictEqual(events.map((e) => e._tag), ["TextDelta", "Done"])
      assert.strictEqual(server.requests.length, 5)
    }), { timeout: 20_000 })

  it.live("a generate cut or stalled while its body is read is charged the whole answer, estimated: its input, and its body's content-length", () =>
    Effect.gen(function*() {
      const body = messageJson("claude-sonnet-5-5")
      const server = yield* Fake.make([
        Fake.raw("application/json", body, { cutAfter: 30 }),
        Fake.raw("application/json", body, { holdAfter: 30 })
      ])
      const model = AnthropicModel.make({ apiKey: Redacted.make(KEY), baseURL: server.url, model: "claude-sonnet-5-5", timeoutMs: 500, retry: once })
      const { meter, records } = recordingMeter()
      const generated = Effect.flip(model.generate(request).pipe(Effect.provideService(CostMeter.CostMeter, meter)))
      const cut = yield* generated
      assert.isTrue(cut.retryable)
      assert.match(cut.message, /^connection error: terminated/)
      const stalled = yield* generated
      assert.isTrue(stalled.retryable)
      assert.include(stalled.message, "no answer from")
      // the request body's characters, and the answer's content-length at the weight of the 30 bytes that came
      const input = Model.estimatedTokens(JSON.stringify(server.requests[0]!.body))
      const output = Math.ceil(Buffer.byteLength(body) * Model.tokenWeight(body.slice(0, 30)) / 30)
      assert.deepStrictEqual(cut.usage, { inputTokens: input, outputTokens: output, cacheReadTokens: 0, cacheWriteTokens: 0, estimated: true })
      assert.deepStrictEqual(stalled.usage, cut.usage)
      assert.deepStrictEqual(records.map((r) => [r.reason, r.cost.inputTokens, r.cost.outputTokens, Number(r.cost.dollars.toFixed(9))]), [
        ["anthropic:test (failed attempt, tokens estimated)", input, output, Number(((input * 3 + output * 15) / 1e6).toFixed(9))],
        ["anthropic:test (failed attempt, tokens estimated)", input, output, Number(((input * 3 + output * 15) / 1e6).toFixed(9))]
      ])
      assert.strictEqual(server.requests.length, 2)
    }), { timeout: 20_000 })
})
