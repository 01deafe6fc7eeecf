/**
 * Drives the embed server: pause, look, resume, then follow the search to its end.
 *
 *   node --conditions=@trex/source examples/embed/client.ts [http://127.0.0.1:8787] [--stop-after N]
 */
const base = process.argv.find((a) => a.startsWith("http")) ?? "http://127.0.0.1:8787"
const stopAt = process.argv.indexOf("--stop-after")
const stopAfter = stopAt > 0 ? Number(process.argv[stopAt + 1]) : Infinity

interface Status {
  readonly state: "running" | "finished" | "failed"
  readonly trials: number
  readonly inFlight: number
  readonly paused: boolean
  readonly best?: { readonly nodeId: string; readonly score: number }
  readonly reason?: string
}

const call = async (method: "GET" | "POST", route: string): Promise<Status> => {
  const res = await fetch(`${base}${route}`, { method })
  if (!res.ok) throw new Error(`${method} ${route}: HTTP ${res.status}`)
  return (await res.json()) as Status
}
const show = (s: Status) =>
  console.log(`${s.state}${s.paused ? " (paused)" : ""}: ${s.trials} trials, ${s.inFlight} in flight, best ${s.best?.score ?? "-"}`)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

show(await call("POST", "/pause"))
await sleep(500)
show(await call("GET", "/status"))
show(await call("POST", "/resume"))
let stopped = false
for (;;) {
  const s = await call("GET", "/status")
  show(s)
  if (s.state !== "running") {
    console.log(`done: ${s.reason ?? s.state}`)
    break
  }
  if (!stopped && s.trials >= stopAfter) {
    show(await call("POST", "/stop"))
    stopped = true
  }
  await sleep(1000)
}
