/**
 * What `trex status` and `trex report` print: the run's state, best node, budget used and
 * left, the researcher's analysis, insights and the tree — as text, JSON or Markdown.
 *
 * @since 0.1.0
 */
import * as os from "node:os"
import { Budget, ExperimentNode, type ExperimentTree, Journal, type JournalEvent, type Result, Strategy } from "@trex/core"
import * as RunDir from "./RunDir.ts"
import type { RunInfo } from "./RunDir.ts"
import { recordedOptions } from "./internal/sessionSettings.ts"
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
  /**
   * The controller's pid, as the run's lock record names it; absent while "running" when the record names
   * none (gone, unreadable, or a killed holder's, read in the instant before the lock's new holder writes its own).
   */
  readonly writerPid?: number
  /** The machine the controller runs on (a run directory on a shared filesystem), as it names itself (any string, an empty one too), when it recorded it. */
  readonly writerHost?: string
  /**
   * A process that holds the run's lock for a moment and is not its controller (a `trex notify`, posting or
   * dropping the run's expired webhook messages): what it is (`by`), its pid and host (as `writerHost`). No controller runs
   * the run meanwhile (`state` is not "running"), and none starts until it lets go.
   */
  readonly heldBy?: { readonly by: string; readonly pid?: number; readonly host?: string }
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
   * The run's webhook messages not delivered (given by `trex status --json`, not by a webhook's end
   * message, nor by {@link toJson}): see {@link WebhooksJson}.
   */
  readonly webhooks?: WebhooksJson
  /**
   * The settings the run takes (given by `trex status --json` and, bounded, by a webhook's end message; not by
   * {@link toJson}): see {@link SettingsJson}.
   */
  readonly settings?: SettingsJson["settings"]
  /** Those of {@link settings} a resume set, unlike the run's start (given where `settings` is): see {@link SettingsJson}. */
  readonly settingOverrides?: SettingsJson["settingOverrides"]
  /**
   * `waiting`: why a trial's job waits in its backend's queue, while a controller runs the run;
   * `unreachable`: why its backend cannot be asked about its running job now (the engine, controller
   * or host does not answer), while a controller runs the run; `withdrawn`: a drain took it out of the queue (it runs first on resume); `pruning`: why a
   * scheduler stopped it, while its job is being cancelled (it then ends `Pruned`, and is not run again).
   */
  readonly nodes: ReadonlyArray<{
    readonly id: string
    readonly parent: string
    readonly state: string
    readonly score?: number
    readonly failure?: string
    readonly waiting?: string
    readonly unreachable?: string
    readonly withdrawn?: true
    readonly pruning?: string
  }>
}

/**
 * A run's webhook messages not delivered, as `trex status --json` gives them, each by its `id` (the
 * message's `trex.id`), `kind` (`best` or `end`) and `due` (ISO 8601: when it was due). `waiting`: kept
 * in `<run-dir>/notify` for the run's next session with webhooks, in the order they were due, with
 * `maxAgeHours`, the `--notify-max-age` of the session that kept it (72, the default, when not recorded),
 * and `pastMaxAge` when it was due longer ago than that: a session with webhooks and that age expires it
 * (does not post it); one with a longer `--notify-max-age` posts it. `expired`: found too
 * old to post, in `<run-dir>/notify/expired` (`expired`: when), until removed. Both are empty when
 * nothing is left.
 * @since 0.1.0 @category models
 */
export interface WebhooksJson {
  readonly waiting: ReadonlyArray<{ readonly id: string; readonly kind: "best" | "end"; readonly due: string; readonly maxAgeHours: number; readonly pastMaxAge: boolean }>
  readonly expired: ReadonlyArray<{ readonly id: string; readonly kind: "best" | "end"; readonly due: string; readonly expired: string }>
}

