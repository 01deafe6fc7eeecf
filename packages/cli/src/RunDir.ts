/**
 * A run on disk: `trex-runs/<run-id>/` with `journal.sqlite`, `jobs/<node>/` (strategy.json,
 * metrics.jsonl, result.json, logs) and the reports.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Errors, ExperimentTree, Journal, type JournalEvent } from "@trex/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { processOf } from "./internal/lockHolder.ts"

/** @since 0.1.0 @category paths */
export const journalFile = (runDir: string): string => path.join(runDir, "journal.sqlite")
/** @since 0.1.0 @category paths */
export const jobsDir = (runDir: string): string => path.join(runDir, "jobs")

/** Where to stop a lock's holder this process cannot see: where it is seen (`command` run there), or how to find it. */
const stopWhere = (command: string, holder: Journal.Holder): string =>
  [Journal.whereSeen(command, holder), holder.find].filter((w) => w !== undefined).join(", or ")

const pad = (n: number) => String(n).padStart(2, "0")

/**
 * A run id: UTC time and the task's name, e.g. `20261122-031500-quickstart`. A run that starts in
 * the same second as another of the same task under the same folder gets the next free
 * `-2`, `-3`, ... after it (see {@link create}).
 * @since 0.1.0 @category constructors
 */
export const newRunId = (taskName: string, now: Date): string => {
  // cut, then trimmed: a name cut at a dash would end in one
  const slug = taskName.toLowerCase().replace(/[^a-z0-9]+/g, "-").slice(0, 40).replace(/^-+|-+$/g, "") || "run"
  return `${now.getUTCFullYear()}${pad(now.getUTCMonth() + 1)}${pad(now.getUTCDate())}-${pad(now.getUTCHours())}${pad(now.getUTCMinutes())}${pad(now.getUTCSeconds())}-${slug}`
}

/**
 * Whether `name` is a run id as {@link newRunId} makes them (with the `-2`, `-3`, ... of {@link create}):
 * the name trex gives a run's folder (also one that trex before 2026-12-06 cut at a dash, ending in `-`). A run
 * moved or copied may bear another.
 * @since 0.1.0 @category paths
 */
export const isRunId = (name: string): boolean => /^\d{8}-\d{6}-[a-z0-9-]+$/.test(name)

/**
 * Make a new run's directory under `out` (made too if missing) and return it with its id:
 * {@link newRunId}, or that id with `-2`, `-3`, ... when another run already holds it (two runs
 * started in the same second). The directory is claimed with a plain `mkdir`, which fails when it
 * exists, so a new run never lands in another's directory (and never resumes it). Fails with
 * `InvalidInput` naming why and the fix where no folder can be made (as {@link makeFolders}), and with
 * the system error (`ENOTDIR`, `ENOSPC`, ...) when `out` cannot hold directories otherwise.
 *
 * @example
 * ```ts
 * import { RunDir } from "@trex/cli"
 * const { runDir, runId } = RunDir.create("trex-runs", "quickstart", new Date())
 * ```
 * @since 0.1.0 @category constructors
 */
export const create = (out: string, taskName: string, now: Date): { readonly runId: string; readonly runDir: string } => {
  const base = newRunId(taskName, now)
  const unmade = notFolders(out, path.resolve(out, base), out)
  if (unmade !== undefined) throw unmade
  let madeOut = false
  for (let n = 1; n < 10_000;) {
    const runId = n === 1 ? base : `${base}-${n}`
    const runDir = path.resolve(out, runId)
    try {
      fs.mkdirSync(runDir)
      return { runId, runDir }
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      // `out` itself is made only when missing: made with `recursive` first, a file there would read EEXIST
      if (code === "ENOENT" && !madeOut) {
        makeFolders(out)
        madeOut = true
      } else if (code === "EEXIST") n++
      else throw refusal(runDir, code) ?? e
    }
  }
  throw new Error(`${base}: 10000 runs of this task started in one second under ${out}`)
}

/**
 * Make the folder `dir` and those above it that are missing (`mkdir -p`), each with a plain `mkdir`.
 * Node's `mkdirSync(dir, { recursive: true })` loops without end where `mkdir` answers `ENOENT` under
 * a folder that exists (in `/proc`, whose filesystem makes no folders): `trex run --out /proc/x`
 * hung. Fails with `InvalidInput` naming the folder, why and the fix where no folder can be made there
 * (a filesystem that makes none, as `/proc` and `/sys`; a read-only one; an immutable folder; one this
 * user may not write) and, before any `mkdir`, where a folder made would be no folder for files (a
 * cgroup filesystem, whose folders are control groups; bpf, tracefs, configfs), or where `dir` is on
 * one; with the system error (`ENOTDIR`, `ENOSPC`, ...) otherwise.
 * @since 0.1.0 @category constructors
 */
