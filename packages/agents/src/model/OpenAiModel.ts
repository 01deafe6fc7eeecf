/**
 * Local and hosted models behind an OpenAI-compatible chat-completions endpoint (vLLM,
 * Ollama, llama.cpp's server, LM Studio...): messages, function tools, SSE streaming and
 * usage. Plain `fetch` with the fiber's abort signal — no HTTP layer to provide, and
 * interruption cancels the request. Retries and metering come from {@link Model.make}.
 *
 * @since 0.1.0
 */
import { Config, Effect, Layer, Option, Redacted, Stream } from "effect"
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
  /** Per-attempt timeout in milliseconds (default 10 minutes). */
  readonly timeoutMs?: number
}

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

const stopReason = (finish: string | null | undefined): string =>
  finish === "tool_calls" ? "tool_use" : finish === "length" ? "max_tokens" : "end_turn"

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
 * A model on an OpenAI-compatible server.
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
  const scrub = (s: string) => (secret.length > 0 ? s.split(secret).join("[redacted]") : s)
  const url = `${options.baseURL.replace(/\/+$/, "")}/chat/completions`
  const fail = (e: unknown): Model.ModelError =>
    e instanceof Model.ModelError ? e : new Model.ModelError({
      provider: PROVIDER,
      message: scrub(`connection error: ${e instanceof Error ? e.message : String(e)}`),
      retryable: !(e instanceof Error && e.name === "AbortError")
    })
  const post = async (body: unknown, signal: AbortSignal): Promise<Response> => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...(secret.length > 0 ? { authorization: `Bearer ${secret}` } : {}) },
      body: JSON.stringify(body),
      signal: AbortSignal.any([signal, AbortSignal.timeout(options.timeoutMs ?? 600_000)])
    })
    if (response.ok) return response
    const text = await response.text().catch(() => "")
    const after = Number(response.headers.get("retry-after"))
    throw new Model.ModelError({
      provider: PROVIDER,
      message: scrub(`HTTP ${response.status} ${text.slice(0, 500)}`),
      status: response.status,
      retryable: RETRYABLE.has(response.status),
      ...(Number.isFinite(after) && after > 0 ? { retryAfterMs: after * 1000 } : {})
    })
  }
  return Model.make({
    provider: PROVIDER,
    model: options.model,
    prices: options.prices ?? Pricing.free,
    generate: (request) =>
      Effect.tryPromise({
        try: async (signal) => {
          const json = await (await post(toBody(options.model, request, false), signal)).json() as {
            model?: string
            choices: ReadonlyArray<{ message: ChatMessage; finish_reason?: string | null }>
            usage?: ChatUsage
          }
          const choice = json.choices[0]
          if (choice === undefined) throw new Model.ModelError({ provider: PROVIDER, message: "the response has no choices", retryable: false })
          return {
            model: json.model ?? options.model,
            content: toContent(choice.message),
            stopReason: stopReason(choice.finish_reason),
            usage: toUsage(json.usage)
          } satisfies Model.Response
        },
        catch: fail
      }),
    stream: (request) =>
      Stream.unwrap(Effect.gen(function*() {
        const controller = yield* Effect.acquireRelease(Effect.sync(() => new AbortController()), (c) => Effect.sync(() => c.abort()))
        const response = yield* Effect.tryPromise({ try: () => post(toBody(options.model, request, true), controller.signal), catch: fail })
        let text = ""
        const calls: Array<{ id: string; name: string; args: string }> = []
        let finish: string | null | undefined
        let usage: ChatUsage | undefined
        const step = (data: string): ReadonlyArray<Model.StreamEvent> => {
          if (data === "[DONE]") {
            const message: ChatMessage = {
              content: text,
              tool_calls: calls.map((c) => ({ id: c.id, function: { name: c.name, arguments: c.args } }))
            }
            return [{ _tag: "Done", response: { model: options.model, content: toContent(message), stopReason: stopReason(finish), usage: toUsage(usage) } }]
          }
          const chunk = JSON.parse(data) as {
            choices?: ReadonlyArray<{ delta?: { content?: string | null; tool_calls?: ReadonlyArray<{ index: number; id?: string; function?: { name?: string; arguments?: string } }> }; finish_reason?: string | null }>
            usage?: ChatUsage | null
          }
          if (chunk.usage) usage = chunk.usage
          const out: Array<Model.StreamEvent> = []
          for (const choice of chunk.choices ?? []) {
            if (choice.finish_reason) finish = choice.finish_reason
            if (choice.delta?.content) {
              text += choice.delta.content
              out.push({ _tag: "TextDelta", index: 0, text: choice.delta.content })
            }
            for (const d of choice.delta?.tool_calls ?? []) {
              const call = (calls[d.index] ??= { id: d.id ?? `call_${d.index}`, name: "", args: "" })
              if (d.id) call.id = d.id
              if (d.function?.name) call.name += d.function.name
              if (d.function?.arguments) {
                call.args += d.function.arguments
                out.push({ _tag: "ToolInputDelta", index: d.index + 1, partialJson: d.function.arguments })
              }
            }
          }
          return out
        }
        return Stream.fromAsyncIterable(sseData(response.body!), fail).pipe(Stream.flatMap((d) => Stream.fromIterable(step(d))))
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
