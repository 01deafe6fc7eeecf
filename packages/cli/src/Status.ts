/**
 * What `trex status` and `trex report` print: the run's state, best node, budget used and
 * left, the researcher's analysis, insights and the tree — as text, JSON or Markdown.
 *
 * @since 0.1.0
 */
import { Budget, ExperimentNode, type ExperimentTree, type JournalEvent, Strategy } from "@trex/core"
import type { RunInfo } from "./RunDir.ts"
import * as Untrusted from "./internal/untrusted.ts"

/** A JSON-ready summary of a run. @since 0.1.0 @category models */
export interface StatusJson {
  readonly runId: string
  readonly task: string
  readonly metric: { readonly name: string; readonly direction: string }
  /**
   * "running" while a controller writes the run (`writerPid`), "stopped" when it ended without
   * finishing (stopped, killed or crashed: `trex resume` continues it), "finished" when it finished.
   */
  readonly state: "running" | "stopped" | "finished"
  readonly writerPid?: number
  readonly finishedReason?: string
  /** The journal's damage, when it was read up to a damaged entry: the rest of this summary is what precedes it. */
  readonly damage?: string
  readonly counts: Record<ExperimentNode.StateTag, number>
  /** Succeeded nodes whose result was reused from an earlier run (no job ran for them). */
  readonly reused: number
  readonly best?: { readonly id: string; readonly score: number; readonly metrics: Record<string, number>; readonly strategy: unknown }
  /** `spent.wallSeconds` sums the trials' own wall time; `elapsedSeconds` is the run's, the one `wallClockHours` limits. */
  readonly budget: { readonly limits: Budget.Budget; readonly trials: number; readonly spent: Budget.Usage["spent"]; readonly elapsedSeconds: number }
  /**
   * The researcher's analysis of the task, as journaled before the first proposal (absent before
   * that, and in runs of trex versions that did not journal it); its machine-readable `notes` are left out.
   */
  readonly analysis?: { readonly summary: string; readonly metricNotes: string; readonly dataNotes: string; readonly risks: ReadonlyArray<string> }
  readonly insights: ReadonlyArray<{ readonly text: string; readonly evidence: ReadonlyArray<string> }>
  /**
   * `waiting`: why a trial's job waits in its backend's queue, while a controller runs the run;
   * `withdrawn`: a drain took it out of the queue (it runs first on resume); `pruning`: why a
   * scheduler stopped it, while its job is being cancelled (it then ends `Pruned`, and is not run again).
   */
  readonly nodes: ReadonlyArray<{
    readonly id: string
    readonly parent: string
    readonly state: string
    readonly score?: number
    readonly failure?: string
    readonly waiting?: string
    readonly withdrawn?: true
    readonly pruning?: string
  }>
}

/** Budget usage replayed from the journal; `now` (ms), for a run a controller is running: its wall clock runs on to then. @since 0.1.0 @category functions */
export const usage = (entries: ReadonlyArray<JournalEvent.Entry>, budget: Budget.Budget, now?: number): Budget.Usage => {
  const ledger = new Budget.Ledger(budget)
  let elapsed = 0
  let sessionStart = 0
  let last = 0
  for (const { event } of entries) {
    ledger.apply(event)
    if (event._tag === "RunStarted" || event._tag === "RunResumed") {
      elapsed += Math.max(0, last - sessionStart)
      sessionStart = event.at
    }
    last = event.at
  }
  // a live run's session goes on until now, not until its last event
  if (now !== undefined) last = Math.max(last, now)
  ledger.setElapsed((elapsed + Math.max(0, last - sessionStart)) / 1000)
  return ledger.usage()
}

/** Metrics shown on `trex status`'s line of the best trial; the rest are in `--json` and the reports. */
const STATUS_METRICS = 12

/** A result's metrics on one line: the first {@link STATUS_METRICS}, and how many more there are. */
const metricsLine = (metrics: Record<string, number>): string => {
  const all = Object.entries(metrics)
  const shown = all.slice(0, STATUS_METRICS).map(([k, v]) => `${k} ${fmt(v)}`).join(", ")
  return all.length > STATUS_METRICS ? `${shown}, and ${all.length - STATUS_METRICS} more: trex status --json` : shown
}

/** Trials proposed, queued or running: in flight, or interrupted when nobody runs the run. */
const inFlightOf = (s: StatusJson) => s.counts.Running + s.counts.Queued + s.counts.Proposed

