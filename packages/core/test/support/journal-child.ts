/**
 * A separate process for the journal tests. Run with `node --conditions=@trex/source`.
 *
 *   append <file> <count> <maxBatch> <durability> [pauseMs] [hold]
 *                                                  append events 1..count in batches, print each last seq;
 *                                                  with `hold`, then wait until killed (a kill never finds it exited)
 *   hold <file>                                    open as the writer, print "ready", wait until killed
 *   read <file>                                    open read-only, print {"seqs":[...],"ok":bool} as JSON
 *   open <file>                                    open as the writer, print "ok" or the error's reason
 *   lock <file> [by]                               take the writer lock as `lockWriter` does (`by`: what holds it,
 *                                                  e.g. "trex notify"), print "ready", wait until killed
 *   take <file> <go>                               take the writer lock itself, print "locked", and write its record
 *                                                  only once the file <go> exists (a controller held between the
 *                                                  two steps), then print "recorded" and wait until killed
 *   writer <file>...                               print the holder of each journal's lock, as `Journal.writer` reads
 *                                                  it, one line of JSON each (`null`: none)
 *   write-record <file> [lock] [created]           write the lock's record to its temporary file (with `lock`, having
 *                                                  taken the lock itself first), print "written" and wait there, before
 *                                                  renaming it, until killed (blocked: no timer, no event loop); with
 *                                                  `created`, print "created" and wait with the file created, empty
 */
import * as fs from "node:fs"
import { Effect } from "effect"
import type { JournalError } from "../../src/Errors.ts"
import { canonicalJson } from "../../src/Fingerprint.ts"
import { Journal, lockWriter, writer } from "../../src/Journal.ts"
import { tryLock, writeRecord } from "../../src/internal/sqliteJournal.ts"
import { eventAt } from "./journal.ts"

const [mode, file, ...rest] = process.argv.slice(2)
if (file === undefined) throw new Error("usage: journal-child.ts <mode> <file> ...")

const out = (line: string) => process.stdout.write(`${line}\n`)

const programs: Record<string, Effect.Effect<void, JournalError, Journal>> = {
  append: Effect.gen(function*() {
    const journal = yield* Journal
    const count = Number(rest[0])
    const maxBatch = Number(rest[1] ?? 1)
    const pause = Number(rest[3] ?? 0)
    let next = 1
    let lcg = 12345
    while (next <= count) {
      lcg = (lcg * 1103515245 + 12345) & 0x7fffffff
      const size = Math.min(count - next + 1, 1 + (lcg % maxBatch))
      const batch = Array.from({ length: size }, (_, i) => eventAt(next + i))
      const last = yield* journal.append(batch)
      next += size
      out(String(last))
      if (pause > 0) yield* Effect.sleep(pause)
    }
    if (rest[4] === "hold") {
      const keepAlive = setInterval(() => {}, 60_000)
      yield* Effect.never.pipe(Effect.ensuring(Effect.sync(() => clearInterval(keepAlive))))
    }
  }),
  hold: Effect.gen(function*() {
    yield* Journal
    out("ready")
    // Effect.never alone does not keep Node's event loop alive
    const keepAlive = setInterval(() => {}, 60_000)
    yield* Effect.never.pipe(Effect.ensuring(Effect.sync(() => clearInterval(keepAlive))))
  }),
  read: Effect.gen(function*() {
    const journal = yield* Journal
    const entries = yield* journal.read()
    const ok = entries.every((e, i) => e.seq === i + 1 && canonicalJson(e.event) === canonicalJson(eventAt(e.seq)))
    out(JSON.stringify({ seqs: entries.map((e) => e.seq), ok }))
  }),
  open: Effect.gen(function*() {
    yield* Journal
    out("ok")
  })
}

/** Until killed (Effect.never alone does not keep Node's event loop alive). */
const forever = Effect.suspend(() => {
  const keepAlive = setInterval(() => {}, 60_000)
  return Effect.never.pipe(Effect.ensuring(Effect.sync(() => clearInterval(keepAlive))))
})

const taken: Array<unknown> = []
const lockOnly: Record<string, Effect.Effect<void, JournalError>> = {
  lock: Effect.scoped(Effect.gen(function*() {
    yield* lockWriter(file, rest[0] !== undefined ? { by: rest[0] } : {})
    out("ready")
    yield* forever
  })),
  take: Effect.gen(function*() {
    const lockFile = `${file}.lock`
    // kept referenced until killed: a connection collected would let go of the lock
    taken.push(tryLock(lockFile))
    out("locked")
    while (!fs.existsSync(rest[0] ?? "")) yield* Effect.sleep("20 millis")
    writeRecord(lockFile, undefined)
    out("recorded")
    yield* forever
  }),
  writer: Effect.forEach([file, ...rest], (f) => Effect.map(writer(f), (holder) => out(JSON.stringify(holder ?? null))), { discard: true }),
  "write-record": Effect.sync(() => {
    const lockFile = `${file}.lock`
    if (rest.includes("lock")) taken.push(tryLock(lockFile))
    const block = (line: string) => () => {
      // (a pipe's write is synchronous on Linux: the line is out before this process blocks)
      fs.writeSync(1, `${line}\n`)
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)
    }
    writeRecord(lockFile, undefined, rest.includes("created") ? { created: block("created") } : { written: block("written") })
  })
}

const run = (): Effect.Effect<void> => {
  const onError = (effect: Effect.Effect<void, JournalError>) => effect.pipe(Effect.catchTag("JournalError", (e) => Effect.sync(() => out(`error ${e.reason}`))))
  const lockStep = lockOnly[mode ?? ""]
  if (lockStep !== undefined) return onError(lockStep)
  const program = programs[mode ?? ""]
  if (program === undefined) throw new Error(`unknown mode ${mode}`)
  const layer = Journal.layerSqlite(file, {
    readonly: mode === "read",
    durability: rest[2] === "fsync" ? "fsync" : "process"
  })
  return onError(program.pipe(Effect.provide(layer)))
}
Effect.runPromise(run())
