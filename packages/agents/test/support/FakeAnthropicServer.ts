/**
 * A local Messages API on 127.0.0.1 for tests, reached through the real `@anthropic-ai/sdk`
 * via `baseURL`. Each request takes the next scripted reply (or asks a handler): a message
 * (sent as JSON, or as SSE events when the request says `stream: true`), or an error body
 * `{type: "error", error: {type, message}}` with its status and headers.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"
import { type Raw, writeRaw } from "./RawReply.ts"

export { raw } from "./RawReply.ts"

export type Block =
  | { type: "text"; text: string }
  | { type: "tool_use"; id: string; name: string; input: unknown }

export interface Usage {
  input_tokens: number
  output_tokens: number
  cache_creation_input_tokens?: number
  cache_read_input_tokens?: number
  server_tool_use?: { web_search_requests: number }
}

export type Reply =
  | {
    kind: "message"
    content: ReadonlyArray<Block>
    stopReason?: string
    usage?: Usage
    /** Streamed: send this many events, then nothing more, the connection held open. */
    stallAfterEvents?: number
    /** Streamed: send this many events, then close the connection, as a proxy or a network that drops it. */
    cutAfterEvents?: number
    /** Streamed: send every event but the last (`message_stop`) at once, and the last after this many milliseconds. */
    holdLastMs?: number
  }
  | { kind: "error"; status: number; type: string; message: string; headers?: Record<string, string> }
  | Raw

export interface Recorded {
  readonly body: any
  readonly headers: http.IncomingHttpHeaders
}

export type Handler = (request: Recorded, index: number) => Reply

export interface FakeAnthropic {
  readonly url: string
  readonly requests: Array<Recorded>
  /** The models asked about (`GET /v1/models/{id}`), in order. */
  readonly described: Array<string>
  /** Connections the client closed before the response ended. */
  readonly aborted: () => number
  /** The models whose tokens were counted (`POST /v1/messages/count_tokens`, not a turn), in order. */
  readonly counted: Array<string>
}

let ids = 0
export const text = (t: string): Block => ({ type: "text", text: t })
export const toolUse = (name: string, input: unknown): Block => ({ type: "tool_use", id: `toolu_${++ids}`, name, input })
export const message = (content: ReadonlyArray<Block>, usage?: Usage): Reply => ({
  kind: "message",
  content,
  stopReason: content.some((b) => b.type === "tool_use") ? "tool_use" : "end_turn",
  ...(usage !== undefined ? { usage } : {})
})
export const error = (status: number, type: string, msg: string, headers?: Record<string, string>): Reply => ({
  kind: "error",
  status,
  type,
  message: msg,
  ...(headers !== undefined ? { headers } : {})
})

const sseEvents = (model: string, r: Extract<Reply, { kind: "message" }>, usage: Usage): Array<[string, unknown]> => {
  const out: Array<[string, unknown]> = [[
    "message_start",
    {
      type: "message_start",
      message: {
        id: `msg_${ids++}`,
        type: "message",
        role: "assistant",
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { ...usage, output_tokens: 1, server_tool_use: undefined }
      }
    }
  ]]
  r.content.forEach((b, index) => {
    if (b.type === "text") {
      out.push(["content_block_start", { type: "content_block_start", index, content_block: { type: "text", text: "" } }])
      for (const piece of b.text.match(/.{1,8}/gs) ?? []) {
        out.push(["content_block_delta", { type: "content_block_delta", index, delta: { type: "text_delta", text: piece } }])
      }
    } else {
      out.push(["content_block_start", { type: "content_block_start", index, content_block: { type: "tool_use", id: b.id, name: b.name, input: {} } }])
      const json = JSON.stringify(b.input)
      for (const piece of json.match(/.{1,10}/gs) ?? []) {
        out.push(["content_block_delta", { type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json: piece } }])
      }
    }
    out.push(["content_block_stop", { type: "content_block_stop", index }])
  })
  out.push(["message_delta", {
    type: "message_delta",
    delta: { stop_reason: r.stopReason ?? "end_turn", stop_sequence: null },
    // the searches are counted as they run: the API reports them at the end
    usage: { output_tokens: usage.output_tokens, ...(usage.server_tool_use !== undefined ? { server_tool_use: usage.server_tool_use } : {}) }
  }])
  out.push(["message_stop", { type: "message_stop" }])
  return out
}