const reusedNote = (s: StatusJson) => (s.reused > 0 ? ` (${s.reused} reused from earlier runs, no job run)` : "")

/** Whether a run is being written now, ended without finishing, or finished. @since 0.1.0 @category functions */
export const runState = (info: Pick<RunInfo, "finished" | "writer">): StatusJson["state"] =>
  info.writer !== undefined ? "running" : info.finished !== undefined ? "finished" : "stopped"

/** @since 0.1.0 @category functions */
export const toJson = (info: RunInfo): StatusJson => {
  const view = info.tree.view
  const counts = { Proposed: 0, Queued: 0, Running: 0, Succeeded: 0, Failed: 0, Cancelled: 0, Pruned: 0 }
  const nodes: Array<StatusJson["nodes"][number]> = []
  const live = runState(info) === "running"
  let reused = 0
  for (const n of view.nodes()) {
    counts[n.state._tag]++
    if (ExperimentNode.result(n)?.reusedFrom !== undefined) reused++
    const score = ExperimentNode.score(n)
    const failure = ExperimentNode.result(n)?.failure
    nodes.push({
      id: n.id,
      parent: n.parent,
      state: n.state._tag,
      ...(score !== undefined ? { score } : {}),
      ...(failure !== undefined ? { failure: `${failure.kind}: ${failure.message}` } : {}),
      // a wait is news only while a controller runs the run
      ...(n.waiting !== undefined && live ? { waiting: n.waiting } : {}),
      ...(n.withdrawn === true ? { withdrawn: true as const } : {}),
      ...(n.pruning !== undefined ? { pruning: n.pruning } : {})
    })
  }
  const best = view.best()
  const u = usage(info.entries, view.task.budget, live ? Date.now() : undefined)
  const analysis = view.analysis
  return {
    runId: info.started.runId,
    task: view.task.name,
    metric: { name: view.task.metric.name, direction: view.task.metric.direction },
    state: runState(info),
    ...(info.writer?.pid !== undefined ? { writerPid: info.writer.pid } : {}),
    ...(info.finished !== undefined ? { finishedReason: info.finished.reason } : {}),
    ...(info.damage !== undefined ? { damage: info.damage.message } : {}),
    counts,
    reused,
    ...(best !== undefined
      ? {
        best: {
          id: best.id,
          score: ExperimentNode.score(best)!,
          metrics: ExperimentNode.result(best)!.metrics,
          strategy: Strategy.encode(best.strategy)
        }
      }
      : {}),
    budget: { limits: view.task.budget, trials: u.trials, spent: u.spent, elapsedSeconds: u.elapsedSeconds },
    ...(analysis !== undefined
      ? { analysis: { summary: analysis.summary, metricNotes: analysis.metricNotes, dataNotes: analysis.dataNotes, risks: analysis.risks } }
      : {}),
    insights: view.insights.map((i) => ({ text: i.text, evidence: i.evidence })),
    nodes
  }
}

const fmt = (v: number | undefined) => (v === undefined ? "-" : Number(v.toPrecision(4)).toString())


