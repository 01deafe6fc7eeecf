/**
 * The terminal view of a running search: trials in flight with their progress, the best score
 * so far, budget used and left. Redrawn in place on a TTY; one plain line per event otherwise
 * (logs, CI, pipes).
 *
 * @since 0.1.0
 */
import { Budget, Errors, ExperimentNode, type ExperimentTree, type JournalEvent, Result } from "@trex/core"
import { Effect } from "effect"
import { budgetLine, Replay, unreachableLabel, waitLabel } from "./Status.ts"
import * as DisplayWidth from "./internal/displayWidth.ts"
import * as Tmux from "./internal/tmux.ts"
import * as Untrusted from "./internal/untrusted.ts"

/**
 * A failure's kind and message, and its log's error line (`Result.errorLine`) when the message does
 * not say it: a trainer's own error (`ModuleNotFoundError: ...`, `FileNotFoundError: ...`), where
 * `exited with code 1` alone says nothing of what went wrong.
 */
const failureLine = (failure: Result.Failure | undefined): string => {
  const message = failure?.message ?? ""
  const last = failure !== undefined ? Result.errorLine(failure) : undefined
  return `${failure?.kind}: ${Untrusted.line(message, 500)}${last !== undefined && !message.includes(last) ? ` (${Untrusted.line(last, 200)})` : ""}`
}

/** The trials in flight (proposed, queued or running). */
const openIds = (view: ExperimentTree.TreeView) => [...view.nodes()].filter(ExperimentNode.isPending).map((n) => n.id)

const fmt = (v: number | undefined) => (v === undefined ? "-" : Number(v.toPrecision(4)).toString())
const bar = (fraction: number, width = 16) => {
  const full = Math.round(Math.max(0, Math.min(1, fraction)) * width)
  return `[${"#".repeat(full)}${".".repeat(width - full)}]`
}

/** @since 0.1.0 @category models */
export interface LiveView {
  /** Account for events journaled before this session (a resumed run), without printing them. */
  readonly prime: (entries: ReadonlyArray<JournalEvent.Entry>, budget: Budget.Budget) => void
  /**
   * Show a run another process is running (`trex status --follow`), after `prime` with its entries so
   * far: its trials in flight, from its tree as it stands; its clock runs on from its last entry.
   */
  readonly attach: (view: ExperimentTree.TreeView) => void
  readonly onEvent: (entry: JournalEvent.Entry, tree: ExperimentTree.TreeView) => void
  /** Print a message (with `write`, e.g. to stderr) above the live frame, so the next redraw does not overwrite it. */
  readonly note: (text: string, write: (text: string) => void) => void
  /** Stop redrawing and leave the last frame on screen. */
  readonly close: () => void
}

/**
 * The environment variable that says how many columns the terminal draws an East Asian Ambiguous
 * character in (`±`, `§`, `é`, Greek, Cyrillic, `…`, `·`, box drawing): `1` (or `narrow`) or `2` (or
 * `wide`), as vim's `ambiwidth` and a terminal's "ambiguous-width characters" setting say it.
 * @since 0.1.0 @category constants
 */
export const AMBIGUOUS_WIDTH_ENV = "TREX_AMBIGUOUS_WIDTH"

/**
 * The columns the terminal draws an East Asian Ambiguous character in: {@link AMBIGUOUS_WIDTH_ENV} when
 * set; else 1 in a tmux pane: tmux lays out its panes by the widths of its own locale (en_US.UTF-8,
 * else C.UTF-8, whatever the user's), in which glibc and utf8proc count them 1; else 2 in a Japanese,
 * Chinese or Korean locale (the first set of `LC_ALL`, `LC_CTYPE` and `LANG` begins `ja`, `zh` or `ko`:
 * terminals there often draw them wide, as VTE guessed from these variables) and 1 elsewhere. A tmux
 * pane is one where `TMUX` is set and the terminal (`tty`, stdout's unless given) is one of the panes of
 * the tmux server it names: a terminal window opened from a pane inherits `TMUX` and is no pane (when
 * the server cannot be asked, or the terminal not told, `TMUX` is taken at its word). Fails with
 * `InvalidInput` naming the variable and the fix for another value.
 *
 * @example
 * ```ts
 * import { LiveView } from "@trex/cli"
 * import { Effect } from "effect"
 * const wide = Effect.runSync(LiveView.ambiguousWidth({ LANG: "ja_JP.UTF-8" })) // 2
 * ```
 * @since 0.1.0 @category constructors
 */
export const ambiguousWidth = (
  env: Readonly<Record<string, string | undefined>> = process.env,
  options: { readonly tty?: string | undefined } = {}
): Effect.Effect<1 | 2, Errors.InvalidInput> => Effect.map(terminalWidths(env, options), (w) => w.ambiguousWidth)

