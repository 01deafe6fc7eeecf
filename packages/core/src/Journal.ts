/**
 * The append-only event log of a run. Two implementations: in memory (tests, benchmarks)
 * and a SQLite file through `node:sqlite` (the embedded default): WAL mode, one transaction
 * per `append`, a CRC per event so a corrupt tail is reported with its sequence number,
 * a format version with migrations, and a lock so that two controllers never write one run.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { JournalError } from "./Errors.ts"
import * as JournalEvent from "./JournalEvent.ts"
import {
  holdLock,
  hostName as quoteHost,
  type Intact,
  lockHolder,
  type LockHolder,
  makeSqliteJournal,
  type Seen,
  type SqliteOptions,
  whereSeen as whereSeenBy
} from "./internal/sqliteJournal.ts"

/** @since 0.1.0 @category models */
export type { Intact } from "./internal/sqliteJournal.ts"

/**
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Journal, JournalEvent } from "@trex/core"
 * const program = Effect.gen(function*() {
 *   const journal = yield* Journal.Journal
 *   yield* journal.append([JournalEvent.make("RunResumed", { at: 0 })])
 *   return yield* journal.read(1)
 * }).pipe(Effect.provide(Journal.Journal.layerMemory))
 * ```
 * @since 0.1.0 @category services
 */
export class Journal extends Context.Service<Journal, {
  /** Append events in one transaction; durable when the effect succeeds. Returns the last seq. */
  readonly append: (events: ReadonlyArray<JournalEvent.JournalEvent>) => Effect.Effect<number, JournalError>
  /** Every entry with `seq >= from` (default 1), in order. Fails with `Corrupt` at the first bad entry. */
  readonly read: (from?: number) => Effect.Effect<ReadonlyArray<JournalEvent.Entry>, JournalError>
}>()("@trex/core/Journal") {
  /** A fresh in-memory journal. */
  static readonly layerMemory: Layer.Layer<Journal> = Layer.sync(Journal, () => makeMemory())
  /**
   * A SQLite journal at `file` (created when missing). The writer holds an OS lock on `file + ".lock"` for
   * the layer's lifetime; pass `{ readonly: true }` to read a run another process writes.
   */
  static readonly layerSqlite = (file: string, options: SqliteOptions = {}): Layer.Layer<Journal, JournalError> =>
    Layer.effect(Journal, makeSqliteJournal(file, options))
}

/**
 * An in-memory journal (events are kept encoded, as on disk, so both behave alike).
 * @since 0.1.0 @category constructors
 */
export const makeMemory = (): Journal["Service"] => {
  const rows: Array<JournalEvent.JournalEventEncoded> = []
  return {
    append: (events) =>
      Effect.sync(() => {
        for (const e of events) rows.push(JournalEvent.encode(e))
        return rows.length
      }),
    read: (from = 1) =>
      Effect.try({
        try: () => {
          const out: Array<JournalEvent.Entry> = []
          for (let i = Math.max(0, from - 1); i < rows.length; i++) {
            out.push({ seq: i + 1, event: JournalEvent.decodeSync(rows[i]) })
          }
          return out
        },
        catch: (e) => new JournalError({ reason: "Corrupt", message: String(e) })
      })
  }
}

/**
 * The entries of the SQLite journal at `file` up to its first bad one (a checksum that fails, an
 * entry missing or not decodable), and that entry's error as `damage`; read-only, without the lock.
 * What a damaged run still holds: its results before the damage can be reused by a new run. With
 * `limit`, no more than its first `limit` entries are read (`limit: 1`: which run it is). With
 * `tags`, only the events of those tags are decoded and returned (every entry is still checked,
 * so the damage is found where it is): result reuse reads a run's proposals and results, not the
 * progress reports that are most of a big run's journal. With `from`, the entries from that
 * sequence number on (`checked` tells where a later read of a journal still being written goes on).
 * @since 0.1.0 @category constructors
 */
export const readIntact = (
  file: string,
  options: { readonly limit?: number; readonly tags?: ReadonlyArray<JournalEvent.Tag>; readonly from?: number } = {}
): Effect.Effect<Intact, JournalError> =>
  Effect.scoped(Effect.flatMap(makeSqliteJournal(file, { readonly: true }), (journal) => journal.intact(options.limit, options.tags, options.from)))

