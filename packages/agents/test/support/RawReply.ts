/**
 * A reply the fake model servers send as given, to play a server that does not speak the API:
 * any status, content type and body — an HTML page from a proxy, JSON of another API, a
 * truncated body — and, with `cutAfter`, a connection destroyed after that many bytes of a body
 * whose `content-length` promised all of it; with `holdAfter`, one that sends that many and stalls.
 */
import * as diagnostics from "node:diagnostics_channel"
import type * as http from "node:http"
import * as net from "node:net"
import { Effect } from "effect"

export interface Raw {
  readonly kind: "raw"
  readonly status?: number
  readonly contentType?: string
  readonly body: string
  readonly cutAfter?: number
  /** Send this many bytes of the body, then nothing more, the connection held open: a server that stalls. */
  readonly holdAfter?: number
}

export const raw = (contentType: string | undefined, body: string, extra: Partial<Omit<Raw, "kind" | "body">> = {}): Raw => ({
  kind: "raw",
  body,
  ...(contentType !== undefined ? { contentType } : {}),
  ...extra
})

export const writeRaw = (res: http.ServerResponse, reply: Raw): void => {
  const bytes = Buffer.from(reply.body, "utf8")
  res.writeHead(reply.status ?? 200, {
    ...(reply.contentType !== undefined ? { "content-type": reply.contentType } : {}),
    "content-length": String(bytes.length)
  })
  if (reply.holdAfter !== undefined) {
    res.write(bytes.subarray(0, reply.holdAfter))
    return
  }
  if (reply.cutAfter === undefined) {
    res.end(bytes)
    return
  }
  res.write(bytes.subarray(0, reply.cutAfter), () => {
    // let the bytes reach the client first, so it fails while reading the body, not the headers
    setTimeout(() => res.socket?.destroy(), 20)
  })
}

/** A port on 127.0.0.1 that nothing listens on (one just closed), for refused connections. */
export const closedPort = Effect.callback<number>((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

/**
 * How many responses' headers this process's `fetch` has received, from undici's diagnostics channel
 * (`undici:request:headers`): the client's own sign that a call's 200 came, for a test that must stop
 * a call after it. Subscribed for the scope.
 */
export const headersReceived = Effect.gen(function*() {
  let count = 0
  const seen = () => void count++
  yield* Effect.acquireRelease(
    Effect.sync(() => diagnostics.subscribe("undici:request:headers", seen)),
    () => Effect.sync(() => void diagnostics.unsubscribe("undici:request:headers", seen))
  )
  return () => count
})