/**
 * How the terminal counts characters' columns, as {@link make} takes it: `ambiguousWidth` as
 * {@link ambiguousWidth} tells it, and in a pane of tmux 3.5 or later, the widths its
 * `codepoint-widths` option gives code points (`U+XXXX=2`, `U+XXXX-U+YYYY=2`, `é=2`), ahead of any other
 * rule (`codepointWidths`: from, to, columns).
 * @since 0.1.0 @category constructors
 */
export const terminalWidths = (
  env: Readonly<Record<string, string | undefined>> = process.env,
  options: { readonly tty?: string | undefined } = {}
): Effect.Effect<{ readonly ambiguousWidth: 1 | 2; readonly codepointWidths: ReadonlyArray<Tmux.Width> }, Errors.InvalidInput> => {
  const given = env[AMBIGUOUS_WIDTH_ENV]?.trim().toLowerCase()
  if (given !== undefined && given !== "" && given !== "1" && given !== "narrow" && given !== "2" && given !== "wide") {
    return Effect.fail(
      new Errors.InvalidInput({
        source: AMBIGUOUS_WIDTH_ENV,
        message: `${AMBIGUOUS_WIDTH_ENV} is ${JSON.stringify(env[AMBIGUOUS_WIDTH_ENV])}: set it to 1 (narrow) or 2 (wide), the columns your terminal draws ` +
          `an East Asian Ambiguous character (±, §, α, …) in, or unset it to follow the terminal (1 in tmux) and the locale (2 in a ja, zh or ko one)`
      })
    )
  }
  return Effect.sync(() => {
    const tmuxVar = env["TMUX"]
    const tty = "tty" in options ? options.tty : Tmux.stdoutTty()
    // tmux counts a pane's characters itself, narrow unless its codepoint-widths says otherwise
    const server = tmuxVar !== undefined && tmuxVar !== "" && tty !== undefined ? Tmux.ask(tmuxVar, tty, env) : undefined
    const inTmux = tmuxVar !== undefined && tmuxVar !== "" && (server === undefined || server.pane)
    const codepointWidths = server?.pane === true ? server.widths : []
    if (given === "1" || given === "narrow") return { ambiguousWidth: 1, codepointWidths }
    if (given === "2" || given === "wide") return { ambiguousWidth: 2, codepointWidths }
    if (inTmux) return { ambiguousWidth: 1, codepointWidths }
    const locale = [env["LC_ALL"], env["LC_CTYPE"], env["LANG"]].find((v) => v !== undefined && v !== "")
    return { ambiguousWidth: locale !== undefined && /^(ja|zh|ko)([_.@]|$)/i.test(locale) ? 2 : 1, codepointWidths }
  })
}

