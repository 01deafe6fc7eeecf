/**
 * The model layer the LLM agents are written against: a small `Model` service with
 * `generate` (one Messages-style turn) and `stream` (the same turn as deltas), implemented by
 * {@link AnthropicModel} (Claude over `@anthropic-ai/sdk`) and {@link OpenAiModel} (any
 * OpenAI-compatible server: vLLM, Ollama, llama.cpp). {@link make} adds what every adapter
 * needs: retries with a jittered, capped exponential `Schedule` that honours `retry-after` (up to
 * `maxRetryAfter`), and token usage reported to core's `CostMeter`, a failed attempt's and a
 * stopped call's as well.
 *
 * @since 0.1.0
 */
import { CostMeter } from "@trex/core"
import { Cause, Context, Duration, Effect, Random, Schedule, Schema, Stream } from "effect"
import * as Pricing from "./Pricing.ts"

/**
 * A model call failed. `retryable` is true for rate limits, overload, server errors and lost
 * connections; `status` is the HTTP status when there was one. Messages never carry secrets.
 * @since 0.1.0 @category errors
 */
export class ModelError extends Schema.TaggedError<ModelError>()("ModelError", {
  provider: Schema.String,
  message: Schema.String,
  retryable: Schema.Boolean,
  status: Schema.optionalKey(Schema.Int),
  /** The server's `retry-after`, in milliseconds. */
  retryAfterMs: Schema.optionalKey(Schema.Finite),
  /**
   * The adapter's option that cannot be used (`timeoutMs`, `endGraceMs`: a negative, NaN or infinite
   * number), when that is what failed: every call with the same options fails alike, at once, and
   * sends nothing (`AnthropicModel.make` and `OpenAiModel.make` check them and give a model that does so).
   */
  option: Schema.optionalKey(Schema.String),
  /**
   * What the failed attempt was billed for before it failed: as the server said (a Claude stream cut
   * or stalled after `message_start`: its input tokens, and the output tokens its last `message_delta`
   * reported), or, with `estimated`, counted from characters where the server said nothing before
   * the cut (an OpenAI-compatible stream, whose usage comes only in its last chunk; a non-streamed
   * answer cut while its body was read): see `estimatedTokens`. {@link make} records it with the
   * `CostMeter`, as it does a response's usage, the estimate marked in the record's reason.
   */
  usage: Schema.optionalKey(Schema.Struct({
    inputTokens: Schema.Finite,
    outputTokens: Schema.Finite,
    cacheReadTokens: Schema.Finite,
    cacheWriteTokens: Schema.Finite,
    webSearches: Schema.optionalKey(Schema.Finite),
    /** The tokens are estimated from characters (`estimatedTokens`), not counted by the server. */
    estimated: Schema.optionalKey(Schema.Boolean)
  }))
}) {}

/**
 * The longest `timeoutMs` and `endGraceMs` the model adapters ({@link AnthropicModel}, {@link OpenAiModel})
 * take, in milliseconds: 2^31 - 1, about 24.8 days, the longest wait Node's timers keep (`setTimeout`,
 * `AbortSignal.timeout`, the SDK's timeout; a longer one fires at once, after 1 ms). A model made with a
 * longer one refuses every call (a {@link ModelError} with its `option`). Check a user's setting against it
 * before a model is made, as `trex run --model-timeout` does (at most 2147483 seconds).
 *
 * @example
 * ```ts
 * import { Model } from "@trex/agents"
 * const seconds = 3600
 * const usable = seconds * 1000 <= Model.MAX_TIMEOUT_MS // true
 * ```
 * @since 0.1.0 @category constants
 */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1

/** One block of a message. `server` blocks (web search calls and results) pass back verbatim. @since 0.1.0 @category models */
export type ContentBlock =
  | { readonly type: "text"; readonly text: string }
  | { readonly type: "tool_use"; readonly id: string; readonly name: string; readonly input: unknown }
  | { readonly type: "tool_result"; readonly toolUseId: string; readonly content: string; readonly isError?: boolean }
  | { readonly type: "thinking"; readonly thinking: string; readonly signature: string }
  | { readonly type: "server"; readonly raw: unknown }

/** @since 0.1.0 @category models */
export interface Message {
  readonly role: "user" | "assistant"
  readonly content: ReadonlyArray<ContentBlock>
}