/** Human duration, e.g. `1m42s`. @since 0.1.0 @category formatting */
export const duration = (seconds: number): string => {
  const s = Math.round(seconds)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`
}

/** One line of budget: `trials 12/20 · GPU-h 0.00 · wall 1m42s`. @since 0.1.0 @category formatting */
export const budgetLine = (budget: Budget.Budget, u: Pick<Budget.Usage, "trials" | "spent" | "elapsedSeconds">): string => {
  const parts = [`trials ${u.trials}${budget.maxTrials !== undefined ? `/${budget.maxTrials}` : ""}`]
  parts.push(`GPU-h ${(u.spent.gpuSeconds / 3600).toFixed(2)}${budget.gpuHours !== undefined ? `/${budget.gpuHours}` : ""}`)
  if (budget.dollars !== undefined || u.spent.dollars > 0) parts.push(`$${u.spent.dollars.toFixed(2)}${budget.dollars !== undefined ? `/${budget.dollars}` : ""}`)
  const tokens = u.spent.inputTokens + u.spent.outputTokens
  if (budget.tokens !== undefined || tokens > 0) parts.push(`tokens ${tokens}${budget.tokens !== undefined ? `/${budget.tokens}` : ""}`)
  parts.push(`wall ${duration(u.elapsedSeconds)}${budget.wallClockHours !== undefined ? `/${duration(budget.wallClockHours * 3600)}` : ""}`)
  if (budget.strict === true) parts.push("strict (each trial held at its time limit)")
  return parts.join(" · ")
}

/**
 * How a trial whose job waits in its backend's queue is shown: `waiting (Priority)`, or `waiting`
 * when the backend gave no reason.
 * @since 0.1.0 @category formatting
 */
export const waitLabel = (waiting: string): string => (waiting === ExperimentNode.UNSPECIFIED_WAIT ? "waiting" : `waiting (${Untrusted.line(waiting, 120)})`)

const mark = (n: ExperimentTree.NodeView, stopped: boolean) => {
  switch (n.state._tag) {
    case "Succeeded":
      return fmt(ExperimentNode.score(n))
    case "Failed":
      return `FAILED ${n.state.result.failure?.kind ?? ""}`.trim()
    case "Pruned": {
      // where it was stopped: the last step it reported
      const step = n.curve.reduce((m, p) => Math.max(m, p.step), -Infinity)
      return Number.isFinite(step) ? `pruned at step ${step}` : "pruned"
    }
    case "Cancelled":
      return "cancelled"
    default:
      // a scheduler stopped it: it ends pruned (on resume too, which cancels its job if it still runs)
      if (n.pruning !== undefined) return "pruning (its job is cancelled)"
      if (n.withdrawn === true) return "withdrawn (runs on resume)"
      // a trial in flight when its run stopped: its job may still run (resume reattaches to it) or be gone
      if (stopped) return `interrupted (${n.waiting !== undefined ? "waiting" : n.state._tag.toLowerCase()})`
      return n.waiting !== undefined ? waitLabel(n.waiting) : n.state._tag.toLowerCase()
  }
}

/**
 * The tree as indented lines, at most `max`; `stopped`: the run is not running, so its trials in
 * flight are marked interrupted.
 * @since 0.1.0 @category formatting
 */
export const treeLines = (view: ExperimentTree.TreeView, max = 80, stopped = false): Array<string> => {
  const out: Array<string> = ["root"]
  const bestId = view.best()?.id
  const walk = (ids: ReadonlyArray<string>, prefix: string) => {
    ids.forEach((id, i) => {
      if (out.length >= max) return
      const n = view.get(id)!
      const last = i === ids.length - 1
      out.push(`${prefix}${last ? "└─" : "├─"} ${n.id} ${mark(n, stopped)}${n.id === bestId ? "  ★ best" : ""}`)
      walk(n.children, prefix + (last ? "   " : "│  "))
    })
  }
  walk(view.root.children, "")
  if (out.length >= max) out.push(`… (${view.size} nodes in all)`)
  return out
}

/** The `trex status` text. @since 0.1.0 @category formatting */
export const toText = (info: RunInfo, runDir: string): string => {
  const s = toJson(info)
  const view = info.tree.view
  const resumeHint = `\`trex resume ${runDir}\` continues it`
  const inFlight = inFlightOf(s)
  // no controller writes the run: its trials in flight were interrupted
  const stopped = s.state !== "running"
  const withdrawn = s.nodes.filter((n) => n.withdrawn === true).length
  const reattach = inFlight === 0
    ? ""
    : withdrawn === inFlight
    ? ` (it runs the ${inFlight === 1 ? "trial" : `${inFlight} trials`} withdrawn from the backend's queue first)`
    : ` (${inFlight} trial${inFlight === 1 ? " was" : "s were"} in flight: it reattaches to the jobs that still run, and runs the others again)`
  // a damaged journal cannot be resumed: the message below says what helps instead
  const goOn = info.damage !== undefined ? "it cannot be resumed from its damaged journal" : `${resumeHint}${reattach}`
  const lines = [
    `Run ${s.runId} — task ${s.task} (${s.metric.direction} ${s.metric.name})`,
    `Directory: ${runDir}`,
    `State: ${
      s.state === "finished"
        ? `finished (${Untrusted.line(s.finishedReason ?? "", 300)})${s.finishedReason === "stopped by request" ? ` — ${goOn}` : ""}`
        : s.state === "running"
        ? `running (controller: process ${s.writerPid ?? "unknown"})`
        : `stopped before it finished — ${goOn}`
    }`,
    ...(info.damage !== undefined ? [`Journal: ${info.damage.message}. Shown below: the ${info.entries.length} entries before the damage`] : []),
    `Trials: ${s.counts.Succeeded} succeeded${reusedNote(s)}, ${s.counts.Failed} failed, ${s.counts.Pruned} pruned, ${s.counts.Cancelled} cancelled, ${inFlight} ${stopped && inFlight > 0 ? "interrupted" : "in flight"}`,
    `Budget: ${budgetLine(view.task.budget, s.budget)}`,
    s.best !== undefined
      ? `Best: ${s.best.id} ${s.metric.name}=${fmt(s.best.score)} (${metricsLine(s.best.metrics)})`
      : "Best: none yet"
  ]
  if (s.analysis !== undefined) lines.push(`Analysis: ${Untrusted.line(s.analysis.summary, 200)}`)
  if (s.insights.length > 0) {
    lines.push("Insights:")
    for (const i of s.insights) {
      lines.push(`  - ${Untrusted.line(i.text, 500)} [${i.evidence.slice(0, 6).map((e) => Untrusted.line(e, 40)).join(", ")}${i.evidence.length > 6 ? ", …" : ""}]`)
    }
  }
  lines.push("Tree:", ...treeLines(view, 80, stopped).map((l) => `  ${l}`))
  return lines.join("\n")
}

