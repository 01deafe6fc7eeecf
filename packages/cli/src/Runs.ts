/**
 * The runs in a folder of runs (`trex list [folder]`, `trex-runs` by default): each run's task, base model, state
 * (running, and by which controller; finished, and why; stopped; damaged; of a newer trex), trials,
 * best score and settings (as `trex status --json` gives them), so that a run can be found without listing the folder
 * and opening each one; and the
 * folders this user may not read, with the fix.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Errors, Journal, type JournalEvent } from "@trex/core"
import * as Effect from "effect/Effect"
import * as RunDir from "./RunDir.ts"
import * as Status from "./Status.ts"
import { settingsWords } from "./internal/settingsText.ts"
import * as Untrusted from "./internal/untrusted.ts"

/** One run of a folder, as {@link list} reads it. @since 0.1.0 @category models */
export interface RunSummary {
  readonly runId: string
  readonly dir: string
  readonly task: string
  /**
   * The base model the run's task fine-tunes (its `baseModel.name`), as the task file names it; absent when the task
   * names none, and for a run of which nothing is known (states `newer` and `unreadable`, or `damaged` at its start).
   */
  readonly model?: string
  readonly metric: { readonly name: string; readonly direction: "maximize" | "minimize" }
  /** When it started, and when it last journaled anything (ms since the epoch). */
  readonly startedAt: number
  readonly lastAt: number
  /**
   * `running` while a controller holds its lock (`writer`), `finished` when it ended (`reason`),
   * `stopped` when it ended without finishing (stopped, killed, crashed: `trex resume` continues it),
   * `damaged` when its journal is damaged (`damage`; the counts are of the entries before it),
   * `newer` when its journal is of a newer trex's format (`unreadable`: upgrade trex to read it), and
   * `unreadable` for a folder (or its journal) this user may not read, which may hold a run
   * (`unreadable`: the path, its owner and the fix, as `trex status` says them). Of the last two,
   * nothing else is known: the task is `?` and the counts 0.
   */
  readonly state: "running" | "finished" | "stopped" | "damaged" | "newer" | "unreadable"
  readonly writer?: { readonly pid?: number; readonly host?: string; readonly thisMachine?: true }
  readonly reason?: string
  readonly damage?: string
  /** Why the run cannot be read (states `newer` and `unreadable`), as `trex status` says it. */
  readonly unreadable?: string
  readonly trials: { readonly succeeded: number; readonly failed: number; readonly other: number; readonly inFlight: number }
  readonly best?: { readonly id: string; readonly score: number }
  /**
   * The settings the run takes, and each a resume set for the run unlike its start, as `trex status --json` gives them
   * (see `Status.SettingsJson`); absent for a run of which nothing is known (states `newer` and `unreadable`, or
   * `damaged` at its start).
   */
  readonly settings?: Status.SettingsJson["settings"]
  readonly settingOverrides?: Status.SettingsJson["settingOverrides"]
}

/** The events a summary is made of: a run's proposals and ends, not its progress reports (most of a big run's journal). */
const TAGS: ReadonlyArray<JournalEvent.Tag> = ["RunStarted", "RunResumed", "RunFinished", "NodeProposed", "NodeFinished"]