/** A client tool: its name, what it does, and the JSON Schema of its input. @since 0.1.0 @category models */
export interface ToolDefinition {
  readonly name: string
  readonly description: string
  readonly inputSchema: Record<string, unknown>
}

/** @since 0.1.0 @category models */
export type ToolChoice =
  | { readonly type: "auto" }
  | { readonly type: "any" }
  | { readonly type: "none" }
  | { readonly type: "tool"; readonly name: string }

/**
 * One model turn. `system`, the tools and the first user message are the stable prefix that
 * adapters mark for prompt caching. `reason` labels the cost record.
 * @since 0.1.0 @category models
 */
export interface Request {
  readonly system: string
  readonly messages: ReadonlyArray<Message>
  readonly tools?: ReadonlyArray<ToolDefinition>
  readonly toolChoice?: ToolChoice
  readonly maxTokens: number
  /** Extended thinking budget (Anthropic models that support it; ignored elsewhere). */
  readonly thinking?: { readonly budgetTokens: number }
  /** Anthropic server-side web search, with a cap on searches per turn. */
  readonly webSearch?: { readonly maxUses: number }
  readonly reason?: string
}

/** Token usage of one call; cache fields are 0 for providers without prompt caching. @since 0.1.0 @category models */
export interface Usage {
  readonly inputTokens: number
  readonly outputTokens: number
  readonly cacheReadTokens: number
  readonly cacheWriteTokens: number
  /** Server-side web searches the call made (Anthropic bills each, apart from tokens); absent when none. */
  readonly webSearches?: number
  /**
   * The tokens are estimated from characters ({@link estimatedTokens}), not counted by the server: a
   * whole answer whose usage did not arrive (an OpenAI-compatible stream cut after its `finish_reason`,
   * before the usage chunk that follows it). Absent when the server counted them.
   */
  readonly estimated?: boolean
}

/** @since 0.1.0 @category models */
export interface Response {
  readonly model: string
  readonly content: ReadonlyArray<ContentBlock>
  /** `end_turn`, `tool_use`, `max_tokens`, `stop_sequence`, `pause_turn`, `refusal`. */
  readonly stopReason: string
  readonly usage: Usage
}

/** What `stream` emits: deltas as they arrive, then the whole response once. @since 0.1.0 @category models */
export type StreamEvent =
  | { readonly _tag: "TextDelta"; readonly index: number; readonly text: string }
  | { readonly _tag: "ToolInputDelta"; readonly index: number; readonly partialJson: string }
  | { readonly _tag: "Done"; readonly response: Response }

/**
 * What the API said of the model when asked without a call ({@link ModelShape.probe}): the name it
 * serves it under, and a line on it (its display name, its context window).
 * @since 0.1.0 @category models
 */
export interface Probed {
  readonly model: string
  readonly detail?: string
  /** Why the key and the model could not be checked this way (a server that does not describe its models); absent when they were. */
  readonly unchecked?: string
  /**
   * Why the probe could not tell, free, whether the key may call the model (an OpenAI-compatible
   * server has no free call that shows it; a gateway that does not serve Claude's `count_tokens`):
   * {@link ModelShape.probeTurn} can. Absent when it could.
   */
  readonly callUnchecked?: string
}

/**
 * The members of a model. `probe`, when an adapter has it, asks the API whether the key is taken
 * and the model is served, without a call that costs anything (`trex check` asks it): one attempt,
 * failing with the API's refusal (a 401 for a key, a 404 for a model's name) or why it did not answer.
 * @since 0.1.0 @category models
 */
export interface ModelShape {
  readonly provider: string
  readonly model: string
  readonly generate: (request: Request) => Effect.Effect<Response, ModelError>
  readonly stream: (request: Request) => Stream.Stream<StreamEvent, ModelError>
  readonly probe?: Effect.Effect<Probed, ModelError>
  /**
   * One attempt of a one-token turn ({@link PROBE_TURN}): billed as any call (a few input tokens and
   * one output token), and recorded with the `CostMeter` in context as `<provider>:trex check`. It
   * shows what no free call does: that the key may call the model (an OpenAI-compatible server's
   * refusal of chat completions alone, a gateway that does not serve `count_tokens`). `trex check
   * --call-model` asks it; `trex check` alone does not.
   */
  readonly probeTurn?: Effect.Effect<Response, ModelError>
}