/**
 * The stand-in's model: how many tokens its context window holds (none: no limit). `models`: what
 * `GET /v1/models/{id}` describes, as the API does (a 404 `not_found_error` for another name; unset:
 * any name); `describesModels: false` answers that path with a plain 404, as a gateway in front of
 * the API that serves only messages; `apiKey`: the only `x-api-key` taken (a 401 for another);
 * `forbidden`: models the key's workspace may not use, which messages and `count_tokens` refuse with a
 * 403 `permission_error` while `GET /v1/models/{id}` describes them; `countsTokens: false` answers
 * `count_tokens` with a plain 404, as a gateway that serves only messages.
 */
export interface Options {
  readonly contextTokens?: number
  readonly models?: ReadonlyArray<{ readonly id: string; readonly display_name?: string; readonly max_input_tokens?: number }>
  readonly describesModels?: boolean
  readonly apiKey?: string
  readonly forbidden?: ReadonlyArray<string>
  readonly countsTokens?: boolean
}

const apiError = (status: number, type: string, message: string) => ({ status, type: "application/json", body: JSON.stringify({ type: "error", error: { type, message } }) })
const PERMISSION = "Your API key does not have permission to use the specified resource."

/** The key a request carries: the SDK sends it as x-api-key or as a bearer token, by version. */
const keyOf = (headers: http.IncomingHttpHeaders) => headers["x-api-key"] ?? headers.authorization?.replace(/^Bearer /, "")

/** The answer to `POST /v1/messages/count_tokens` (free: it takes no turn), as the API gives it. */
const countTokens = (body: any, headers: http.IncomingHttpHeaders, options: Options): { status: number; body: string; type: string } => {
  if (options.apiKey !== undefined && keyOf(headers) !== options.apiKey) return apiError(401, "authentication_error", "invalid x-api-key")
  if (options.countsTokens === false) return { status: 404, type: "text/html", body: "<html><body>404 Not Found</body></html>" }
  if (options.forbidden?.includes(body.model) === true) return apiError(403, "permission_error", PERMISSION)
  return { status: 200, type: "application/json", body: JSON.stringify({ input_tokens: promptTokens(body) }) }
}

/** The answer to `GET /v1/models/{id}`, as the API gives it. */
const describeModel = (path: string, headers: http.IncomingHttpHeaders, options: Options): { status: number; body: string; type: string } => {
  if (options.apiKey !== undefined && keyOf(headers) !== options.apiKey) return apiError(401, "authentication_error", "invalid x-api-key")
  if (options.describesModels === false) return { status: 404, type: "text/html", body: "<html><body>404 Not Found</body></html>" }
  const id = decodeURIComponent(path.slice("/v1/models/".length))
  const info = options.models === undefined ? { id } : options.models.find((m) => m.id === id)
  if (info === undefined) return apiError(404, "not_found_error", `model: ${id}`)
  return { status: 200, type: "application/json", body: JSON.stringify({ type: "model", display_name: id, created_at: "2026-01-01T00:00:00Z", ...info }) }
}

/** A request's prompt in tokens, as the stand-in counts them: the characters of its system, tools and messages / 4. */
export const promptTokens = (body: any): number =>
  Math.ceil(JSON.stringify([body.system ?? "", body.tools ?? [], body.messages ?? []]).length / 4)

/**
 * What the real API refuses whatever the script says: a model the key may not use (`forbidden`) is a
 * 403; a message with no content, but for a final assistant one (a prefill), is a 400 naming it; a
 * prompt longer than the context window is a 400 saying how long, as the API words it.
 */
const invalid = (body: any, options: Options): Reply | undefined => {
  if (options.forbidden?.includes(body.model) === true) return error(403, "permission_error", PERMISSION)
  const messages: ReadonlyArray<{ role: string; content: unknown }> = Array.isArray(body.messages) ? body.messages : []
  const empty = messages.findIndex((m, i) =>
    (Array.isArray(m.content) ? m.content.length === 0 : m.content === "") && !(i === messages.length - 1 && m.role === "assistant")
  )
  if (empty >= 0) {
    return error(400, "invalid_request_error", `messages.${empty}: all messages must have non-empty content except for the optional final assistant message`)
  }
  const tokens = promptTokens(body)
  return options.contextTokens !== undefined && tokens > options.contextTokens
    ? error(400, "invalid_request_error", `prompt is too long: ${tokens} tokens > ${options.contextTokens} maximum`)
    : undefined
}

