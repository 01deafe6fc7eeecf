import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { DatabaseSync } from "node:sqlite"
import * as url from "node:url"
import { crc32 } from "node:zlib"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { JournalError, noSpace } from "../Errors.ts"
import * as JournalEvent from "../JournalEvent.ts"

export interface SqliteOptions {
  /** Open without taking the writer lock and without writing. */
  readonly readonly?: boolean
  /**
   * "fsync" (default): every append is fsync'd before it returns (survives power loss).
   * "process": durable against a killed process, not against power loss; much faster.
   */
  readonly durability?: "fsync" | "process"
}

/** Migrations from version N to N + 1, applied in one transaction each. Index = from-version. */
const migrations: ReadonlyArray<(db: DatabaseSync) => void> = [
  // 0 -> 1: a new file.
  (db) => {
    db.exec(`CREATE TABLE IF NOT EXISTS events (
      seq INTEGER PRIMARY KEY,
      tag TEXT NOT NULL,
      payload TEXT NOT NULL,
      crc INTEGER NOT NULL
    )`)
  },
  // 1 -> 2: the same table; format 2 adds the AnalysisCompleted event, which a trex that writes
  // format 1 cannot decode, so such a trex refuses these files with "upgrade trex".
  () => {},
  // 2 -> 3: the same table; format 3 adds the JobState event (likewise).
  () => {},
  // 3 -> 4: the same table; format 4 adds JobState's Pruning state (likewise).
  () => {}
]

const io = (message: string, reason: JournalError["reason"] = "Io", seq?: number) =>
  new JournalError({ reason, message, ...(seq !== undefined ? { seq } : {}) })

/**
 * A write that failed for want of room (a full disk or quota, a read-only filesystem) as a `NoSpace`
 * error naming the run's folder and the fix; nothing was written (a transaction that cannot commit is
 * rolled back), so the run resumes once there is room. `undefined` for any other failure.
 */
const noSpaceError = (file: string, e: unknown): JournalError | undefined => {
  const why = noSpace(e)
  if (why === undefined) return undefined
  const dir = path.dirname(file)
  const fix = why.includes("read-only")
    ? `the folder ${dir} cannot be written: make it writable`
    : `the disk holding ${dir} is full: free space there`
  return io(`cannot write journal ${file} (${why}): ${fix}, then continue the run with \`trex resume ${dir}\` (nothing journaled is lost)`, "NoSpace")
}

/**
 * The writer lock: `lockFile` is an (empty) SQLite database whose exclusive lock the writer holds
 * for as long as the journal is open. The operating system releases it when the process dies,
 * so there is no stale lock to take over and no race between two processes taking one over;
 * `<lockFile>.pid` is the holder's record (see {@link LockRecord}), for the error message and for `trex stop`.
 * A lock taken by {@link holdLock}
 * (`holds: 1`, no journal) is the one a journal of the same file then opened in this process uses (a session
 * takes it before its notifier starts, and its journal opens later): released once both let go of it. Any
 * other second taking in this process is refused, as another process's is.
 */
const held = new Map<string, { readonly db: DatabaseSync; holds: number; journal: boolean; readonly by: string | undefined }>()

/**
 * Who holds a journal's writer lock, as its record says: `pid`, `host` (the machine it runs on), and `by`,
 * what it is when it is not the run's controller (a command that holds the run for a moment, e.g. `trex notify`).
 * Without `pid`, `unknown` says why the holder is not known: its record is gone, cannot be read, or was
 * left by an earlier holder that has exited (the new holder took the lock and has not yet written its own),
 * or names a holder this process cannot look up, `elsewhere`: of another boot or another pid namespace, or `"unverifiable"`: a
 * process of its pid runs here but cannot be told to be the holder (its start time, or this process's pid namespace, cannot
 * be read here, or its record has none to compare where one is needed); it is never named for signalling. `thisMachine`: its
 * `host` is not this machine's name, yet it runs on this machine (its boot id is this one's: a container with a host name
 * of its own, as Docker's are), so its pid is looked up and signalled here as any holder's of this host. `find`: for a
 * holder not named (no `pid`) that `fuser` can find, how, in a sentence (`find the holder with \`fuser <lock>\` (run as
 * root ...) and stop it with \`kill -TERM <pid>\``, see {@link fuserHint}): from here, or from the machine, outside containers.
 */
export interface LockHolder {
  readonly pid?: number
  readonly host?: string
  readonly by?: string
  readonly unknown?: string
  readonly find?: string
  readonly elsewhere?: "another boot" | "another pid namespace" | "unverifiable"
  readonly seen?: Seen
  readonly thisMachine?: true
}

/**
 * Where a holder this process cannot see (`elsewhere`, of this machine) is seen: `"machine"`, only on the machine, outside
 * containers (the machine's own, read from a container); `"namespace"`, there too, where it is found by its recorded pid
 * namespace, or in its own container; `"container"`, on the machine or in the holder's container, which may be where it
 * runs (its namespace unknown, or not verifiable here).
 */
export type Seen = "machine" | "namespace" | "container"

/**
 * Where to run `command` (`the command`, `` `trex stop <run-dir>` ``) on a lock's holder this process cannot see, as its
 * `seen` says: on the machine, outside containers, and, unless it is the machine's own, in the holder's container.
 */