/**
 * The turn {@link ModelShape.probeTurn} asks: a one-word question, at most one token back.
 * @since 0.1.0 @category constants
 */
export const PROBE_TURN: Request = {
  system: "Reply with one word.",
  messages: [{ role: "user", content: [{ type: "text", text: "Ready?" }] }],
  maxTokens: 1,
  reason: "trex check"
}

/**
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Model } from "@trex/agents"
 * const hello = Effect.gen(function*() {
 *   const model = yield* Model.Model
 *   return yield* model.generate({ system: "Be brief.", messages: [{ role: "user", content: [{ type: "text", text: "Hi" }] }], maxTokens: 64 })
 * })
 * ```
 * @since 0.1.0 @category services
 */
export class Model extends Context.Service<Model, ModelShape>()("@trex/agents/Model") {}

/** How an adapter retries retryable failures. @since 0.1.0 @category models */
export interface RetryOptions {
  /** Retries after the first attempt (default 4). */
  readonly maxRetries?: number
  /** First delay (default 1 second), doubled each retry, jittered. */
  readonly baseDelay?: Duration.Input
  /** No single wait exceeds this, except a longer `retry-after` (default 30 seconds). */
  readonly maxDelay?: Duration.Input
  /**
   * The longest `retry-after` (or `retry-after-ms`) waited out (default 60 seconds, the longest a
   * per-minute rate limit asks for). A server that asks for a longer wait (a spent daily quota, say)
   * fails the call at once, not retryable, saying how long it asked for: no run sleeps for hours unseen.
   */
  readonly maxRetryAfter?: Duration.Input
}

const maxRetryAfterOf = (options: RetryOptions): number => Duration.toMillis(Duration.fromInputUnsafe(options.maxRetryAfter ?? "60 seconds"))

/**
 * The retry policy as a `Schedule` over failures: stops at once on a non-retryable error,
 * otherwise waits `baseDelay * 2^(attempt-1)`, jittered to 50–150%, capped at `maxDelay`, and
 * never less than the server's `retry-after`; at most `maxRetries` retries. It stops too on a
 * `retry-after` longer than `maxRetryAfter` ({@link make} then fails with an error that says so).
 * @since 0.1.0 @category retries
 */
export const retrySchedule = (options: RetryOptions = {}): Schedule.Schedule<Duration.Duration, ModelError> => {
  const base = Duration.toMillis(Duration.fromInputUnsafe(options.baseDelay ?? "1 second"))
  const cap = Duration.toMillis(Duration.fromInputUnsafe(options.maxDelay ?? "30 seconds"))
  const maxRetries = options.maxRetries ?? 4
  const maxWait = maxRetryAfterOf(options)
  return Schedule.fromStepWithMetadata(Effect.succeed((meta: Schedule.InputMetadata<ModelError>) => {
    if (!meta.input.retryable || meta.attempt > maxRetries || (meta.input.retryAfterMs ?? 0) > maxWait) return Cause.done(Duration.zero)
    return Effect.map(Random.next, (r) => {
      const backoff = Math.min(cap, base * 2 ** (meta.attempt - 1) * (0.5 + r))
      const delay = Duration.millis(Math.max(backoff, meta.input.retryAfterMs ?? 0))
      return [delay, delay] as [Duration.Duration, Duration.Duration]
    })
  }))
}

/** What an adapter supplies to {@link make}: single attempts, without retries or metering. @since 0.1.0 @category constructors */
export interface RawModel {
  readonly provider: string
  readonly model: string
  readonly prices: Pricing.Prices
  /**
   * `stopped` records what a call its caller stopped (an interrupt) before it ended or failed was
   * billed for: the adapter calls it on interruption, with what the server had said or, marked
   * `estimated`, counted from what had come (nothing before the server could have read the prompt).
   */
  readonly generate: (request: Request, stopped: (usage: BilledUsage) => Effect.Effect<void>) => Effect.Effect<Response, ModelError>
  /** `stopped` as `generate`'s, called from the stream's finalizer: a stream is stopped too when no longer pulled. */
  readonly stream: (request: Request, stopped: (usage: BilledUsage) => Effect.Effect<void>) => Stream.Stream<StreamEvent, ModelError>
  readonly probe?: Effect.Effect<Probed, ModelError>
}