/**
 * A run's settings, as `trex status --json` gives them. `settings`: those the run takes (a resume takes them as it
 * reads them), the ones recorded when it started (`RunStarted.options`: its backend, researcher, policy, concurrency,
 * model's timeout, ...) with those each resume set since for the run (`RunResumed.settings`: one given for a recorded
 * setting this trex does not take, `trex resume --model-timeout 60`) laid over them, in order. `settingOverrides`:
 * each of those that differs from the run's start, in the order of `settings`: its `key`, its `value`, the one the run
 * started with (`from`, absent when it was not set) and the resume that set it (`resume`: 1 for the run's first
 * resume, 2 for its second, ...; `at`: when, in ms since the epoch). Settings a resume gave for its session alone
 * (`--fail-fast 0`, a longer `--max-retry-after`) are not the run's, and not here.
 * @since 0.1.0 @category models
 */
export interface SettingsJson {
  readonly settings: Record<string, unknown>
  readonly settingOverrides: ReadonlyArray<{ readonly key: string; readonly value: unknown; readonly from?: unknown; readonly resume: number; readonly at: number }>
}

/**
 * A run's settings and those its resumes set (see {@link SettingsJson}), from its journal's entries, or from a
 * {@link Replay} of them (a notifier's, which does not keep them).
 * @since 0.1.0 @category functions
 */
export const settingsJson = (info: Pick<RunInfo, "started" | "entries"> | { readonly started: RunInfo["started"]; readonly replayed: Replay }): SettingsJson => {
  const entries = "entries" in info ? info.entries : info.replayed.resumes
  // the run's settings as a resume reads them: the same fold
  const settings = recordedOptions(info.started, entries)
  const started = info.started.options
  const resumes = entries.flatMap(({ event }) => event._tag === "RunResumed" ? [event] : [])
  const settingOverrides = Object.keys(settings).flatMap((key) => {
    if (JSON.stringify(settings[key]) === JSON.stringify(started[key])) return []
    // the last resume that set it: the value taken
    const resume = resumes.findLastIndex((r) => r.settings !== undefined && Object.hasOwn(r.settings, key))
    if (resume < 0) return []
    return [{ key, value: settings[key], ...(Object.hasOwn(started, key) ? { from: started[key] } : {}), resume: resume + 1, at: resumes[resume]!.at }]
  })
  return { settings, settingOverrides }
}

/**
 * One setting a resume set for the run, in the words `trex status` gives it on its `Setting:` line (and `trex report`, in
 * Markdown and HTML): `modelTimeoutSeconds 60 since resume 1 (2026-12-06T15:52:03Z; the run started with 3000000)`.
 * @since 0.1.0 @category formatting
 */
export const settingOverrideText = (o: SettingsJson["settingOverrides"][number]): string =>
  `${Untrusted.line(o.key, 60)} ${settingValue(o.value)} since resume ${o.resume} (${clock(o.at)}; ${"from" in o ? `the run started with ${settingValue(o.from)}` : "not set when the run started"})`

/**
 * A setting's value as `trex status` and `trex report` show it (and `trex status --node` a strategy's): its JSON, on one line, cut at 200 characters.
 * @since 0.1.0 @category formatting
 */
export const settingValue = (v: unknown): string =>
  v === undefined ? "(none)" : Untrusted.line(JSON.stringify(v), 200)

/**
 * Budget usage replayed event by event, as {@link usage} replays a journal's: for a caller that sees a
 * run's events one at a time and does not keep them (a notifier, whose end message tells the budget used, and the
 * settings: it keeps each resume's, a few small events, for {@link settingsJson}).
 * @since 0.1.0 @category models
 */