/**
 * The process that holds a journal's writer lock, as {@link writer} reads it from the lock's record: `pid`,
 * `host`, the machine it runs on (any string, as the machine names itself; absent for a controller of a
 * version that did not record it), and `by`, what holds it when that is not the run's controller: a command
 * that holds the run for a moment, as {@link lockWriter} was told (`"trex notify"`); absent for a controller.
 * When the record names no holder, `pid`, `host` and `by` are absent and `unknown` says why: the record is
 * gone, cannot be read, names a process that has exited (a killed holder's, read before the lock's new
 * holder had written its own), or one of this machine's that this process cannot look up: of another boot (another
 * machine of its name, on a shared file system) or of another pid namespace (another container), whose pid names
 * another process here; `elsewhere` then says which (`"another boot"`, `"another pid namespace"`), or `"unverifiable"`: a
 * process of its pid runs here but cannot be told to be the holder (its start time, or this process's pid namespace,
 * cannot be read here), so none is named for signalling. A holder in a pid
 * namespace below this process's (a container's, read from the machine) is found and named by its pid here: the one
 * process of the recorded namespace whose pid there is the recorded one, with the recorded start time. A holder whose
 * `host` is not this machine's name but whose boot id is this one's, the writer or this reader in a UTS namespace of
 * its own, runs on this machine (a container with a host name of its own, as Docker's): it is looked up here as any other
 * of this machine, named only with its start time matched, and `thisMachine` says so (its `pid`, when named, is this
 * process's namespace's, and may be signalled from here). `find`, for a holder not named that `fuser` can find (any but one of
 * another boot, another machine's): how, in a sentence, `find the holder with \`fuser <file>.lock\` (run as root, ...) and stop it with
 * \`kill -TERM <pid>\``, run here or, where this process cannot see the holder, on the machine, outside containers.
 * `seen`, for a holder of this machine that this process cannot see: where it is seen (`"machine"`: only on the machine,
 * outside containers; `"namespace"`: there, found by its recorded pid namespace, or in its own container; `"container"`:
 * there or in the holder's container), as {@link whereSeen} says it.
 * @since 0.1.0 @category models
 */
export type Holder = LockHolder

/**
 * A {@link Holder}'s `host` as a message shows it: as it is when one plain word of up to 80 characters, else quoted as
 * JSON and cut to 80 characters (a machine may name itself with any bytes, and a record may say anything), every
 * control escaped so that it cannot act on a terminal; the cut falls between two escapes or characters, never within
 * one, and is marked with `…`. The refusals of {@link lockWriter} show it so.
 * @example
 * ```ts
 * import { Journal } from "@trex/core"
 * Journal.hostName("gpu1") // gpu1
 * Journal.hostName("gpu node 2") // "gpu node 2" (quoted)
 * ```
 * @since 0.1.0 @category utilities
 */
export const hostName = (host: string): string => quoteHost(host)

/**
 * Where to run `command` (e.g. `` `trex stop <run-dir>` ``) on a lock's holder that this process cannot see, as its
 * {@link Holder}'s `seen` says: `run <command> on the machine, outside containers`, and, for a holder that may be a
 * container's, `or in the holder's container` (with `(it finds the holder by its namespace)` when its pid namespace is
 * recorded); `undefined` for a holder with no `seen` (one this process sees, or whose `find` says how to find it here).
 * @example
 * ```ts
 * import { Journal } from "@trex/core"
 * Journal.whereSeen("`trex stop runs/a`", { seen: "machine" }) // run `trex stop runs/a` on the machine, outside containers
 * ```
 * @since 0.1.0 @category utilities
 */
export const whereSeen = (command: string, holder: Pick<Holder, "seen">): string | undefined =>
  holder.seen === undefined ? undefined : whereSeenBy(command, holder.seen)

/** Where a lock's holder this process cannot see is seen: see {@link Holder}. @since 0.1.0 @category models */
export type { Seen }

/** How often, and how long between, {@link writer} looks again at a held lock whose record names no holder (its new holder writes it in an instant). */
const RECORD_LOOKS = 5
const RECORD_WAIT = "50 millis"

/**
 * Whether a controller (or a command holding the run, see {@link Holder}'s `by`) is writing the SQLite
 * journal at `file` now: the {@link Holder} of its writer lock, or `undefined` when none holds it (the
 * run finished, was stopped or was killed). Read-only; waits only when the lock is held and its record
 * names no holder (up to 0.2 s, for the holder that has just taken it to write its own; not when it names one
 * of another boot or pid namespace).
 * @since 0.1.0 @category utilities
 */
export const writer: (file: string) => Effect.Effect<Holder | undefined> = Effect.fn("Journal.writer")(function*(file: string) {
  let holder = lockHolder(file)
  // (one of another boot or pid namespace will not be named by looking again)
  for (let look = 1; look < RECORD_LOOKS && holder?.unknown !== undefined && holder.elsewhere === undefined; look++) {
    yield* Effect.sleep(RECORD_WAIT)
    holder = lockHolder(file)
  }
  return holder
})

/**
 * Take the writer lock of the SQLite journal at `file` for the scope's lifetime, as a controller does
 * when it opens the journal, without opening it: a command that changes a run's side files (`trex
 * notify`) holds it so that no controller runs the run meanwhile, and none starts. Fails with a
 * `JournalError` of reason `Locked`, naming the holder, when a controller (or another such command)
 * holds it. The journal at `file` this process opens for writing meanwhile uses the lock (a session takes it
 * before its notifier starts, so that no other controller can start beside it, and opens its journal later);
 * a second `lockWriter` of it in this process is refused. `options.by`: what holds it, when that is not a
 * controller (`"trex notify"`), recorded with its pid and host, so that {@link writer} and a refusal name it
 * (the record, `<file>.lock.pid`, is one line of JSON: `pid`, `host`, `by` (`"controller"` for a controller),
 * `since`, and the process's start time and boot id, which tell a killed holder's record from its successor's, and its
 * pid namespace: a holder in another one, as in another container on the machine, is named by its record, never as this
 * namespace's process of its pid).
 * @since 0.1.0 @category utilities
 */
export const lockWriter = (file: string, options: { readonly by?: string } = {}): Effect.Effect<void, JournalError, Scope.Scope> =>
  holdLock(file, options.by === undefined ? undefined : options.by.replace(/\s+/g, " ").trim() || undefined)