/**
 * Build a model from single-attempt calls: adds retries of retryable errors and reports each
 * response's usage (tokens and dollars) to the `CostMeter` in context at call time, as
 * `<provider>:<reason>`, a failed attempt's as `(failed attempt)`, a call its caller stopped
 * (interrupted, or a stream no longer pulled) as `(stopped)`, and `tokens estimated` added where the server did not count them.
 * A stream is retried only while it has emitted nothing, so no delta is ever seen twice.
 * @since 0.1.0 @category constructors
 */
export const make = (raw: RawModel, retry: RetryOptions = {}): ModelShape => {
  const schedule = retrySchedule(retry)
  const maxRetryAfter = maxRetryAfterOf(retry)
  // `<provider>:<reason>`, and what the record is when not a whole answer counted by the server: `(failed attempt, tokens estimated)`
  const label = (request: Request, usage: Usage, what?: string) => {
    const notes = [...(what !== undefined ? [what] : []), ...(usage.estimated === true ? ["tokens estimated"] : [])]
    return `${raw.provider}:${request.reason ?? "model call"}${notes.length > 0 ? ` (${notes.join(", ")})` : ""}`
  }
  const meter = (request: Request, usage: Usage, what?: string) =>
    Effect.gen(function*() {
      const m = yield* CostMeter.CostMeter
      yield* m.record(Pricing.toCost(raw.prices, usage), label(request, usage, what))
    })
  // the caller's meter, taken when the call starts, for a call it stops (a stream's is charged from a finalizer)
  const stopper = (request: Request) =>
    Effect.gen(function*() {
      const m = yield* CostMeter.CostMeter
      return (usage: BilledUsage) => m.record(Pricing.toCost(raw.prices, usage), label(request, usage, "stopped"))
    })
  // an attempt that failed after the server began to answer was billed for what it had read: counted, retried or not
  const meterFailed = (request: Request) => (e: ModelError) => e.usage !== undefined ? meter(request, e.usage, "failed attempt") : Effect.void
  // a wait the server asks for that is longer than the caller allows: said now, rather than slept through
  const bounded = (e: ModelError): ModelError =>
    e.retryable && e.retryAfterMs !== undefined && e.retryAfterMs > maxRetryAfter ? tooLongAWait(e, maxRetryAfter) : e
  return {
    provider: raw.provider,
    model: raw.model,
    generate: (request) =>
      Effect.flatMap(stopper(request), (stopped) => raw.generate(request, stopped)).pipe(
        Effect.mapError(bounded),
        Effect.tapError(meterFailed(request)),
        Effect.retry(schedule),
        Effect.tap((response) => meter(request, response.usage)),
        Effect.withSpan("Model.generate", { attributes: { provider: raw.provider, model: raw.model } })
      ),
    stream: (request) =>
      Stream.unwrap(Effect.gen(function*() {
        const stopped = yield* stopper(request)
        let emitted = false
        return raw.stream(request, stopped).pipe(
          Stream.tap(() => Effect.sync(() => (emitted = true))),
          // Once a delta went out, a retry would repeat it: fail instead.
          Stream.mapError((e) => bounded(emitted && e.retryable ? notRetryable(e) : e)),
          Stream.tapError(meterFailed(request)),
          Stream.retry(schedule),
          Stream.tap((event) => (event._tag === "Done" ? meter(request, event.response.usage) : Effect.void))
        )
      })),
    // one attempt: whoever asks wants to know now, and a retry would only hide what it met
    ...(raw.probe !== undefined ? { probe: raw.probe.pipe(Effect.withSpan("Model.probe", { attributes: { provider: raw.provider, model: raw.model } })) } : {}),
    // one attempt too, and a call like any other: metered, a failed one's usage as well
    probeTurn: Effect.flatMap(stopper(PROBE_TURN), (stopped) => raw.generate(PROBE_TURN, stopped)).pipe(
      Effect.mapError(bounded),
      Effect.tapError(meterFailed(PROBE_TURN)),
      Effect.tap((response) => meter(PROBE_TURN, response.usage)),
      Effect.withSpan("Model.probeTurn", { attributes: { provider: raw.provider, model: raw.model } })
    )
  }
}

