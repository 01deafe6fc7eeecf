/**
 * Local and hosted models behind an OpenAI-compatible chat-completions endpoint (vLLM,
 * Ollama, llama.cpp's server, LM Studio...): messages, function tools, SSE streaming and
 * usage. Plain `fetch` with the fiber's abort signal — no HTTP layer to provide, and
 * interruption cancels the request. Retries and metering come from {@link Model.make}.
 *
 * @since 0.1.0
 */
import { Config, Effect, Layer, Option, Redacted, Stream } from "effect"
import * as Http from "../internal/modelHttp.ts"
import * as Model from "./Model.ts"
import * as Pricing from "./Pricing.ts"

/** @since 0.1.0 @category models */
export interface Options {
  /** The API root, e.g. `http://localhost:8000/v1` (vLLM) or `http://localhost:11434/v1` (Ollama). */
  readonly baseURL: string
  readonly model: string
  /** Sent as a bearer token when set (most local servers need none). */
  readonly apiKey?: Redacted.Redacted<string>
  /** Default {@link Pricing.free}. */
  readonly prices?: Pricing.Prices
  readonly retry?: Model.RetryOptions
  /**
   * Per-attempt timeout in milliseconds (default 10 minutes). A stream whose choice has its
   * `finish_reason` (the answer whole) waits `endGraceMs` at most for its usage chunk and `data: [DONE]`,
   * then gives the answer (its usage estimated if none came). Above 0 and at most 2^31 - 1 (about 24.8
   * days, the longest wait Node's timers keep, `Model.MAX_TIMEOUT_MS`): see {@link make} for a value that is not.
   */
  readonly timeoutMs?: number
  /**
   * Milliseconds a stream whose choice has its `finish_reason` (the answer whole) waits for what may
   * follow, its usage chunk and `data: [DONE]`, before it gives the answer, as on a cut (default 2000,
   * `END_GRACE_MS`; at most `timeoutMs`). Servers send them at once; raise it behind a proxy that holds
   * a stream's last chunks back for longer, whose usage would otherwise be estimated. From 0 (the
   * answer taken as soon as it is whole) to 2^31 - 1: see {@link make} for a value that is not.
   */
  readonly endGraceMs?: number
}

/** The default {@link Options.endGraceMs}: 2 seconds. @since 0.1.0 @category models */
export const END_GRACE_MS = Http.END_GRACE_MS

const PROVIDER = "openai-compatible"
const RETRYABLE = new Set([408, 409, 429, 500, 502, 503, 504])

interface ToolCall {
  readonly id: string
  readonly function: { readonly name: string; readonly arguments: string }
}
interface ChatMessage {
  readonly content?: string | null
  readonly tool_calls?: ReadonlyArray<ToolCall>
}
interface ChatUsage {
  readonly prompt_tokens?: number
  readonly completion_tokens?: number
  readonly prompt_tokens_details?: { readonly cached_tokens?: number } | null
}

const toMessages = (request: Model.Request): Array<Record<string, unknown>> => {
  const out: Array<Record<string, unknown>> = [{ role: "system", content: request.system }]
  for (const m of request.messages) {
    const text = m.content.flatMap((b) => (b.type === "text" ? [b.text] : [])).join("\n")
    if (m.role === "assistant") {
      const calls = m.content.flatMap((b) =>
        b.type === "tool_use" ? [{ id: b.id, type: "function", function: { name: b.name, arguments: JSON.stringify(b.input) } }] : []
      )
      out.push({ role: "assistant", content: text.length > 0 ? text : null, ...(calls.length > 0 ? { tool_calls: calls } : {}) })
      continue
    }
    for (const b of m.content) {
      if (b.type === "tool_result") out.push({ role: "tool", tool_call_id: b.toolUseId, content: b.isError ? `ERROR: ${b.content}` : b.content })
    }
    if (text.length > 0) out.push({ role: "user", content: text })
  }
  return out
}

const toBody = (model: string, request: Model.Request, stream: boolean) => {
  const choice = request.toolChoice
  const tools = (request.tools ?? []).map((t) => ({ type: "function", function: { name: t.name, description: t.description, parameters: t.inputSchema } }))
  return {
    model,
    messages: toMessages(request),
    max_tokens: request.maxTokens,
    ...(tools.length > 0 ? { tools } : {}),
    ...(tools.length > 0 && choice !== undefined
      ? { tool_choice: choice.type === "tool" ? { type: "function", function: { name: choice.name } } : choice.type === "any" ? "required" : choice.type }
      : {}),
    ...(stream ? { stream: true, stream_options: { include_usage: true } } : {})
  }
}