export const whereSeen = (command: string, seen: Seen): string =>
  `run ${command} on the machine, outside containers${
    seen === "machine" ? "" : `${seen === "namespace" ? " (it finds the holder by its namespace)" : ""}, or in the holder's container`
  }`

/**
 * The lock's record, one line of JSON in `<lockFile>.pid`, written whole (a file renamed into place):
 * `pid`, `host` (any string: an empty host name, or one with spaces, is kept as it is), `by` (`"controller"`,
 * or what else holds it, e.g. `"trex notify"`), `since` (when it took the lock, ISO 8601, for whoever
 * reads the file), and what tells this process from a later one given the same pid: `start`, its start
 * time in clock ticks since boot (`/proc/self/stat` field 22, on the machine's boot clock: the boottime offset of a time
 * namespace of its own taken off), and `boot`, the boot id; and `pidns`, its pid
 * namespace (`pid:[4026531836]`, the link `/proc/self/ns/pid`), in which alone its pid names it (a container's
 * process 1 is another process on its host); `"unknown"` when that link cannot be read where procfs is (a `/proc` of
 * another pid namespace, which does not show this process): its pid is then named by no reader with procfs; and `uts`, its
 * UTS namespace (`uts:[4026531838]`, the link `/proc/self/ns/uts`), which says whether its host name is a container's (see
 * {@link machineOf}). Older versions wrote `<pid> <host>[ <by>]` or the pid alone, and records without `pidns` or `uts`; all are still read.
 */
interface LockRecord {
  readonly pid: number
  readonly host?: string
  readonly by?: string
  readonly start?: string
  readonly boot?: string
  readonly pidns?: string
  readonly uts?: string
}

/** What the record of a controller says it is. */
const CONTROLLER = "controller"

const readText = (file: string): string | undefined => {
  try {
    return fs.readFileSync(file, "utf8").trim()
  } catch {
    return undefined
  }
}

/**
 * `f`'s answer, asked once: for what does not change while this process runs (its namespaces, its time namespace's
 * offset, the machine's boot id), which a look at a lock would otherwise read again for each record and process.
 */
const once = <A>(f: () => A): () => A => {
  let done: { readonly value: A } | undefined
  return () => (done ??= { value: f() }).value
}

const linkOf = (link: string): string | undefined => {
  try {
    return fs.readlinkSync(link)
  } catch {
    return undefined
  }
}

const namespaces = {
  pid: once(() => linkOf("/proc/self/ns/pid")),
  uts: once(() => linkOf("/proc/self/ns/uts"))
}

/** This process's namespace of a kind (Linux: `pid:[<inode>]`, `uts:[<inode>]`), `undefined` without procfs. */
const namespace = (kind: "pid" | "uts"): string | undefined => namespaces[kind]()
const pidNamespace = (): string | undefined => namespace("pid")

/** The machine's own UTS namespace, outside containers (the kernel's initial one: its inode is fixed, `PROC_UTS_INIT_INO`). */
const MACHINE_UTS = "uts:[4026531838]"

/** Clock ticks a second in `/proc/<pid>/stat` (`USER_HZ`: 100 on every Linux architecture Node runs on). */
const TICK_NANOS = 10_000_000n

/**
 * How far ahead of the machine's this process's boot clock runs, in whole clock ticks (rounded down): the `boottime`
 * offset of its time namespace (`/proc/self/timens_offsets`, Linux 5.6; 0 without one), by which every start time
 * `/proc` shows it is ahead. An offset of a fraction of a tick leaves a start time taken off it one tick late at most
 * (the kernel rounds down its start time in ticks, `nsec_to_clock_t`, after adding the offset): see {@link sameStart}.
 */
const bootOffset = once((): bigint => {
  const line = readText("/proc/self/timens_offsets")?.split("\n").find((l) => l.startsWith("boottime"))
  const [, seconds, nanos] = line?.trim().split(/\s+/) ?? []
  if (seconds === undefined || nanos === undefined || !/^-?\d+$/.test(seconds) || !/^\d+$/.test(nanos)) return 0n
  const offset = BigInt(seconds) * 1_000_000_000n + BigInt(nanos)
  return offset >= 0n ? offset / TICK_NANOS : -((-offset + TICK_NANOS - 1n) / TICK_NANOS)
})

/**
 * Whether two start times in ticks on the machine's boot clock (see {@link procStart}) are one process's: equal, or one
 * tick apart (each side's time namespace offset of a fraction of a tick leaves it that late at most). Never two
 * processes': the later of them was started after the first exited, which had lived for more than a tick (a process that
 * took a lock and wrote its record).
 */
const sameStart = (a: string, b: string): boolean => {
  if (!/^\d+$/.test(a) || !/^\d+$/.test(b)) return false
  const d = BigInt(a) - BigInt(b)
  return d >= -1n && d <= 1n
}

/**
 * This machine's boot id (Linux), and the start time in clock ticks since boot of the process whose `/proc` entry is
 * `entry` (its pid there, or `self`), on the machine's boot clock (a time namespace's offset taken off: a holder in
 * one, and a reader in another, see the same process start at the same time, give or take a tick: {@link sameStart}), and
 * whether it is a zombie (`undefined` without procfs, or when it is gone).
 */
const bootId = once((): string | undefined => readText("/proc/sys/kernel/random/boot_id"))
const procStart = (entry: string): { readonly start: string; readonly zombie: boolean } | undefined => {
  const stat = readText(`/proc/${entry}/stat`)
  if (stat === undefined) return undefined
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  const shown = fields[19]
  if (shown === undefined || !/^\d+$/.test(shown)) return undefined
  return { start: String(BigInt(shown) - bootOffset()), zombie: fields[0] === "Z" || fields[0] === "X" }
}

/**
 * The `NSpid:` of a process's `/proc` entry: its pid in each pid namespace from that of the `/proc` mounted here down to
 * its own (one pid: its namespace is `/proc`'s); `undefined` when it cannot be read (gone, no procfs, or a kernel before 4.1).
 */
const nsPids = (entry: string): ReadonlyArray<number> | undefined => {
  const line = readText(`/proc/${entry}/status`)?.split("\n").find((l) => l.startsWith("NSpid:"))
  return line?.slice("NSpid:".length).trim().split(/\s+/).map(Number)
}

/**
 * Whether the `/proc` mounted here is this process's pid namespace's, so that `/proc/<pid>` is its process of that pid.
 * Not when it is an ancestor namespace's: a process in a pid namespace of its own that did not mount `/proc` anew
 * (`unshare --pid --fork` without `--mount-proc`), where `process.pid` is 1 and `/proc/1` the machine's init;
 * `/proc/self` is then its own entry, under its pid in that namespace (`NSpid:` of two or more).
 */
const procIsOwn = (): boolean => {
  const pids = nsPids("self")
  if (pids !== undefined) return pids.length === 1 && pids[0] === process.pid
  try {
    return fs.readlinkSync("/proc/self") === String(process.pid)
  } catch {
    return false
  }
}

/**
 * The `/proc` entries here of the processes whose pid namespace is `pidns` (empty without procfs, and for a namespace
 * this `/proc` does not show: not its own nor below it; another user's processes, whose namespace is not readable, are
 * left out).
 */
const procsOf = (pidns: string): ReadonlyArray<string> => {
  let entries: ReadonlyArray<string>
  try {
    entries = fs.readdirSync("/proc")
  } catch {
    return []
  }
  return entries.filter((entry) => {
    if (!/^\d+$/.test(entry)) return false
    try {
      return fs.readlinkSync(`/proc/${entry}/ns/pid`) === pidns
    } catch {
      return false
    }
  })
}

/**
 * The `/proc` entry here of process `pid` of the pid namespace `pidns` (as a record names its holder): the one process
 * whose namespace is `pidns` and whose pid in it (the last of its `NSpid:`) is `pid`; `undefined` when none is, or more
 * than one, or it cannot be told (see {@link procsOf}). How `fuser` finds a process of a pid namespace below its own.
 */
const findProc = (pid: number, pidns: string): string | undefined => {
  const found = procsOf(pidns).filter((entry) => nsPids(entry)?.at(-1) === pid)
  return found.length === 1 ? found[0] : undefined
}

/**
 * The start time of process `pid` of this pid namespace, as `/proc` shows it here: `/proc/<pid>` when `/proc` is this
 * namespace's, else (an ancestor's, see {@link procIsOwn}) the entry of the process of this namespace of that pid;
 * `undefined` when gone, or when it cannot be told.
 */
const startHere = (pid: number): { readonly start: string; readonly zombie: boolean } | undefined => {
  if (procIsOwn()) return procStart(String(pid))
  const ns = pidNamespace()
  const entry = ns === undefined ? undefined : findProc(pid, ns)
  return entry === undefined ? undefined : procStart(entry)
}

/** A record's `key`, when a string. */
const text = (json: Record<string, unknown>, key: string): string | undefined => typeof json[key] === "string" ? json[key] : undefined

/** A record's text as the holder it names, or why it names none (what is wrong with it). */
const parseRecord = (raw: string): LockRecord | string => {
  if (raw.startsWith("{")) {
    let json: unknown
    try {
      json = JSON.parse(raw)
    } catch {
      return `not JSON: ${JSON.stringify(raw.slice(0, 80))}`
    }
    const o = (typeof json === "object" && json !== null ? json : {}) as Record<string, unknown>
    if (typeof o["pid"] !== "number" || !Number.isSafeInteger(o["pid"]) || o["pid"] <= 0) return `its pid is not a process id (${JSON.stringify(o["pid"] ?? null)})`
    const by = text(o, "by")
    const fields = {
      host: text(o, "host"),
      by: by === CONTROLLER || by === "" ? undefined : by,
      start: text(o, "start"),
      boot: text(o, "boot"),
      pidns: text(o, "pidns"),
      uts: text(o, "uts")
    }
    return { pid: o["pid"], ...Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) }
  }
  // an older version's: `<pid> <host>[ <by>]`, or the pid alone
  const old = /^(\d+)(?:\s+(\S+)(?:\s+(.+))?)?$/s.exec(raw)
  const pid = old === null ? Number.NaN : Number(old[1])
  if (old === null || !Number.isSafeInteger(pid) || pid <= 0) return raw === "" ? "it is empty" : `not a lock record: ${JSON.stringify(raw.slice(0, 80))}`
  return { pid, ...(old[2] !== undefined ? { host: old[2] } : {}), ...(old[3] !== undefined ? { by: old[3].replace(/\s+/g, " ") } : {}) }
}

/** The record in the lock's pid file as written (`undefined`: no file), or what is wrong with it. */
const recordOf = (lockFile: string): LockRecord | string | undefined => {
  const raw = readText(`${lockFile}.pid`)
  return raw === undefined ? undefined : parseRecord(raw)
}

/**
 * Where the holder a record names runs: on `"this"` machine, in this boot, where its pid may be looked up (its boot id
 * this one's, and its host name this one's or a container's: a container with a host name of its own shares its
 * machine's kernel and boot id, and the writer's or this reader's UTS namespace is then not the machine's; two clones of
 * one virtual machine's snapshot share its boot id too, each in the machine's UTS namespace: their host names tell them
 * apart; without a boot id on either side, as older versions wrote, its host this one's or none); on a machine of this
 * name and `"another boot"` (another machine of this name sharing this file system: a lock does not outlive its
 * machine's boot); or on `"another"` machine.
 */
const machineOf = (record: LockRecord): "this" | "another boot" | "another" => {
  const boot = bootId()
  const named = record.host === undefined || record.host === os.hostname()
  if (record.boot !== undefined && boot !== undefined) {
    if (record.boot !== boot) return named ? "another boot" : "another"
    const uts = namespace("uts")
    const container = (record.uts !== undefined && record.uts !== MACHINE_UTS) || (uts !== undefined && uts !== MACHINE_UTS)
    return named || container ? "this" : "another"
  }
  return named ? "this" : "another"
}

/** Whether a record's host name is not this machine's (on this machine, a container's with a name of its own: see {@link machineOf}). */
const otherName = (record: LockRecord): boolean => record.host !== undefined && record.host !== os.hostname()

/**
 * The process a record of this machine names, looked up by its pid in this pid namespace: `"exited"` (none of that
 * pid, a zombie, or one of another start time: a pid given to a later process is not the holder), `"alive"` (its start
 * time the record's; a record without one, of this host name, an older version's: a living process of that pid, not 1; without
 * procfs, not Linux: the pid alone), or `"unverifiable"`: a process of that pid exists, but whether it is the holder
 * cannot be told, so it is never named for signalling: its start time cannot be read here (procfs here, but not
 * showing it: a `/proc` not this process's pid namespace's), or the record has none and another host name (a
 * container's holder is named only when its start time is matched).
 */
const lookUp = (record: LockRecord): "exited" | "alive" | "unverifiable" => {
  try {
    process.kill(record.pid, 0)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ESRCH") return "exited"
  }
  const now = startHere(record.pid)
  if (now === undefined) return bootId() === undefined ? "alive" : "unverifiable"
  if (now.zombie) return "exited"
  // (a record without a start time naming process 1: an older version's holder that was pid 1 of a container sharing
  // this host name, never this namespace's init, which no controller is)
  if (record.start === undefined) return otherName(record) || record.pid === 1 ? "unverifiable" : "alive"
  return sameStart(record.start, now.start) ? "alive" : "exited"
}

/**
 * The process a record of this machine names in the pid namespace `pidns`, not this process's, looked up as `fuser`
 * finds it (see {@link findProc}: only from a namespace above it): `"alive"` (its start time the record's: named by
 * `entry`, its pid here), `"exited"` (none found, a zombie, or another start time; or it cannot be looked up from here),
 * or `"unverifiable"` (found, but the record has no start time to match).
 */
const lookUpIn = (record: LockRecord, pidns: string): { readonly state: "alive" | "exited" | "unverifiable"; readonly entry?: string } => {
  const entry = procIsOwn() ? findProc(record.pid, pidns) : undefined
  const now = entry === undefined ? undefined : procStart(entry)
  if (now === undefined || now.zombie) return { state: "exited" }
  if (record.start === undefined) return { state: "unverifiable" }
  return sameStart(record.start, now.start) ? { state: "alive", entry: entry! } : { state: "exited" }
}

/** A record's `pidns` when its writer could not tell its own (see {@link writeRecord}). */
const UNKNOWN_PIDNS = "unknown"

/** The pid namespace of the machine itself, outside containers (the kernel's initial one: its inode is fixed, `PROC_PID_INIT_INO`). */
const MACHINE_PIDNS = "pid:[4026531836]"

/**
 * How to find and stop a lock's holder that this process cannot name: `fuser` on the lock file, run as root `here` (it
 * sees every process of this pid namespace and those within it) or on the `machine`, outside containers (every process).
 */
export const fuserHint = (lockFile: string, where: "here" | "machine"): string =>
  `find the holder with \`fuser ${lockFile}\` (run as root${
    where === "machine" ? " on the machine, outside containers, it sees every process" : ", it sees every process of this pid namespace and those within it"
  }) and stop it with \`kill -TERM <pid>\``