/** The summary of a run from its entries (those of {@link TAGS}), or `undefined` when they are not a run's. */
const summarize = (dir: string, entries: ReadonlyArray<JournalEvent.Entry>, writer: RunSummary["writer"], damage: Errors.JournalError | undefined): RunSummary | undefined => {
  const first = entries[0]?.event
  if (first?._tag !== "RunStarted") return undefined
  const direction = first.task.metric.direction
  const proposed = new Set<string>()
  // a trial run again after a cancel (on resume) ends again: its last end counts
  const ended = new Map<string, JournalEvent.Of<"NodeFinished">>()
  let finished: JournalEvent.Of<"RunFinished"> | undefined
  let lastAt = first.at
  for (const { event } of entries) {
    lastAt = Math.max(lastAt, event.at)
    if (event._tag === "NodeProposed") proposed.add(event.node.id)
    else if (event._tag === "NodeFinished") ended.set(event.nodeId, event)
    else if (event._tag === "RunFinished") finished = event
    else if (event._tag === "RunResumed") finished = undefined
  }
  let succeeded = 0
  let failed = 0
  let other = 0
  let best: { id: string; score: number } | undefined
  for (const [id, e] of ended) {
    if (e.outcome === "Succeeded") {
      succeeded++
      const score = e.result?.score
      if (score !== undefined && Number.isFinite(score) && (best === undefined || (direction === "maximize" ? score > best.score : score < best.score))) best = { id, score }
    } else if (e.outcome === "Failed") failed++
    else other++
  }
  const state: RunSummary["state"] = damage !== undefined ? "damaged" : writer !== undefined ? "running" : finished !== undefined ? "finished" : "stopped"
  return {
    runId: first.runId,
    dir,
    task: first.task.name,
    ...(first.task.baseModel !== undefined ? { model: first.task.baseModel.name } : {}),
    metric: { name: first.task.metric.name, direction },
    startedAt: first.at,
    lastAt,
    state,
    ...(writer !== undefined ? { writer } : {}),
    ...(finished !== undefined ? { reason: finished.reason } : {}),
    ...(damage !== undefined ? { damage: damage.message } : {}),
    trials: { succeeded, failed, other, inFlight: [...proposed].filter((id) => !ended.has(id)).length },
    ...(best !== undefined ? { best } : {}),
    // as `trex status --json` gives them: the recorded ones, with those each resume set for the run laid over
    ...Status.settingsJson({ started: first, entries })
  }
}

/**
 * The runs in `folder`, oldest first (by run id, which begins with its UTC start time): every
 * sub-folder with a run's journal, read without its lock (controllers may be writing them), each
 * classified as `trex status` classifies it (`RunDir.readIntact`). Sub-folders without a journal are
 * passed over; one whose journal cannot be read at all is listed as damaged, one of a newer trex's
 * journal format as `newer`, and one this user may not read (or enter: it may hold a run) as
 * `unreadable`, with the fix, when it could be a run: named as trex names runs, or not at the root
 * of a filesystem, where systems keep closed folders of their own (fsck's `lost+found`, a desktop's
 * `.Trash-<uid>`, snapper's `.snapshots`, a NAS's `#recycle`); one it may enter that holds no journal
 * is no run, and passed over. Fails with `InvalidInput` naming the fix for a folder that does not
 * exist, that this user may not read, or that is itself a run directory.
 *
 * @example
 * ```ts
 * import { Runs } from "@trex/cli"
 * import { Effect } from "effect"
 *
 * const running = Runs.list("trex-runs").pipe(Effect.map((runs) => runs.filter((r) => r.state === "running")))
 * ```
 * @since 0.1.0 @category reading
 */