export class Replay {
  private readonly ledger: Budget.Ledger
  private elapsed = 0
  private sessionStart = 0
  private last = 0
  private readonly resumed: Array<{ readonly event: JournalEvent.Of<"RunResumed"> }> = []
  constructor(budget: Budget.Budget) {
    this.ledger = new Budget.Ledger(budget)
  }
  apply(event: JournalEvent.JournalEvent): void {
    this.ledger.apply(event)
    // the settings each resume set (a few, small): what {@link settingsJson} reads
    if (event._tag === "RunResumed") this.resumed.push({ event })
    if (event._tag === "RunStarted" || event._tag === "RunResumed") {
      this.elapsed += Math.max(0, this.last - this.sessionStart)
      this.sessionStart = event.at
    }
    this.last = event.at
  }
  /** The run's resumes so far, each as its entry holds it (for {@link settingsJson}). */
  get resumes(): ReadonlyArray<{ readonly event: JournalEvent.Of<"RunResumed"> }> {
    return this.resumed
  }
  /** The usage so far; `now` (ms), for a run a controller is running: its wall clock runs on to then. */
  usage(now?: number): Budget.Usage {
    // a live run's session goes on until now, not until its last event
    const last = now !== undefined ? Math.max(this.last, now) : this.last
    this.ledger.setElapsed((this.elapsed + Math.max(0, last - this.sessionStart)) / 1000)
    return this.ledger.usage()
  }
}