/**
 * Why a holder of this machine in the pid namespace `pidns`, process `pid` there, is not named from this process's
 * namespace `ns`, and what the user can do. A process is seen, and signalled, only from its own pid namespace and those
 * above it (the machine's is above all): a holder of the machine's namespace, read from a container; of another
 * container, read from a container (the two side by side); and, read from the machine (or from a namespace above the
 * holder's), one that no process this one can read is (the lock's new holder not yet recorded, or one of another user,
 * whose namespace only root may read).
 */
const unseen = (pid: number, pidns: string, ns: string, lockFile: string): { readonly why: string; readonly find: string; readonly seen?: Seen } =>
  // (below this one: the machine's namespace is above all; one any of whose processes is seen here)
  ns === MACHINE_PIDNS || (procIsOwn() && procsOf(pidns).length > 0)
    ? {
      why: `a container's, where no process this one can read is process ${pid} with the recorded start time (a holder that has just ` +
        `taken the lock and not yet written its record, or another user's: run the command as root); ${fuserHint(lockFile, "here")}`,
      find: fuserHint(lockFile, "here")
    }
    : pidns === MACHINE_PIDNS
    ? {
      why: `the machine's own (outside containers), which this process, in a container, cannot see or signal, nor can \`fuser\` here: ` +
        `not this namespace's process ${pid}; ${whereSeen("the command", "machine")}`,
      find: fuserHint(lockFile, "machine"),
      seen: "machine"
    }
    : {
      why: `another container's on this machine, which this process's container cannot see or signal, nor can \`fuser\` here: ` +
        `not this namespace's process ${pid}; ${whereSeen("the command", "namespace")}`,
      find: fuserHint(lockFile, "machine"),
      seen: "namespace"
    }

