/**
 * Asking Grid Engine about jobs: `qstat -xml` while the qmaster holds a job, `qstat -j` for why it
 * waits or failed, `qacct -j` (the accounting file) once it has ended. Commands go through a
 * {@link CommandRunner}, with `SGE_ROOT`/`SGE_CELL` set through `env` when configured (a login
 * shell over SSH often sets neither).
 */
import { Errors } from "@trex/core"
import { Effect } from "effect"
import type { CommandRunner, CommandOutput } from "./commandRunner.ts"
import * as Script from "./gridengineScript.ts"

const NAME = "gridengine"

const fail = (operation: string, message: string, retryable = true) =>
  new Errors.BackendError({ backend: NAME, operation, message, retryable })

/** Where the Grid Engine clients find their cell. */
export interface Cell {
  readonly sgeRoot?: string | undefined
  readonly sgeCell?: string | undefined
}

/** Grid Engine's commands, run through a runner with the cell's environment. */
export interface Client {
  readonly exec: (command: string, args: ReadonlyArray<string>) => Effect.Effect<CommandOutput, Errors.BackendError>
  /** Run a command and fail, naming it and its stderr, when it exits non-zero. */
  readonly run: (command: string, args: ReadonlyArray<string>) => Effect.Effect<string, Errors.BackendError>
}

/**
 * Where Debian's and Ubuntu's `gridengine-client` put the real commands: `/usr/bin/qstat` and the rest are a shell
 * wrapper (`/usr/share/gridengine/gridengine-wrapper`) that runs `util/arch` twice (two shells, `uname` and a dozen
 * more processes) to set `SGE_ARCH`, and then executes `/usr/lib/gridengine/<command>`. The probe prints what the
 * wrapper would export (`SGE_ROOT`, `SGE_CELL`, `SGE_ARCH`, from the environment, else /etc/default/gridengine,
 * else its defaults), or nothing where `qstat` is not that wrapper.
 */
export const DIRECT_DIR = "/usr/lib/gridengine"
const PROBE = [
  "w=$(command -v qstat) || exit 0",
  'case $(readlink -f "$w") in */gridengine-wrapper) ;; *) exit 0 ;; esac',
  `[ -x ${DIRECT_DIR}/qstat ] || exit 0`,
  'r=$SGE_ROOT c=$SGE_CELL a=$SGE_ARCH',
  "[ -r /etc/default/gridengine ] && . /etc/default/gridengine",
  'r=${r:-${SGE_ROOT:-/var/lib/gridengine}} c=${c:-${SGE_CELL:-default}} a=${a:-$SGE_ARCH}',
  '[ -n "$a" ] || a=$(/usr/share/gridengine/util/arch)',
  'printf "%s\\n" "$r" "$c" "$a"'
].join("\n")

/** The commands' directory and environment, where `qstat` is Debian's wrapper; `undefined` where it is not. */
export interface Direct {
  readonly dir: string
  readonly vars: ReadonlyArray<string>
}

/** Whether `runner`'s `qstat` is Debian's wrapper, and what it would run (see `DIRECT_DIR`); fails if the probe cannot run. */
export const direct = (runner: CommandRunner, vars: ReadonlyArray<string>): Effect.Effect<Direct | undefined, Errors.BackendError> =>
  runner.exec("env", [...vars, "sh", "-c", PROBE]).pipe(
    Effect.flatMap((o) => {
      if (o.code !== 0) return Effect.fail(fail("probe", `the probe for Grid Engine's commands exited ${o.code}: ${o.stderr.trim()}`))
      const [root, cell, arch] = o.stdout.split("\n")
      return Effect.succeed(root && cell && arch ? { dir: DIRECT_DIR, vars: [`SGE_ROOT=${root}`, `SGE_CELL=${cell}`, `SGE_ARCH=${arch}`] } : undefined)
    })
  )

/**
 * A client for `runner`, with `SGE_ROOT`/`SGE_CELL` from `cell` (through `env`) when given. Where `qstat` is Debian's
 * wrapper, the commands are run as the wrapper would run them, without it: 0.5-0.9 s and 0.3 s of CPU less a
 * command (`qstat` 0.04-0.06 s instead of 0.57-0.87 s at load 5), and a watch runs one every `pollIntervalMs`.
 * Found out at the first command; a probe that cannot run (an SSH host down) is tried again at the next.
 */