export const makeFolders = (dir: string): void => {
  const unmade = notFolders(dir, undefined, dir)
  if (unmade !== undefined) throw unmade
  const missing: Array<string> = []
  for (let at = path.resolve(dir); statOf(at) === undefined; at = path.dirname(at)) {
    missing.unshift(at)
    if (path.dirname(at) === at) break
  }
  for (const folder of missing) {
    try {
      fs.mkdirSync(folder)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      // made meanwhile (another run starting in the same folder)
      if (code === "EEXIST" && statOf(folder)?.isDirectory() === true) continue
      throw refusal(folder, code, dir) ?? e
    }
  }
}

/** The kernel's filesystems that make no folders, by `statfs`'s type: a folder there cannot be made, by root either. */
const NO_FOLDERS: ReadonlyMap<number, string> = new Map([
  [0x9fa0, "proc"],
  [0x62656572, "sysfs"],
  [0x1cd1, "devpts"],
  [0x64626720, "debugfs"],
  [0x73636673, "securityfs"],
  [0x6165676c, "pstore"],
  [0xde5e81e4, "efivarfs"],
  [0x19800202, "mqueue"],
  [0x42494e4d, "binfmt_misc"],
  [0x65735543, "fusectl"]
])

/**
 * The kernel's filesystems where `mkdir` (as root, or a user a folder is delegated to) makes something
 * else than a folder for files: a control group, a trace instance, a configuration item, a folder of
 * pinned BPF objects. A run's folder is not tried there (the run's journal could not be made in it, and
 * what mkdir made would be left behind), by `statfs`'s type.
 */
const OTHER_FOLDERS: ReadonlyMap<number, { readonly name: string; readonly folders: string }> = new Map([
  [0x27e0eb, { name: "cgroup", folders: "its folders are control groups, which hold no files" }],
  [0x63677270, { name: "cgroup2", folders: "its folders are control groups, which hold no files" }],
  [0x74726163, { name: "tracefs", folders: "its folders are trace instances, which hold no files" }],
  [0x62656570, { name: "configfs", folders: "its folders are configuration items, which hold no files" }],
  [0xcafe4a11, { name: "bpf", folders: "its folders hold pinned BPF objects, not files" }]
])

/**
 * `InvalidInput` when `dir` (to be made with any folders missing above it, or to make `made` in) is on
 * one of the kernel's filesystems of {@link OTHER_FOLDERS} (the nearest folder that exists of it and
 * those above it is), before any `mkdir`; `undefined` elsewhere.
 */
const notFolders = (dir: string, made: string | undefined, source: string): Errors.InvalidInput | undefined => {
  // the first folder mkdir would make, and the one above it that exists
  let first: string | undefined
  let at = path.resolve(dir)
  while (statOf(at)?.isDirectory() !== true && path.dirname(at) !== at) {
    first = at
    at = path.dirname(at)
  }
  let kind: { readonly name: string; readonly folders: string } | undefined
  try {
    kind = OTHER_FOLDERS.get(fs.statfsSync(at).type)
  } catch {
    return undefined
  }
  const what = first ?? made
  return kind !== undefined
    ? new Errors.InvalidInput({
      source,
      message: `${what !== undefined ? `cannot make ${what}: ` : ""}${at} is on ${kind.name}, the kernel's: ${kind.folders}: ` +
        `name a folder on a disk you can write (e.g. trex-runs)`
    })
    : undefined
}

/**
 * Why `mkdir` of `folder` answered `code`, with the fix, as `InvalidInput` on `source` (the folder asked
 * for): a filesystem that makes no folders (`/proc`, `/sys`), a read-only one, a folder made immutable,
 * or one this user may not write; `undefined` for another error (`ENOSPC`, `ENOTDIR`, ...).
 */
const refusal = (folder: string, code: string | undefined, source = folder): Errors.InvalidInput | undefined => {
  const parent = path.dirname(folder)
  const lead = `cannot make ${folder}`
  const elsewhere = "name a folder on a disk you can write (e.g. trex-runs)"
  let kind: string | undefined
  try {
    kind = NO_FOLDERS.get(fs.statfsSync(parent).type)
  } catch {
    kind = undefined
  }
  const message = code === "ENOENT" && statOf(parent)?.isDirectory() === true
    ? `${lead}: mkdir answers ENOENT though ${parent} exists: its filesystem makes no folders (as /proc's): ${elsewhere}`
    : kind !== undefined && (code === "EPERM" || code === "EACCES" || code === "EROFS")
    ? `${lead}: mkdir answers ${code} in ${parent}: its filesystem (${kind}, the kernel's) makes no folders: ${elsewhere}`
    : code === "EROFS"
    ? `${lead}: ${parent} is on a read-only filesystem (EROFS): ${elsewhere}, or remount it read-write`
    : code === "EPERM"
    ? `${lead}: mkdir answers EPERM in ${parent}: it is immutable (chattr +i: \`lsattr -d ${parent}\` shows an i), or its filesystem forbids new folders: ` +
      `as root, chattr -i ${parent}; or ${elsewhere}`
    : code === "EACCES"
    ? `${lead}: this user may not write ${parent} (EACCES${ownership(parent) !== "" ? `: ${ownership(parent)}` : ""}): ` +
      `name a folder this user may write (e.g. trex-runs), or run trex as the user who owns it`
    : undefined
  return message !== undefined ? new Errors.InvalidInput({ source, message }) : undefined
}