export const list = (folder: string): Effect.Effect<ReadonlyArray<RunSummary>, Errors.InvalidInput> =>
  Effect.gen(function*() {
    const stat = fs.statSync(folder, { throwIfNoEntry: false })
    if (stat === undefined || !stat.isDirectory()) {
      return yield* new Errors.InvalidInput({
        source: folder,
        message: stat === undefined
          ? `${folder} does not exist: name the folder that holds your runs (trex run's --out, trex-runs by default)`
          : `${folder} is not a folder: name the folder that holds your runs (trex run's --out, trex-runs by default)`
      })
    }
    if (fs.existsSync(RunDir.journalFile(folder))) {
      return yield* new Errors.InvalidInput({
        source: folder,
        message: `${folder} is a run directory, not a folder of runs: \`trex status ${folder}\` shows it; \`trex list ${path.dirname(folder)}\` lists the runs beside it`
      })
    }
    const refused = RunDir.readRefusal(folder, `cannot list the runs in ${folder}`)
    if (refused !== undefined) return yield* refused
    const names = yield* Effect.try({
      try: () => fs.readdirSync(folder).sort(),
      catch: (e) => new Errors.InvalidInput({ source: folder, message: `cannot list the runs in ${folder}: ${(e as Error).message}` })
    })
    const out: Array<RunSummary> = []
    for (const name of names) {
      const dir = path.join(folder, name)
      const file = RunDir.journalFile(dir)
      if (!fs.existsSync(file)) {
        // a folder this user may not enter: whether it holds a run cannot be told, so it is said when it could be one
        const refused = RunDir.readRefusal(dir, `cannot tell whether ${dir} holds a run`)
        if (refused !== undefined && couldBeRun(folder, name)) out.push(unknown(dir, name, "unreadable", refused.message, undefined))
        continue
      }
      const holder = yield* Journal.writer(file)
      // a `trex notify` holding the run for a moment is no controller: the run is as its journal ended it
      const writer = holder?.by === undefined ? holder : undefined
      const read = yield* RunDir.readIntact(dir, { tags: TAGS }).pipe(Effect.result)
      if (read._tag === "Failure") {
        const e = read.failure
        out.push(unknown(dir, name, e._tag === "InvalidInput" ? "unreadable" : e.reason === "Version" ? "newer" : "damaged", e.message, writer))
        continue
      }
      const summary = summarize(dir, read.success.entries, writer, read.success.damage)
      // a journal with no run in it: its controller was stopped before it recorded the run, or it is no TREX journal
      if (summary === undefined) {
        if (read.success.entries.length > 0 || read.success.damage !== undefined) {
          out.push(unknown(dir, name, "damaged", read.success.damage?.message ?? "its journal does not start with the run's start (not a TREX run journal)", writer))
        }
        continue
      }
      out.push(summary)
    }
    return out
  })

/**
 * Whether the folder `name` in `folder`, which holds no journal that this user can see, could hold a run all
 * the same: when this user may not enter it (else its journal would be seen: a folder it may enter but not
 * list, mode 711, holds none, and is no run), and it is named as trex names a run's folder (a run id), or it
 * is not at the root of a filesystem. There, systems keep closed folders of their own, which hold no run:
 * fsck's `lost+found`, a desktop's trash (`.Trash-<uid>`), snapper's `.snapshots` (a btrfs subvolume), a
 * NAS's recycle bin (`#recycle`, at the root of a shared folder, itself a subvolume). The root of a
 * filesystem is one of another device than the folder above it (a mount, a btrfs subvolume), or `/`; and
 * a folder that is itself one (a subvolume, a mount point) was not made by trex, whose runs are folders it
 * makes with mkdir. A closed folder of another name elsewhere may be a run moved or copied so: it is said.
 */
const couldBeRun = (folder: string, name: string): boolean => {
  const dir = path.join(folder, name)
  try {
    fs.accessSync(dir, fs.constants.X_OK)
    return false
  } catch {
    // closed to this user: what it holds cannot be seen
  }
  if (RunDir.isRunId(name)) return true
  try {
    const here = fs.statSync(folder)
    // `..` as the kernel finds it (through a symbolic link, not `path`'s text): another device is another filesystem; `/` is its own parent
    const above = fs.statSync(`${folder}/..`)
    return here.dev === above.dev && here.ino !== above.ino && fs.statSync(dir).dev === here.dev
  } catch {
    return true
  }
}

/** A run of which nothing but why it cannot be read is known: damaged at its start, of a newer trex, or not this user's to read. */
const unknown = (dir: string, name: string, state: "damaged" | "newer" | "unreadable", message: string, writer: RunSummary["writer"]): RunSummary => ({
  runId: name,
  dir,
  task: "?",
  metric: { name: "?", direction: "maximize" },
  startedAt: 0,
  lastAt: 0,
  state,
  ...(writer !== undefined ? { writer } : {}),
  ...(state === "damaged" ? { damage: message } : { unreadable: message }),
  trials: { succeeded: 0, failed: 0, other: 0, inFlight: 0 }
})

const fmt = (v: number) => Number(v.toPrecision(4)).toString()
const clock = (ms: number) => (ms > 0 ? new Date(ms).toISOString().slice(0, 16).replace("T", " ") : "-")