const parseArguments = (raw: string): unknown => {
  try {
    return raw.length === 0 ? {} : JSON.parse(raw)
  } catch {
    // Left as text: decoding fails and the structured-output repair loop reports it.
    return raw
  }
}

// a content filter's stop is what Claude calls a refusal: the agents stop rather than ask again
const stopReason = (finish: string | null | undefined): string =>
  finish === "tool_calls" ? "tool_use" : finish === "length" ? "max_tokens" : finish === "content_filter" ? "refusal" : "end_turn"

const toUsage = (u: ChatUsage | undefined): Model.Usage => {
  const cached = u?.prompt_tokens_details?.cached_tokens ?? 0
  return { inputTokens: (u?.prompt_tokens ?? 0) - cached, outputTokens: u?.completion_tokens ?? 0, cacheReadTokens: cached, cacheWriteTokens: 0 }
}

const toContent = (message: ChatMessage): Array<Model.ContentBlock> => [
  ...(message.content ? [{ type: "text" as const, text: message.content }] : []),
  ...(message.tool_calls ?? []).map((c): Model.ContentBlock => ({ type: "tool_use", id: c.id, name: c.function.name, input: parseArguments(c.function.arguments) }))
]

/** Server-sent events' `data:` payloads from a response body. */
async function* sseData(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder()
  let buffer = ""
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true })
    let cut: number
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const event = buffer.slice(0, cut)
      buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "")
      const data = event.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n")
      if (data.length > 0) yield data
    }
  }
}