/** A folder given as a run directory that holds no journal; when it holds runs (trex run's --out), the fix names `trex list`. */
const notARun = (runDir: string): Effect.Effect<never, Errors.InvalidInput> =>
  Effect.suspend(() => {
    if (statOf(runDir)?.isFile() === true) {
      // a task file given where a run is wanted (trex resume task.yaml): say which command takes it
      const task = /\.(ya?ml|json)$/i.test(runDir) ? `; if it is a task file, \`trex run ${runDir}\` starts a run of it` : ""
      return Effect.fail(
        new Errors.InvalidInput({
          source: runDir,
          message: `${runDir} is not a trex run directory (it is a file)${task}; a run directory is a folder such as trex-runs/<run-id> (\`trex list\` lists them)`
        })
      )
    }
    let runs = 0
    try {
      for (const name of fs.readdirSync(runDir)) if (fs.existsSync(journalFile(path.join(runDir, name)))) runs++
    } catch {
      // not a folder, or not readable: no runs to name
    }
    return Effect.fail(
      new Errors.InvalidInput({
        source: runDir,
        message: `${runDir} is not a trex run directory (no journal.sqlite)${
          runs > 0 ? `; it is a folder of ${runs} run${runs === 1 ? "" : "s"}: \`trex list ${runDir}\` lists them, with the directory of each` : ""
        }`
      })
    )
  })

/** What `fs.statSync` says of `p`: `undefined` when it is missing, or cannot be looked at (a folder above it this user may not enter). */
const statOf = (p: string): fs.Stats | undefined => {
  try {
    return fs.statSync(p, { throwIfNoEntry: false })
  } catch {
    return undefined
  }
}

/** `EACCES` or `EPERM` when this process may not use `p` so (`mode`: `fs.constants`), else `undefined` (allowed, missing, or another error). */
const denied = (p: string, mode: number): "EACCES" | "EPERM" | undefined => {
  try {
    fs.accessSync(p, mode)
    return undefined
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    return code === "EACCES" || code === "EPERM" ? code : undefined
  }
}

/** Who owns `p`, against who this process is (`owned by uid 0, this is uid 65534`), for a refusal; empty when it cannot be told. */
const ownership = (p: string): string => {
  const uid = statOf(p)?.uid
  return uid !== undefined && process.getuid !== undefined ? `owned by uid ${uid}, this is uid ${process.getuid()}` : ""
}

/**
 * Why this user may not read the run in `runDir` (another user's run folder, a journal made unreadable),
 * naming the path, its owner and the fix, after `lead` (what cannot be done); `undefined` when it may
 * (or `runDir` is no folder). Said as such by `trex status` and `trex list`, not as a folder that is no
 * run nor as a damaged journal.
 * @since 0.1.0 @category reading
 */
export const readRefusal = (runDir: string, lead = `cannot read the run in ${runDir}`): Errors.InvalidInput | undefined => {
  // a file, or nothing, is no run directory at all (said by notARun)
  if (statOf(runDir)?.isDirectory() === false) return undefined
  const file = journalFile(runDir)
  for (const [p, mode] of [[runDir, fs.constants.R_OK | fs.constants.X_OK], [file, fs.constants.R_OK]] as const) {
    const code = denied(p, mode)
    if (code === undefined) continue
    const who = ownership(p)
    return new Errors.InvalidInput({
      source: runDir,
      message: `${lead}: this user may not read ${p} (${code}${who !== "" ? `: ${who}` : ""}): ` +
        `run trex as the user who owns it, or give this one access (as its owner: chmod -R a+rX ${runDir})`
    })
  }
  return undefined
}

/**
 * Fails with `InvalidInput` naming the path and the fix when this user may not write the run in
 * `runDir` as a resumed run does (its journal, the journal's lock and side files, its jobs' folder):
 * another user's run, or one made read-only or immutable (`chattr +i`). A read-only filesystem is
 * said by the journal when it is opened, as a full disk is.
 * @since 0.1.0 @category reading
 */
export const checkWritable = (runDir: string): Effect.Effect<void, Errors.InvalidInput> =>
  Effect.suspend(() => {
    const file = journalFile(runDir)
    const paths = [runDir, file, `${file}-wal`, `${file}-shm`, `${file}.lock`, `${file}.lock.pid`, jobsDir(runDir)]
    for (const p of paths) {
      if (!fs.existsSync(p)) continue
      const code = denied(p, fs.constants.W_OK)
      if (code === undefined) continue
      const who = ownership(p)
      const why = code === "EPERM"
        ? "EPERM: it is immutable (chattr +i), or its filesystem forbids writes; chattr -i it, as root"
        : `EACCES${who !== "" ? `: ${who}` : ""}; resume it as the user who owns it, or make it writable for this one (as root: chown -R <user> ${runDir})`
      return Effect.fail(
        new Errors.InvalidInput({
          source: runDir,
          message: `cannot resume the run in ${runDir}: a resumed run writes its journal and its trials' files there, and this user may not write ${p} (${why}). ` +
            `\`trex status ${runDir}\` shows the run as it is`
        })
      )
    }
    return Effect.void
  })

