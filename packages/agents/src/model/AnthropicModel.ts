/**
 * Claude through our own adapter on `@anthropic-ai/sdk`: messages with tool use, SSE
 * streaming, prompt caching of the stable prefix (system prompt, tool definitions and the
 * first user message carry `cache_control: {type: "ephemeral"}`), optional extended
 * thinking and server-side web search. The SDK's own retries are off (`maxRetries: 0`):
 * {@link Model.make} retries with our schedule, and Effect interruption aborts the request.
 * The SDK is loaded on a model's first call, not when this module is: importing `@trex/agents`
 * (and starting the `trex` CLI) does not load its 300 modules, which a run without Claude never uses.
 *
 * @since 0.1.0
 */
import type Anthropic from "@anthropic-ai/sdk"
import type * as Sdk from "@anthropic-ai/sdk/resources/messages/messages"
import { Config, Effect, Layer, Option, Redacted, Stream } from "effect"
import * as Http from "../internal/modelHttp.ts"
import * as Model from "./Model.ts"
import * as Pricing from "./Pricing.ts"

/** The default model when `TREX_MODEL` is unset: a current Claude Sonnet. @since 0.1.0 @category constants */
export const DEFAULT_MODEL = "claude-sonnet-5-5"

/** @since 0.1.0 @category models */
export interface Options {
  readonly apiKey: Redacted.Redacted<string>
  readonly model?: string
  /** Another endpoint (a proxy, or a local fake in tests). */
  readonly baseURL?: string
  readonly prices?: Pricing.Prices
  readonly retry?: Model.RetryOptions
  /**
   * Per-attempt timeout in milliseconds (default 10 minutes): for `generate` the whole answer, for
   * `stream` the headers and then each event. Past it the attempt fails, retryable. A stream whose
   * `message_delta` has said its stop reason (the answer whole) waits `endGraceMs` at most for its
   * `message_stop`, then gives the answer. Above 0 and at most 2^31 - 1 (about 24.8 days, the longest
   * wait Node's timers keep, `Model.MAX_TIMEOUT_MS`): see {@link make} for a value that is not.
   */
  readonly timeoutMs?: number
  /**
   * Milliseconds a stream whose answer is whole (`message_delta` said its stop reason and final
   * usage, every content block ended) waits for its `message_stop` before it gives the answer, as on
   * a cut (default 2000, `END_GRACE_MS`; at most `timeoutMs`). Claude's API sends it at once; raise
   * it only behind a proxy that holds a stream's last event back for longer. The answer is not lost
   * either way: what the wait decides is only whether the end is read. From 0 (the answer taken as
   * soon as it is whole) to 2^31 - 1: see {@link make} for a value that is not.
   */
  readonly endGraceMs?: number
}

/** The default {@link Options.endGraceMs}: 2 seconds. @since 0.1.0 @category models */
export const END_GRACE_MS = Http.END_GRACE_MS

const PROVIDER = "anthropic"

const RETRYABLE = new Set([408, 409, 429, 500, 502, 503, 504, 529])

// The error types of an `error` event in a stream (no status: the 200 was sent) that a retry may get past.
const RETRYABLE_TYPES = new Set(["overloaded_error", "api_error", "rate_limit_error", "timeout_error"])

type AnthropicClass = typeof Anthropic

// The SDK once loaded (its error classes, for `toModelError`): an error of its own can only come once it is.
let sdk: AnthropicClass | undefined
let loading: Promise<AnthropicClass> | undefined

/**
 * The SDK's client class, imported on the first call of any Claude model and kept (a failed import
 * is tried again on the next call): `@anthropic-ai/sdk` and what it pulls in (OpenTelemetry's API,
 * standardwebhooks) are about 300 modules, a fifth of the CLI's start, for runs that never call Claude.
 */
