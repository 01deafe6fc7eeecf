/**
 * What both model adapters need from an HTTP answer: whether a failure is a lost connection
 * (retryable), how long the server asks to wait, and a `ModelError` for a 200 whose body is not
 * the API's answer. Messages name the URL in use and the variable that sets it, so a user knows
 * what to fix.
 */
import { Effect, Stream } from "effect"
import * as Model from "../model/Model.ts"

/** Where an adapter sends its requests, and the environment variables that choose it. */
export interface Endpoint {
  readonly provider: string
  /** The base URL in use. */
  readonly baseURL: string
  /** The variable that sets the base URL (`ANTHROPIC_BASE_URL`). */
  readonly baseUrlVar: string
  /** The variable that holds the key (`ANTHROPIC_API_KEY`). */
  readonly keyVar: string
  /** What a good answer is, for messages: "a Messages API response". */
  readonly expected: string
}

/** The server's `retry-after-ms`, else `retry-after` (seconds or an HTTP date), in milliseconds. */
export const retryAfterMs = (headers: Headers | undefined): number | undefined => {
  const ms = headers?.get("retry-after-ms")
  if (ms != null && ms.trim() !== "" && Number.isFinite(Number(ms)) && Number(ms) >= 0) return Number(ms)
  const value = headers?.get("retry-after")
  if (value == null || value.trim() === "") return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : undefined
  const date = Date.parse(value)
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : undefined
}

// Socket-level failures (Node's and undici's codes): the request may well succeed on another try.
const CONNECTION_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT"
])

const causes = (e: unknown): Array<unknown> => {
  const out: Array<unknown> = []
  for (let cur = e; cur != null && out.length < 8; cur = (cur as { cause?: unknown }).cause) out.push(cur)
  return out
}

/**
 * Whether a thrown value is a lost or refused connection: fetch's `TypeError("fetch failed")`,
 * undici's `TypeError("terminated")` when the socket closes while the body is read, or any error
 * in the cause chain with a socket error code.
 */
export const isConnectionFailure = (e: unknown): boolean =>
  causes(e).some((c) => {
    if (c instanceof TypeError && (c.message === "terminated" || c.message === "fetch failed")) return true
    const code = (c as { code?: unknown } | null)?.code
    return typeof code === "string" && CONNECTION_CODES.has(code)
  })

/** The message of an error and of its causes, deduplicated: `fetch failed: connect ECONNREFUSED 127.0.0.1:9`. */
export const describeCause = (e: unknown): string => {
  const parts: Array<string> = []
  for (const c of causes(e)) {
    const m = (c instanceof Error ? c.message : String(c)).replace(/\.$/, "")
    if (m.length > 0 && !parts.includes(m)) parts.push(m)
  }
  return parts.join(": ")
}

/** A retryable `ModelError` for a lost connection, naming the base URL and its variable. */
export const connectionError = (endpoint: Endpoint, e: unknown): Model.ModelError =>
  new Model.ModelError({
    provider: endpoint.provider,
    message: `connection error: ${describeCause(e).replace(/^Connection error(: )?/, "") || "no answer"} (base URL ${endpoint.baseURL}, set by ${endpoint.baseUrlVar})`,
    retryable: true
  })

/** A hint appended to HTTP errors whose fix is a setting: the key for 401 and 403, the base URL for 404. */
export const statusHint = (endpoint: Endpoint, status: number): string =>
  status === 401 ? ` (check ${endpoint.keyVar})`
    : status === 403 ? ` (check ${endpoint.keyVar}: the key may not use this model, set by TREX_MODEL, or this endpoint)`
    : status === 404 ? ` (check the base URL ${endpoint.baseURL}, set by ${endpoint.baseUrlVar}, and TREX_MODEL)`
    : ""

/**
 * Whether a model error refuses the settings every call shares, not this call: the key (401), its
 * permission to use the model or the endpoint (403), the model's name or the base URL (404), the
 * statuses {@link statusHint} names a setting for, or an option of the adapter's own ({@link badTimings}). No later call with the same settings gets past it
 * (a server's `x-should-retry: true` says otherwise, and makes it retryable).
 */
export const refusesSettings = (e: Model.ModelError): boolean =>
  !e.retryable && (e.status === 401 || e.status === 403 || e.status === 404 || e.option !== undefined)

/**
 * Until when (epoch milliseconds) no call with the same settings gets past `e`: for ever for a
 * refusal of the settings ({@link refusesSettings}), until the wait is over for a server's wait that
 * was not waited out (a `retry-after` past `maxRetryAfter`, or with `x-should-retry: false`);
 * `undefined` for any other error.
 */