/**
 * How a run stands, in a few words. Why it finished may quote a job's log (the failure that stopped a run
 * whose trials all failed alike): shown as text, as `trex status` shows it, and cut (status has it in full).
 */
const stateText = (r: RunSummary): string =>
  r.state === "running"
    ? `running (process ${r.writer?.pid ?? "?"}${r.writer?.host !== undefined ? ` on ${Journal.hostName(r.writer.host)}` : ""}${
      r.writer?.thisMachine === true ? ", this machine" : ""
    })`
    : r.state === "finished"
    ? `finished: ${Untrusted.line(r.reason ?? "?", 80)}`
    : r.state === "stopped"
    ? "stopped (trex resume continues it)"
    : r.state === "newer"
    ? "written by a newer trex (upgrade trex to read it)"
    : "damaged (trex status says where)"

/**
 * The `trex list` text: a line per run (the name of its folder, which `trex status` takes, with its id when
 * the two differ, as for a run moved or copied; its task (cut at 60 characters), base model (cut at 40), state, trials succeeded / failed / other ended
 * / in flight, best score (its metric's name cut at 40), its settings in a word each (backend/researcher/policy, and how many a resume set), start and
 * last activity in UTC), what to do next, and below the runs, each
 * folder this user may not read (which may hold a run), with the fix.
 * @since 0.1.0 @category formatting
 */
export const toText = (folder: string, summaries: ReadonlyArray<RunSummary>): string => {
  // what this user may not read: below the table, each with the path, its owner and the fix (it may be no run: not counted as one)
  const refused = summaries.filter((r) => r.state === "unreadable")
  const notes = refused.map((r) => `${path.basename(r.dir)}: ${r.unreadable ?? "this user may not read it"}`)
  const runs = summaries.filter((r) => r.state !== "unreadable")
  const alsoRefused = refused.length > 0 ? `, and ${refused.length} folder${refused.length === 1 ? "" : "s"} this user may not read` : ""
  if (runs.length === 0 && refused.length > 0) return [`no runs in ${folder} that this user may read${alsoRefused}:`, ...notes].join("\n")
  if (runs.length === 0) return `no runs in ${folder} (\`trex run <task-file> --out ${folder}\` starts one)`
  const rows = runs.map((r) => [
    // the folder `trex status` takes; a run moved or copied under another name says which run it is
    // (a folder's name and a journal's run id may hold anything: on one line, without controls, not cut)
    path.basename(r.dir) === r.runId ? Untrusted.line(r.runId) : `${Untrusted.line(path.basename(r.dir))} (run ${Untrusted.line(r.runId, 80)})`,
    // the task file's text, but a journal may be edited: on one line, cut as any untrusted text
    Untrusted.line(r.task, 60),
    r.model !== undefined ? Untrusted.line(r.model, 40) : "-",
    stateText(r),
    `${r.trials.succeeded}/${r.trials.failed}/${r.trials.other}/${r.trials.inFlight}`,
    r.best !== undefined ? `${Untrusted.line(r.metric.name, 40)} ${fmt(r.best.score)} (${Untrusted.line(r.best.id, 40)})` : "-",
    settingsWords(r),
    clock(r.startedAt),
    clock(r.lastAt)
  ])
  const head = ["RUN", "TASK", "MODEL", "STATE", "OK/FAILED/OTHER/IN FLIGHT", "BEST", "SETTINGS", "STARTED (UTC)", "LAST (UTC)"]
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")
  const running = runs.filter((r) => r.state === "running").length
  return [
    `${runs.length} run${runs.length === 1 ? "" : "s"} in ${folder}${running > 0 ? `, ${running} running` : ""}${alsoRefused}:`,
    line(head),
    ...rows.map(line),
    ...(notes.length > 0 ? ["", ...notes] : []),
    "",
    `\`trex status ${path.join(folder, "<run>")}\` shows one (--follow: as it goes on); \`trex resume\` continues a stopped one`
  ].join("\n")
}