const loadSdk = (): Promise<AnthropicClass> =>
  (loading ??= import("@anthropic-ai/sdk").then(
    (m) => (sdk = m.default),
    (cause: unknown) => {
      loading = undefined
      throw new Model.ModelError({ provider: PROVIDER, message: `the Anthropic SDK (@anthropic-ai/sdk) could not be loaded: ${Http.describeCause(cause)}`, retryable: false })
    }
  ))

/** The base URL the SDK would take: the option, else `ANTHROPIC_BASE_URL`, else the API's own (read at `make`, as the SDK's constructor read it). */
const baseUrlOf = (given: string | undefined): string =>
  (given !== undefined ? given : process.env["ANTHROPIC_BASE_URL"]?.trim()) || "https://api.anthropic.com"

/** The server's `x-should-retry` (the SDK obeys it over the status), when it says. */
const shouldRetry = (headers: Headers | undefined): boolean | undefined => {
  const value = headers?.get("x-should-retry")
  return value === "true" ? true : value === "false" ? false : undefined
}

/** A copy of the error with the key scrubbed from its message. */
const scrubbed = (apiKey: Redacted.Redacted<string>) => (e: Model.ModelError): Model.ModelError => {
  const secret = Redacted.value(apiKey)
  if (secret.length === 0 || !e.message.includes(secret)) return e
  return new Model.ModelError({ ...e, message: e.message.split(secret).join("[redacted]") })
}

/**
 * Map anything the SDK or the body read throws to a `ModelError`, with the key scrubbed: lost
 * connections (refused, reset, cut while the body is read) are retryable and name the base URL.
 */
const toModelError = (apiKey: Redacted.Redacted<string>, endpoint: Http.Endpoint) => (cause: unknown): Model.ModelError => {
  const scrub = scrubbed(apiKey)
  if (cause instanceof Model.ModelError) return scrub(cause)
  if ((sdk !== undefined && cause instanceof sdk.APIConnectionError) || Http.isConnectionFailure(cause)) return scrub(Http.connectionError(endpoint, cause))
  if (sdk !== undefined && cause instanceof sdk.APIError) {
    const body = cause.error as { error?: { type?: string; message?: string } } | undefined
    const detail = body?.error !== undefined ? `${body.error.type ?? "error"}: ${body.error.message ?? ""}` : cause.message
    if (cause.status === undefined) {
      // an `error` event in a stream that had begun (overloaded mid-answer): its error type says whether to retry
      return scrub(new Model.ModelError({
        provider: PROVIDER,
        message: `the event stream sent an error: ${detail}`,
        retryable: RETRYABLE_TYPES.has(body?.error?.type ?? "")
      }))
    }
    const after = Http.retryAfterMs(cause.headers)
    return scrub(new Model.ModelError({
      provider: PROVIDER,
      message: `HTTP ${cause.status} ${detail}${Http.statusHint(endpoint, cause.status)}`,
      status: cause.status,
      retryable: shouldRetry(cause.headers) ?? RETRYABLE.has(cause.status),
      ...(after !== undefined ? { retryAfterMs: after } : {})
    }))
  }
  const message = cause instanceof Error ? cause.message : String(cause)
  return scrub(new Model.ModelError({ provider: PROVIDER, message, retryable: false }))
}

/** The body of a 200 as a Messages API response, or a `ModelError` saying what came back instead. */
const parseMessage = (endpoint: Http.Endpoint, response: Response, body: string): Sdk.Message => {
  const type = response.headers.get("content-type")
  let json: unknown
  try {
    json = JSON.parse(body)
  } catch {
    throw Http.unexpectedBody(endpoint, response.url, type, body)
  }
  const m = json as Partial<Sdk.Message> | null
  if (m === null || typeof m !== "object" || !Array.isArray(m.content)) {
    throw Http.unexpectedBody(endpoint, response.url, type, body, "JSON without a content list")
  }
  return m as Sdk.Message
}

const cached = { type: "ephemeral" } as const