export const client = (runner: CommandRunner, cell: Cell): Client => {
  const vars = [
    ...(cell.sgeRoot !== undefined ? [`SGE_ROOT=${cell.sgeRoot}`] : []),
    ...(cell.sgeCell !== undefined || cell.sgeRoot !== undefined ? [`SGE_CELL=${cell.sgeCell ?? "default"}`] : [])
  ]
  let found: { readonly direct: Direct | undefined } | undefined
  const how = Effect.suspend(() =>
    found !== undefined ? Effect.succeed(found.direct) : direct(runner, vars).pipe(
      Effect.tap((d) => Effect.sync(() => void (found = { direct: d }))),
      Effect.orElseSucceed(() => undefined)
    )
  )
  const exec = (command: string, args: ReadonlyArray<string>) =>
    Effect.flatMap(how, (d) =>
      d !== undefined
        ? runner.exec("env", [...d.vars, `${d.dir}/${command}`, ...args])
        : vars.length > 0
        ? runner.exec("env", [...vars, command, ...args])
        : runner.exec(command, args)
    )
  return {
    exec,
    run: (command, args) =>
      exec(command, args).pipe(
        Effect.flatMap((o) =>
          o.code === 0
            ? Effect.succeed(o.stdout)
            : Effect.fail(fail(command, `${command} ${args.join(" ")} exited ${o.code}: ${(o.stderr.trim() || o.stdout.trim()).split("\n").slice(-3).join(" ")}`))
        )
      )
  }
}

/**
 * Whether an error says the qmaster did not answer (stopped, restarting, failing over, out of
 * reach): the jobs keep running under their execution daemons meanwhile, so this is a wait, not a
 * job's end.
 */
export const isQmasterUnreachable = (e: Errors.BackendError): boolean =>
  // (an act_qmaster of zero length: a qmaster starting, which writes its host name there, read before it had)
  /unable to (contact|send message to) qmaster|got select error|Connection refused|failed receiving gdi request|can't unpack gdi request|unable to read qmaster name: .*has zero length/i.test(e.message) &&
  // a host the qmaster refuses (not a submit host, a name it resolves otherwise) is a setting to fix, not an outage
  !/access denied|denied: host/i.test(e.message)

/**
 * Whether a `qsub` failed before its request reached the qmaster: nothing was submitted, so
 * submitting again cannot make a second job. (One that timed out waiting for the answer may have
 * been submitted, and is not retried.)
 */
export const isConnectFailure = (e: Errors.BackendError): boolean =>
  /unable to (contact|send message to) qmaster|Connection refused|got select error/i.test(e.message) && !/receiv|timeout/i.test(e.message)

/** The caller's jobs that the qmaster holds (`qstat -xml`: running and waiting), by id. */
export const qstat = (ge: Client) => Effect.map(ge.run("qstat", ["-xml"]), Script.parseQstat)

/** Why a job waits or failed (`qstat -j <id>`); `undefined` once the qmaster has forgotten it. */
export const details = (ge: Client, id: string) =>
  Effect.map(ge.exec("qstat", ["-j", id]), (o) => (o.code === 0 ? Script.parseJobDetails(o.stdout) : undefined))

/** Context variables of the jobs `ids` (`qstat -j <ids> -xml`). */
export const contexts = (ge: Client, ids: ReadonlyArray<string>) =>
  ids.length === 0
    ? Effect.succeed(new Map<string, Record<string, string>>())
    : Effect.map(ge.run("qstat", ["-j", ids.join(","), "-xml"]), Script.parseContexts)

/**
 * The job's accounting record (`qacct -j <id>`), the latest with its name; `undefined` when the
 * accounting file has none (yet: the qmaster writes it every `accounting_flush_time`).
 */
export const qacct = (ge: Client, id: string, name: string | undefined) =>
  Effect.map(ge.exec("qacct", ["-j", id]), (o) => {
    if (o.code !== 0) return { record: undefined, why: (o.stderr.trim() || o.stdout.trim()).split("\n").at(-1) ?? "" }
    return { record: Script.pickRecord(Script.parseQacct(o.stdout), name), why: "" }
  })

/**
 * A cancel's marking of the job in `jobDir`: the marker ({@link Script.cancelMarker}) from its exit record (`recorded`) and,
 * for a record that does not say the job runs again, what `look` (qstat, once) lists under its id; written whole
 * (`createFile`: a reader sees none of it, all of it, or, where it is created in place, an empty file for a moment) and
 * never over a marker there. A marker there is an earlier cancel's, which saw the job before
 * this one did: a second cancel, while qstat still lists the job the first one's qdel is ending (`dr`), would otherwise
 * say it saw that end's record, and the end would read as the job's own. Whether this cancel wrote the marker.
 */