export const barredUntil = (e: Model.ModelError, now: number): number | undefined =>
  refusesSettings(e) ? Infinity : !e.retryable && e.retryAfterMs !== undefined ? now + e.retryAfterMs : undefined

/** Whether a model error says the prompt outgrew the model's context window (Claude's 400, or an OpenAI-compatible server's). */
export const outgrew = (e: Model.ModelError): boolean =>
  e.status === 400 && /prompt is too long|maximum context length|context window|context length/i.test(e.message)

/** The first bytes of a body, on one line, for a message. */
export const preview = (body: string, max = 200): string => {
  const flat = body.replace(/\s+/g, " ").trim()
  return flat.length > max ? `${flat.slice(0, max)}...` : flat
}

/**
 * A 200 whose body is not the API's answer. An empty or cut-off JSON body is retryable (the
 * connection was lost on the way, or the server hiccuped); anything else — an HTML page, another
 * API's JSON — is a wrong base URL or a proxy in the way, which no retry fixes.
 */
export const unexpectedBody = (
  endpoint: Endpoint,
  url: string,
  contentType: string | null,
  body: string,
  what?: string
): Model.ModelError => {
  const empty = body.trim().length === 0
  const json = /\bjson\b/i.test(contentType ?? "")
  let truncated = false
  if (json && !empty) {
    try {
      JSON.parse(body)
    } catch {
      truncated = true
    }
  }
  const got = empty ? "an empty body" : `${what ?? (truncated ? "JSON that does not parse" : "a body")}: ${JSON.stringify(preview(body))}`
  return new Model.ModelError({
    provider: endpoint.provider,
    message: `${url} answered 200 (${contentType ?? "no content type"}) with ${got}, not ${endpoint.expected} ` +
      `(base URL ${endpoint.baseURL}, set by ${endpoint.baseUrlVar})`,
    retryable: empty || truncated
  })
}

/** How much of an answer's body has arrived: its bytes and text so far, and the whole body's `content-length` when the server sent one. */
export interface BodyProgress {
  received: number
  text: string
  declared: number | undefined
}

/** A fresh {@link BodyProgress}: nothing read. */
export const noBody = (): BodyProgress => ({ received: 0, text: "", declared: undefined })

/** A body as text, what has arrived counted in `progress` as it comes, so that a cut or a stall leaves how far it got. */
export const readText = async (response: Response, progress: BodyProgress): Promise<string> => {
  const declared = Number(response.headers.get("content-length") ?? "")
  progress.declared = Number.isFinite(declared) && declared > 0 ? declared : undefined
  if (response.body === null) return ""
  const decoder = new TextDecoder()
  for await (const chunk of response.body) {
    progress.received += chunk.byteLength
    progress.text += decoder.decode(chunk, { stream: true })
  }
  return progress.text + decoder.decode()
}

/**
 * What a non-streamed answer cut or stalled while its body was read was billed for, estimated (the
 * usage is in the body, and did not arrive): a server sends a non-streamed answer's 200 once the
 * whole answer is made, so it billed the request's input and the whole output. The input from the
 * request body's text, the output from the answer body's size (its `content-length`, else the bytes
 * that came) at the tokens a byte of what came weighs ({@link Model.tokenWeight}; before any came,
 * {@link Model.CHARS_PER_TOKEN} bytes a token): over rather than under (the bodies' JSON counts).
 */
export const cutAnswerUsage = (requestBody: string, progress: BodyProgress): Model.BilledUsage => {
  const perByte = progress.received > 0 ? Model.tokenWeight(progress.text) / progress.received : 1 / Model.CHARS_PER_TOKEN
  return {
    inputTokens: Model.estimatedTokens(requestBody),
    outputTokens: Math.ceil((progress.declared ?? progress.received) * perByte),
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    estimated: true
  }
}

/** The error, with what its attempt was billed for. */
export const withUsage = (e: Model.ModelError, usage: Model.BilledUsage | undefined): Model.ModelError =>
  usage === undefined || e.usage !== undefined ? e : new Model.ModelError({ ...e, message: e.message, usage })

/**
 * A call's finalizer that records, through `stopped` ({@link Model.RawModel}'s), what the call was
 * billed for when its caller stopped it (an interrupt, or a stream no longer pulled) before it ended
 * or failed (`settled`: an ended call's usage and a failed one's are recorded by `Model.make`);
 * nothing when `billed` says the server had not begun to answer.
 */
