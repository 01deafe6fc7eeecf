/**
 * Follows a run that another process runs — `trex run --detach`, a service built on `Trex.start`, a
 * shell you cannot see — from its run directory: a line per finished trial with the best so far,
 * until the run's controller exits (Ctrl-C stops following, not the run).
 *
 *   node --conditions=@trex/source examples/embed/follow.ts <run-dir>
 */
import { Follow } from "@trex/cli"
import { ExperimentNode } from "@trex/core"
import { Effect } from "effect"

const runDir = process.argv[2]
if (runDir === undefined) {
  console.error("usage: follow.ts <run-dir>")
  process.exit(2)
}
let stopped = false
process.once("SIGINT", () => (stopped = true))

const fmt = (v: number | undefined) => (v === undefined ? "-" : v.toFixed(4))

const program = Follow.follow(runDir, {
  onStart: (info) =>
    console.log(`${info.started.runId}: ${info.tree.view.size} trials so far, ${info.writer !== undefined ? `running (process ${info.writer.pid})` : "nobody runs it"}`),
  onEntry: ({ event }, tree) => {
    if (event._tag !== "NodeFinished") return
    const best = tree.best()
    const score = event.result?.score
    console.log(`${event.nodeId} ${event.outcome.toLowerCase()}${score !== undefined ? ` ${fmt(score)}` : ""}; best ${best?.id ?? "-"} ${fmt(best !== undefined ? ExperimentNode.score(best) : undefined)}`)
  }
}, { stopped: () => stopped })

Effect.runPromise(program).then(
  (outcome) => {
    const { info } = outcome
    const state = info.writer !== undefined ? "still running" : info.finished !== undefined ? `finished (${info.finished.reason})` : "stopped before it finished"
    console.log(`${outcome._tag === "Stopped" ? "stopped following" : outcome._tag === "Exited" ? "its controller exited" : "not running"}: the run is ${state}`)
  },
  (e: { readonly message?: string }) => {
    // a folder that is no run, a damaged journal: the message names it and what to do
    console.error(`follow.ts: ${e.message ?? String(e)}`)
    process.exitCode = 2
  }
)