const toParam = (block: Model.ContentBlock): Sdk.ContentBlockParam => {
  switch (block.type) {
    case "text":
      return { type: "text", text: block.text }
    case "tool_use":
      return { type: "tool_use", id: block.id, name: block.name, input: block.input }
    case "tool_result":
      return { type: "tool_result", tool_use_id: block.toolUseId, content: block.content, ...(block.isError ? { is_error: true } : {}) }
    case "thinking":
      return { type: "thinking", thinking: block.thinking, signature: block.signature }
    case "server":
      return block.raw as Sdk.ContentBlockParam
  }
}

const fromBlock = (block: Sdk.ContentBlock): Model.ContentBlock => {
  switch (block.type) {
    case "text":
      return { type: "text", text: block.text }
    case "tool_use":
      return { type: "tool_use", id: block.id, name: block.name, input: block.input }
    case "thinking":
      return { type: "thinking", thinking: block.thinking, signature: block.signature }
    default: {
      // Server tool calls/results and redacted thinking go back verbatim; drop response-only fields.
      const { citations: _citations, ...raw } = block as unknown as Record<string, unknown>
      return { type: "server", raw }
    }
  }
}

/** The request body: the stable prefix (system, tools, first user turn) marked for caching. */
const toParams = (model: string, request: Model.Request): Sdk.MessageCreateParamsNonStreaming => {
  const tools: Array<Sdk.ToolUnion> = (request.tools ?? []).map((t, i, all) => ({
    name: t.name,
    description: t.description,
    input_schema: t.inputSchema as Sdk.Tool.InputSchema,
    ...(i === all.length - 1 ? { cache_control: cached } : {})
  }))
  if (request.webSearch !== undefined) {
    tools.push({ type: "web_search_20250305", name: "web_search", max_uses: request.webSearch.maxUses })
  }
  const messages = request.messages.map((m, i): Sdk.MessageParam => {
    const content = m.content.map(toParam)
    if (i === 0 && m.role === "user" && content.length > 0) {
      const last = content[content.length - 1]!
      if (last.type === "text" || last.type === "tool_result") content[content.length - 1] = { ...last, cache_control: cached }
    }
    return { role: m.role, content }
  })
  // Forced tool choice is incompatible with extended thinking: fall back to auto then.
  const choice = request.toolChoice
  const toolChoice: Sdk.ToolChoice | undefined = choice === undefined ? undefined
    : request.thinking !== undefined && (choice.type === "any" || choice.type === "tool") ? { type: "auto" }
    : choice
  return {
    model,
    max_tokens: request.thinking !== undefined ? request.maxTokens + request.thinking.budgetTokens : request.maxTokens,
    system: [{ type: "text", text: request.system, cache_control: cached }],
    messages,
    ...(tools.length > 0 ? { tools } : {}),
    ...(toolChoice !== undefined && tools.length > 0 ? { tool_choice: toolChoice } : {}),
    ...(request.thinking !== undefined ? { thinking: { type: "enabled", budget_tokens: request.thinking.budgetTokens } } : {})
  }
}

/** Web searches a usage reports (billed apart from tokens), if any. */
const searches = (u: Partial<Sdk.Usage> | Sdk.MessageDeltaUsage | undefined): { webSearches?: number } => {
  const n = u?.server_tool_use?.web_search_requests ?? 0
  return n > 0 ? { webSearches: n } : {}
}

const toUsage = (u: Partial<Sdk.Usage> | Sdk.MessageDeltaUsage | undefined): Model.Usage => ({
  inputTokens: u?.input_tokens ?? 0,
  outputTokens: u?.output_tokens ?? 0,
  cacheReadTokens: u?.cache_read_input_tokens ?? 0,
  cacheWriteTokens: u?.cache_creation_input_tokens ?? 0,
  ...searches(u)
})

/**
 * Folds SSE events into our stream events and, at the end, the whole response; `billed` is the
 * usage the server has reported so far (none before `message_start`), with the output generated
 * since its last count (text, thinking and tool input, which a cut stream's last `message_delta`
 * never counted) estimated from its characters, and marked so. `whole` is the response once the
 * `message_delta` with its stop reason came after every content block's end, `message_stop` or not.
 */