/**
 * The holder of a held lock, as its record names it; when the record names none (gone, unreadable, or
 * left by a holder that has exited: a killed one's, read in the instant before the lock's new holder
 * writes its own), `unknown` says why, and no process is named.
 */
const holderOf = (lockFile: string): LockHolder => {
  const record = recordOf(lockFile)
  const file = `${lockFile}.pid`
  // (a holder not named of this machine: fuser here sees it, unless said otherwise)
  const here = fuserHint(lockFile, "here")
  const machineWide = fuserHint(lockFile, "machine")
  if (record === undefined) return { unknown: `its record ${file} is gone`, find: here }
  if (typeof record === "string") return { unknown: `its record ${file} cannot be read (${record})`, find: here }
  const machine = machineOf(record)
  const holder: LockHolder = {
    pid: record.pid,
    ...(record.host !== undefined ? { host: record.host } : {}),
    ...(record.by !== undefined ? { by: record.by } : {}),
    ...(machine === "this" && record.host !== undefined && record.host !== os.hostname() ? { thisMachine: true } : {})
  }
  // this host's name, another boot's id: a machine of the same name that shares this file system (a lock does not
  // outlive its machine's boot), whose pid means nothing here (`trex stop` would signal a process of this one)
  if (machine === "another boot") {
    return { elsewhere: "another boot", unknown: `its record ${file} names ${ownerOf(holder)} of another boot (boot id ${record.boot}, this machine's ${bootId()}): another machine of this host name, sharing this file system, holds it` }
  }
  // this machine and boot, another pid namespace (another container on it, or the machine itself seen from one): its pid
  // is that namespace's, and names another process here, or none (`trex stop` would signal the wrong one). From an
  // ancestor namespace (the machine, for a container's holder) the holder is found by its namespace and its pid there,
  // when exactly one process is that, with the recorded start time; it is named by its pid here.
  // (another machine's: not looked up, its host name says where it runs)
  if (machine === "another") return holder
  const ns = pidNamespace()
  // procfs here, but not showing this process (a `/proc` of another pid namespace: `nsenter --mount` into a container,
  // without its pid namespace): no pid looked up here can be told to be the holder, whose start time and namespace cannot be read
  if (ns === undefined && bootId() !== undefined) {
    return {
      elsewhere: "unverifiable",
      unknown: `its record ${file} names ${ownerOf(holder)}, which this process cannot verify: the /proc mounted here is of another ` +
        `pid namespace than this process's (it does not show this process), so it cannot tell that pid's start time or namespace`,
      find: machineWide,
      seen: "container"
    }
  }
  if (record.pidns === UNKNOWN_PIDNS && ns !== undefined) {
    return {
      elsewhere: "another pid namespace",
      unknown: `its record ${file} names ${ownerOf(holder)}, which could not tell its pid namespace (its /proc, of another pid namespace, ` +
        `did not show it), so that pid may be another process's here; ${machineWide}`,
      find: machineWide,
      seen: "container"
    }
  }
  if (record.pidns !== undefined && ns !== undefined && record.pidns !== ns) {
    // (its start time matched: a record without one names no process of another namespace)
    const found = lookUpIn(record, record.pidns)
    if (found.state === "alive") return { ...holder, pid: Number(found.entry) }
    const { why, find, seen } = unseen(record.pid, record.pidns, ns, lockFile)
    return {
      elsewhere: "another pid namespace",
      unknown: `its record ${file} names ${ownerOf(holder)} of another pid namespace (${record.pidns}, this process's ${ns}), ${why}`,
      find,
      ...(seen !== undefined ? { seen } : {})
    }
  }
  // another host name, no pid namespace recorded (an older trex's, in a container with a host name of its own): its pid
  // is its container's, which may be another process here
  // (not "exited", which a look again would say forever: where to stop it is said)
  if (holder.thisMachine === true && record.pidns === undefined) {
    return {
      elsewhere: "another pid namespace",
      unknown: `its record ${file} names ${ownerOf(holder)}, written by an older trex that did not record its pid namespace: that pid ` +
        `is likely its container's, and another process's here; run the command (\`trex stop\`) in that container, or ${machineWide}`,
      find: machineWide,
      seen: "container"
    }
  }
  const now = lookUp(record)
  if (now === "exited") {
    return { unknown: `its record ${file} names ${ownerOf(holder)}, which has exited: its holder took the lock since, and has not yet written its own record`, find: here }
  }
  if (now === "unverifiable") {
    return {
      elsewhere: "unverifiable",
      unknown: `its record ${file} names ${ownerOf(holder)}, which this process cannot verify: ` +
        (record.start === undefined ? "the record has no start time to compare with that pid's here" : "that pid's start time cannot be read here"),
      // (a record of no pid namespace may be another container's: fuser on the machine sees every process)
      find: machineWide,
      seen: "container"
    }
  }
  return holder
}
const pidOf = (lockFile: string): number | undefined => {
  const record = recordOf(lockFile)
  return typeof record === "object" ? record.pid : undefined
}

