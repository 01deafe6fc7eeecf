/**
 * A small HTTP service that runs one TREX search in the background and lets you watch and steer it.
 *
 *   node --conditions=@trex/source examples/embed/server.ts            # the quickstart (real CPU training)
 *   node --conditions=@trex/source examples/embed/server.ts recorded   # a recorded table, simulated (seconds)
 *
 * GET /status -> { state, trials, succeeded, inFlight, best, paused, reason, runDir }
 * POST /pause, POST /resume, POST /stop (running trials finish; `trex resume <runDir>` continues later)
 * PORT (default 8787; 0 picks a free port).
 */
import * as http from "node:http"
import * as path from "node:path"
import { Trex } from "@trex/cli"

const mode = process.argv[2] === "recorded" ? "recorded" : "quickstart"
const examples = path.join(import.meta.dirname, "..")
const options: Trex.Options = mode === "recorded"
  ? { taskFile: path.join(examples, "recorded-table/task.yaml"), backend: "simulator", maxTrials: 30, concurrency: 2 }
  : { taskFile: path.join(examples, "quickstart/task.yaml"), maxTrials: 8 }

const search = await Trex.start({ ...options, out: process.env.TREX_OUT ?? "trex-runs", seed: 1 })

// Progress is a fold over the run's events.
const status = {
  state: "running" as "running" | "finished" | "failed",
  trials: 0,
  succeeded: 0,
  inFlight: 0,
  best: undefined as { nodeId: string; score: number } | undefined,
  paused: false,
  reason: undefined as string | undefined,
  runDir: search.runDir
}
let maximize = true
void (async () => {
  for await (const { event } of search.events) {
    switch (event._tag) {
      case "RunStarted":
        maximize = event.task.metric.direction === "maximize"
        break
      case "NodeAdmitted":
        status.inFlight++
        break
      case "NodeFinished": {
        status.inFlight = Math.max(0, status.inFlight - 1)
        status.trials++
        const score = event.outcome === "Succeeded" ? event.result?.score : undefined
        if (score === undefined) break
        status.succeeded++
        if (status.best === undefined || (maximize ? score > status.best.score : score < status.best.score)) {
          status.best = { nodeId: event.nodeId, score }
        }
        break
      }
      case "RunFinished":
        status.reason = event.reason
    }
  }
})()
search.done.then(
  () => void (status.state = "finished"),
  (e: unknown) => {
    status.state = "failed"
    status.reason = String(e)
  }
)

const actions: Record<string, () => void> = {
  "/pause": () => {
    search.pause()
    status.paused = true
  },
  "/resume": () => {
    search.resume()
    status.paused = false
  },
  "/stop": () => search.stop("drain")
}

const server = http.createServer((req, res) => {
  const reply = (code: number, body: unknown) => {
    res.writeHead(code, { "content-type": "application/json" })
    res.end(JSON.stringify(body))
  }
  const url = req.url ?? "/"
  if (req.method === "GET" && url === "/status") return reply(200, status)
  const action = actions[url]
  if (req.method === "POST" && action !== undefined) {
    action()
    return reply(200, status)
  }
  reply(404, { error: `no route ${req.method} ${url}` })
})
server.listen(Number(process.env.PORT ?? 8787), "127.0.0.1", () => {
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 8787
  console.log(`trex ${mode} search ${search.runId} on http://127.0.0.1:${port}`)
})
process.on("SIGINT", () => {
  search.stop("drain")
  server.close()
})