const accumulator = (model: string) => {
  const blocks: Array<Record<string, unknown>> = []
  const json: Array<string> = []
  let usage: Model.Usage = { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0 }
  let started = false
  let stopReason = "end_turn"
  let name = model
  let cutInput: unknown
  // content blocks started and not yet stopped, and whether the message_delta that ends the message came
  let open = 0
  let stopped = false
  // the tokens generated since the server last counted the output, estimated from their characters (Model.tokenWeight):
  // one weigher a content block (each its own text), summed
  let uncounted: Array<Model.TokenWeigher> = []
  const weighed = (index: number) => (uncounted[index] ??= new Model.TokenWeigher())
  const uncountedWeight = () => uncounted.reduce((sum, w) => sum + w.weight, 0)
  const step = (event: Sdk.RawMessageStreamEvent): ReadonlyArray<Model.StreamEvent> => {
    switch (event.type) {
      case "message_start":
        name = event.message.model
        usage = toUsage(event.message.usage)
        started = true
        return []
      case "content_block_start":
        blocks[event.index] = { ...event.content_block }
        json[event.index] = ""
        open++
        return []
      case "content_block_delta": {
        const block = blocks[event.index]!
        const d = event.delta
        if (d.type === "text_delta") {
          weighed(event.index).add(d.text)
          block["text"] = `${block["text"] ?? ""}${d.text}`
          return [{ _tag: "TextDelta", index: event.index, text: d.text }]
        }
        if (d.type === "input_json_delta") {
          weighed(event.index).add(d.partial_json)
          json[event.index] += d.partial_json
          return [{ _tag: "ToolInputDelta", index: event.index, partialJson: d.partial_json }]
        }
        if (d.type === "thinking_delta") {
          weighed(event.index).add(d.thinking)
          block["thinking"] = `${block["thinking"] ?? ""}${d.thinking}`
        }
        if (d.type === "signature_delta") block["signature"] = d.signature
        return []
      }
      case "content_block_stop": {
        const block = blocks[event.index]!
        open--
        const raw = json[event.index] ?? ""
        if (raw.length > 0) {
          try {
            block["input"] = JSON.parse(raw)
          } catch (cause) {
            // the last call, cut off at max_tokens (message_stop checks that its stop reason says so): the API
            // takes back only an object
            if (event.index !== blocks.length - 1) throw cause
            block["input"] = {}
            cutInput = cause
          }
        }
        return []
      }
      case "message_delta": {
        uncounted = []
        const next = toUsage(event.usage)
        usage = {
          inputTokens: event.usage.input_tokens ?? usage.inputTokens,
          outputTokens: next.outputTokens,
          cacheReadTokens: event.usage.cache_read_input_tokens ?? usage.cacheReadTokens,
          cacheWriteTokens: event.usage.cache_creation_input_tokens ?? usage.cacheWriteTokens,
          ...(event.usage.server_tool_use != null ? searches(event.usage) : usage.webSearches !== undefined ? { webSearches: usage.webSearches } : {})
        }
        if (event.delta.stop_reason != null) {
          stopReason = event.delta.stop_reason
          stopped = open === 0
        }
        return []
      }
      case "message_stop":
        if (cutInput !== undefined && stopReason !== "max_tokens") throw cutInput
        return [done()]
      default:
        // the API may add event types: one this adapter does not know carries nothing it needs
        return []
    }
  }
  const done = (): Model.StreamEvent => ({
    _tag: "Done",
    response: { model: name, content: blocks.map((b) => fromBlock(b as unknown as Sdk.ContentBlock)), stopReason, usage }
  })
  // the message's stop reason and final usage said, its blocks all ended: only message_stop, which carries nothing, is missing
  const complete = (): boolean => started && stopped && (cutInput === undefined || stopReason === "max_tokens")
  const whole = (): Model.StreamEvent | undefined => (complete() ? done() : undefined)
  const billed = (): Model.BilledUsage | undefined =>
    !started ? undefined
      : uncountedWeight() === 0 ? usage
      : { ...usage, outputTokens: usage.outputTokens + Math.ceil(uncountedWeight()), estimated: true }
  return { step, billed, complete, whole }
}