/** The longest host name a message shows whole (a machine names itself with up to 64 bytes on Linux, 255 elsewhere; a record may say anything). */
const HOST_SHOWN = 80
// what JSON.stringify leaves as it is and a terminal acts on: C1 controls, bidirectional overrides and isolates, line separators
const UNSAFE = /[\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g

// what a quoted name is cut between: an escape (`\u001b`, `\n`), a surrogate pair (one character), or a single UTF-16 unit
const QUOTED_PIECE = /\\u[0-9a-fA-F]{4}|\\[\s\S]|[\ud800-\udbff][\udc00-\udfff]|[\s\S]/g

/**
 * A host name as a message shows it: as it is when one plain word of up to 80 characters, else quoted as JSON
 * (`""`, `"gpu node 2"`, `"gpu1\u001b[8m"`: every control escaped, so it cannot act on a terminal) and, when longer
 * than 80, cut to at most 79 before the escape or character that would pass them (never within one: no `\u00` is
 * left, nor half of a surrogate pair), the cut marked with `…`.
 */
export const hostName = (host: string): string => {
  if (/^[\x21-\x7e]+$/.test(host) && host.length <= HOST_SHOWN) return host
  const quoted = JSON.stringify(host).replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)
  if (quoted.length <= HOST_SHOWN) return quoted
  let cut = 0
  for (const [piece] of quoted.matchAll(QUOTED_PIECE)) {
    if (cut + piece.length > HOST_SHOWN - 1) break
    cut += piece.length
  }
  return `${quoted.slice(0, cut)}…`
}

/** `process 12 on host h`, `trex notify (process 12)`: the holder as a refusal names it. */
const ownerOf = (holder: LockHolder): string => {
  if (holder.pid === undefined) return `${holder.by ?? "another process"}${holder.unknown !== undefined ? ` (${holder.unknown})` : ""}`
  const host = holder.host === undefined || holder.host === os.hostname() ? ""
    : holder.thisMachine === true ? ` on this machine (its host name ${hostName(holder.host)})`
    : ` on host ${hostName(holder.host)}`
  const proc = `process ${holder.pid}${host}`
  return holder.by === undefined ? proc : `${holder.by} (${proc})`
}

/** The temporary file a holder writes its record to before renaming it into place: `<lockFile>.pid.<pid>.tmp`. */
const TEMP_RECORD = /^(\d+)\.tmp$/

/**
 * Write this process's record of the lock at `lockFile` (see {@link LockRecord}): whole, renamed into place. For tests,
 * `pause.created` is called with the temporary file created and still empty, `pause.written` with it written, before
 * it is renamed.
 */