export const markCancelled = <E>(
  runner: CommandRunner,
  jobDir: string,
  recorded: Script.ExitRecord | undefined,
  look: Effect.Effect<Script.QueuedJob | "gone" | undefined, E>,
  name: string | undefined,
  at: Date
): Effect.Effect<boolean, Errors.BackendError | E> =>
  Effect.gen(function*() {
    const file = `${jobDir}/${Script.CANCEL_FILE}`
    const there = yield* runner.exists(file)
    // looked at before a marker there is read: see below
    const marker = Script.cancelMarker(recorded, recorded === undefined || Script.runsAgain(recorded) ? undefined : yield* look, name)
    if (marker === undefined) return false
    // an empty one there: created in place (`createFile` where nothing can be linked or renamed into place) by a cancel
    // that is still to write it (an SFTP round trip away, or stalled), or that stopped, or whose write failed, before its
    // qdel. Read again until it is whole (that cancel's: kept) or gone, or, still empty, older than STALE_MARKER_SECONDS on the
    // runner's host: a dead cancel's, which would keep every later cancel's marker out; removed then (only an empty file
    // that old: never one a live cancel is writing), and this cancel's written. What this cancel saw (its record, its qstat)
    // it saw before its reads found no marker whole, so before any qdel of a cancel whose marker was whole (each such qdel
    // comes after its marker's write): not the end such a qdel made (JT's second cancel)
    for (let waited = 0; there; waited++) {
      if ((yield* readCancelMarker(runner, jobDir)) !== undefined) return false
      const removal = yield* runner.exec("sh", ["-c", STALE_REMOVAL, "sh", file])
      if (removal.code === 0) break
      // not empty (written since the read, or an earlier TREX's cut short): kept
      if (removal.code === 3) return false
      if (removal.code !== 4) return yield* Effect.fail(fail("rm", `cannot remove the empty marker ${file}: ${removal.stderr.trim()}`, false))
      // empty and young (its writer may be alive): read again; past the wait (a clock far off?), an earlier cancel's, kept
      if (waited >= STALE_WAITS) return false
    }
    return yield* runner.createFile(file, Script.renderCancelMarker(marker, at), 0o644)
  })

/**
 * How old (its mtime, on the runner's host) an empty marker must be to be a dead cancel's: a live cancel writes it within
 * a round trip of its create. Each wait for it to age is a read of a second ({@link readCancelMarker}) and a look.
 */
const STALE_MARKER_SECONDS = 10
const STALE_WAITS = 15
/**
 * Removes `$1` only if it is an empty regular file last modified over STALE_MARKER_SECONDS ago (GNU find: a
 * fraction of a minute; another find fails, and the cancel warns it wrote no marker):
 * exit 0 when it is gone (removed, or not there), 3 when it is not empty, 4 when it is empty and younger (kept).
 */
const STALE_REMOVAL = [
  '[ -e "$1" ] || exit 0',
  '[ -s "$1" ] && exit 3',
  `find "$1" -maxdepth 0 -type f -empty -mmin +${(STALE_MARKER_SECONDS / 60).toFixed(3)} -delete || { [ -e "$1" ] && exit 1; }`,
  '[ -e "$1" ] && exit 4',
  "exit 0"
].join("\n")

/** How often, and how far apart, a marker not yet written whole is read again. */
const MARKER_READS = 5
const MARKER_REREAD = "200 millis"

/**
 * The cancel marker in `jobDir` ({@link Script.parseCancelMarker}); `undefined` when there is none. One not yet written
 * whole (empty: created in place by `createFile` where no hard link can be made, or written in place by an earlier TREX)
 * is read again; one still not whole after a second is a cancel that stopped before it wrote it, and so before its
 * qdel: no marker.
 */
export const readCancelMarker = (runner: CommandRunner, jobDir: string): Effect.Effect<Script.CancelMarker | "earlier" | undefined, Errors.BackendError> =>
  Effect.gen(function*() {
    for (let read = 1; ; read++) {
      const bytes = yield* runner.readFrom(`${jobDir}/${Script.CANCEL_FILE}`, 0, 4096)
      if (!(bytes instanceof Uint8Array)) return undefined
      const marker = Script.parseCancelMarker(new TextDecoder().decode(bytes))
      if (marker !== undefined || read >= MARKER_READS) return marker
      yield* Effect.sleep(MARKER_REREAD)
    }
  })