/**
 * A run's journal entries up to its first damaged entry, and that damage (with what to do about it),
 * read without taking its lock (a controller may be writing it); with `tags`, only the events of
 * those tags (as `Journal.readIntact`). Fails with `InvalidInput` for a folder that is no run or this
 * user may not read ({@link readRefusal}), and with the `JournalError` of a journal that cannot be
 * read at all: `Version` for one of a newer trex (upgrade trex), `Corrupt` for one damaged at its
 * first entry.
 * @since 0.1.0 @category reading
 */
export const readIntact = (
  runDir: string,
  options: { readonly tags?: ReadonlyArray<JournalEvent.Tag> } = {}
): Effect.Effect<{ readonly entries: ReadonlyArray<JournalEvent.Entry>; readonly damage?: Errors.JournalError }, Errors.InvalidInput | Errors.JournalError> =>
  Effect.gen(function*() {
    const file = journalFile(runDir)
    const refused = readRefusal(runDir)
    if (refused !== undefined) return yield* refused
    if (!fs.existsSync(file)) return yield* notARun(runDir)
    const { damage, entries } = yield* Journal.readIntact(file, options.tags !== undefined ? { tags: options.tags } : {}).pipe(Effect.catchIf((e) => e.reason === "Corrupt", (e) => Effect.succeed({ entries: [], damage: e })))
    if (damage === undefined) return { entries }
    if (damage.reason !== "Corrupt") return yield* damage
    if (damage.seq === undefined || damage.seq <= 1) {
      // nothing of the run can be read: what is left is in its job folders
      return yield* new Errors.JournalError({
        ...damage,
        message: `${damage.message}. Nothing of the run can be read from it, so it cannot be shown or resumed` +
          (fs.existsSync(jobsDir(runDir))
            ? `; each trial's files (strategy.json, result.json, logs) are still in ${jobsDir(runDir)}`
            : `, and it kept no job folders to read instead (a simulated run keeps none): start it again with \`trex run\``)
      })
    }
    // the task file the run was started from, as it recorded it
    const first = entries[0]?.event
    const recorded = first?._tag === "RunStarted" ? first.options["taskFile"] : undefined
    const taskFile = typeof recorded === "string" && recorded !== "" ? recorded : "<task file>"
    return {
      entries,
      damage: new Errors.JournalError({
        ...damage,
        message: `${damage.message}. The run cannot go on from a damaged journal; the results it journaled before entry ${damage.seq} are reused by a new run ` +
          `of the task in the same folder (trex run ${taskFile} --out ${path.dirname(path.resolve(runDir))})`
      })
    }
  })

/**
 * Read a run's journal without taking its lock (a controller may be writing it); a damaged one fails.
 * @since 0.1.0 @category reading
 */
export const readEntries = (runDir: string): Effect.Effect<ReadonlyArray<JournalEvent.Entry>, Errors.InvalidInput | Errors.JournalError> =>
  Effect.flatMap(readIntact(runDir), ({ damage, entries }) => damage !== undefined ? Effect.fail(damage) : Effect.succeed(entries))