export const writeRecord = (
  lockFile: string,
  by: string | undefined,
  pause: { readonly created?: () => void; readonly written?: () => void } = {}
): void => {
  // (`/proc/self`, not `/proc/<pid>`: in a pid namespace of its own that sees its parent's `/proc`, that is another process)
  const start = procStart("self")?.start
  const boot = bootId()
  // (procfs here, its own entry not: a `/proc` of a pid namespace that is neither this process's nor above it, which
  // does not show it; its pid namespace is then recorded as not known, so that no reader takes its pid for its own's)
  const pidns = pidNamespace() ?? (boot !== undefined ? UNKNOWN_PIDNS : undefined)
  const uts = namespace("uts")
  const record = {
    pid: process.pid,
    host: os.hostname(),
    by: by ?? CONTROLLER,
    since: new Date().toISOString(),
    ...(start !== undefined ? { start } : {}),
    ...(boot !== undefined ? { boot } : {}),
    ...(pidns !== undefined ? { pidns } : {}),
    ...(uts !== undefined ? { uts } : {})
  }
  const tmp = `${lockFile}.pid.${process.pid}.tmp`
  try {
    const fd = fs.openSync(tmp, "w")
    try {
      pause.created?.()
      fs.writeFileSync(fd, `${JSON.stringify(record)}\n`)
    } finally {
      fs.closeSync(fd)
    }
    pause.written?.()
    fs.renameSync(tmp, `${lockFile}.pid`)
  } finally {
    fs.rmSync(tmp, { force: true })
  }
}

/** Whether no process of this pid namespace has the pid `pid` (a zombie has exited). */
const noProcess = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ESRCH"
  }
  return startHere(pid)?.zombie === true
}

/**
 * Whether the writer of a temporary record (`record`, named for its pid) is gone, for the lock's holder that finds it
 * (see {@link removeLeftRecords}): one of this machine whose process this one can look up (its pid namespace this one's,
 * or one below it, as {@link holderOf} finds a container's holder) when that process has exited, is a zombie, or is
 * another process since (another start time); any other (another machine's or boot's, or of a pid namespace this one
 * cannot see) always: its pid cannot be looked up here, but the lock says it lost the lock unfinished.
 */
const writerGone = (record: LockRecord): boolean => {
  if (machineOf(record) !== "this") return true
  const ns = pidNamespace()
  return (record.pidns === undefined || ns === undefined || record.pidns === ns ? lookUp(record) : lookUpIn(record, record.pidns).state) === "exited"
}

/**
 * Remove the temporary records (`<lockFile>.pid.<pid>.tmp`) that holders killed while writing them left, by the
 * lock's new holder (after writing its own). A holder creates its temporary record only while it holds the lock, and
 * renames or removes it before it lets go, so such a file seen by the lock's holder was left by one that lost the lock
 * without finishing: killed, wherever it ran. A record is removed when its writer is gone as far as this process can
 * tell ({@link writerGone}): looked up when it can be (a living writer's is kept), else on the lock's word (another
 * machine's, boot's, or pid namespace's this one cannot see). One that names nobody (empty: its writer was killed
 * between creating the file and writing it; or cut short) does not say where its writer ran: it is removed too, unless
 * a process of this pid namespace has the pid of its name (its writer, if it ran here, and it could be: a file kept is
 * untidy, never wrong). A record named for another pid than its own, or a file that cannot be read, is kept.
 */
const removeLeftRecords = (lockFile: string): void => {
  const dir = path.dirname(lockFile)
  const prefix = `${path.basename(lockFile)}.pid.`
  for (const name of fs.readdirSync(dir)) {
    const pid = name.startsWith(prefix) ? TEMP_RECORD.exec(name.slice(prefix.length))?.[1] : undefined
    if (pid === undefined || Number(pid) === process.pid) continue
    const tmp = path.join(dir, name)
    const raw = readText(tmp)
    const record = raw === undefined ? undefined : parseRecord(raw)
    if (typeof record === "string") {
      if (noProcess(Number(pid))) fs.rmSync(tmp, { force: true })
      continue
    }
    if (record !== undefined && record.pid === Number(pid) && writerGone(record)) fs.rmSync(tmp, { force: true })
  }
}

/** Take the lock itself (its record is written after, see {@link writeRecord}): throws when another connection holds it. */
export const tryLock = (lockFile: string): DatabaseSync => {
  const db = new DatabaseSync(lockFile)
  try {
    // a moment's wait: a reader asking who holds the lock ({@link lockHolder}) holds it that long
    db.exec("PRAGMA busy_timeout = 250")
    db.exec("BEGIN EXCLUSIVE")
    return db
  } catch (e) {
    db.close()
    throw e
  }
}

/**
 * Whether a controller is writing the journal at `file` now, and which process (as its record says, see
 * {@link LockHolder}): asks the operating system whether the writer lock is held, by reading the lock file
 * under a shared lock for an instant. `undefined` when nobody holds it (a stopped or killed run).
 */
export const lockHolder = (file: string): LockHolder | undefined => {
  const lockFile = `${file}.lock`
  const mine = held.get(path.resolve(lockFile))
  if (mine !== undefined) return { pid: process.pid, host: os.hostname(), ...(mine.by !== undefined ? { by: mine.by } : {}) }
  if (!fs.existsSync(lockFile)) return undefined
  let db: DatabaseSync
  try {
    db = new DatabaseSync(lockFile, { readOnly: true })
  } catch {
    return undefined
  }
  try {
    db.exec("PRAGMA busy_timeout = 0")
    db.exec("BEGIN")
    db.prepare("SELECT count(*) FROM sqlite_master").get()
    db.exec("COMMIT")
    return undefined
  } catch (e) {
    if (!/locked|busy/i.test(String((e as Error).message))) return undefined
    return holderOf(lockFile)
  } finally {
    db.close()
  }
}

/**
 * Take the writer lock of a journal for this process (`journal`: for the journal itself, which may use one {@link holdLock} took;
 * `by`: what holds it, when not a controller, recorded in its pid file).
 */