/** The `trex report` Markdown. @since 0.1.0 @category formatting */
export const toMarkdown = (info: RunInfo): string => {
  const s = toJson(info)
  const view = info.tree.view
  const inFlight = inFlightOf(s)
  // a run nobody writes that did not end on its own: resume carries it on (not from a damaged journal)
  const resumable = info.damage === undefined && (s.state === "stopped" || (s.finishedReason === "stopped by request" && inFlight > 0))
  const out = [
    `# TREX run ${s.runId}`,
    "",
    `Task **${s.task}**: ${view.task.objective}`,
    "",
    `- Metric: ${s.metric.name} (${s.metric.direction}${view.task.metric.target !== undefined ? `, target ${view.task.metric.target}` : ""})`,
    `- State: ${s.state}${s.finishedReason !== undefined ? ` — ${Untrusted.markdown(s.finishedReason, 300)}` : ""}${resumable ? " (`trex resume` on its run directory continues it)" : ""}`,
    ...(s.damage !== undefined ? [`- Journal: ${s.damage}. This report shows the ${info.entries.length} entries before the damage`] : []),
    `- Budget: ${budgetLine(view.task.budget, s.budget)}`,
    `- Trials: ${s.counts.Succeeded} succeeded${reusedNote(s)}, ${s.counts.Failed} failed, ${s.counts.Pruned} pruned, ${s.counts.Cancelled} cancelled${
      inFlight > 0 ? `, ${inFlight} ${s.state === "running" ? "in flight" : "interrupted"}` : ""
    }`,
    ""
  ]
  if (s.best !== undefined) {
    out.push(`## Best: ${s.best.id} (${s.metric.name} = ${fmt(s.best.score)})`, "", "```json", JSON.stringify(s.best.strategy, null, 2), "```", "")
  }
  if (s.analysis !== undefined) {
    out.push("## Analysis", "", Untrusted.markdown(s.analysis.summary, 1000), "")
    if (s.analysis.risks.length > 0) out.push(`Risks: ${s.analysis.risks.map((r) => Untrusted.markdown(r, 200)).join("; ")}`, "")
  }
  if (s.insights.length > 0) {
    out.push("## Insights", "")
    for (const i of s.insights) out.push(`- ${Untrusted.markdown(i.text, 1000)} (evidence: ${i.evidence.map((e) => Untrusted.markdown(e, 40)).join(", ")})`)
    out.push("")
  }
  out.push("## Trials", "", "| node | parent | state | score | note |", "|---|---|---|---|---|")
  for (const n of view.nodes()) {
    const r = ExperimentNode.result(n)
    // a pruned trial's job was cancelled: why it was pruned is the news, not the cancel
    const note = n.state._tag === "Pruned" ? n.state.reason
      : r?.failure !== undefined ? `${r.failure.kind}: ${r.failure.message}`
      : (n.strategy.rationale || "")
    out.push(`| ${n.id} | ${n.parent} | ${n.state._tag}${s.state !== "running" && ExperimentNode.isPending(n) ? " (interrupted)" : ""} | ${fmt(ExperimentNode.score(n))} | ${Untrusted.markdown(note, 160)} |`)
  }
  out.push("", "## Tree", "", "```", ...treeLines(view, 400, s.state !== "running"), "```", "")
  return out.join("\n")
}