/**
 * A Claude model from explicit options. The SDK is loaded, and its client made, on the first call.
 * A `timeoutMs` or `endGraceMs` that cannot be used (negative, NaN, infinite, or longer than Node's
 * timers keep) gives a model whose every call, `probe` and `probeTurn` included, fails at once with a
 * `ModelError` that is not retryable, names the option (`option: "timeoutMs"`) and says what it takes;
 * nothing is sent. (`make` stays a plain function: the error comes where a call's errors come.)
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import { AnthropicModel } from "@trex/agents"
 * const model = AnthropicModel.make({ apiKey: Redacted.make("sk-..."), model: "claude-sonnet-5-5" })
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = (options: Options): Model.ModelShape => {
  const model = options.model ?? DEFAULT_MODEL
  const unusable = Http.badTimings(PROVIDER, options)
  if (unusable !== undefined) return Http.refusingModel(PROVIDER, model, unusable)
  const baseURL = baseUrlOf(options.baseURL)
  // made on the first call, once (the SDK loaded then): a model that is never called loads nothing
  let made: Promise<Anthropic> | undefined
  const client = (): Promise<Anthropic> =>
    (made ??= loadSdk().then((Sdk) =>
      new Sdk({ apiKey: Redacted.value(options.apiKey), maxRetries: 0, timeout: options.timeoutMs ?? 600_000, baseURL })
    ).catch((cause: unknown) => {
      made = undefined
      throw cause
    }))
  const endpoint: Http.Endpoint = {
    provider: PROVIDER,
    baseURL,
    baseUrlVar: "ANTHROPIC_BASE_URL",
    keyVar: "ANTHROPIC_API_KEY",
    expected: "a Messages API response"
  }
  const fail = toModelError(options.apiKey, endpoint)
  // The SDK's timeout covers the wait for the headers only: a body or an event stream that stalls after them
  // would be waited for without end.
  const timeoutMs = options.timeoutMs ?? 600_000
  const stalled = (what: string) => () =>
    new Model.ModelError({ provider: PROVIDER, message: `${what} from ${baseURL.replace(/\/+$/, "")}/v1/messages within ${timeoutMs} ms (timeoutMs)`, retryable: true })
  /**
   * The key's permission to send the model messages, which the model's description does not show (a
   * workspace may be barred from a model the API serves), asked of `POST /v1/messages/count_tokens`:
   * free, and refused as messages are. Only its refusal of the key or the permission (401, 403) fails
   * the probe; any other answer (a gateway that does not serve it, a busy API) leaves it to the run's
   * first call, and says so (`callUnchecked`).
   */
  const mayCall = (probed: Model.Probed): Effect.Effect<Model.Probed, Model.ModelError> =>
    Effect.tryPromise({
      try: async (signal) =>
        (await client()).messages.countTokens({ model, messages: [{ role: "user", content: "trex check" }] }, { signal, timeout: Math.min(timeoutMs, 30_000) }),
      catch: fail
    }).pipe(
      Effect.as(probed),
      Effect.catch((e) =>
        e.status === 401 || e.status === 403
          ? Effect.fail(new Model.ModelError({ ...e, message: `the API serves ${model}, but the key may not send it messages (POST /v1/messages/count_tokens): ${e.message}` }))
          : Effect.succeed<Model.Probed>({
            ...probed,
            callUnchecked: `POST /v1/messages/count_tokens: ${e.status !== undefined ? `HTTP ${e.status}` : e.message}`
          })
      )
    )
  return Model.make({
    provider: PROVIDER,
    model,
    prices: options.prices ?? Pricing.forModel(model),
    // GET /v1/models/{model}: free, and refused as a call would be (a key, a model's name); then what messages
    // would say of the key's permission to use it
    probe: Effect.tryPromise({
      try: async (signal) => {
        const response = await (await client()).models.retrieve(model, {}, { signal, timeout: Math.min(timeoutMs, 30_000) }).asResponse()
        return { url: response.url, type: response.headers.get("content-type"), body: await response.text() }
      },
      catch: (cause) => cause
    }).pipe(
      Effect.flatMap(({ url, type, body }) => {
        let info: { id?: unknown; display_name?: unknown; max_input_tokens?: unknown } | null = null
        try {
          info = JSON.parse(body)
        } catch {
          // said below
        }
        if (info === null || typeof info !== "object" || typeof info.id !== "string") {
          return Effect.fail(Http.unexpectedBody({ ...endpoint, expected: "a model's description" }, url, type, body))
        }
        const window = typeof info.max_input_tokens === "number" ? `, a context window of ${info.max_input_tokens} tokens` : ""
        return Effect.succeed<Model.Probed>({ model: info.id, detail: `${typeof info.display_name === "string" ? info.display_name : info.id}${window}` })
      }),
      Effect.catch((cause) => {
        const e = fail(cause)
        // a gateway in front of the API (ANTHROPIC_BASE_URL) may serve messages and not the model list: its 404 is not the API's
        const apiSaid = sdk !== undefined && cause instanceof sdk.APIError && (cause.error as { error?: { type?: string } } | undefined)?.error?.type === "not_found_error"
        return e.status === 404 && !apiSaid
          ? Effect.succeed<Model.Probed>({ model, unchecked: `${baseURL} does not describe its models (GET /v1/models/${model}: HTTP 404)` })
          : Effect.fail(e.status === 404 ? new Model.ModelError({ ...e, message: `the API serves no model named ${model} (TREX_MODEL): ${e.message}` }) : e)
      }),
      Effect.flatMap((probed) => (probed.unchecked !== undefined ? Effect.succeed(probed) : mayCall(probed)))
    ),
    generate: (request, stopped) =>
      Effect.suspend(() => {
        const params = toParams(model, request)
        // the 200's headers came once the answer was made, and billed: a cut, a stall or an interrupt after them is charged an estimate
        let progress: Http.BodyProgress | undefined
        const billed = () => (progress !== undefined ? Http.cutAnswerUsage(JSON.stringify(params), progress) : undefined)
        // the client (the SDK loaded on a model's first call: seconds on a busy machine) before the attempt's timeout
        return Effect.tryPromise({ try: client, catch: fail }).pipe(Effect.flatMap((sdkClient) => Effect.tryPromise({
          // The body is read here, not by the SDK: a cut connection is then a connection error, and
          // a 200 that is not a message (an HTML page from a proxy) says what it was.
          try: async (signal) => {
            const response = await sdkClient.messages.create(params, { signal }).asResponse()
            progress = Http.noBody()
            const body = await Http.readText(response, progress).catch((cause) => Promise.reject(Http.withUsage(fail(cause), billed())))
            return parseMessage(endpoint, response, body)
          },
          catch: fail
        }).pipe(
          Effect.timeoutOrElse({ duration: timeoutMs, orElse: () => Effect.fail(Http.withUsage(stalled("no answer")(), billed())) }),
          // outside the timeout, whose own interrupt of the call is a failure, charged as one
          Effect.onInterrupt(() => Http.chargeStopped(() => false, billed, stopped))
        )))
      }).pipe(Effect.map((m): Model.Response => ({
        model: m.model ?? model,
        content: m.content.map(fromBlock),
        stopReason: m.stop_reason ?? "end_turn",
        usage: toUsage(m.usage)
      }))),
    stream: (request, stopped) =>
      Stream.unwrap(Effect.gen(function*() {
        const controller = yield* Effect.acquireRelease(
          Effect.sync(() => new AbortController()),
          (c) => Effect.sync(() => c.abort())
        )
        const { data: events, response } = yield* Effect.tryPromise({
          try: async () => (await client()).messages.create({ ...toParams(model, request), stream: true }, { signal: controller.signal }).withResponse(),
          catch: fail
        })
        const type = response.headers.get("content-type")
        if (!/text\/event-stream/i.test(type ?? "")) {
          const body = yield* Effect.tryPromise({ try: () => response.text(), catch: fail })
          return yield* Effect.fail(fail(Http.unexpectedBody({ ...endpoint, expected: "an event stream" }, response.url, type, body)))
        }
        const { billed, complete, step, whole } = accumulator(model)
        let done = false
        let failed = false
        // stopped by its consumer after message_start, before it ended or failed: billed all the same
        yield* Effect.addFinalizer(() => Http.chargeStopped(() => done || failed, billed, stopped))
        const ended = (e: Model.ModelError): Stream.Stream<Model.StreamEvent, Model.ModelError> => {
          const answer = whole()
          if (answer === undefined) return Stream.fail(e)
          done = true
          return Stream.make(answer)
        }
        // once the answer is whole, what may follow (message_stop) is waited for endGraceMs, not timeoutMs: then it is taken as on a cut
        const grace = Math.min(options.endGraceMs ?? Http.END_GRACE_MS, timeoutMs)
        const paced = Http.paced(events, () => (complete() ? grace : Infinity), () =>
          new Model.ModelError({ provider: PROVIDER, message: `no message_stop within ${grace} ms of message_delta`, retryable: false }))
        return Stream.fromAsyncIterable(paced, fail).pipe(
          Stream.timeoutOrElse({ duration: timeoutMs, orElse: () => Stream.fail(stalled("no event")()) }),
          Stream.flatMap((e) => {
            try {
              const out = step(e)
              if (out.some((x) => x._tag === "Done")) done = true
              return Stream.fromIterable(out)
            } catch (cause) {
              return Stream.fail(fail(new Error(`malformed stream event ${e.type}: ${Http.describeCause(cause)}`)))
            }
          }),
          // The message_delta says the answer is whole (its stop reason and final usage, every block ended): a
          // cut, a stall or an error after it loses only message_stop, which carries nothing, and the answer is
          // taken, charged the usage that message_delta said.
          Stream.catch((e) => (done ? Stream.empty : ended(e))),
          // A stream ends with its whole response or fails: never quietly with part of it.
          Stream.concat(Stream.suspend(() =>
            done ? Stream.empty : ended(new Model.ModelError({
              provider: PROVIDER,
              message: `the event stream from ${response.url} ended before message_stop: the response is incomplete`,
              retryable: true
            }))
          )),
          // cut, stalled or failed after message_start: its input tokens (and the output its message_delta said) were billed
          Stream.mapError((e) => {
            failed = true
            const usage = billed()
            return usage === undefined ? e : new Model.ModelError({ ...e, message: e.message, usage })
          })
        )
      }))
  }, options.retry)
}

/** A layer providing {@link Model.Model} from explicit options. @since 0.1.0 @category layers */
export const layer = (options: Options): Layer.Layer<Model.Model> => Layer.sync(Model.Model, () => make(options))

/**
 * A layer from the environment: `ANTHROPIC_API_KEY` (required, redacted), `ANTHROPIC_BASE_URL`
 * and `TREX_MODEL` (default {@link DEFAULT_MODEL}).
 * @since 0.1.0 @category layers
 */
export const layerConfig = (options: Omit<Options, "apiKey" | "model" | "baseURL"> = {}) =>
  Layer.effect(
    Model.Model,
    Effect.gen(function*() {
      const apiKey = yield* Config.Redacted("ANTHROPIC_API_KEY")
      const baseURL = yield* Config.option(Config.String("ANTHROPIC_BASE_URL"))
      const model = yield* Config.String("TREX_MODEL").pipe(Config.withDefault(DEFAULT_MODEL))
      return make({ ...options, apiKey, model, ...(Option.isSome(baseURL) ? { baseURL: baseURL.value } : {}) })
    })
  )