const acquireLock = (lockFile: string, journal: boolean, by?: string): Effect.Effect<void, JournalError> =>
  Effect.try({
    try: () => {
      const key = path.resolve(lockFile)
      const mine = held.get(key)
      if (mine !== undefined && journal && !mine.journal) {
        mine.holds += 1
        mine.journal = true
        return
      }
      if (mine !== undefined) throw io(`run is already open for writing in this process (lock ${lockFile})`, "Locked")
      let db: DatabaseSync
      try {
        db = tryLock(lockFile)
      } catch (e) {
        const message = String((e as Error).message)
        if (/locked|busy/i.test(message)) {
          const holder = holderOf(lockFile)
          throw io(
            holder.by === undefined
              ? `run is in use by ${ownerOf(holder)} (lock ${lockFile}); stop that controller first`
              : `run is held by ${ownerOf(holder)} (lock ${lockFile}), which lets go of it once done: wait for it to end, then try again`,
            "Locked"
          )
        }
        // not a database (a lock file of an older trex, or garbage): nobody can hold it; replace it
        fs.rmSync(lockFile, { force: true })
        db = tryLock(lockFile)
      }
      try {
        writeRecord(lockFile, by)
      } catch (e) {
        // not held without its record (a full disk): let go of the lock, as if never taken
        db.exec("ROLLBACK")
        db.close()
        throw e
      }
      try {
        removeLeftRecords(lockFile)
      } catch {
        // (a left file is untidy, not wrong: it names no holder)
      }
      held.set(key, { db, holds: 1, journal, by })
    },
    catch: (e) => (e instanceof JournalError ? e : noSpaceError(lockFile.replace(/\.lock$/, ""), e) ?? io(`lock ${lockFile}: ${String(e)}`))
  })

const releaseLock = (lockFile: string, journal: boolean) =>
  Effect.sync(() => {
    const key = path.resolve(lockFile)
    const mine = held.get(key)
    if (mine === undefined) return
    if (journal) mine.journal = false
    mine.holds -= 1
    if (mine.holds > 0) return
    held.delete(key)
    if (pidOf(lockFile) === process.pid) fs.rmSync(`${lockFile}.pid`, { force: true })
    const db = mine.db
    if (db.isOpen) {
      db.exec("ROLLBACK")
      db.close()
    }
  })

/**
 * Hold the writer lock of the journal at `file` for the scope's lifetime, without opening the journal itself;
 * the journal opened for writing in this process meanwhile uses it.
 */
export const holdLock = (file: string, by?: string): Effect.Effect<void, JournalError, Scope.Scope> =>
  Effect.acquireRelease(acquireLock(`${file}.lock`, false, by), () => releaseLock(`${file}.lock`, false))

const writable = (dir: string) => {
  try {
    fs.accessSync(dir, fs.constants.W_OK)
    return true
  } catch {
    return false
  }
}

/**
 * A reader's connection. SQLite reads a WAL journal through a `-shm` file it creates beside it, so in
 * a directory this process cannot write (an archived run, another user's, a read-only mount) the
 * journal is opened immutable instead: exact when no events are left in its `-wal` file (a writer that
 * closed folds them into the journal), and refused, with what to do, when some are.
 */