/**
 * On a terminal (`tty`), `columns` gives its width at each redraw (`() => process.stdout.columns`): each line
 * of the live frame is cut to fit, as a line that wrapped would take two rows and the next redraw clear one.
 * Widths are counted in columns: a CJK character or an emoji takes two, a combining mark none, and an East
 * Asian Ambiguous character `ambiguousWidth` (1 unless given: {@link ambiguousWidth} reads the setting); a code
 * point of `codepointWidths` (a tmux pane's `codepoint-widths`: from, to, columns) as it says, the last that
 * names it ({@link terminalWidths} reads both).
 *
 * @example
 * ```ts
 * import { LiveView } from "@trex/cli"
 * const view = LiveView.make({ tty: false, write: (s) => process.stdout.write(s) })
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = (options: { readonly tty: boolean; readonly write: (text: string) => void; readonly intervalMs?: number; readonly columns?: () => number | undefined; readonly ambiguousWidth?: 1 | 2; readonly codepointWidths?: ReadonlyArray<readonly [from: number, to: number, columns: 0 | 1 | 2]> }): LiveView => {
  const ledger = { value: undefined as Budget.Ledger | undefined }
  let sessionStart = Date.now()
  // the seconds of wall clock the run's earlier sessions used (resumes add up, as the budget counts them)
  let earlier = 0
  let tree: ExperimentTree.TreeView | undefined
  let lastLines = 0
  let timer: ReturnType<typeof setInterval> | undefined
  // the run has ended: trials still in flight (withdrawn by a drain) are shown stopped
  let ended = false

  // The trials that may be in flight, in proposal order: the frame shows those still queued or
  // running. Kept from the events (and one look over the tree when the view first sees it), so a
  // redraw costs the trials in flight, not the whole tree: on a terminal, the frame is redrawn after
  // every finished trial, and walking a 50,000-node tree each time made a long run's view quadratic.
  const inFlight = new Set<string>()
  const track = (e: JournalEvent.JournalEvent, view: ExperimentTree.TreeView) => {
    if (tree === undefined || e._tag === "RunStarted" || e._tag === "RunResumed") {
      for (const n of view.nodes()) if (ExperimentNode.isPending(n)) inFlight.add(n.id)
    }
    if (e._tag === "NodeProposed") inFlight.add(e.node.id)
    else if (e._tag === "NodeFinished") inFlight.delete(e.nodeId)
  }

  const frame = (): Array<string> => {
    if (tree === undefined || ledger.value === undefined) return []
    ledger.value.setElapsed(earlier + (Date.now() - sessionStart) / 1000)
    const best = tree.best()
    const lines = [
      `TREX  ${tree.task.name}  best ${tree.task.metric.name}: ${best !== undefined ? `${fmt(ExperimentNode.score(best))} (${best.id})` : "-"}`,
      `budget ${budgetLine(tree.task.budget, ledger.value.usage())}`
    ]
    for (const id of inFlight) {
      const n = tree.get(id)
      if (n === undefined) continue
      if (!ExperimentNode.isPending(n)) {
        inFlight.delete(id)
        continue
      }
      if (n.state._tag !== "Running" && n.state._tag !== "Queued") continue
      const last = n.curve.at(-1)
      const state = n.pruning !== undefined ? "pruning (job cancelled)"
        : ended || n.withdrawn === true
        ? `${n.withdrawn === true ? "withdrawn" : "stopped"} (runs on resume)`
        : n.waiting !== undefined ? waitLabel(n.waiting)
        : n.unreachable !== undefined ? unreachableLabel(n.unreachable)
        : n.state._tag === "Queued" ? "queued " : "running"
      lines.push(`  ${n.id.padEnd(6)} ${bar(n.progress ?? 0)} ${state}${last !== undefined ? `  ${last.split}/${last.name} ${fmt(last.value)}` : ""}`)
    }
    return lines
  }

  const redraw = () => {
    const width = options.columns?.()
    // one column short of the width: a line that fills it wraps on some terminals. In columns, not
    // UTF-16 units: a CJK character (in a task's name) or an emoji takes two, a combining mark none,
    // and `·` or `é` two on a terminal that draws East Asian Ambiguous characters wide
    const ambiguous = options.ambiguousWidth ?? 1
    const fit = (l: string) => (width === undefined || width < ambiguous + 1 ? l : DisplayWidth.cut(l, width - 1, ambiguous, options.codepointWidths))
    const lines = frame().map(fit)
    const clear = lastLines > 0 ? `\x1b[${lastLines}A\x1b[0J` : ""
    options.write(clear + lines.map((l) => `${l}\x1b[K`).join("\n") + "\n")
    lastLines = lines.length
  }

  /** Trials whose backend was said to be out of touch with their job (a `lost` line), until it answers again. */
  const unreachable = new Set<string>()
  const plain = (entry: JournalEvent.Entry, view: ExperimentTree.TreeView) => {
    const e = entry.event
    const u = ledger.value?.usage()
    switch (e._tag) {
      case "RunStarted":
        return options.write(`started run on task ${view.task.name}\n`)
      case "RunResumed": {
        // the trials in flight when the run stopped: reattached to their jobs, or run again (no `start` line of their own)
        const open = openIds(view)
        return options.write(`resumed run on task ${view.task.name}${open.length > 0 ? `; in flight when it stopped (reattached, or run again): ${open.join(", ")}` : ""}\n`)
      }
      case "NodeAdmitted": {
        const n = view.get(e.nodeId)
        return options.write(`start  ${e.nodeId} (from ${n?.parent ?? "?"}): ${Untrusted.line(n?.strategy.rationale ?? "", 300)}\n`)
      }
      case "NodeFinished": {
        unreachable.delete(e.nodeId)
        const best = view.best()
        const what = e.outcome === "Succeeded"
          ? `${view.task.metric.name}=${fmt(e.result?.score)}${e.result?.reusedFrom !== undefined ? ` (reused from ${e.result.reusedFrom})` : ""}`
          : e.outcome === "Failed" ? `FAILED ${failureLine(e.result?.failure)}`
          : e.outcome === "Pruned" && e.reason !== undefined ? `pruned: ${Untrusted.line(e.reason, 300)}`
          : e.outcome.toLowerCase()
        return options.write(`done   ${e.nodeId} ${what}  | best ${fmt(best !== undefined ? ExperimentNode.score(best) : undefined)}${best !== undefined ? ` (${best.id})` : ""} | trials ${u?.trials ?? "?"}${view.task.budget.maxTrials !== undefined ? `/${view.task.budget.maxTrials}` : ""}\n`)
      }
      case "AnalysisCompleted": {
        // one line: the whole analysis is in `trex status --json` and the report
        return options.write(`analysis ${Untrusted.line(e.analysis.summary, 200)}\n`)
      }
      case "JobState": {
        // the job started waiting in its backend's queue, or the reason changed (the frame shows it on a
        // terminal); or its backend stopped answering about it, or answers again
        const wasUnreachable = unreachable.delete(e.nodeId)
        if (e.state === "Running" && e.reason !== undefined) unreachable.add(e.nodeId)
        return options.write(
          e.state === "Pending"
            ? `wait   ${e.nodeId}: ${Untrusted.line(e.reason ?? ExperimentNode.UNSPECIFIED_WAIT, 200)}\n`
            : e.state === "Running" && e.reason !== undefined
            ? `lost   ${e.nodeId}: its backend cannot be asked about its job now: ${Untrusted.line(e.reason, 300)}\n`
            : e.state === "Running"
            ? `run    ${e.nodeId}: ${wasUnreachable ? "its backend answers again" : "left the backend's queue"}\n`
            : e.state === "Pruning"
            ? `prune  ${e.nodeId}: ${Untrusted.line(e.reason ?? "stopped early by a scheduler", 300)}; its job is cancelled\n`
            : `stop   ${e.nodeId}: withdrawn from the backend's queue (runs on resume)\n`
        )
      }
      case "InsightsDistilled":
        return e.insights.forEach((i) => options.write(`insight ${Untrusted.line(i.text, 500)}\n`))
      case "RunFinished": {
        // trials still in flight (a drain withdrew them): they run on resume
        const open = openIds(view)
        return options.write(`finished: ${Untrusted.line(e.reason, 300)}${open.length > 0 ? `; in flight, to run on resume: ${open.join(", ")}` : ""}\n`)
      }
      default:
        return
    }
  }

  /** Clear the live frame, print with `print`, draw the frame again below it. */
  const above = (print: () => void) => {
    const clear = lastLines > 0 ? `\x1b[${lastLines}A\x1b[0J` : ""
    lastLines = 0
    options.write(clear)
    print()
    redraw()
  }

  const account = (e: JournalEvent.JournalEvent, budget: Budget.Budget) => {
    ;(ledger.value ??= new Budget.Ledger(budget)).apply(e)
  }

  // the time the earlier sessions were active, as running totals (not the entries: a resumed run's
  // whole journal would be held for the session)
  let primed: Replay | undefined
  return {
    prime: (entries, budget) => {
      primed = new Replay(budget)
      for (const { event } of entries) {
        account(event, budget)
        primed.apply(event)
      }
      earlier = primed.usage().elapsedSeconds
    },
    attach: (view) => {
      tree = view
      // the session under way counts until now, not until its last entry
      sessionStart = Date.now()
      earlier = (primed ?? new Replay(view.task.budget)).usage(sessionStart).elapsedSeconds
      for (const n of view.nodes()) if (ExperimentNode.isPending(n)) inFlight.add(n.id)
      if (options.tty) {
        timer ??= setInterval(redraw, options.intervalMs ?? 200)
        redraw()
        return
      }
      const best = view.best()
      const u = ledger.value?.usage()
      const open = openIds(view)
      options.write(
        `run on task ${view.task.name}: trials ${u?.trials ?? 0}${view.task.budget.maxTrials !== undefined ? `/${view.task.budget.maxTrials}` : ""}, ` +
          `best ${view.task.metric.name} ${fmt(best !== undefined ? ExperimentNode.score(best) : undefined)}${best !== undefined ? ` (${best.id})` : ""}; ` +
          `in flight: ${open.length > 0 ? open.join(", ") : "none"}\n`
      )
    },
    onEvent: (entry, view) => {
      const e = entry.event
      track(e, view)
      tree = view
      account(e, view.task.budget)
      if (e._tag === "RunFinished") ended = true
      if (e._tag === "RunStarted" || e._tag === "RunResumed") sessionStart = Date.now()
      if (options.tty) {
        if (timer === undefined) timer = setInterval(redraw, options.intervalMs ?? 200)
        if (e._tag === "NodeFinished" || e._tag === "InsightsDistilled" || e._tag === "AnalysisCompleted" || e._tag === "RunFinished") {
          // keep a scrolling record of finished trials above the live frame
          above(() => plain(entry, view))
        }
      } else plain(entry, view)
    },
    note: (text, write) => {
      if (options.tty && lastLines > 0) above(() => write(text))
      else write(text)
    },
    close: () => {
      if (timer !== undefined) clearInterval(timer)
      timer = undefined
      if (options.tty && tree !== undefined) redraw()
    }
  }
}