// (`message` is not an own enumerable property of an error: it is named, not spread)
const notRetryable = (e: ModelError): ModelError => new ModelError({ ...e, message: e.message, retryable: false })

const waitOf = (ms: number): string => (ms < 1000 ? `${Math.ceil(ms)} ms` : `${Math.ceil(ms / 1000)} s`)

/** A retryable error whose server asked for a longer wait than `maxMs`: not retryable, saying how long, and what to do. */
const tooLongAWait = (e: ModelError, maxMs: number): ModelError =>
  new ModelError({
    ...e,
    message: `${e.message}: the server asked to wait ${waitOf(e.retryAfterMs!)} (retry-after) before calling again, longer than ` +
      `maxRetryAfter (${waitOf(maxMs)}): call again once that time has passed (a run stopped by it resumes then), ` +
      `or raise the model's retry.maxRetryAfter (trex run or resume --max-retry-after <seconds>) to wait that long`,
    retryable: false
  })

/** What a failed attempt was billed for ({@link ModelError}'s `usage`). @since 0.1.0 @category models */
export type BilledUsage = NonNullable<ModelError["usage"]>

/**
 * Characters a token, for the tokens of a call the server was cut off from counting: 4, the usual
 * rule for English text under BPE tokenizers, used for a length of text whose characters are not
 * known (a body's bytes). A text is weighed by its characters: see {@link tokenWeight}.
 * @since 0.1.0 @category constants
 */
export const CHARS_PER_TOKEN = 4

// Han, kana, Hangul, CJK punctuation and fullwidth forms: about a token each
const isWide = (c: number): boolean =>
  (c >= 0x1100 && c <= 0x11ff) || (c >= 0x2e80 && c <= 0x9fff) || (c >= 0xa960 && c <= 0xa97f) || (c >= 0xac00 && c <= 0xd7ff) ||
  (c >= 0xf900 && c <= 0xfaff) || (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xffef)