/**
 * A model on an OpenAI-compatible server. A `timeoutMs` or `endGraceMs` that cannot be used
 * (negative, NaN, infinite, or longer than Node's timers keep) gives a model whose every call,
 * `probe` and `probeTurn` included, fails at once with a `ModelError` that is not retryable, names
 * the option (`option: "timeoutMs"`) and says what it takes; nothing is sent.
 *
 * @example
 * ```ts
 * import { OpenAiModel } from "@trex/agents"
 * const model = OpenAiModel.make({ baseURL: "http://localhost:11434/v1", model: "qwen3:8b" })
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = (options: Options): Model.ModelShape => {
  const secret = options.apiKey === undefined ? "" : Redacted.value(options.apiKey)
  const scrub = (e: Model.ModelError): Model.ModelError =>
    secret.length > 0 && e.message.includes(secret) ? new Model.ModelError({ ...e, message: e.message.split(secret).join("[redacted]") }) : e
  const unusable = Http.badTimings(PROVIDER, options)
  if (unusable !== undefined) return Http.refusingModel(PROVIDER, options.model, unusable)
  const url = `${options.baseURL.replace(/\/+$/, "")}/chat/completions`
  const timeoutMs = options.timeoutMs ?? 600_000
  // AbortSignal.timeout takes whole milliseconds only (a fraction throws a RangeError)
  const abortAfter = (ms: number) => AbortSignal.timeout(Math.ceil(ms))
  const endpoint: Http.Endpoint = {
    provider: PROVIDER,
    baseURL: options.baseURL,
    baseUrlVar: "OPENAI_BASE_URL",
    keyVar: "OPENAI_API_KEY",
    expected: "a chat completion"
  }
  const fail = (e: unknown): Model.ModelError => {
    if (e instanceof Model.ModelError) return scrub(e)
    if (e instanceof Error && e.name === "TimeoutError") {
      return new Model.ModelError({ provider: PROVIDER, message: `no answer from ${url} within ${timeoutMs} ms`, retryable: true })
    }
    if (e instanceof Error && e.name === "AbortError") return new Model.ModelError({ provider: PROVIDER, message: "aborted", retryable: false })
    if (Http.isConnectionFailure(e)) return scrub(Http.connectionError(endpoint, e))
    return scrub(new Model.ModelError({ provider: PROVIDER, message: Http.describeCause(e), retryable: false }))
  }
  const post = async (body: string, signal: AbortSignal): Promise<Response> => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...(secret.length > 0 ? { authorization: `Bearer ${secret}` } : {}) },
      body,
      signal: AbortSignal.any([signal, abortAfter(timeoutMs)])
    })
    if (response.ok) return response
    const text = await response.text().catch(() => "")
    const after = Http.retryAfterMs(response.headers)
    throw new Model.ModelError({
      provider: PROVIDER,
      message: `HTTP ${response.status} ${text.slice(0, 500)}${Http.statusHint(endpoint, response.status)}`,
      status: response.status,
      retryable: RETRYABLE.has(response.status),
      ...(after !== undefined ? { retryAfterMs: after } : {})
    })
  }
  /** The body of a 200 as a chat completion, or a `ModelError` saying what came back instead. */
  const parseCompletion = (response: Response, body: string) => {
    const type = response.headers.get("content-type")
    let json: unknown
    try {
      json = JSON.parse(body)
    } catch {
      throw Http.unexpectedBody(endpoint, response.url || url, type, body)
    }
    const c = json as { model?: unknown; choices?: unknown; usage?: ChatUsage } | null
    const choice = c !== null && typeof c === "object" && Array.isArray(c.choices)
      ? c.choices[0] as { message?: ChatMessage; finish_reason?: string | null } | undefined
      : undefined
    if (choice?.message === undefined || choice.message === null || typeof choice.message !== "object") {
      throw Http.unexpectedBody(endpoint, response.url || url, type, body, "JSON without choices[0].message")
    }
    return { model: typeof c!.model === "string" ? c!.model : options.model, choice: { message: choice.message, finish: choice.finish_reason }, usage: c!.usage }
  }
  const modelsUrl = `${options.baseURL.replace(/\/+$/, "")}/models`
  return Model.make({
    provider: PROVIDER,
    model: options.model,
    prices: options.prices ?? Pricing.free,
    // GET /models (vLLM, Ollama, llama.cpp and OpenAI list what they serve): is TREX_MODEL among them?
    probe: Effect.tryPromise({
      try: async (signal) => {
        const response = await fetch(modelsUrl, {
          headers: secret.length > 0 ? { authorization: `Bearer ${secret}` } : {},
          signal: AbortSignal.any([signal, abortAfter(Math.min(timeoutMs, 30_000))])
        })
        const body = await response.text()
        if (response.status === 404 || response.status === 405) {
          return { unchecked: `${modelsUrl} answers HTTP ${response.status}: the server does not list its models` } as const
        }
        if (!response.ok) {
          throw new Model.ModelError({
            provider: PROVIDER,
            message: `HTTP ${response.status} ${body.slice(0, 500)}${Http.statusHint(endpoint, response.status)}`,
            status: response.status,
            retryable: RETRYABLE.has(response.status)
          })
        }
        let list: { data?: unknown } | null = null
        try {
          list = JSON.parse(body)
        } catch {
          // said below
        }
        const data = list !== null && typeof list === "object" && Array.isArray(list.data) ? list.data : undefined
        const ids = data?.flatMap((m: unknown) => (m !== null && typeof m === "object" && typeof (m as { id?: unknown }).id === "string" ? [(m as { id: string }).id] : []))
        if (ids === undefined) throw Http.unexpectedBody({ ...endpoint, expected: "a list of models" }, response.url || modelsUrl, response.headers.get("content-type"), body)
        return { ids } as const
      },
      catch: fail
    }).pipe(Effect.flatMap((answer): Effect.Effect<Model.Probed, Model.ModelError> => {
      if ("unchecked" in answer) return Effect.succeed({ model: options.model, unchecked: answer.unchecked })
      if (answer.ids.includes(options.model)) {
        return Effect.succeed({
          model: options.model,
          detail: `one of the ${answer.ids.length} model${answer.ids.length === 1 ? "" : "s"} it lists`,
          // a key may list the models and be refused chat completions (a restricted key, a proxy's per-model access)
          callUnchecked: "no free call of an OpenAI-compatible server shows it"
        })
      }
      const shown = answer.ids.slice(0, 8).join(", ") + (answer.ids.length > 8 ? `, and ${answer.ids.length - 8} more` : "")
      return Effect.fail(new Model.ModelError({
        provider: PROVIDER,
        message: `${options.baseURL} serves no model named ${options.model} (TREX_MODEL): ${answer.ids.length === 0 ? "it lists none" : `it serves ${shown}`}; set TREX_MODEL to the name it lists`,
        status: 404,
        retryable: false
      }))
    })),
    generate: (request, stopped) =>
      Effect.suspend(() => {
        const body = JSON.stringify(toBody(options.model, request, false))
        // the 200's headers came once the answer was made, and billed: a cut, a stall or an interrupt after them is charged an estimate
        let progress: Http.BodyProgress | undefined
        const billed = () => (progress !== undefined ? Http.cutAnswerUsage(body, progress) : undefined)
        return Effect.tryPromise({
          try: async (signal) => {
            const response = await post(body, signal)
            progress = Http.noBody()
            const text = await Http.readText(response, progress).catch((cause) => Promise.reject(Http.withUsage(fail(cause), billed())))
            const json = parseCompletion(response, text)
            return {
              model: json.model,
              content: toContent(json.choice.message),
              stopReason: stopReason(json.choice.finish),
              usage: toUsage(json.usage)
            } satisfies Model.Response
          },
          catch: fail
        }).pipe(Effect.onInterrupt(() => Http.chargeStopped(() => false, billed, stopped)))
      }),
    stream: (request, stopped) =>
      Stream.unwrap(Effect.gen(function*() {
        const controller = yield* Effect.acquireRelease(Effect.sync(() => new AbortController()), (c) => Effect.sync(() => c.abort()))
        const body = JSON.stringify(toBody(options.model, request, true))
        const response = yield* Effect.tryPromise({ try: () => post(body, controller.signal), catch: fail })
        const type = response.headers.get("content-type")
        if (!/text\/event-stream/i.test(type ?? "") || response.body === null) {
          const got = yield* Effect.tryPromise({ try: () => response.text(), catch: fail })
          return yield* Effect.fail(fail(Http.unexpectedBody({ ...endpoint, expected: "an event stream" }, response.url || url, type, got)))
        }
        let text = ""
        const calls: Array<{ id: string; name: string; args: string; weighed: { name: Model.TokenWeigher; args: Model.TokenWeigher } }> = []
        let finish: string | null | undefined
        let usage: ChatUsage | undefined
        let done = false
        let failed = false
        // what came before a cut, for what it was billed: the chunks, and the tokens of their text and tool calls, estimated (Model.tokenWeight)
        let chunks = 0
        // one weigher a text streamed: the content's, and each call's name and arguments (parallel calls' deltas interleave)
        const content = new Model.TokenWeigher()
        const generated = () => calls.reduce((sum, c) => sum + c.weighed.name.weight + c.weighed.args.weight, content.weight)
        /**
         * What the stream was billed for so far: its usage comes in its last chunk, so without one (a server
         * that sends it on every chunk, as vLLM can, has said) the input and what was generated are estimated
         * from the request body's characters and the generated text's.
         */
        const usageSoFar = (): Model.Usage =>
          usage !== undefined ? toUsage(usage)
            : { inputTokens: Model.estimatedTokens(body), outputTokens: Math.ceil(generated()), cacheReadTokens: 0, cacheWriteTokens: 0, estimated: true }
        // a stream cut, stalled, broken or stopped after its first chunk (the prompt was read by then); nothing before
        const billed = (): Model.BilledUsage | undefined => (chunks === 0 ? undefined : usageSoFar())
        // stopped by its consumer before it ended or failed: what it was billed for is recorded all the same
        yield* Effect.addFinalizer(() => Http.chargeStopped(() => done || failed, billed, stopped))
        const assembled = (): Model.StreamEvent => {
          done = true
          const message: ChatMessage = {
            content: text,
            tool_calls: calls.map((c) => ({ id: c.id, function: { name: c.name, arguments: c.args } }))
          }
          return { _tag: "Done", response: { model: options.model, content: toContent(message), stopReason: stopReason(finish), usage: usageSoFar() } }
        }
        const step = (data: string): ReadonlyArray<Model.StreamEvent> => {
          if (done) return []
          if (data === "[DONE]") return [assembled()]
          const chunk = JSON.parse(data) as {
            choices?: ReadonlyArray<{ delta?: { content?: string | null; tool_calls?: ReadonlyArray<{ index: number; id?: string; function?: { name?: string; arguments?: string } }> }; finish_reason?: string | null }>
            usage?: ChatUsage | null
          }
          chunks++
          if (chunk.usage) usage = chunk.usage
          const out: Array<Model.StreamEvent> = []
          for (const choice of chunk.choices ?? []) {
            if (choice.finish_reason) finish = choice.finish_reason
            if (choice.delta?.content) {
              content.add(choice.delta.content)
              text += choice.delta.content
              out.push({ _tag: "TextDelta", index: 0, text: choice.delta.content })
            }
            for (const d of choice.delta?.tool_calls ?? []) {
              const call = (calls[d.index] ??= { id: d.id ?? `call_${d.index}`, name: "", args: "", weighed: { name: new Model.TokenWeigher(), args: new Model.TokenWeigher() } })
              if (d.id) call.id = d.id
              if (d.function?.name) call.name += d.function.name
              call.weighed.name.add(d.function?.name ?? "")
              call.weighed.args.add(d.function?.arguments ?? "")
              if (d.function?.arguments) {
                call.args += d.function.arguments
                out.push({ _tag: "ToolInputDelta", index: d.index + 1, partialJson: d.function.arguments })
              }
            }
          }
          return out
        }
        // once the choice is finished, what may follow (the usage chunk, [DONE]) is waited for endGraceMs, not the
        // rest of timeoutMs: then the answer is taken as on a cut, its usage estimated if none came
        const grace = Math.min(options.endGraceMs ?? Http.END_GRACE_MS, timeoutMs)
        const finished = () => finish !== undefined && finish !== null
        const paced = Http.paced(sseData(response.body), () => (finished() ? grace : Infinity), () =>
          new Model.ModelError({ provider: PROVIDER, message: `no data: [DONE] within ${grace} ms of the finish_reason`, retryable: false }))
        return Stream.fromAsyncIterable(paced, fail).pipe(
          Stream.flatMap((d) => {
            try {
              return Stream.fromIterable(step(d))
            } catch (cause) {
              return Stream.fail(fail(new Error(`malformed stream chunk from ${url}: ${Http.describeCause(cause)}: ${JSON.stringify(Http.preview(d))}`)))
            }
          }),
          // The choice's finish_reason says the answer is whole (openai-node's final completion asks no more):
          // a cut, a stall or a bad chunk after it (the usage chunk that follows, or [DONE]) loses at most its
          // usage, which is then estimated (OpenAI: "if the stream is interrupted, you may not receive the
          // final usage chunk").
          Stream.catch((e) => (done ? Stream.empty : finished() ? Stream.make(assembled()) : Stream.fail(e))),
          // A stream ends with its whole response or fails. A server that finished the choice but sent
          // no `data: [DONE]` still gave the whole answer; one that stopped before that did not.
          Stream.concat(Stream.suspend(() =>
            done ? Stream.empty
              : finished() ? Stream.make(assembled())
              : Stream.fail(new Model.ModelError({
                provider: PROVIDER,
                message: `the event stream from ${url} ended before its finish_reason and data: [DONE]: the response is incomplete`,
                retryable: true
              }))
          )),
          Stream.mapError((e) => {
            failed = true
            return Http.withUsage(e, billed())
          })
        )
      }))
  }, options.retry)
}

/** A layer from explicit options. @since 0.1.0 @category layers */
export const layer = (options: Options): Layer.Layer<Model.Model> => Layer.sync(Model.Model, () => make(options))

/**
 * A layer from the environment: `OPENAI_BASE_URL` and `TREX_MODEL` (both required) and
 * `OPENAI_API_KEY` (optional, redacted).
 * @since 0.1.0 @category layers
 */
export const layerConfig = (options: Omit<Options, "baseURL" | "model" | "apiKey"> = {}) =>
  Layer.effect(
    Model.Model,
    Effect.gen(function*() {
      const baseURL = yield* Config.String("OPENAI_BASE_URL")
      const model = yield* Config.String("TREX_MODEL")
      const apiKey = yield* Config.option(Config.Redacted("OPENAI_API_KEY"))
      return make({ ...options, baseURL, model, ...(Option.isSome(apiKey) ? { apiKey: apiKey.value } : {}) })
    })
  )