const userVersion = (db: DatabaseSync): number => (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version

const openReadonly = (file: string): { readonly db: DatabaseSync; readonly version: number } => {
  const db = new DatabaseSync(file, { readOnly: true })
  try {
    db.exec("PRAGMA busy_timeout = 5000")
    // the first read needs the -shm file, so it fails here in a directory this process cannot write
    return { db, version: userVersion(db) }
  } catch (e) {
    db.close()
    if (writable(path.dirname(file))) throw e
    const wal = `${file}-wal`
    if (fs.existsSync(wal) && fs.statSync(wal).size > 0) {
      throw io(
        `cannot read journal ${file}: its directory is not writable, and its latest events are still in ${path.basename(wal)}, ` +
          `which SQLite reads only with write access beside it: copy the run directory somewhere writable and read the copy`
      )
    }
    const immutable = new DatabaseSync(new URL(`${url.pathToFileURL(file).href}?immutable=1`), { readOnly: true })
    return { db: immutable, version: userVersion(immutable) }
  }
}

/** The open database and its format version (0: a file whose first migration never committed). */
const openDb = (file: string, options: SqliteOptions): { readonly db: DatabaseSync; readonly version: number } => {
  if (!options.readonly) fs.mkdirSync(path.dirname(file), { recursive: true })
  else if (!fs.existsSync(file)) throw io(`no journal at ${file}`)
  let db: DatabaseSync
  let version: number
  if (options.readonly) {
    ;({ db, version } = openReadonly(file))
  } else {
    db = new DatabaseSync(file)
    db.exec("PRAGMA busy_timeout = 5000")
    db.exec("PRAGMA journal_mode = WAL")
    db.exec(`PRAGMA synchronous = ${options.durability === "process" ? "NORMAL" : "FULL"}`)
    version = userVersion(db)
  }
  if (version > JournalEvent.FORMAT_VERSION) {
    db.close()
    throw io(`journal ${file} has format ${version}, newer than this trex (${JournalEvent.FORMAT_VERSION}): upgrade trex`, "Version")
  }
  if (options.readonly) return { db, version }
  for (let v = version; v < JournalEvent.FORMAT_VERSION; v++) {
    db.exec("BEGIN IMMEDIATE")
    try {
      migrations[v]!(db)
      db.exec(`PRAGMA user_version = ${v + 1}`)
      db.exec("COMMIT")
    } catch (e) {
      db.exec("ROLLBACK")
      throw e
    }
  }
  return { db, version: JournalEvent.FORMAT_VERSION }
}

/** A journal's entries up to the first bad one, and that one's error. */
export interface Intact {
  readonly entries: ReadonlyArray<JournalEvent.Entry>
  readonly damage?: JournalError
  /** The sequence number of the last entry checked (with `tags`, it may be of an event not returned); 0 when none was. */
  readonly checked?: number
}

export const makeSqliteJournal = (file: string, options: SqliteOptions) =>
  Effect.gen(function*() {
    const lockFile = `${file}.lock`
    if (!options.readonly) {
      yield* Effect.try({
        try: () => fs.mkdirSync(path.dirname(file), { recursive: true }),
        catch: (e) => noSpaceError(file, e) ?? io(`cannot create the directory of ${file}: ${String(e)}`)
      })
      yield* Effect.acquireRelease(acquireLock(lockFile, true), () => releaseLock(lockFile, true))
    }
    const { db, version } = yield* Effect.acquireRelease(
      Effect.try({
        try: () => openDb(file, options),
        catch: (e) =>
          e instanceof JournalError ? e
          : noSpaceError(file, e) ?? io(`cannot open journal ${file}: ${e instanceof Error ? e.message : String(e)}`, "Corrupt")
      }),
      ({ db }) => Effect.sync(() => db.isOpen && db.close())
    )
    // A file its writer was killed in before the first migration committed has no table yet: for a
    // reader, a journal with no events (a writer migrates it when it opens it).
    if (version === 0) {
      return {
        append: () => Effect.fail(io(`journal ${file} is open read-only`)),
        read: () => Effect.succeed([]),
        intact: (_limit?: number, _tags?: ReadonlyArray<string>, _from?: number) => Effect.succeed<Intact>({ entries: [], checked: 0 })
      }
    }
    // A file that says it is a journal but lacks its table (made by hand or by another program)
    // fails here, as a damaged journal, not as a crash.
    const { insert, begin, commit, selectFrom, selectTaggedFrom, tagOf, maxSeq } = yield* Effect.try({
      try: () => {
        const readOnly = options.readonly
        const statements = {
          insert: readOnly ? undefined : db.prepare("INSERT INTO events (seq, tag, payload, crc) VALUES (?, ?, ?, ?)"),
          begin: readOnly ? undefined : db.prepare("BEGIN IMMEDIATE"),
          commit: readOnly ? undefined : db.prepare("COMMIT"),
          // rows as arrays (no object per row); the tag is read only to name a row that does not decode
          selectFrom: db.prepare("SELECT seq, payload, crc FROM events WHERE seq >= ? ORDER BY seq"),
          // the same with each row's tag, to decode only the events of some tags
          selectTaggedFrom: db.prepare("SELECT seq, payload, crc, tag FROM events WHERE seq >= ? ORDER BY seq"),
          tagOf: db.prepare("SELECT tag FROM events WHERE seq = ?"),
          maxSeq: db.prepare("SELECT COALESCE(MAX(seq), 0) AS n FROM events")
        }
        statements.selectFrom.setReturnArrays(true)
        statements.selectTaggedFrom.setReturnArrays(true)
        return statements
      },
      catch: (e) => io(`journal ${file} is not a readable trex journal (${e instanceof Error ? e.message : String(e)}): it is damaged or was not written by trex`, "Corrupt")
    })
    let next = options.readonly ? 0 : Number((maxSeq.get() as { n: number | bigint }).n) + 1

    const append = (events: ReadonlyArray<JournalEvent.JournalEvent>) =>
      Effect.try({
        try: () => {
          if (insert === undefined) throw io(`journal ${file} is open read-only`)
          const rows = events.map((e) => {
            const payload = JSON.stringify(JournalEvent.encode(e))
            return [e._tag, payload, crc32(payload)] as const
          })
          begin!.run()
          try {
            let seq = next
            for (const [tag, payload, crc] of rows) insert.run(seq++, tag, payload, crc)
            commit!.run()
            next = seq
            return seq - 1
          } catch (e) {
            if (db.isTransaction) db.exec("ROLLBACK")
            throw e
          }
        },
        catch: (e) => (e instanceof JournalError ? e : noSpaceError(file, e) ?? io(`append to ${file} failed: ${String(e)}`))
      })

    /** Entries from `from` on; at the first bad one, throws its error, or (`intact`) stops and returns it with those before. */
    const scan = (from: number, intact: boolean, limit = Number.POSITIVE_INFINITY, tags?: ReadonlySet<string>): Intact => {
      const out: Array<JournalEvent.Entry> = []
      const at = { checked: Math.max(1, from) - 1 }
      try {
        scanInto(out, from, limit, tags, at)
        return { entries: out, checked: at.checked }
      } catch (e) {
        const error = e instanceof JournalError ? e : io(`cannot read journal ${file}: ${String(e)}`, "Corrupt")
        if (!intact) throw error
        return { entries: out, damage: error, checked: at.checked }
      }
    }
    /** With `tags`, every entry is checked (its place, its checksum) but only those of the tags are decoded and kept. */
    const scanInto = (out: Array<JournalEvent.Entry>, from: number, limit: number, tags: ReadonlySet<string> | undefined, at: { checked: number }) => {
      let expected = Math.max(1, from)
      const rows = tags === undefined ? selectFrom.iterate(expected) : selectTaggedFrom.iterate(expected)
      for (const row of rows as Iterable<[number, string, number, string?]>) {
        if (out.length >= limit) break
        const seq = Number(row[0])
        const payload = row[1]
        if (seq !== expected) {
          throw io(`journal ${file}: entry ${expected} is missing (next is ${seq})`, "Corrupt", expected)
        }
        if (crc32(payload) !== Number(row[2])) {
          throw io(`journal ${file}: entry ${seq} fails its checksum (torn or corrupt write)`, "Corrupt", seq)
        }
        if (tags !== undefined && !tags.has(row[3]!)) {
          at.checked = expected++
          continue
        }
        let event: JournalEvent.JournalEvent
        try {
          event = JournalEvent.decodeSync(JSON.parse(payload))
        } catch (e) {
          const tag = (tagOf.get(seq) as { tag: string } | undefined)?.tag
          if (tag !== undefined && !Object.hasOwn(JournalEvent.JournalEvent.cases, tag)) {
            throw io(`journal ${file}: entry ${seq} is a ${tag} event, which this trex does not know: the run was written by a newer trex (upgrade trex to read it)`, "Version", seq)
          }
          throw io(`journal ${file}: entry ${seq} (${tag}) does not decode: ${String(e)}`, "Corrupt", seq)
        }
        out.push({ seq, event })
        at.checked = expected++
      }
    }
    // (scan throws only JournalErrors)
    const read = (from = 1) => Effect.try({ try: () => scan(from, false).entries, catch: (e) => e as JournalError })
    /** Every entry up to the first bad one (or the first `limit`), and that one's error: what a damaged journal still holds. */
    const intact = (limit?: number, tags?: ReadonlyArray<string>, from = 1) => Effect.sync(() => scan(from, true, limit, tags === undefined ? undefined : new Set(tags)))

    return { append, read, intact }
  })
