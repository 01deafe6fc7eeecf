/**
 * A local OpenAI-compatible chat-completions server on 127.0.0.1 (as vLLM, Ollama or
 * llama.cpp serve it), scripted per test: a queue of replies or a handler. Replies are JSON,
 * or SSE chunks ending with `data: [DONE]` when the request says `stream: true`.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"
import { type Raw, writeRaw } from "./RawReply.ts"

export { raw } from "./RawReply.ts"

export type Reply =
  | {
    kind: "message"
    content?: string
    toolCalls?: ReadonlyArray<{ id: string; name: string; arguments: string }>
    usage?: { prompt_tokens: number; completion_tokens: number }
    /** Send this many chunks, then nothing more, the connection held open (all of them: no `data: [DONE]`). */
    stallAfterChunks?: number
    /** Send every chunk but the last (the usage) at once, and the last and `data: [DONE]` after this many milliseconds. */
    holdLastMs?: number
    /** Send this many chunks, then destroy the connection: a stream cut before its usage (its last chunk). */
    cutAfterChunks?: number
    /** The finish_reason sent (default: tool_calls when there are calls, else stop). */
    finish?: string
  }
  | { kind: "error"; status: number; body: string; headers?: Record<string, string> }
  | Raw

export interface Recorded {
  readonly body: any
  readonly headers: http.IncomingHttpHeaders
}
export type Handler = (request: Recorded, index: number) => Reply

/**
 * `models`: what `GET /models` lists (default: none, as a server that does not list them answers 404);
 * `apiKey`: the only bearer token taken there (a 401 for another).
 */
export interface Options {
  readonly models?: ReadonlyArray<string>
  readonly apiKey?: string
}

export const make = (script: ReadonlyArray<Reply> | Handler, options: Options = {}) =>
  Effect.gen(function*() {
    const requests: Array<Recorded> = []
    let aborted = 0
    const queue = Array.isArray(script) ? [...script] : []
    const server = http.createServer((req, res) => {
      if (req.method === "GET" && (req.url ?? "").split("?")[0] === "/v1/models") {
        // not a turn: not in `requests`, and takes no scripted reply
        const [status, body] = options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`
          ? [401, { error: { message: "Incorrect API key provided", type: "invalid_request_error" } }]
          : options.models === undefined
          ? [404, { detail: "Not Found" }]
          : [200, { object: "list", data: options.models.map((id) => ({ id, object: "model", owned_by: "local" })) }]
        res.writeHead(status, { "content-type": "application/json" })
        res.end(JSON.stringify(body))
        return
      }
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => {
        const recorded = { body: JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}"), headers: req.headers }
        requests.push(recorded)
        const handled = (i: number): Reply => {
          // a handler's failed assertion is answered as a non-retryable error naming it
          try {
            return (script as Handler)(recorded, i)
          } catch (e) {
            return { kind: "error", status: 400, body: `fake server: the test's handler failed on request ${i}: ${e instanceof Error ? e.message : String(e)}` }
          }
        }
        const reply: Reply = typeof script === "function"
          ? handled(requests.length - 1)
          : queue.shift() ?? { kind: "error", status: 500, body: "no scripted reply left" }
        res.on("close", () => {
          if (!res.writableEnded) aborted++
        })
        if (reply.kind === "error") {
          res.writeHead(reply.status, { "content-type": "application/json", ...reply.headers })
          res.end(JSON.stringify({ error: { message: reply.body } }))
          return
        }
        if (reply.kind === "raw") {
          writeRaw(res, reply)
          return
        }
        const toolCalls = (reply.toolCalls ?? []).map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } }))
        const finish = reply.finish ?? (toolCalls.length > 0 ? "tool_calls" : "stop")
        const usage = reply.usage ?? { prompt_tokens: 20, completion_tokens: 7 }
        if (recorded.body.stream !== true) {
          res.writeHead(200, { "content-type": "application/json" })
          res.end(JSON.stringify({
            id: "chatcmpl-1",
            object: "chat.completion",
            model: recorded.body.model,
            choices: [{ index: 0, message: { role: "assistant", content: reply.content ?? null, ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}) }, finish_reason: finish }],
            usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens }
          }))
          return
        }
        const out: Array<unknown> = []
        for (const piece of (reply.content ?? "").match(/.{1,6}/gs) ?? []) out.push({ choices: [{ index: 0, delta: { content: piece } }] })
        toolCalls.forEach((c, index) => {
          out.push({ choices: [{ index: 0, delta: { tool_calls: [{ index, id: c.id, type: "function", function: { name: c.function.name, arguments: "" } }] } }] })
          for (const piece of c.function.arguments.match(/.{1,8}/gs) ?? []) {
            out.push({ choices: [{ index: 0, delta: { tool_calls: [{ index, function: { arguments: piece } }] } }] })
          }
        })
        out.push({ choices: [{ index: 0, delta: {}, finish_reason: finish }] })
        out.push({ choices: [], usage })
        res.writeHead(200, { "content-type": "text/event-stream" })
        const limit = reply.stallAfterChunks ?? reply.cutAfterChunks ?? out.length
        if (reply.holdLastMs !== undefined) {
          for (const c of out.slice(0, -1)) res.write(`data: ${JSON.stringify(c)}\n\n`)
          setTimeout(() => res.end(`data: ${JSON.stringify(out.at(-1))}\n\ndata: [DONE]\n\n`), reply.holdLastMs)
          return
        }
        for (const c of out.slice(0, limit)) res.write(`data: ${JSON.stringify(c)}\n\n`)
        if (reply.cutAfterChunks !== undefined) {
          // let the chunks reach the client first, so it fails while reading them
          res.write("", () => setTimeout(() => res.socket?.destroy(), 20))
          return
        }
        if (reply.stallAfterChunks === undefined && limit >= out.length) res.end("data: [DONE]\n\n")
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
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, requests, aborted: () => aborted }
  })