/** What a run's first event says about it. @since 0.1.0 @category models */
export interface RunInfo {
  readonly started: JournalEvent.Of<"RunStarted">
  readonly finished: JournalEvent.Of<"RunFinished"> | undefined
  readonly tree: ExperimentTree.ExperimentTree
  readonly entries: ReadonlyArray<JournalEvent.Entry>
  /**
   * The controller writing the run now (its `pid`; `thisMachine`: on this machine under a host name of its own, see
   * `Journal.Holder`), or `undefined` when none is: the run finished, stopped or was killed.
   */
  readonly writer: { readonly pid?: number; readonly host?: string; readonly thisMachine?: true } | undefined
  /**
   * A process that holds the run's lock for a moment and is not its controller (`trex notify`, posting or
   * dropping the run's expired webhook messages): no controller starts until it lets go (see {@link heldBy}).
   */
  readonly held?: Journal.Holder
  /** Read with `{ damaged: true }`: the journal's damage; `entries` and `tree` are what precedes it. */
  readonly damage?: Errors.JournalError
}

/**
 * Fold a run's journal. A damaged journal fails, unless `damaged` is set: then the entries before the
 * damage are folded, and `damage` says where it is (what `trex status` and `trex report` show).
 * @since 0.1.0 @category reading
 */
export const load = (runDir: string, options: { readonly damaged?: boolean } = {}): Effect.Effect<RunInfo, Errors.InvalidInput | Errors.JournalError> =>
  Effect.gen(function*() {
    const { damage, entries } = yield* readIntact(runDir)
    if (damage !== undefined && options.damaged !== true) return yield* damage
    const first = entries[0]?.event
    if (first === undefined) {
      // the controller was stopped after it created the journal and before it recorded the run; it
      // records the run before any job, so job folders beside an empty journal mean it was emptied
      const jobs = fs.existsSync(jobsDir(runDir)) ? fs.readdirSync(jobsDir(runDir)).length : 0
      if (jobs === 0) {
        return yield* new Errors.InvalidInput({
          source: runDir,
          message: `the run in ${runDir} was stopped before it started (its journal holds no events): there is nothing to resume or show; start it again with \`trex run\``
        })
      }
      // or a killed (or running) controller's events are still in the -wal file, which a copy of the run left behind
      const walLeft = (fs.statSync(`${journalFile(runDir)}-wal`, { throwIfNoEntry: false })?.size ?? 0) === 0
      return yield* new Errors.InvalidInput({
        source: runDir,
        message: `the journal of ${runDir} holds no events, yet ${jobsDir(runDir)} holds ${jobs} job folder${jobs === 1 ? "" : "s"}: ` +
          `the journal was emptied or replaced after the run started (trex records a run before its first job)` +
          (walLeft
            ? `, or the run was copied or moved without its journal.sqlite-wal, where a controller that was killed (or is still running) keeps its latest events: ` +
              `if so, copy that file back beside journal.sqlite from where the run was, and \`trex status ${runDir}\` shows the run. Else the run`
            : `, so the run`) +
          ` cannot be shown or resumed; its jobs' files (strategy.json, result.json) are still there to read`
      })
    }
    if (first._tag !== "RunStarted") {
      return yield* new Errors.InvalidInput({ source: runDir, message: `the journal in ${runDir} does not start with RunStarted (it starts with ${first._tag}): not a TREX run journal` })
    }
    let finished: JournalEvent.Of<"RunFinished"> | undefined
    for (const e of entries) {
      if (e.event._tag === "RunFinished") finished = e.event
      else if (e.event._tag === "RunResumed") finished = undefined
    }
    const tree = ExperimentTree.fold(entries.map((e) => e.event))!
    const holder = yield* Journal.writer(journalFile(runDir))
    // `trex notify` holding the lock is no controller: the run is as its journal ended it, and held for a moment
    const writer = holder?.by === undefined ? holder : undefined
    return { started: first, finished, tree, entries, writer, ...(holder?.by !== undefined ? { held: holder } : {}), ...(damage !== undefined ? { damage } : {}) }
  })

/** A turn of the event loop: between journals, so that reading many blocks it for one read at a time. */
const yieldToEventLoop = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/**
 * Which journals of a folder {@link siblingJournals} reads, and what of them: with `keep`, only
 * those whose first event is a `RunStarted` it accepts (the others no further than that event);
 * with `tags`, only the events of those tags.
 * @since 0.1.0 @category models
 */
export interface SiblingOptions {
  readonly keep?: (started: JournalEvent.Of<"RunStarted">) => boolean
  readonly tags?: ReadonlyArray<JournalEvent.Tag>
}

/** A journal's first entry (which run it is), `undefined` when it has none, `"unread"` when it cannot be read so (it is then read whole, as any). */
const firstEntry = (file: string): Effect.Effect<JournalEvent.Entry | undefined | "unread"> =>
  Journal.readIntact(file, { limit: 1 }).pipe(
    Effect.map((i) => (i.damage !== undefined ? "unread" as const : i.entries[0])),
    Effect.orElseSucceed(() => "unread" as const)
  )