/** Budget usage replayed from the journal; `now` (ms), for a run a controller is running: its wall clock runs on to then. @since 0.1.0 @category functions */
export const usage = (entries: ReadonlyArray<JournalEvent.Entry>, budget: Budget.Budget, now?: number): Budget.Usage => {
  const replay = new Replay(budget)
  for (const { event } of entries) replay.apply(event)
  return replay.usage(now)
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

/**
 * What {@link toJson} reads of a run: a {@link RunInfo} (its tree, and its journal's entries for the
 * budget used), or a run's live tree (`view`) with its budget used replayed as its events came
 * (`replayed`: a {@link Replay} of every entry), which need not keep them.
 * @since 0.1.0 @category models
 */
export type Source =
  | RunInfo
  | Pick<RunInfo, "started" | "finished" | "writer" | "held" | "damage"> & { readonly view: ExperimentTree.TreeView; readonly replayed: Replay }

/** @since 0.1.0 @category functions */
export const toJson = (info: Source): StatusJson => {
  const view = "view" in info ? info.view : info.tree.view
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
      ...(n.unreachable !== undefined && live ? { unreachable: n.unreachable } : {}),
      ...(n.withdrawn === true ? { withdrawn: true as const } : {}),
      ...(n.pruning !== undefined ? { pruning: n.pruning } : {})
    })
  }
  const best = view.best()
  const now = live ? Date.now() : undefined
  const u = "replayed" in info ? info.replayed.usage(now) : usage(info.entries, view.task.budget, now)
  const analysis = view.analysis
  return {
    runId: info.started.runId,
    task: view.task.name,
    metric: { name: view.task.metric.name, direction: view.task.metric.direction },
    state: runState(info),
    ...(info.writer?.pid !== undefined ? { writerPid: info.writer.pid } : {}),
    ...(info.writer?.host !== undefined ? { writerHost: info.writer.host } : {}),
    ...(info.held?.by !== undefined
      ? { heldBy: { by: info.held.by, ...(info.held.pid !== undefined ? { pid: info.held.pid } : {}), ...(info.held.host !== undefined ? { host: info.held.host } : {}) } }
      : {}),
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

/**
 * How a running trial whose backend cannot be asked about its job now is shown: `unreachable (the
 * Docker engine at ... does not answer since 10:03:12Z ...)`.
 * @since 0.1.0 @category formatting
 */
export const unreachableLabel = (reason: string, width = 120): string => `unreachable (${Untrusted.line(reason, width)})`

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
      // (its backend not answering when the run stopped: `trex status --node` says why)
      if (stopped) return `interrupted (${n.waiting !== undefined ? "waiting" : n.unreachable !== undefined ? "unreachable" : n.state._tag.toLowerCase()})`
      return n.waiting !== undefined ? waitLabel(n.waiting) : n.unreachable !== undefined ? unreachableLabel(n.unreachable) : n.state._tag.toLowerCase()
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
        ? `running (controller: process ${s.writerPid ?? "unknown"}${
          s.writerHost === undefined || s.writerHost === os.hostname() ? ""
          // (a container of a host name of its own on this machine: stopped from here)
          : info.writer?.thisMachine === true ? ` on this machine (its host name ${Journal.hostName(s.writerHost)})`
          : ` on host ${Journal.hostName(s.writerHost)}`
        }; \`trex status ${runDir} --follow\` follows it, \`trex stop ${runDir}\` stops it)`
        : `stopped before it finished — ${goOn}`
    }`,
    // a `trex notify` holding the run: named, as what it is, not as a controller
    ...(info.held !== undefined ? [`Lock: ${Untrusted.line(RunDir.heldBy(info.held, `\`trex resume ${runDir}\` or \`trex notify\` can take the run`), 600)}`] : []),
    ...(info.damage !== undefined ? [`Journal: ${info.damage.message}. Shown below: the ${info.entries.length} entries before the damage`] : []),
    `Trials: ${s.counts.Succeeded} succeeded${reusedNote(s)}, ${s.counts.Failed} failed, ${s.counts.Pruned} pruned, ${s.counts.Cancelled} cancelled, ${inFlight} ${stopped && inFlight > 0 ? "interrupted" : "in flight"}`,
    `Budget: ${budgetLine(view.task.budget, s.budget)}`,
    // a resumed run that behaves otherwise than it started: which setting, and which resume set it
    ...settingsJson(info).settingOverrides.map((o) => `Setting: ${settingOverrideText(o)}`),
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

/**
 * The `trex report` Markdown: with the run's settings (a `Settings` table, as {@link settingsJson} gives them) and each
 * a resume set for the run on a `Setting:` line in `trex status`'s words.
 * @since 0.1.0 @category formatting
 */
export const toMarkdown = (info: RunInfo): string => {
  const s = toJson(info)
  const { settingOverrides, settings } = settingsJson(info)
  const view = info.tree.view
  const inFlight = inFlightOf(s)
  // a run nobody writes that did not end on its own (stopped, killed, or stopped by request, with or
  // without trials in flight): resume carries it on, as `trex status` says (not from a damaged journal)
  const resumable = info.damage === undefined && (s.state === "stopped" || s.finishedReason === "stopped by request")
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
    // a resumed run that behaves otherwise than it started, as `trex status` says it
    ...settingOverrides.map((o) => `- Setting: ${Untrusted.markdown(settingOverrideText(o))}`),
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
  // what the run takes, as `trex status --json` gives it (`settings`)
  const keys = Object.keys(settings)
  if (keys.length > 0) {
    out.push("## Settings", "", "The settings the run takes, as the next `trex resume` reads them:", "", "| setting | value |", "|---|---|")
    for (const key of keys) out.push(`| ${Untrusted.markdown(key, 60)} | ${Untrusted.markdown(settingValue(settings[key]))} |`)
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

/**
 * One trial, as `trex status <run-dir> --node <id>` shows it: its strategy and what it changed from
 * its parent's, why it was proposed, its jobs, where it stands, its result or failure, and the last
 * lines of its job's logs.
 * @since 0.1.0 @category models
 */
export interface TrialJson {
  readonly runId: string
  readonly id: string
  readonly parent: string
  readonly children: ReadonlyArray<string>
  readonly depth: number
  readonly state: ExperimentNode.StateTag
  /** In flight when its run stopped (no controller runs the run): a resume reattaches to its job or runs it again. */
  readonly interrupted?: true
  readonly fingerprint: string
  /** The strategy as its job receives it (`strategy.json`). */
  readonly strategy: unknown
  /** What differs from the parent's strategy (for a child of the root: from the task's default strategy, if it has one), path by path. */
  readonly changes: ReadonlyArray<{ readonly path: string; readonly from?: unknown; readonly to?: unknown }>
  readonly rationale: string
  readonly prior?: number
  /** Times in ms since the epoch. */
  readonly proposedAt: number
  readonly admittedAt?: number
  /** Each job submitted for it, in order (a retry or a resume after a lost job submits another), and where its folder is as its backend recorded it (a Kubernetes claim's folder, an SSH host's directory, a job directory). */
  readonly jobs: ReadonlyArray<{ readonly backend: string; readonly id: string; readonly submittedAt: number; readonly folder?: string }>
  readonly waiting?: string
  readonly unreachable?: string
  readonly withdrawn?: true
  readonly pruning?: string
  /** The latest progress fraction and message its job reported. */
  readonly progress?: number
  readonly message?: string
  /** The intermediate metrics its job reported (what schedulers read). */
  readonly curve: ReadonlyArray<Result.MetricPoint>
  readonly finishedAt?: number
  /** Why it was cancelled or pruned. */
  readonly reason?: string
  /** Its result (without its curves, which `curve` and the HTML report show). */
  readonly result?: Omit<Result.Result, "curves">
  /** Its job's folder in the run directory (the local backend's: `strategy.json`, logs, `result.json`), when there is one. */
  readonly files?: string
  /** The last lines of its job's logs: from its job's folder, else those its failure carried. */
  readonly logs?: { readonly source: string; readonly tail: ReadonlyArray<string> }
  /** Why the lines of its job's folder are not shown (a secret of the task's that this shell has not set). */
  readonly logsWithheld?: string
}

/** A strategy's leaves by path (`training.learningRate`); lists are leaves. */
const leaves = (value: unknown, prefix = "", out = new Map<string, unknown>()): Map<string, unknown> => {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) leaves(v, prefix === "" ? k : `${prefix}.${k}`, out)
  } else if (prefix !== "") out.set(prefix, value)
  return out
}

const executableOf = (s: Strategy.Strategy) => {
  const { rationale: _, ...rest } = Strategy.encode(s) as Record<string, unknown>
  return rest
}

/** The paths whose values differ between two strategies (a missing side is left out of its member). */
const changesOf = (from: Strategy.Strategy | undefined, to: Strategy.Strategy): TrialJson["changes"] => {
  if (from === undefined) return []
  const a = leaves(executableOf(from))
  const b = leaves(executableOf(to))
  const out: Array<TrialJson["changes"][number]> = []
  for (const p of new Set([...a.keys(), ...b.keys()])) {
    if (JSON.stringify(a.get(p)) === JSON.stringify(b.get(p))) continue
    out.push({ path: p, ...(a.has(p) ? { from: a.get(p) } : {}), ...(b.has(p) ? { to: b.get(p) } : {}) })
  }
  return out
}

/**
 * Where a job's folder is, as its backend recorded it: a Kubernetes claim's folder (`folder`), an SSH
 * host's directory (`host`, `dir`), a job directory (`jobDir`, `dir`).
 */
const folderOf = (job: ExperimentNode.JobRef): string | undefined => {
  const str = (k: string) => (typeof job.data[k] === "string" && job.data[k] !== "" ? job.data[k] as string : undefined)
  const host = str("host")
  return str("folder") ?? (host !== undefined && str("dir") !== undefined ? `${host}:${str("dir")}` : str("jobDir") ?? str("dir"))
}

/**
 * One trial of a run (see {@link TrialJson}), or `undefined` when the run has no trial `id`;
 * `files`: its job's folder, when it has one, and the last lines of the logs there (or, `withheld`,
 * why they are not shown).
 * @since 0.1.0 @category functions
 */
export const trialJson = (
  info: RunInfo,
  id: string,
  files?: { readonly dir: string; readonly tail: ReadonlyArray<string>; readonly withheld?: string }
): TrialJson | undefined => {
  const view = info.tree.view
  const n = view.get(id)
  if (n === undefined) return undefined
  let admittedAt: number | undefined
  let progress: number | undefined
  let message: string | undefined
  const jobs: Array<TrialJson["jobs"][number]> = []
  for (const { event } of info.entries) {
    if (!("nodeId" in event) || event.nodeId !== id) continue
    if (event._tag === "NodeAdmitted") admittedAt = event.at
    else if (event._tag === "JobSubmitted") {
      const folder = folderOf(event.job)
      jobs.push({ backend: event.job.backend, id: event.job.id, submittedAt: event.at, ...(folder !== undefined ? { folder } : {}) })
    }
    else if (event._tag === "JobProgress") {
      if (event.fraction !== undefined) progress = event.fraction
      if (event.message !== undefined) message = event.message
    }
  }
  const parent = n.parent === ExperimentNode.ROOT ? view.task.defaultStrategy : view.get(n.parent)?.strategy
  const result = ExperimentNode.result(n)
  const { curves: _, ...shown } = result ?? { curves: [] }
  const failureTail = result?.failure?.logTail ?? []
  const tail = files !== undefined && files.tail.length > 0 ? { source: files.dir, tail: files.tail }
    : failureTail.length > 0 ? { source: "as its failure recorded it", tail: failureTail }
    : undefined
  return {
    runId: info.started.runId,
    id,
    parent: n.parent,
    children: n.children,
    depth: n.depth,
    state: n.state._tag,
    ...(runState(info) !== "running" && ExperimentNode.isPending(n) ? { interrupted: true as const } : {}),
    fingerprint: n.fingerprint,
    strategy: executableOf(n.strategy),
    changes: changesOf(parent, n.strategy),
    rationale: n.strategy.rationale,
    ...(n.prior !== undefined ? { prior: n.prior } : {}),
    proposedAt: n.proposedAt,
    ...(admittedAt !== undefined ? { admittedAt } : {}),
    jobs,
    ...(n.waiting !== undefined && runState(info) === "running" ? { waiting: n.waiting } : {}),
    // (for a trial interrupted out of touch with its job, as it was when the run stopped)
    ...(n.unreachable !== undefined ? { unreachable: n.unreachable } : {}),
    ...(n.withdrawn === true ? { withdrawn: true as const } : {}),
    ...(n.pruning !== undefined ? { pruning: n.pruning } : {}),
    ...(progress !== undefined ? { progress } : {}),
    ...(message !== undefined ? { message } : {}),
    curve: n.curve,
    ...("finishedAt" in n.state ? { finishedAt: n.state.finishedAt } : {}),
    ...("reason" in n.state ? { reason: n.state.reason } : {}),
    ...(result !== undefined ? { result: shown as Omit<Result.Result, "curves"> } : {}),
    ...(files !== undefined ? { files: files.dir } : {}),
    ...(tail !== undefined ? { logs: tail } : {}),
    ...(files?.withheld !== undefined ? { logsWithheld: files.withheld } : {})
  }
}

const clock = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z")
/** The `trex status --node` text of one trial (see {@link trialJson}). @since 0.1.0 @category formatting */
export const trialText = (t: TrialJson, metric: string): string => {
  const r = t.result
  const state = t.interrupted === true
    ? `interrupted (${t.state.toLowerCase()}): the run stopped while it was in flight${
      t.unreachable !== undefined ? `, its backend not answering about its job (${Untrusted.line(t.unreachable, 500)}): \`trex resume\` follows the job again once it answers` : ""
    }`
    : t.state === "Succeeded" ? `succeeded, ${metric}=${fmt(r?.score)}${r?.reusedFrom !== undefined ? ` (reused from ${Untrusted.line(r.reusedFrom, 80)}: no job ran)` : ""}`
    : t.state === "Failed" ? `failed (${r?.failure?.kind ?? "no result"})`
    : t.pruning !== undefined ? `pruning (its job is cancelled): ${Untrusted.line(t.pruning, 200)}`
    : t.withdrawn === true ? "withdrawn from its backend's queue (runs on resume)"
    : t.waiting !== undefined ? waitLabel(t.waiting)
    : t.unreachable !== undefined ? unreachableLabel(t.unreachable, 500)
    : t.state.toLowerCase()
  const lines = [
    `Trial ${t.id} of run ${t.runId}: ${state}`,
    `Parent: ${t.parent} · children: ${t.children.length > 0 ? t.children.join(", ") : "none"} · depth ${t.depth}`
  ]
  const from = t.parent === ExperimentNode.ROOT ? "the task's default strategy" : t.parent
  lines.push(t.changes.length > 0
    ? `Changed from ${from}: ${t.changes.map((c) => `${c.path} ${settingValue(c.from)} -> ${settingValue(c.to)}`).join("; ")}`
    : t.parent === ExperimentNode.ROOT ? "Strategy:" : `Changed from ${from}: nothing (the same strategy)`)
  if (t.changes.length > 0) lines.push("Strategy:")
  for (const [p, v] of leaves(t.strategy)) lines.push(`  ${p} = ${settingValue(v)}`)
  if (t.rationale.length > 0) lines.push(`Rationale: ${Untrusted.line(t.rationale, 1000)}`)
  const timeline = [`proposed ${clock(t.proposedAt)}`]
  for (const j of t.jobs) {
    // (a local job's folder is its Files line)
    const folder = j.folder !== undefined && j.folder !== t.files ? ` (its folder: ${Untrusted.line(j.folder, 300)})` : ""
    timeline.push(`job ${Untrusted.line(j.backend, 40)} ${Untrusted.line(j.id, 80)} submitted ${clock(j.submittedAt)}${folder}`)
  }
  if (t.finishedAt !== undefined) timeline.push(`finished ${clock(t.finishedAt)}`)
  lines.push(`Timeline: ${timeline.join(" · ")}`)
  if (t.reason !== undefined) lines.push(`Reason: ${Untrusted.line(t.reason, 500)}`)
  if (t.progress !== undefined || t.message !== undefined) {
    lines.push(`Progress: ${t.progress !== undefined ? `${Math.round(t.progress * 100)} %` : ""}${t.message !== undefined ? ` ${Untrusted.line(t.message, 200)}` : ""}`.trimEnd())
  }
  if (t.curve.length > 0) {
    const latest = new Map<string, Result.MetricPoint>()
    for (const p of t.curve) latest.set(`${p.split}/${p.name}`, p)
    const shown = [...latest].slice(0, STATUS_METRICS).map(([k, p]) => `${Untrusted.line(k, 60)} ${fmt(p.value)} (step ${p.step})`)
    lines.push(`Intermediate: ${shown.join(", ")}${latest.size > STATUS_METRICS ? `, and ${latest.size - STATUS_METRICS} more: --json` : ""}`)
  }
  if (r !== undefined) {
    if (Object.keys(r.metrics).length > 0) lines.push(`Metrics: ${metricsLine(r.metrics).replace("trex status --json", "--json")}`)
    const c = r.cost
    lines.push(`Cost: GPU-h ${(c.gpuSeconds / 3600).toFixed(2)} · wall ${duration(c.wallSeconds)}${c.dollars > 0 ? ` · $${c.dollars.toFixed(2)}` : ""}${c.inputTokens + c.outputTokens > 0 ? ` · tokens ${c.inputTokens + c.outputTokens}` : ""}`)
    if (r.summary !== undefined) lines.push(`Summary: ${Untrusted.line(r.summary, 500)}`)
    for (const a of r.artifacts) lines.push(`Artifact: ${Untrusted.line(a.name, 80)} ${Untrusted.line(a.path, 300)}`)
    if (r.failure !== undefined) {
      const f = r.failure
      lines.push(`Failure: ${f.kind}${f.exitCode !== undefined ? ` (exit code ${f.exitCode})` : ""}: ${Untrusted.line(f.message, 1000)}${f.retryable ? " (retryable)" : ""}`)
    }
  }
  if (t.files !== undefined) lines.push(`Files: ${t.files}`)
  if (t.logs !== undefined) {
    lines.push(`Log tail (${t.logs.source}):`, ...t.logs.tail.map((l) => `  | ${Untrusted.line(l, 300)}`))
  }
  if (t.logsWithheld !== undefined) lines.push(`Logs: ${t.logsWithheld}`)
  return lines.join("\n")
}