// ASCII characters in runs (BPE tokenizers cut a text into words with the space before them, numbers of 1 to 3 digits,
// and runs of punctuation, then each such piece into tokens): a run of letters weighs 5/32 a letter, about 6 to a token
// as words go, but at least 3/4 (a short word, a tag's `td`, a flag's `t` is a token of its own); a run of digits 1/2 a
// digit, at least 1; a run of punctuation (a newline and a tab too) 7/16 a character, at least 1 (`:` and `=` alone
// in YAML, shell and markup are a token each; code's `);` and `=>` two to a token); a space or `.` 3/16 and `"` 7/32
// on their own (a space goes with the word after it, `"` and `.` with what is beside them). (Fractions of a power of
// 2, so that a sum of them is exact and rounds up to what it should.)
const LETTER = 5 / 32
const LETTERS_LEAST = 3 / 4
const DIGIT = 1 / 2
const PUNCT = 7 / 16
const GAP = 3 / 16
const QUOTE = 7 / 32
// each ASCII character's kind: 0 a space or `.`, 1 `"`, 2 a letter, 3 a digit, 4 other punctuation or control
const ASCII_KINDS = Uint8Array.from({ length: 0x80 }, (_, c) =>
  c === 0x20 || c === 0x2e ? 0 : c === 0x22 ? 1 : (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ? 2 : c >= 0x30 && c <= 0x39 ? 3 : 4)
// a run of `n` characters of a kind: what it weighs
const runWeight = (kind: number, n: number): number =>
  kind === 2 ? Math.max(LETTERS_LEAST, n * LETTER) : kind === 3 ? Math.max(1, n * DIGIT) : kind === 4 ? Math.max(1, n * PUNCT) : 0

const isLowSurrogate = (c: number) => c >= 0xdc00 && c <= 0xdfff

/**
 * Weighs a text given in pieces (a stream's deltas) as it weighs the whole ({@link tokenWeight} of
 * the pieces joined): a word or a run of punctuation cut between two pieces is one run still, and so
 * is a character (an emoji) whose two UTF-16 halves come in two pieces. One weigher weighs one text:
 * texts streamed side by side (content blocks, parallel tool calls' arguments) each need their own,
 * their weights summed, else the end of one and the start of another are weighed as one run.
 *
 * @example
 * ```ts
 * import { Model } from "@trex/agents"
 *
 * const generated = new Model.TokenWeigher()
 * for (const delta of ["The learn", "ing rate"]) generated.add(delta)
 * Math.ceil(generated.weight) === Model.estimatedTokens("The learning rate") // true
 * ```
 *
 * @since 0.1.0 @category getters
 */
export class TokenWeigher {
  #weight = 0
  // the kind of the run the last piece ended in (-1: none), and its length
  #kind = -1
  #run = 0
  // the last piece ended in the first half of a surrogate pair, weighed with its second half (which the next piece starts with)
  #high = false
  /** Weigh the next piece. */
  add(piece: string): this {
    let weight = this.#weight
    let kind = this.#kind
    let run = this.#run
    let i = 0
    if (this.#high && piece.length > 0) {
      this.#high = false
      if (isLowSurrogate(piece.charCodeAt(0))) i = 1
    }
    for (; i < piece.length; i++) {
      const c = piece.charCodeAt(i)
      const k = c < 0x80 ? ASCII_KINDS[c]! : -1
      if (k === kind && k >= 2) {
        run++
        continue
      }
      weight += runWeight(kind, run)
      kind = k
      run = 1
      if (k === 0) weight += GAP
      else if (k === 1) weight += QUOTE
      else if (k === -1) {
        if (c >= 0xd800 && c <= 0xdbff) {
          // a surrogate pair: one character, whose second half may come in the next piece
          weight += 1
          if (i + 1 === piece.length) this.#high = true
          else if (isLowSurrogate(piece.charCodeAt(i + 1))) i++
        } else weight += isWide(c) ? 1 : 0.5
      }
    }
    this.#weight = weight
    this.#kind = kind
    this.#run = run
    return this
  }
  /** The tokens the pieces so far are estimated to make, as a fraction (round it up). */
  get weight(): number {
    return this.#weight + runWeight(this.#kind, this.#run)
  }
}

/**
 * The tokens a text is estimated to make, as a fraction: an estimate by script and, in ASCII, by runs
 * of a kind of character, for the tokens of a call the server was cut off from counting. A run of
 * ASCII letters weighs 5/32 a letter and at least 3/4, a run of digits 1/2 a digit and at least 1, a
 * run of other ASCII punctuation (newlines and tabs too) 7/16 a character and at least 1, a space or
 * `.` 3/16, `"` 7/32; a Chinese, Japanese or Korean character (Han, kana, Hangul, CJK punctuation,
 * fullwidth forms) or one outside the Basic Multilingual Plane (an emoji, a rare ideograph) 1; any
 * other (accented Latin, Cyrillic, Greek, Arabic...) 1/2. Against OpenAI's `o200k_base` and
 * `cl100k_base` (BPE tokenizers like those of Claude and of open models), fixed samples come within
 * 0.78 to 1.7 times the count: English prose about 0.99 to 1.03, code (TypeScript, Python, Rust, Go,
 * C, JSON, SQL) 1.0 to 1.11, shell, a Makefile, YAML, TOML, HTML, XML, SVG and Markdown 0.85 to 0.99,
 * Chinese 0.86 to 1.27, Korean 0.78 to 1.36, Russian 1.0 to 1.7. A text given in pieces (a stream's
 * deltas) is weighed by a {@link TokenWeigher}, as the whole is.
 * @since 0.1.0 @category getters
 */
export const tokenWeight = (text: string): number => new TokenWeigher().add(text).weight

/**
 * Tokens estimated, rounded up: of a text by its script ({@link tokenWeight}), or of a length in
 * characters or bytes whose script is not known, {@link CHARS_PER_TOKEN} a token.
 * @since 0.1.0 @category getters
 */
export const estimatedTokens = (text: string | number): number =>
  Math.ceil(typeof text === "number" ? text / CHARS_PER_TOKEN : tokenWeight(text))

/** The text blocks of a response, joined. @since 0.1.0 @category getters */
export const text = (response: Pick<Response, "content">): string =>
  response.content.flatMap((b) => (b.type === "text" ? [b.text] : [])).join("")

/** The tool calls of a response. @since 0.1.0 @category getters */
export const toolCalls = (response: Pick<Response, "content">) =>
  response.content.flatMap((b) => (b.type === "tool_use" ? [b] : []))

/** A user message with one text block. @since 0.1.0 @category constructors */
export const user = (text: string): Message => ({ role: "user", content: [{ type: "text", text }] })