/** Whether a journal with this first entry is to be read, by `options.keep`; an empty one is passed over with `emptyPassed` (a follower reads it: its run may be starting). */
const kept = (options: SiblingOptions, first: JournalEvent.Entry | undefined | "unread", emptyPassed = false): boolean =>
  options.keep === undefined || first === "unread" ? true
  : first === undefined ? !emptyPassed
  : first.event._tag === "RunStarted" && options.keep(first.event)

/**
 * What {@link followSiblings} hands the journals it reads to: `add` one whose run has ended (read
 * once, not held), `follow` one still being written (each call goes on from the last), `unfollow`
 * it once its writer has gone. `ResultCache.builder` is one.
 * @since 0.1.0 @category models
 */
export interface SiblingSink {
  readonly add: (entries: ReadonlyArray<JournalEvent.Entry>) => void
  readonly follow: (key: string, entries: ReadonlyArray<JournalEvent.Entry>) => void
  readonly unfollow: (key: string) => void
}

/**
 * The journals of other runs under `root`, followed as they grow (result reuse between runs that
 * run at the same time in one folder). Each run of the returned effect reads what is new: a journal
 * not seen before (chosen, read and handed over as by {@link eachSiblingJournal}), and the entries a
 * journal has gained since it was last read (from where that read stopped); a journal whose files
 * have not changed is not opened, and one of another task (by `keep`) never again. A journal whose
 * controller holds its writer lock is followed (its trials in flight are known); once that lock is
 * released (the run ended, stopped or died), it is read to its end and unfollowed.
 * @since 0.1.0 @category reading
 */
export const followSiblings = (root: string, except: string, options: SiblingOptions, sink: SiblingSink): Effect.Effect<void> => {
  interface Seen {
    readonly started: JournalEvent.Entry | undefined
    checked: number
    stamp: string
    live: boolean
  }
  const seen = new Map<string, Seen | "passed">()
  const stampOf = (file: string) => {
    const main = fs.statSync(file, { throwIfNoEntry: false })
    if (main === undefined) return undefined
    const wal = fs.statSync(`${file}-wal`, { throwIfNoEntry: false })
    return `${main.size}:${main.mtimeMs}:${wal?.size}:${wal?.mtimeMs}`
  }
  return Effect.gen(function*() {
    if (!fs.existsSync(root)) return
    for (const name of fs.readdirSync(root).sort()) {
      const dir = path.join(root, name)
      if (path.resolve(dir) === path.resolve(except)) continue
      const file = journalFile(dir)
      const known = seen.get(file)
      if (known === "passed") continue
      const stamp = stampOf(file)
      if (stamp === undefined || (known !== undefined && !known.live && known.stamp === stamp)) continue
      const live = Journal.writer(file).pipe(Effect.map((w) => w !== undefined))
      const writing = yield* live
      if (known !== undefined && known.live && writing && known.stamp === stamp) continue
      let started: JournalEvent.Entry | undefined = known?.started
      if (known === undefined) {
        const first = yield* firstEntry(file)
        if (!kept(options, first)) {
          seen.set(file, "passed")
          continue
        }
        started = first !== "unread" && first?.event._tag === "RunStarted" ? first : undefined
      }
      yield* yieldToEventLoop
      const from = (known?.checked ?? 0) + 1
      const intact = yield* Journal.readIntact(file, { from, ...(options.tags !== undefined ? { tags: options.tags } : {}) }).pipe(
        Effect.orElseSucceed(() => undefined)
      )
      const checked = intact?.checked ?? from - 1
      const entries = intact?.entries ?? []
      if (known === undefined && !writing) {
        if (entries.length > 0) sink.add(entries)
      } else {
        // a journal read before goes on from there: its run is named again first, for a follower that starts here
        const firstFollow = known === undefined || !known.live
        sink.follow(file, firstFollow && from > 1 && started !== undefined ? [started, ...entries] : entries)
        if (!writing) sink.unfollow(file)
      }
      seen.set(file, { started, checked, stamp, live: writing })
    }
  })
}

/**
 * The journals of other runs under `root` (for result reuse), skipping `except` and any that
 * cannot be opened; of a damaged journal, the entries before the damage. With `keep`, a journal is
 * read whole only when its first event is a `RunStarted` that `keep` accepts (the others are read
 * no further than that event). With `tags`, only the events of those tags are read from each.
 * Every journal is held at once: {@link eachSiblingJournal} hands them over one at a time.
 * @since 0.1.0 @category reading
 */
export const siblingJournals = (root: string, except: string, options: SiblingOptions = {}): Effect.Effect<ReadonlyArray<ReadonlyArray<JournalEvent.Entry>>> =>
  Effect.suspend(() => {
    const out: Array<ReadonlyArray<JournalEvent.Entry>> = []
    return Effect.as(eachSiblingJournal(root, except, options, (entries) => void out.push(entries)), out)
  })

