/**
 * A local Messages API on 127.0.0.1 for the campaigns, reached through the real
 * `@anthropic-ai/sdk` (via `ClaudeResearcher` and `AnthropicModel`). It answers each
 * structured-output call with a valid answer, unless `fault(i)` injects one: 429, 529 or 500
 * (with the Messages API's error body), a reply that never comes (the client times out), or
 * a malformed structured output (a proposal whose strategy does not decode).
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"

export type ModelFault = "429" | "529" | "500" | "timeout" | "malformed"
export const MODEL_FAULTS: ReadonlyArray<ModelFault> = ["429", "529", "500", "timeout", "malformed"]

export interface FakeModel {
  readonly url: string
  /** Requests by what was answered: a fault kind, or "ok". */
  readonly served: Record<string, number>
  /** Every `x-api-key` header value received (to check the key was sent only here). */
  readonly keys: Set<string>
  readonly close: () => Promise<void>
}

const LRS = [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03]

const answer = (tool: string, k: number): unknown => {
  switch (tool) {
    case "submit_analysis":
      return { summary: "A toy task: the score depends on the learning rate and the epochs." }
    case "submit_insights":
      return { insights: [] }
    default:
      return {
        proposals: [{
          strategy: {
            data: { sources: [{ name: "toy" }], format: "plain" },
            training: { learningRate: LRS[k % LRS.length], epochs: 1 + Math.floor(k / LRS.length) % 8, batchSize: 8 },
            rationale: `proposal ${k}`
          },
          prior: 0.5
        }]
      }
  }
}

/** Start the server; `fault(i)` decides the i-th request's fault (or none). */
export const start = (fault: (i: number) => ModelFault | undefined): Promise<FakeModel> => {
  const served: Record<string, number> = { ok: 0 }
  for (const f of MODEL_FAULTS) served[f] = 0
  const keys = new Set<string>()
  let requests = 0
  let proposals = 0
  const hanging = new Set<http.ServerResponse>()
  const server = http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}")
      const key = req.headers["x-api-key"]
      if (typeof key === "string") keys.add(key)
      const f = fault(requests++)
      served[f ?? "ok"]!++
      const error = (status: number, type: string) => {
        res.writeHead(status, { "content-type": "application/json", "retry-after-ms": "20" })
        res.end(JSON.stringify({ type: "error", error: { type, message: `injected ${status}` } }))
      }
      if (f === "429") return error(429, "rate_limit_error")
      if (f === "529") return error(529, "overloaded_error")
      if (f === "500") return error(500, "api_error")
      if (f === "timeout") {
        hanging.add(res)
        res.on("close", () => hanging.delete(res))
        return
      }
      const tools: Array<{ name: string }> = body.tools ?? []
      const tool = tools.find((t) => t.name.startsWith("submit_"))?.name ?? "submit_analysis"
      const input = f === "malformed"
        ? { proposals: [{ strategy: { training: { learningRate: "fast", epochs: -1 } } }], summary: 42 }
        : answer(tool, tool === "submit_proposals" ? proposals++ : 0)
      res.writeHead(200, { "content-type": "application/json" })
      res.end(JSON.stringify({
        id: `msg_${requests}`,
        type: "message",
        role: "assistant",
        model: body.model,
        content: [{ type: "tool_use", id: `toolu_${requests}`, name: tool, input }],
        stop_reason: "tool_use",
        stop_sequence: null,
        usage: { input_tokens: 1000, output_tokens: 200 }
      }))
    })
  })
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as AddressInfo).port
      resolve({
        url: `http://127.0.0.1:${port}`,
        served,
        keys,
        close: () =>
          new Promise<void>((done) => {
            for (const r of hanging) r.destroy()
            server.closeAllConnections()
            server.close(() => done())
          })
      })
    })
  })
}