/** Start the server for the test's scope. */
export const make = (script: ReadonlyArray<Reply> | Handler, options: Options = {}) =>
  Effect.gen(function*() {
    const requests: Array<Recorded> = []
    const described: Array<string> = []
    const counted: Array<string> = []
    let aborted = 0
    const queue = Array.isArray(script) ? [...script] : []
    const next = (req: Recorded, i: number): Reply => {
      if (typeof script === "function") {
        // A handler's failed assertion is answered as a non-retryable error naming it, so the test
        // fails with that message instead of an exception thrown inside the HTTP server.
        try {
          return script(req, i)
        } catch (e) {
          return error(400, "invalid_request_error", `fake server: the test's handler failed on request ${i}: ${e instanceof Error ? e.message : String(e)}`)
        }
      }
      const r = queue.shift()
      if (r === undefined) return error(500, "api_error", "fake server: no scripted reply left")
      return r
    }
    const server = http.createServer((req, res) => {
      const path = (req.url ?? "").split("?")[0]!
      if (req.method === "GET" && path.startsWith("/v1/models/")) {
        // not a turn: not in `requests`, and takes no scripted reply
        described.push(decodeURIComponent(path.slice("/v1/models/".length)))
        const answer = describeModel(path, req.headers, options)
        res.writeHead(answer.status, { "content-type": answer.type })
        res.end(answer.body)
        return
      }
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}")
        if (req.method === "POST" && path === "/v1/messages/count_tokens") {
          // not a turn either
          counted.push(body.model)
          const answer = countTokens(body, req.headers, options)
          res.writeHead(answer.status, { "content-type": answer.type })
          res.end(answer.body)
          return
        }
        const recorded = { body, headers: req.headers }
        requests.push(recorded)
        const reply = invalid(body, options) ?? next(recorded, requests.length - 1)
        res.on("close", () => {
          if (!res.writableEnded) aborted++
        })
        if (reply.kind === "error") {
          res.writeHead(reply.status, { "content-type": "application/json", ...reply.headers })
          res.end(JSON.stringify({ type: "error", error: { type: reply.type, message: reply.message } }))
          return
        }
        if (reply.kind === "raw") {
          writeRaw(res, reply)
          return
        }
        const usage = reply.usage ?? { input_tokens: 10, output_tokens: 5 }
        if (body.stream !== true) {
          res.writeHead(200, { "content-type": "application/json" })
          res.end(JSON.stringify({
            id: `msg_${ids++}`,
            type: "message",
            role: "assistant",
            model: body.model,
            content: reply.content,
            stop_reason: reply.stopReason ?? "end_turn",
            stop_sequence: null,
            usage
          }))
          return
        }
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
        const events = sseEvents(body.model, reply, usage)
        const limit = reply.stallAfterEvents ?? reply.cutAfterEvents ?? events.length
        const send = ([name, data]: [string, unknown]) => res.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`)
        if (reply.holdLastMs !== undefined) {
          events.slice(0, -1).forEach(send)
          setTimeout(() => res.end(`event: message_stop\ndata: ${JSON.stringify(events.at(-1)![1])}\n\n`), reply.holdLastMs)
          return
        }
        events.slice(0, limit).forEach(send)
        // the socket is closed after the events (a FIN after them, not a reset that may overtake them), the
        // chunked body unfinished: the client reads the events, then fails while reading the stream
        if (reply.cutAfterEvents !== undefined) res.socket?.end()
        else if (limit >= events.length) res.end()
      })
    })
    yield* Effect.acquireRelease(
      Effect.callback<void>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.void))
      }),
      () =>
        Effect.callback<void>((resume) => {
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
    )
    const port = (server.address() as AddressInfo).port
    return { url: `http://127.0.0.1:${port}`, requests, described, counted, aborted: () => aborted } satisfies FakeAnthropic
  })