/**
 * {@link siblingJournals}, handed to `f` one journal at a time, each read only after `f` has
 * taken the one before: a folder of big runs costs the memory of its largest journal, not of all.
 * @since 0.1.0 @category reading
 */
export const eachSiblingJournal = (root: string, except: string, options: SiblingOptions, f: (entries: ReadonlyArray<JournalEvent.Entry>) => void): Effect.Effect<void> =>
  Effect.gen(function*() {
    if (!fs.existsSync(root)) return
    for (const name of fs.readdirSync(root).sort()) {
      const dir = path.join(root, name)
      const file = journalFile(dir)
      if (path.resolve(dir) === path.resolve(except) || !fs.existsSync(file)) continue
      if (options.keep !== undefined && !kept(options, yield* firstEntry(file), true)) continue
      yield* yieldToEventLoop
      const intact = yield* Journal.readIntact(file, options.tags !== undefined ? { tags: options.tags } : {}).pipe(Effect.orElseSucceed(() => undefined))
      if (intact !== undefined && intact.entries.length > 0) f(intact.entries)
    }
  })

/**
 * What {@link stopController} did: the run had no controller (`NotRunning`; `held`: a `trex notify` holds
 * it for a moment, see {@link heldBy}), or its controller
 * (`pid`) was asked to stop (`Asked`), and with `wait`, whether it has exited since (`exited`).
 * @since 0.1.0 @category models
 */
export type StopOutcome =
  | { readonly _tag: "NotRunning"; readonly held?: Journal.Holder }
  | { readonly _tag: "Asked"; readonly pid: number; readonly now: boolean; readonly exited: boolean }

/** Between two looks at the writer lock while a stop is waited for. */
const STOP_POLL = "200 millis"
/** Between the first signal (drain) and the second (cancel) of a stop `now`: each handled as its own. */
const SECOND_SIGNAL = "300 millis"

/**
 * Stop the controller that is running the run in `runDir` (`trex stop`), from another process on
 * the same machine, as a signal would: SIGTERM, so it starts no new trial and lets the running ones
 * finish (those still waiting in their backend's queue are withdrawn: they run on resume); with
 * `now`, a second SIGTERM, so it cancels them (they run again, from the start, on resume). The
 * controller is the process holding the journal's writer lock; with `wait`, this waits up to that
 * long for it to exit (the lock released). A run nobody runs is `NotRunning`. Fails with
 * `InvalidInput` naming the fix for a folder that is no run, a controller on another machine (a
 * run directory on a shared filesystem), of another user, or that is this very process.
 * @since 0.1.0 @category commands
 */
export const stopController = (
  runDir: string,
  options: { readonly now?: boolean; readonly wait?: Duration.Input } = {}
): Effect.Effect<StopOutcome, Errors.InvalidInput> =>
  Effect.gen(function*() {
    const file = journalFile(runDir)
    const refused = readRefusal(runDir)
    if (refused !== undefined) return yield* refused
    if (!fs.existsSync(file)) return yield* notARun(runDir)
    const holder = yield* Journal.writer(file)
    if (holder === undefined) return { _tag: "NotRunning" } as const
    // `trex notify` holds the run for a moment: no controller runs it, and none is to be stopped
    if (holder.by !== undefined) return { _tag: "NotRunning", held: holder } as const
    const { host, pid } = holder
    if (pid === undefined) {
      return yield* new Errors.InvalidInput({
        source: runDir,
        // a holder of another boot or pid namespace has not "just taken the lock": waiting shows the same; one of another
        // pid namespace is told where it can be seen (`unknown` says: fuser sees this pid namespace and those within it only)
        message: `a process holds the run's lock (${file}.lock), but ${holder.unknown ?? "its record names none"}` +
          (holder.elsewhere === "another boot" ? `: run \`trex stop ${runDir}\` on that machine`
            : holder.elsewhere === "another pid namespace" ? ""
            // (never signalled: run where its pid and start time can be read)
            : holder.elsewhere === "unverifiable" ? `: ${stopWhere(`\`trex stop ${runDir}\``, holder)}`
            : `: try again in a moment if it has just taken the lock${holder.find !== undefined ? `, or ${holder.find}` : ""}`)
      })
    }
    // (a host name of its own on this machine, as a container's, is signalled here)
    if (host !== undefined && host !== os.hostname() && holder.thisMachine !== true) {
      return yield* new Errors.InvalidInput({
        source: runDir,
        message: `the run's controller is process ${pid} on host ${Journal.hostName(host)}, not this one (${Journal.hostName(os.hostname())}): run \`trex stop ${runDir}\` on ${Journal.hostName(host)}`
      })
    }
    if (pid === process.pid) {
      return yield* new Errors.InvalidInput({ source: runDir, message: `the run's controller is this process: stop it with its Control (\`control.stop("drain")\`) instead` })
    }
    const signal = Effect.try({
      try: () => {
        process.kill(pid, "SIGTERM")
        return true
      },
      catch: (e) => e as NodeJS.ErrnoException
    }).pipe(
      // gone meanwhile: it stopped by itself
      Effect.catchIf((e) => e.code === "ESRCH", () => Effect.succeed(false)),
      Effect.mapError((e) =>
        new Errors.InvalidInput({
          source: runDir,
          message: e.code === "EPERM"
            ? `the run's controller, process ${pid}, belongs to another user: run \`trex stop\` as that user (or root)`
            : `cannot signal the run's controller, process ${pid}: ${e.message}`
        })
      )
    )
    const running = Effect.map(Journal.writer(file), (w) => w !== undefined && w.pid === pid)
    if (!(yield* signal)) return { _tag: "NotRunning" } as const
    const now = options.now === true
    if (now) {
      yield* Effect.sleep(SECOND_SIGNAL)
      if (yield* running) yield* signal
    }
    if (options.wait === undefined) return { _tag: "Asked", pid, now, exited: false } as const
    const until = Date.now() + Duration.toMillis(Duration.fromInputUnsafe(options.wait))
    while (Date.now() < until && (yield* running)) yield* Effect.sleep(STOP_POLL)
    return { _tag: "Asked", pid, now, exited: !(yield* running) } as const
  })