export const chargeStopped = (
  settled: () => boolean,
  billed: () => Model.BilledUsage | undefined,
  stopped: (usage: Model.BilledUsage) => Effect.Effect<void>
): Effect.Effect<void> =>
  Effect.suspend(() => {
    const usage = settled() ? undefined : billed()
    return usage === undefined ? Effect.void : stopped(usage)
  })

/**
 * How long a stream whose answer is whole (Claude's `message_delta` with its stop reason, every
 * content block ended; an OpenAI-compatible choice's `finish_reason`) is given for what may still
 * follow (`message_stop`; the usage chunk and `data: [DONE]`), which a server sends at once: past
 * it the answer is taken, as on a cut, rather than waited for up to `timeoutMs`.
 */
export const END_GRACE_MS = 2_000

// the longest wait Node's timers keep (2^31 - 1 ms): `Model.MAX_TIMEOUT_MS`, public, so that callers check against the same
const MAX_TIMER_MS = Model.MAX_TIMEOUT_MS

/** The time options both adapters take. */
export interface Timings {
  readonly timeoutMs?: number
  readonly endGraceMs?: number
}

/**
 * Why an adapter's `timeoutMs` or `endGraceMs` cannot be used, as the `ModelError` every call of
 * the model then fails with (not retryable, `option` naming it), or `undefined` when both are good
 * (or not given). A negative, NaN or too long timeout would end every attempt at once (Node's
 * timers fire a NaN, negative or over-long wait after 1 ms), an infinite one would end none;
 * `endGraceMs` likewise ends every whole answer's stream at once, or never by its grace.
 */
export const badTimings = (provider: string, options: Timings): Model.ModelError | undefined => {
  const bad = (option: string, value: number, rule: string, example: string) =>
    new Model.ModelError({
      provider,
      message: `the model's ${option} must be ${rule}, got ${value}: ${example}; no call is made with it`,
      retryable: false,
      option
    })
  const { endGraceMs, timeoutMs } = options
  if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0 && timeoutMs <= MAX_TIMER_MS)) {
    return bad(
      "timeoutMs",
      timeoutMs,
      `a number of milliseconds above 0 and at most ${MAX_TIMER_MS} (about 24.8 days)`,
      "how long one attempt of a call may take, e.g. timeoutMs: 600000 for 10 minutes (the default; trex run --model-timeout <seconds>)"
    )
  }
  if (endGraceMs !== undefined && !(Number.isFinite(endGraceMs) && endGraceMs >= 0 && endGraceMs <= MAX_TIMER_MS)) {
    return bad(
      "endGraceMs",
      endGraceMs,
      `a number of milliseconds from 0 to ${MAX_TIMER_MS} (more than timeoutMs waits timeoutMs)`,
      `how long a stream whose answer is whole waits for its last events, e.g. endGraceMs: ${END_GRACE_MS} (the default)`
    )
  }
  return undefined
}

/**
 * A model whose options cannot be used: every call (`generate`, `stream`, `probe`, `probeTurn`) fails
 * at once with `error` ({@link badTimings}'s), and nothing is sent.
 */
export const refusingModel = (provider: string, model: string, error: Model.ModelError): Model.ModelShape => ({
  provider,
  model,
  generate: () => Effect.fail(error),
  stream: () => Stream.fail(error),
  probe: Effect.fail(error),
  probeTurn: Effect.fail(error)
})

/**
 * The items of an async iterable, the wait for each bounded by `limitMs()`, asked as the item is
 * asked for (`Infinity`: no bound). Past it the iteration fails with `onStall()`; the wait left
 * behind is not awaited (its request is aborted by the caller's scope), nor is `return` while an
 * item is awaited, which an async generator would settle only once that item came.
 */
export const paced = <A>(source: AsyncIterable<A>, limitMs: () => number, onStall: () => unknown): AsyncIterable<A> => ({
  [Symbol.asyncIterator]: () => {
    const it = source[Symbol.asyncIterator]()
    let pending = false
    return {
      next: () => {
        const ms = limitMs()
        pending = true
        const next = it.next().finally(() => (pending = false))
        if (!Number.isFinite(ms)) return next
        let timer: ReturnType<typeof setTimeout> | undefined
        const stall = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(onStall()), ms)))
        return Promise.race([next, stall]).finally(() => clearTimeout(timer))
      },
      return: (value?: unknown) => {
        if (it.return === undefined) return Promise.resolve({ done: true as const, value })
        if (!pending) return it.return(value) as Promise<IteratorResult<A>>
        void it.return(value).catch(() => undefined)
        return Promise.resolve({ done: true as const, value })
      }
    }
  }
})