/** What `trex notify` records as what holds a run's lock while it posts or drops the run's expired messages (see `Journal.Holder`). @since 0.1.0 @category constants */
export const NOTIFY_HOLDER = "trex notify"


/**
 * What holds a run that no controller runs, and what to do, in a sentence: `holder` is not a controller
 * (`by`: a `trex notify` session, posting or dropping the run's expired webhook messages), which lets go
 * of the run once done. `then`: what to do once it has.
 * @since 0.1.0 @category reading
 */
export const heldBy = (holder: Journal.Holder, then: string): string =>
  `held by a \`${holder.by ?? NOTIFY_HOLDER}\` session (${processOf(holder)}${holder.host !== undefined && holder.host === os.hostname() ? ` on this host, ${Journal.hostName(holder.host)}` : ""})` +
  `${holder.by === NOTIFY_HOLDER ? ", which posts or drops the run's expired webhook messages" : ""}: it lets go of the run once done, within seconds ` +
  `(up to 33 s for each message a webhook does not answer). Wait for it to finish, then ${then}`

// (named with its host when on another machine, where trex stop cannot reach it; a `trex notify` as what it is)
const inUse = (runDir: string, holder: Journal.Holder | undefined) => {
  const elsewhere = holder?.host !== undefined && holder.host !== os.hostname() && holder.thisMachine !== true
  return new Errors.JournalError({
    reason: "Locked",
    message: holder?.by !== undefined
      ? `the run's lock (${journalFile(runDir)}.lock) is ${heldBy(holder, "try again")}`
      : `run is in use by ${processOf(holder)} (lock ${journalFile(runDir)}.lock); ` +
        (elsewhere ? `stop that controller on ${Journal.hostName(holder.host)} first (trex stop ${runDir} --wait, run there), or wait for it to end`
          // (where it can be seen, as said: not from here)
          // (said whole here: the reason in the parenthesis may be cut)
          : holder?.elsewhere === "another pid namespace" || holder?.elsewhere === "unverifiable"
          ? `stop that controller from where it can be seen: ${
            stopWhere(`\`trex stop ${runDir} --wait\``, holder)
          }; or wait for it to end`
          : `stop that controller first (trex stop ${runDir} --wait), or wait for it to end`)
  })
}

/**
 * Take the run's writer lock for the scope (the journal this session opens later uses it): a session
 * takes it before its notifier starts (or, without webhooks, before it says what earlier sessions left
 * undelivered), so that two sessions started at once never both post or expire the run's kept messages,
 * nor post a failed end of their own once refused; refused (`Locked`) naming the holder and what to do.
 * @since 0.1.0 @category commands
 */
export const holdRun = (runDir: string): Effect.Effect<void, Errors.JournalError, Scope.Scope> =>
  Journal.lockWriter(journalFile(runDir)).pipe(
    // refused by another process: named, with what to do (by this one: the lock's own message says so)
    Effect.catch((e) =>
      e.reason === "Locked"
        ? Effect.flatMap(Journal.writer(journalFile(runDir)), (holder) => Effect.fail(holder?.pid === process.pid ? e : inUse(runDir, holder)))
        : Effect.fail(e)
    )
  )
