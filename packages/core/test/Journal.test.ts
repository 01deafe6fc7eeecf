import { afterAll, assert, describe, it } from "@effect/vitest"
import { execFileSync, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { DatabaseSync } from "node:sqlite"
import { crc32 } from "node:zlib"
import { Effect, Exit } from "effect"
import fc from "fast-check"
import type { JournalError } from "../src/Errors.ts"
import { hostName, Journal, lockWriter, makeMemory, readIntact, whereSeen, writer } from "../src/Journal.ts"
import * as JournalEvent from "../src/JournalEvent.ts"
import { journal as randomJournal } from "./support/events.ts"
import { type Child, eventAt, innerPid, killAll, removeTempDirs, runChild, startChild, startOf, tempDir, unsharePid } from "./support/journal.ts"

type Service = Journal["Service"]

afterAll(removeTempDirs)

/** Run `f` with a SQLite journal open for the duration (the layer's scope closes it and releases the lock). */
const withSqlite = <A, E>(
  file: string,
  f: (journal: Service) => Effect.Effect<A, E>,
  options: { readonly readonly?: boolean; readonly durability?: "fsync" | "process" } = {}
): Promise<A> =>
  Effect.runPromise(
    Effect.gen(function*() {
      return yield* f(yield* Journal)
    }).pipe(Effect.provide(Journal.layerSqlite(file, options)))
  )

/** The error opening (or using) a journal fails with. */
const openError = (file: string, options: { readonly readonly?: boolean } = {}): Promise<JournalError> =>
  Effect.runPromise(
    Effect.flip(Effect.gen(function*() {
      const j = yield* Journal
      return yield* j.read()
    }).pipe(Effect.provide(Journal.layerSqlite(file, options))))
  )

/** A journal's rows as a gap-free prefix 1..n of `eventAt`; returns n. */
const assertPrefix = (entries: ReadonlyArray<JournalEvent.Entry>): number => {
  entries.forEach((e, i) => {
    assert.strictEqual(e.seq, i + 1, "gap-free sequence numbers")
    assert.deepStrictEqual(e.event, eventAt(e.seq), `entry ${e.seq} is the event appended as ${e.seq}`)
  })
  return entries.length
}

/** The writer lock's record of the journal at `file` (one line of JSON). */
const recordOf = (file: string): Record<string, unknown> => JSON.parse(fs.readFileSync(`${file}.lock.pid`, "utf8"))

/**
 * A holder of the lock of the journal at `file` killed while writing its temporary record, at `stage` (`written`, or
 * `created`: the file created, empty), and a living process (not holding the lock) held at the same stage: the killed
 * one's pid, the living one, and the paths of their temporary records.
 */
const leftRecords = async (file: string, stage: "written" | "created") => {
  const args = ["write-record", file, ...(stage === "created" ? ["created"] : [])]
  const killed = startChild([...args, "lock"])
  const live = startChild(args)
  try {
    await Promise.all([killed.waitFor((l) => l === stage), live.waitFor((l) => l === stage)])
    await killAll(killed)
  } catch (e) {
    await killAll(killed, live)
    throw e
  }
  return { killed: killed.proc.pid!, live, left: `${file}.lock.pid.${killed.proc.pid}.tmp`, writing: `${file}.lock.pid.${live.proc.pid}.tmp` }
}

/**
 * A holder of the lock of a fresh journal started as `options` say (in a namespace of its own, see `startChild`), and
 * beside it a holder of this namespace of another fresh journal's lock (whose record a test rewrites): both ready, and
 * the first's pid here.
 */
const holderBeside = async (options: Parameters<typeof startChild>[1]) => {
  const file = sqliteFile()
  const inner = startChild(["lock", file], options)
  const other = sqliteFile()
  const holder = startChild(["lock", other])
  try {
    await Promise.all([inner.waitFor((l) => l === "ready"), holder.waitFor((l) => l === "ready")])
    return { file, other, inner, holder, pid: innerPid(inner.proc.pid!) }
  } catch (e) {
    await killAll(inner, holder)
    throw e
  }
}

/**
 * A Python program (`python3 -c`) running a command (its second argument on) in a time namespace of its own whose offsets
 * are its first argument (`boottime 0 5000000`: written before any process enters it, as unshare(1) writes whole seconds
 * only), as its child, killed with it.
 */
const TIME_NAMESPACE = [
  "import ctypes, os, sys",
  "libc = ctypes.CDLL(None, use_errno=True)",
  "if libc.unshare(0x80) != 0: raise OSError(ctypes.get_errno(), 'unshare')",
  "open('/proc/self/timens_offsets', 'w').write(sys.argv[1])",
  "pid = os.fork()",
  "if pid == 0:",
  "    libc.prctl(1, 9)",
  "    os.execvp(sys.argv[3], sys.argv[3:])",
  "os.waitpid(pid, 0)"
].join("\n")

/** A journal path in a fresh, existing directory. */
const sqliteFile = () => {
  const dir = path.join(tempDir(), "run")
  fs.mkdirSync(dir)
  return path.join(dir, "journal.sqlite")
}

describe("Journal (memory and SQLite alike)", () => {
  it("the same events round-trip through both, for any batching and any `from`", async () => {
    const batching = fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 20 })
    await fc.assert(fc.asyncProperty(randomJournal, batching, fc.nat(90), async ({ events }, sizes, fromRaw) => {
      const file = sqliteFile()
      const memory = makeMemory()
      await withSqlite(file, (sqlite) =>
        Effect.gen(function*() {
          let i = 0
          let k = 0
          while (i < events.length) {
            const batch = events.slice(i, i + sizes[k++ % sizes.length]!)
            const a = yield* memory.append(batch)
            const b = yield* sqlite.append(batch)
            i += batch.length
            assert.strictEqual(a, i)
            assert.strictEqual(b, i)
          }
          const fromMemory = yield* memory.read()
          assert.deepStrictEqual(yield* sqlite.read(), fromMemory)
          assert.deepStrictEqual(fromMemory.map((e) => e.event), events)
          const from = 1 + (fromRaw % (events.length + 2))
          assert.deepStrictEqual(yield* sqlite.read(from), yield* memory.read(from))
          assert.deepStrictEqual((yield* sqlite.read(from)).map((e) => e.seq)[0], from <= events.length ? from : undefined)
        }), { durability: "process" })
    }), { numRuns: 15 })
  })

  it("an empty append returns the current last seq", async () => {
    const file = sqliteFile()
    await withSqlite(file, (j) =>
      Effect.gen(function*() {
        assert.strictEqual(yield* j.append([]), 0)
        yield* j.append([eventAt(1), eventAt(2)])
        assert.strictEqual(yield* j.append([]), 2)
      }))
    const m = makeMemory()
    assert.strictEqual(Effect.runSync(m.append([])), 0)
  })
})

describe("Journal (SQLite)", () => {
  it("reopening keeps everything, and appends continue the sequence", async () => {
    const file = sqliteFile()
    await withSqlite(file, (j) => j.append([eventAt(1), eventAt(2), eventAt(3)]))
    await withSqlite(file, (j) =>
      Effect.gen(function*() {
        assert.strictEqual(assertPrefix(yield* j.read()), 3)
        assert.strictEqual(yield* j.append([eventAt(4)]), 4)
      }))
    const entries = await withSqlite(file, (j) => j.read())
    assert.strictEqual(assertPrefix(entries), 4)
    assert.isFalse(fs.existsSync(`${file}.lock.pid`), "the lock is released when the layer closes")
  })

  it("is durable once append returns: a second connection and a separate process see it", async () => {
    const file = sqliteFile()
    await withSqlite(file, (writer) =>
      Effect.gen(function*() {
        for (const n of [1, 5, 20]) {
          const start = (yield* writer.append([])) + 1
          yield* writer.append(Array.from({ length: n }, (_, i) => eventAt(start + i)))
          const last = start + n - 1
          // a read-only connection in this process, while the writer is still open
          const seen = yield* Effect.promise(() => withSqlite(file, (r) => r.read(), { readonly: true }))
          assert.strictEqual(assertPrefix(seen), last)
          // a separate process
          const [line] = yield* Effect.promise(() => runChild(["read", file]))
          const fromChild = JSON.parse(line!) as { seqs: Array<number>; ok: boolean }
          assert.isTrue(fromChild.ok)
          assert.strictEqual(fromChild.seqs.length, last)
        }
      }), { durability: "fsync" })
  })

  it("a writer creates the journal's missing directory", async () => {
    const file = path.join(tempDir(), "runs", "r1", "journal.sqlite")
    assert.strictEqual(await withSqlite(file, (j) => j.append([eventAt(1)])), 1)
    assert.strictEqual(assertPrefix(await withSqlite(file, (j) => j.read(), { readonly: true })), 1)
  })

  it("a read-only journal refuses appends and a missing file", async () => {
    const file = sqliteFile()
    await withSqlite(file, (j) => j.append([eventAt(1)]))
    const e = await withSqlite(file, (j) => Effect.flip(j.append([eventAt(2)])), { readonly: true })
    assert.strictEqual(e.reason, "Io")
    assert.match(e.message, /read-only/)
    const missing = await openError(path.join(tempDir(), "none.sqlite"), { readonly: true })
    assert.strictEqual(missing.reason, "Io")
    assert.match(missing.message, /no journal/)
  })

  it("a file its writer was killed in before the table existed reads as empty; a writer then migrates it", async () => {
    for (const create of ["", "PRAGMA journal_mode = WAL"]) {
      const file = sqliteFile()
      // what a controller killed between creating the file and committing the first migration leaves
      const db = new DatabaseSync(file)
      if (create !== "") db.exec(create)
      db.close()
      assert.deepStrictEqual(await withSqlite(file, (j) => j.read(), { readonly: true }), [], create || "empty file")
      const e = await withSqlite(file, (j) => Effect.flip(j.append([eventAt(1)])), { readonly: true })
      assert.match(e.message, /read-only/)
      assert.strictEqual(await withSqlite(file, (j) => j.append([eventAt(1)])), 1)
      assert.strictEqual(assertPrefix(await withSqlite(file, (j) => j.read(), { readonly: true })), 1)
    }
  })

  describe("corruption", () => {
    const corrupt = async (f: (db: DatabaseSync) => void) => {
      const file = sqliteFile()
      await withSqlite(file, (j) => j.append([1, 2, 3, 4, 5].map(eventAt)))
      const db = new DatabaseSync(file)
      f(db)
      db.close()
      return file
    }

    it("a flipped payload fails read with Corrupt naming that seq; other entries are intact", async () => {
      const file = await corrupt((db) => db.exec("UPDATE events SET payload = replace(payload, 'event 3', 'event 8') WHERE seq = 3"))
      // decided behaviour: `read` fails at the first bad entry (never a silent partial read), naming its seq
      for (const options of [{}, { readonly: true }]) {
        const error = await withSqlite(file, (j) => Effect.flip(j.read(1)), options)
        assert.strictEqual(error._tag, "JournalError")
        assert.strictEqual(error.reason, "Corrupt")
        assert.strictEqual(error.seq, 3)
        assert.match(error.message, /entry 3 fails its checksum/)
      }
      // entries after it are still readable through the journal, and those before it are untouched on disk
      const after = await withSqlite(file, (j) => j.read(4), { readonly: true })
      assert.deepStrictEqual(after.map((e) => e.seq), [4, 5])
      assert.deepStrictEqual(after.map((e) => e.event), [eventAt(4), eventAt(5)])
      const raw = new DatabaseSync(file, { readOnly: true })
      const rows = raw.prepare("SELECT seq, payload, crc FROM events WHERE seq < 3 ORDER BY seq").all() as Array<{ seq: number; payload: string; crc: number }>
      raw.close()
      for (const r of rows) {
        assert.strictEqual(crc32(r.payload), Number(r.crc))
        assert.deepStrictEqual(JournalEvent.decodeSync(JSON.parse(r.payload)), eventAt(Number(r.seq)))
      }
    })

    it("readIntact gives the entries before the first bad one, and its error; an undamaged journal whole", async () => {
      for (const [damage, seq] of [["UPDATE events SET payload = replace(payload, 'event 3', 'event 8') WHERE seq = 3", 3], ["DELETE FROM events WHERE seq = 4", 4]] as const) {
        const file = await corrupt((db) => db.exec(damage))
        const intact = await Effect.runPromise(readIntact(file))
        assert.deepStrictEqual(intact.entries.map((e) => e.event), [1, 2, 3, 4, 5].slice(0, seq - 1).map(eventAt), damage)
        assert.strictEqual(intact.damage?.reason, "Corrupt")
        assert.strictEqual(intact.damage?.seq, seq)
      }
      const whole = await Effect.runPromise(readIntact(await corrupt(() => {})))
      assert.strictEqual(whole.entries.length, 5)
      assert.isUndefined(whole.damage)
    })

    it("readIntact with tags decodes only those events, and still finds the damage in an entry of another tag", async () => {
      const insight = JournalEvent.make("InsightsDistilled", { insights: [], at: 9 })
      const file = sqliteFile()
      await withSqlite(file, (j) => j.append([eventAt(1), insight, eventAt(3), insight, eventAt(5)]))
      const only = await Effect.runPromise(readIntact(file, { tags: ["InsightsDistilled"] }))
      assert.deepStrictEqual(only.entries, [{ seq: 2, event: insight }, { seq: 4, event: insight }])
      assert.isUndefined(only.damage)
      // entry 3 (a BudgetCharged, not decoded) fails its checksum: the read stops there, as a whole read does
      const db = new DatabaseSync(file)
      db.exec("UPDATE events SET crc = crc + 1 WHERE seq = 3")
      db.close()
      const damaged = await Effect.runPromise(readIntact(file, { tags: ["InsightsDistilled"] }))
      assert.deepStrictEqual(damaged.entries.map((e) => e.seq), [2])
      assert.strictEqual(damaged.damage?.seq, 3)
    })

    it("readIntact from an entry on, with tags: `checked` is the last entry checked, where a later read of a growing journal goes on", async () => {
      const insight = JournalEvent.make("InsightsDistilled", { insights: [], at: 9 })
      const file = sqliteFile()
      await withSqlite(file, (j) => j.append([eventAt(1), insight, eventAt(3), insight, eventAt(5)]))
      const first = await Effect.runPromise(readIntact(file, { tags: ["InsightsDistilled"], from: 3 }))
      assert.deepStrictEqual(first.entries, [{ seq: 4, event: insight }])
      assert.strictEqual(first.checked, 5, "entry 5 is checked, not returned")
      await withSqlite(file, (j) => j.append([insight, eventAt(7)]))
      const next = await Effect.runPromise(readIntact(file, { tags: ["InsightsDistilled"], from: first.checked! + 1 }))
      assert.deepStrictEqual(next.entries, [{ seq: 6, event: insight }])
      assert.strictEqual(next.checked, 7)
      const none = await Effect.runPromise(readIntact(file, { from: 8 }))
      assert.deepStrictEqual([none.entries, none.checked], [[], 7])
    })

    it("a payload with a valid checksum that does not decode is Corrupt with its seq", async () => {
      const bad = JSON.stringify({ _tag: "BudgetCharged", cost: { dollars: -1 }, reason: "x", at: 2 })
      const file = await corrupt((db) => db.prepare("UPDATE events SET payload = ?, crc = ? WHERE seq = 2").run(bad, crc32(bad)))
      const error = await withSqlite(file, (j) => Effect.flip(j.read()), { readonly: true })
      assert.strictEqual(error.reason, "Corrupt")
      assert.strictEqual(error.seq, 2)
      assert.match(error.message, /entry 2 \(BudgetCharged\) does not decode/)
    })

    it("an event this trex does not know (a newer trex's) is Version, with the fix", async () => {
      const newer = JSON.stringify({ _tag: "NodeMigrated", nodeId: "n1", at: 2 })
      const file = await corrupt((db) => db.prepare("UPDATE events SET tag = ?, payload = ?, crc = ? WHERE seq = 2").run("NodeMigrated", newer, crc32(newer)))
      const error = await withSqlite(file, (j) => Effect.flip(j.read()), { readonly: true })
      assert.strictEqual(error.reason, "Version")
      assert.strictEqual(error.seq, 2)
      assert.match(error.message, /entry 2 is a NodeMigrated event, which this trex does not know: the run was written by a newer trex \(upgrade trex to read it\)$/)
    })

    it("a missing entry is Corrupt naming the first missing seq", async () => {
      const file = await corrupt((db) => db.exec("DELETE FROM events WHERE seq = 4"))
      const error = await withSqlite(file, (j) => Effect.flip(j.read()), { readonly: true })
      assert.strictEqual(error.reason, "Corrupt")
      assert.strictEqual(error.seq, 4)
      assert.match(error.message, /entry 4 is missing/)
    })

    it("a file that is not SQLite is refused with Corrupt", async () => {
      const file = sqliteFile()
      fs.writeFileSync(file, "this is not a database, just some text that is long enough to have a header".repeat(20))
      const error = await openError(file)
      assert.strictEqual(error.reason, "Corrupt")
    })
  })

  it("a torn WAL tail after a SIGKILL mid-burst opens to a gap-free prefix of what was appended", async () => {
    const file = sqliteFile()
    // few enough appends that SQLite never checkpoints (1000 pages): the tail lives in the WAL
    const child = startChild(["append", file, "400", "1", "process", "1", "hold"])
    await child.waitFor((l) => Number(l) >= 150)
    child.proc.kill("SIGKILL")
    assert.strictEqual(await child.exited, "SIGKILL")
    const reported = Math.max(...child.lines.map(Number).filter(Number.isFinite))
    const walFile = `${file}-wal`
    const wal = fs.readFileSync(walFile)
    const pageSize = wal.readUInt32BE(8)
    const frameSize = 24 + pageSize
    const frames = Math.floor((wal.length - 32) / frameSize)
    assert.isAbove(frames, 10, "the appends are in the WAL")
    // cut the WAL in the middle of a frame about half-way through
    fs.truncateSync(walFile, 32 + Math.floor(frames / 2) * frameSize + Math.floor(frameSize / 2))
    await withSqlite(file, (j) =>
      Effect.gen(function*() {
        const n = assertPrefix(yield* j.read())
        assert.isAtLeast(n, 1)
        assert.isBelow(n, reported, "the cut lost the tail")
        // the journal is writable again and continues gap-free
        assert.strictEqual(yield* j.append([eventAt(n + 1)]), n + 1)
        assert.strictEqual(assertPrefix(yield* j.read()), n + 1)
      }))
  })

  it("concurrent readers see a gap-free prefix while another process appends 2,000 events", async () => {
    const file = sqliteFile()
    // create the file first so readers can open it at once
    await withSqlite(file, (j) => j.append([eventAt(1)]))
    // the child appends eventAt(1..2000) in bursts of 1-25 with short pauses, so seq k holds eventAt(k - 1)
    const child = startChild(["append", file, "2000", "25", "process", "3"])
    let reads = 0
    let partial = 0
    let last = 0
    let done = false
    void child.exited.then(() => (done = true))
    await withSqlite(file, (reader) =>
      Effect.gen(function*() {
        while (!done || reads === 0) {
          const entries = yield* reader.read()
          entries.forEach((e, i) => assert.strictEqual(e.seq, i + 1))
          entries.slice(1).forEach((e) => assert.deepStrictEqual(e.event, eventAt(e.seq - 1)))
          assert.isAtLeast(entries.length, last, "a later read never sees fewer entries")
          last = entries.length
          if (entries.length > 1 && entries.length < 2001) partial++
          reads++
          yield* Effect.sleep("2 millis")
        }
      }), { readonly: true })
    assert.strictEqual(await child.exited, 0)
    const final = await withSqlite(file, (j) => j.read(), { readonly: true })
    assert.strictEqual(final.length, 2001)
    assert.isAbove(partial, 2, "reads overlapped the writer")
  })

  describe("the lock", () => {
    it("a second writer is refused with Locked while the first (another process) is alive", async () => {
      const file = sqliteFile()
      const holder: Child = startChild(["hold", file])
      try {
        await holder.waitFor((l) => l === "ready")
        const error = await openError(file)
        assert.strictEqual(error.reason, "Locked")
        assert.include(error.message, String(holder.proc.pid))
        // readers are not writers: they may open
        assert.deepStrictEqual(await withSqlite(file, (j) => j.read(), { readonly: true }), [])
      } finally {
        holder.proc.kill("SIGKILL")
        await holder.exited
      }
      // the holder died without releasing: the operating system dropped its lock, so a writer may open
      assert.isTrue(fs.existsSync(`${file}.lock.pid`))
      await withSqlite(file, (j) => j.append([eventAt(1)]))
    })

    it("writer names the process that holds the lock, in this process or another, and nobody once it is gone", async () => {
      const file = sqliteFile()
      assert.isUndefined(await Effect.runPromise(writer(file)), "no journal, no writer")
      await withSqlite(file, () => Effect.map(writer(file), (w) => assert.deepStrictEqual(w, { pid: process.pid, host: os.hostname() })))
      assert.isUndefined(await Effect.runPromise(writer(file)), "a closed journal has no writer")
      const holder: Child = startChild(["hold", file])
      try {
        await holder.waitFor((l) => l === "ready")
        assert.deepStrictEqual(await Effect.runPromise(writer(file)), { pid: holder.proc.pid!, host: os.hostname() })
        // asking does not get in a writer's way: the holder keeps the lock, and asking again says so
        assert.deepStrictEqual(await Effect.runPromise(writer(file)), { pid: holder.proc.pid!, host: os.hostname() })
        // a pid file of an older version names the pid alone, or the pid, the host and what holds it when no controller
        fs.writeFileSync(`${file}.lock.pid`, `${holder.proc.pid}\n`)
        assert.deepStrictEqual(await Effect.runPromise(writer(file)), { pid: holder.proc.pid! })
        fs.writeFileSync(`${file}.lock.pid`, `${holder.proc.pid} ${os.hostname()}\n`)
        assert.deepStrictEqual(await Effect.runPromise(writer(file)), { pid: holder.proc.pid!, host: os.hostname() })
        fs.writeFileSync(`${file}.lock.pid`, `${holder.proc.pid} ${os.hostname()} trex notify\n`)
        assert.deepStrictEqual(await Effect.runPromise(writer(file)), { pid: holder.proc.pid!, host: os.hostname(), by: "trex notify" })
      } finally {
        holder.proc.kill("SIGKILL")
        await holder.exited
      }
      // killed: its pid file is left, but the operating system dropped its lock
      assert.isTrue(fs.existsSync(`${file}.lock.pid`))
      assert.isUndefined(await Effect.runPromise(writer(file)))
    })

    it("the lock's record keeps any host name, an empty one or one with spaces, apart from what holds the lock", async () => {
      const spaced = sqliteFile()
      const empty = sqliteFile()
      // a controller on a machine named "a b"; a trex notify on one whose name is empty (each in its own UTS namespace)
      const controller = startChild(["lock", spaced], { hostname: "a b" })
      const notify = startChild(["lock", empty, "trex notify"], { hostname: "" })
      try {
        await Promise.all([controller.waitFor((l) => l === "ready"), notify.waitFor((l) => l === "ready")])
        // (on this machine, its boot id this one's: named as such, its pid this namespace's)
        assert.deepStrictEqual(await Effect.runPromise(writer(spaced)), { pid: controller.proc.pid!, host: "a b", thisMachine: true })
        assert.deepInclude(recordOf(spaced), { pid: controller.proc.pid!, host: "a b", by: "controller" })
        assert.include((await openError(spaced)).message, `run is in use by process ${controller.proc.pid} on this machine (its host name "a b") (lock ${spaced}.lock); stop that controller first`)
        assert.deepStrictEqual(await Effect.runPromise(writer(empty)), { pid: notify.proc.pid!, host: "", by: "trex notify", thisMachine: true })
        assert.include((await openError(empty)).message, `run is held by trex notify (process ${notify.proc.pid} on this machine (its host name "")) (lock ${empty}.lock)`)
        // the same names with another boot id: another machine (its pid means nothing here)
        fs.writeFileSync(`${spaced}.lock.pid`, JSON.stringify({ ...recordOf(spaced), boot: "00000000-0000-0000-0000-000000000000" }))
        assert.deepStrictEqual(await Effect.runPromise(writer(spaced)), { pid: controller.proc.pid!, host: "a b" })
        assert.include((await openError(spaced)).message, `run is in use by process ${controller.proc.pid} on host "a b" (lock ${spaced}.lock)`)
      } finally {
        await killAll(controller, notify)
      }
    })

    it("a record that names no live holder (a killed trex notify's, read before the lock's next holder writes its own; an unreadable one) is not taken for the holder", async () => {
      const file = sqliteFile()
      const go = path.join(path.dirname(file), "go")
      const notify = startChild(["lock", file, "trex notify"])
      await notify.waitFor((l) => l === "ready")
      const pid = notify.proc.pid!
      assert.deepStrictEqual(await Effect.runPromise(writer(file)), { pid, host: os.hostname(), by: "trex notify" })
      notify.proc.kill("SIGKILL")
      await notify.exited
      assert.isUndefined(await Effect.runPromise(writer(file)), "its lock is gone with it")
      // a controller takes the lock, and is held before it writes its record: the killed trex notify's is read meanwhile
      const next = startChild(["take", file, go])
      try {
        await next.waitFor((l) => l === "locked")
        const stale = `its record ${file}.lock.pid names trex notify (process ${pid}), which has exited: its holder took the lock since, and has not yet written its own record`
        // (how to find it: fuser here sees this pid namespace)
        const find = `find the holder with \`fuser ${file}.lock\` (run as root, it sees every process of this pid namespace and those within it) and stop it with \`kill -TERM <pid>\``
        assert.deepStrictEqual(await Effect.runPromise(writer(file)), { unknown: stale, find })
        assert.include((await openError(file)).message, `run is in use by another process (${stale}) (lock ${file}.lock); stop that controller first`)
        // as an older trex notify wrote it
        fs.writeFileSync(`${file}.lock.pid`, `${pid} ${os.hostname()} trex notify\n`)
        assert.deepStrictEqual(await Effect.runPromise(writer(file)), { unknown: stale, find })
        // a living process given the pid since (this one): not the one recorded, whose start time differs
        fs.writeFileSync(`${file}.lock.pid`, JSON.stringify({ pid: process.pid, host: os.hostname(), by: "trex notify", start: "1" }))
        assert.include((await Effect.runPromise(writer(file)))?.unknown, `names trex notify (process ${process.pid}), which has exited`)
        // this host's name and another boot's id: another machine of that name on a shared file system; its pid (this
        // process's here) is not named, so that trex stop signals nothing of this machine
        fs.writeFileSync(`${file}.lock.pid`, JSON.stringify({ pid: process.pid, host: os.hostname(), start: "1", boot: "00000000-0000-0000-0000-000000000000" }))
        const elsewhere = await Effect.runPromise(writer(file))
        assert.isUndefined(elsewhere?.pid)
        assert.isUndefined(elsewhere?.find, "fuser here cannot find another machine's holder")
        assert.include(elsewhere?.unknown, `names process ${process.pid} of another boot (boot id 00000000-0000-0000-0000-000000000000, this machine's `)
        // unreadable: said, not thrown
        fs.writeFileSync(`${file}.lock.pid`, "garbage\n")
        assert.deepStrictEqual(await Effect.runPromise(writer(file)), { unknown: `its record ${file}.lock.pid cannot be read (not a lock record: "garbage")`, find })
        assert.include((await openError(file)).message, `run is in use by another process (its record ${file}.lock.pid cannot be read (not a lock record: "garbage"))`)
        fs.writeFileSync(`${file}.lock.pid`, `{"pid":"x","host":"h"}`)
        assert.deepStrictEqual(await Effect.runPromise(writer(file)), { unknown: `its record ${file}.lock.pid cannot be read (its pid is not a process id ("x"))`, find })
        fs.writeFileSync(go, "")
        await next.waitFor((l) => l === "recorded")
        assert.deepStrictEqual(await Effect.runPromise(writer(file)), { pid: next.proc.pid!, host: os.hostname() })
      } finally {
        next.proc.kill("SIGKILL")
        await next.exited
      }
    })

    it("a host name is shown quoted when not one plain word, controls escaped, and cut to 80 characters: a record's of 300 too", async () => {
      assert.strictEqual(hostName("gpu1"), "gpu1")
      assert.strictEqual(hostName("a b"), `"a b"`)
      assert.strictEqual(hostName(""), `""`)
      assert.strictEqual(hostName("gpu1\u001b[8m\u009b2J\u202e"), `"gpu1\\u001b[8m\\u009b2J\\u202e"`)
      assert.strictEqual(hostName("h".repeat(80)), "h".repeat(80))
      assert.strictEqual(hostName("h".repeat(81)), `"${"h".repeat(78)}…`)
      const file = sqliteFile()
      const holder = startChild(["lock", file])
      try {
        await holder.waitFor((l) => l === "ready")
        const pid = holder.proc.pid!
        fs.writeFileSync(`${file}.lock.pid`, JSON.stringify({ pid, host: "h".repeat(300), by: "controller" }))
        assert.deepStrictEqual(await Effect.runPromise(writer(file)), { pid, host: "h".repeat(300) }, "kept whole")
        const message = (await openError(file)).message
        assert.include(message, `run is in use by process ${pid} on host "${"h".repeat(78)}… (lock ${file}.lock)`)
        assert.notInclude(message, "h".repeat(79))
      } finally {
        holder.proc.kill("SIGKILL")
        await holder.exited
      }
    })

    it("a long host name is cut between its escapes and characters, never within one, and the cut is marked", () => {
      // `"a` and 12 escapes of 6 characters are 74: the 13th would end at 80, past the 79 before the mark
      assert.strictEqual(hostName(`a${"\u0001".repeat(20)}`), `"a${"\\u0001".repeat(12)}…`)
      // a character of two UTF-16 units is not split; a lone surrogate is escaped as any control
      assert.strictEqual(hostName(`${"h".repeat(76)}😀`), `"${"h".repeat(76)}😀"`)
      assert.strictEqual(hostName(`${"h".repeat(77)}😀`), `"${"h".repeat(77)}…`)
      assert.strictEqual(hostName(`${"h".repeat(70)}\ud800${"h".repeat(20)}`), `"${"h".repeat(70)}\\ud800hh…`)
      const piece = fc.oneof(
        fc.constantFrom("\u0000", "\u001b", "\u009b", "\u202e", "\u2028", "\\", "\"", "\n", "\ud800", "\udfff", "😀", "é", " "),
        fc.string({ minLength: 1, maxLength: 3 })
      )
      fc.assert(fc.property(fc.array(piece, { maxLength: 60 }).map((p) => p.join("")), (host) => {
        const shown = hostName(host)
        assert.isAtMost(shown.length, 80)
        assert.notMatch(shown, /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/, "no half of a surrogate pair")
        if (shown === host) return
        assert.notMatch(shown, /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e]/, "every control escaped")
        // quoted and cut at a boundary: closed again, it is the quoted start of the name
        const cut = shown.endsWith("…") && shown.length === 80
        const start = JSON.parse(cut ? `${shown.slice(0, -1)}"` : shown) as string
        assert.isTrue(cut ? host.startsWith(start) && start.length < host.length : start === host, JSON.stringify({ host, shown }))
      }), { numRuns: 500 })
    })

    it("a temporary record left by a holder killed before renaming it is removed by the lock's next holder, another machine's too; a live writer's is kept", async () => {
      const file = sqliteFile()
      const { killed, live, left, writing } = await leftRecords(file, "written")
      // a living writer (not holding the lock) in a pid namespace below this one, held likewise: process 1 there
      const inner = startChild(["write-record", file], { pidNamespace: true })
      try {
        await inner.waitFor((l) => l === "written")
        const innerWriting = `${file}.lock.pid.1.tmp`
        assert.deepInclude(JSON.parse(fs.readFileSync(innerWriting, "utf8")), { pid: 1 })
        assert.deepInclude(JSON.parse(fs.readFileSync(left, "utf8")), { pid: killed, host: os.hostname() }, "left behind")
        // one naming a living process with another start time (a pid given to it since); the same of another boot (another
        // machine of this name), of another host, and of another pid namespace this one cannot see, whose pids cannot be
        // looked up here: each left by a holder that lost the lock unfinished, as the lock says
        const record = JSON.parse(fs.readFileSync(left, "utf8"))
        const reused = `${file}.lock.pid.${process.ppid}.tmp`
        const otherBoot = `${file}.lock.pid.5.tmp`
        const elsewhere = `${file}.lock.pid.2.tmp`
        const otherNs = `${file}.lock.pid.3.tmp`
        fs.writeFileSync(reused, JSON.stringify({ ...record, pid: process.ppid, start: "1" }))
        fs.writeFileSync(otherBoot, JSON.stringify({ ...record, pid: 5, start: "1", boot: "00000000-0000-0000-0000-000000000000" }))
        fs.writeFileSync(elsewhere, JSON.stringify({ ...record, pid: 2, start: "1", host: `${os.hostname()}-2`, boot: "00000000-0000-0000-0000-000000000000" }))
        fs.writeFileSync(otherNs, JSON.stringify({ ...record, pid: 3, start: "1", pidns: "pid:[1]" }))
        await withSqlite(file, (j) => j.append([eventAt(1)]))
        assert.isFalse(fs.existsSync(left), "the killed holder's is removed")
        assert.isFalse(fs.existsSync(reused), "so is one whose pid is another process's since")
        assert.isTrue(fs.existsSync(writing), "the living writer's is kept")
        assert.isTrue(fs.existsSync(innerWriting), "so is the living writer's of a pid namespace below this one")
        assert.isFalse(fs.existsSync(otherBoot), "another boot's is removed")
        assert.isFalse(fs.existsSync(elsewhere), "another machine's is removed")
        assert.isFalse(fs.existsSync(otherNs), "one of a pid namespace this one cannot see is removed")
      } finally {
        await killAll(live, inner)
      }
    })

    it("an empty temporary record (its writer killed between creating and writing it) is removed by the lock's next holder, unless a process of this namespace has its pid", async () => {
      const file = sqliteFile()
      const { live, left, writing } = await leftRecords(file, "created")
      try {
        assert.strictEqual(fs.statSync(left).size, 0, "left behind, empty")
        // one cut short, named for a process that has exited
        const cut = `${file}.lock.pid.${spawnSync("true").pid}.tmp`
        fs.writeFileSync(cut, `{"pid":`)
        await withSqlite(file, (j) => j.append([eventAt(1)]))
        assert.isFalse(fs.existsSync(left), "the killed holder's is removed")
        assert.isFalse(fs.existsSync(cut), "so is one cut short")
        assert.isTrue(fs.existsSync(writing), "one whose pid a living process has is kept")
      } finally {
        await killAll(live)
      }
    })

    it("a holder in another pid namespace of this machine (a container's) is found from the machine's by its pid there, else named as such, never as this namespace's process of its pid", async () => {
      const file = sqliteFile()
      const ours = fs.readlinkSync("/proc/self/ns/pid")
      const inner = startChild(["lock", file], { pidNamespace: true })
      // a reader in a sibling pid namespace (another container), which cannot see the holder
      let sibling: Child | undefined
      try {
        await inner.waitFor((l) => l === "ready")
        const pid = innerPid(inner.proc.pid!)
        const record = recordOf(file)
        assert.deepInclude(record, { pid: 1, host: os.hostname(), by: "controller", start: startOf(pid) }, "process 1 of its namespace")
        assert.match(String(record["pidns"]), /^pid:\[\d+\]$/)
        assert.notStrictEqual(record["pidns"], ours)
        // from this (the parent) namespace: the one process of that namespace whose pid there is 1, named by its pid here
        assert.deepStrictEqual(await Effect.runPromise(writer(file)), { pid, host: os.hostname() })
        assert.include((await openError(file)).message, `run is in use by process ${pid} (lock ${file}.lock); stop that controller first`)
        // (read from the machine's namespace, as the test runs)
        const why = (n: number) =>
          `its record ${file}.lock.pid names process ${n} of another pid namespace (${record["pidns"]}, this process's ${ours}), ` +
          `a container's, where no process this one can read is process ${n} with the recorded start time (a holder that has just taken the lock ` +
          `and not yet written its record, or another user's: run the command as root); find the holder with \`fuser ${file}.lock\` (run as root, it sees every process of this pid namespace and those within it)`
        // a reader in a sibling pid namespace (another container) cannot see it: told to run the command on the machine, or
        // in the holder's container; a holder of the machine's own namespace, read from a container: on the machine
        const machines = sqliteFile()
        const onMachine = startChild(["lock", machines])
        await onMachine.waitFor((l) => l === "ready")
        fs.writeFileSync(`${machines}.lock.pid`, JSON.stringify({ ...record, pid: onMachine.proc.pid, start: startOf(onMachine.proc.pid!), pidns: "pid:[4026531836]" }))
        sibling = startChild(["writer", file, machines], { pidNamespace: true })
        const siblingCode = await sibling.exited
        await killAll(onMachine)
        assert.strictEqual(siblingCode, 0)
        const [seen, machine] = sibling.lines.map((l) => JSON.parse(l) as { readonly unknown?: string; readonly pid?: number; readonly seen?: string })
        assert.isUndefined(seen?.pid)
        // where each is seen, as the CLI's messages say it (Journal.whereSeen)
        assert.strictEqual(seen?.seen, "namespace")
        assert.strictEqual(machine?.seen, "machine")
        assert.strictEqual(whereSeen("`trex stop r`", { seen: "machine" }), "run `trex stop r` on the machine, outside containers")
        assert.strictEqual(whereSeen("`trex stop r`", { seen: "container" }), "run `trex stop r` on the machine, outside containers, or in the holder's container")
        assert.isUndefined(whereSeen("`trex stop r`", {}))
        assert.include(seen?.unknown, `names process 1 of another pid namespace (${record["pidns"]}, this process's `)
        assert.include(seen?.unknown, `another container's on this machine, which this process's container cannot see or signal, nor can \`fuser\` here: not this namespace's process 1; ` +
          "run the command on the machine, outside containers (it finds the holder by its namespace), or in the holder's container")
        assert.isUndefined(machine?.pid)
        assert.include(machine?.unknown, `names process ${onMachine.proc.pid} of another pid namespace (pid:[4026531836], this process's `)
        assert.include(machine?.unknown, `the machine's own (outside containers), which this process, in a container, cannot see or signal, nor can \`fuser\` here: ` +
          `not this namespace's process ${onMachine.proc.pid}; run the command on the machine, outside containers`)
        // no process of that namespace has its pid (2): named as before, not found
        fs.writeFileSync(`${file}.lock.pid`, JSON.stringify({ ...record, pid: 2 }))
        const none = await Effect.runPromise(writer(file))
        assert.isUndefined(none?.pid)
        assert.include(none?.unknown, why(2))
        assert.include((await openError(file)).message, `run is in use by another process (${why(2)}`)
        // its process 1 with another start time: not named either
        fs.writeFileSync(`${file}.lock.pid`, JSON.stringify({ ...record, start: "1" }))
        assert.include((await Effect.runPromise(writer(file)))?.unknown, why(1))
        // its record naming a living process of this namespace, with that one's start time: still not that process
        const mine = { pid: process.pid, host: os.hostname(), start: startOf(process.pid), boot: record["boot"] }
        fs.writeFileSync(`${file}.lock.pid`, JSON.stringify({ ...mine, pidns: record["pidns"] }))
        assert.include((await Effect.runPromise(writer(file)))?.unknown, `names process ${process.pid} of another pid namespace (${record["pidns"]}, `)
        // a record without one (an older version's) is read as before
        fs.writeFileSync(`${file}.lock.pid`, JSON.stringify(mine))
        assert.deepStrictEqual(await Effect.runPromise(writer(file)), { pid: process.pid, host: os.hostname() })
      } finally {
        await killAll(inner, ...(sibling !== undefined ? [sibling] : []))
      }
    })

    it("a holder on this machine with a host name and a pid namespace of its own (a Docker container's) is found from the machine by its pid here", async () => {
      const file = sqliteFile()
      const inner = startChild(["lock", file], { hostname: "c0ffee", pidNamespace: true })
      try {
        await inner.waitFor((l) => l === "ready")
        const pid = innerPid(inner.proc.pid!)
        assert.deepInclude(recordOf(file), {
          pid: 1,
          host: "c0ffee",
          start: startOf(pid),
          boot: fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim(),
          uts: fs.readlinkSync(`/proc/${pid}/ns/uts`)
        })
        assert.notStrictEqual(recordOf(file)["uts"], "uts:[4026531838]", "a UTS namespace of its own, not the machine's")
        assert.deepStrictEqual(await Effect.runPromise(writer(file)), { pid, host: "c0ffee", thisMachine: true }, "its pid here, not its namespace's 1")
        assert.include((await openError(file)).message, `run is in use by process ${pid} on this machine (its host name c0ffee) (lock ${file}.lock)`)
        // exited: a record of this machine naming a pid of this namespace with another start time is not the holder
        fs.writeFileSync(`${file}.lock.pid`, JSON.stringify({ ...recordOf(file), pid: process.pid, pidns: fs.readlinkSync("/proc/self/ns/pid"), start: "1" }))
        assert.include((await Effect.runPromise(writer(file)))?.unknown, `names process ${process.pid} on this machine (its host name c0ffee), which has exited`)
      } finally {
        await killAll(inner)
      }
    })

    it("a reader whose /proc is not its own pid namespace's (nsenter --mount into a container) names no holder: it cannot verify one", async () => {
      // the holder is its container's process 1; its record's pid, looked up from the machine's pid namespace, is the machine's init
      const file = sqliteFile()
      const inner = startChild(["lock", file], { hostname: "c0ffee", pidNamespace: true })
      let reader: Child | undefined
      try {
        await inner.waitFor((l) => l === "ready")
        const pid = innerPid(inner.proc.pid!)
        assert.deepInclude(recordOf(file), { pid: 1, host: "c0ffee" })
        reader = startChild(["writer", file], { prefix: ["nsenter", "--target", String(pid), "--mount", `--wd=${process.cwd()}`, "--"] })
        assert.strictEqual(await reader.exited, 0)
        const seen = JSON.parse(reader.lines[0]!) as { readonly pid?: number; readonly elsewhere?: string; readonly unknown?: string }
        assert.isUndefined(seen.pid, "no pid named for signalling")
        assert.strictEqual(seen.elsewhere, "unverifiable")
        assert.include(seen.unknown, `its record ${file}.lock.pid names process 1 on this machine (its host name c0ffee), which this process cannot verify: ` +
          "the /proc mounted here is of another pid namespace than this process's")
      } finally {
        await killAll(inner, ...(reader !== undefined ? [reader] : []))
      }
    })

    it("a holder whose /proc does not show it (another pid namespace's) records its pid namespace as unknown, and no reader names its pid", async () => {
      const file = sqliteFile()
      // a pid namespace with its own /proc, in a mount namespace of its own; the holder enters that mount namespace only
      const owner = spawn("unshare", [...unsharePid(true), "sleep", "60"], { stdio: "ignore" })
      let holder: Child | undefined
      try {
        // (once unshare has forked its child)
        let inner: number | undefined
        while (inner === undefined) {
          if (owner.exitCode !== null || owner.signalCode !== null) throw new Error(`unshare exited (${owner.exitCode ?? owner.signalCode})`)
          try {
            inner = innerPid(owner.pid!)
          } catch {
            await new Promise((resolve) => setTimeout(resolve, 20))
          }
        }
        holder = startChild(["lock", file], { prefix: ["nsenter", "--target", String(inner), "--mount", `--wd=${process.cwd()}`, "--"] })
        await holder.waitFor((l) => l === "ready")
        const record = recordOf(file)
        assert.deepInclude(record, { pid: holder.proc.pid!, host: os.hostname(), pidns: "unknown" })
        assert.notProperty(record, "start", "its /proc/self does not resolve")
        const why = `its record ${file}.lock.pid names process ${holder.proc.pid}, which could not tell its pid namespace (its /proc, of another pid namespace, ` +
          `did not show it), so that pid may be another process's here; find the holder with \`fuser ${file}.lock\` (run as root on the machine, ` +
          "outside containers, it sees every process) and stop it with `kill -TERM <pid>`"
        assert.deepStrictEqual(await Effect.runPromise(writer(file)), {
          elsewhere: "another pid namespace",
          unknown: why,
          find: `find the holder with \`fuser ${file}.lock\` (run as root on the machine, outside containers, it sees every process) and stop it with \`kill -TERM <pid>\``,
          // (its namespace unknown: seen on the machine or in its container, not found by a namespace)
          seen: "container"
        })
        assert.include((await openError(file)).message, `run is in use by another process (${why})`)
      } finally {
        owner.kill("SIGKILL")
        if (holder !== undefined) await killAll(holder)
      }
    })

    it("a holder in a time namespace of its own records its start time on the machine's boot clock, and is named from the machine and from its namespace", async () => {
      // its boot clock 1000 s ahead: /proc shows it every start time 100000 ticks later than the machine's; the other lock's
      // record names that holder with another start time: exited, from its namespace too
      // (--kill-child: killed with unshare, not left running)
      const { file, other, inner, holder, pid } = await holderBeside({ prefix: ["unshare", "--time", "--boottime", "1000", "--fork", "--kill-child", "--"] })
      let reader: Child | undefined
      try {
        assert.match(fs.readFileSync(`/proc/${pid}/timens_offsets`, "utf8"), /boottime\s+1000\s+0/)
        assert.deepInclude(recordOf(file), { pid, start: startOf(pid) }, "the machine's start time, not its namespace's")
        assert.deepStrictEqual(await Effect.runPromise(writer(file)), { pid, host: os.hostname() }, "named from the machine")
        fs.writeFileSync(`${other}.lock.pid`, JSON.stringify({ ...recordOf(file), start: String(Number(startOf(pid)) + 100000) }))
        reader = startChild(["writer", file, other], { prefix: ["nsenter", "--target", String(pid), "--time", "--"] })
        assert.strictEqual(await reader.exited, 0)
        const [alive, gone] = reader.lines.map((l) => JSON.parse(l) as { readonly unknown?: string; readonly pid?: number; readonly host?: string })
        assert.deepStrictEqual(alive, { pid, host: os.hostname() }, "named from its own time namespace")
        assert.isUndefined(gone?.pid)
        assert.include(gone?.unknown, `its record ${other}.lock.pid names process ${pid}, which has exited`)
      } finally {
        await killAll(inner, holder, ...(reader !== undefined ? [reader] : []))
      }
    })

    it("a holder in a time namespace offset by a fraction of a tick records its start time, and is told alive or exited here and there", async () => {
      // its boot clock 5 ms ahead (unshare(1) sets whole seconds only): /proc shows its start times the same or one tick
      // later; compared within a tick, not skipped. The other lock's record names that holder three ticks late (more than a
      // tick from what either side sees): exited
      const { file, other, inner, holder, pid } = await holderBeside({ prefix: ["python3", "-c", TIME_NAMESPACE, "boottime 0 5000000", "--"] })
      let reader: Child | undefined
      try {
        assert.match(fs.readFileSync(`/proc/${pid}/timens_offsets`, "utf8"), /boottime\s+0\s+5000000/)
        const start = recordOf(file)["start"]
        assert.isString(start, "its start time recorded")
        assert.include([0, 1], Number(start) - Number(startOf(pid)), "the machine's, give or take a tick")
        assert.deepStrictEqual(await Effect.runPromise(writer(file)), { pid, host: os.hostname() }, "named from the machine")
        fs.writeFileSync(`${other}.lock.pid`, JSON.stringify({ ...recordOf(file), start: String(Number(startOf(pid)) + 3) }))
        assert.include((await Effect.runPromise(writer(other)))?.unknown, `names process ${pid}, which has exited`, "from the machine")
        reader = startChild(["writer", file, other], { prefix: ["nsenter", "--target", String(pid), "--time", "--"] })
        assert.strictEqual(await reader.exited, 0)
        const [alive, gone] = reader.lines.map((l) => JSON.parse(l) as { readonly unknown?: string; readonly pid?: number; readonly host?: string })
        assert.deepStrictEqual(alive, { pid, host: os.hostname() }, "named from its own time namespace")
        assert.isUndefined(gone?.pid, "another start time, not compared: named")
        assert.include(gone?.unknown, `its record ${other}.lock.pid names process ${pid}, which has exited`)
      } finally {
        await killAll(inner, holder, ...(reader !== undefined ? [reader] : []))
      }
    })

    it("a holder in a pid namespace of its own that sees its parent's /proc records its own start time, and is told alive or exited there and here", async () => {
      // the other lock's record names process 1 of the inner namespace with this machine's init's start time: in the inner
      // namespace, its process 1 (the holder) was not started then, so it is not that one
      const { file, other, inner, holder, pid } = await holderBeside({ pidNamespace: "sees its parent's /proc" })
      let reader: Child | undefined
      try {
        const record = recordOf(file)
        assert.deepInclude(record, { pid: 1, pidns: fs.readlinkSync(`/proc/${pid}/ns/pid`), start: startOf(pid) }, "its own start time, not the machine's init's")
        assert.deepStrictEqual(await Effect.runPromise(writer(file)), { pid, host: os.hostname() }, "found from the parent namespace")
        fs.writeFileSync(`${other}.lock.pid`, JSON.stringify({ ...record, start: startOf(1) }))
        // a reader in the holder's namespace, seeing this /proc too
        reader = startChild(["writer", file, other], { prefix: ["nsenter", "--target", String(pid), "--pid", "--"] })
        assert.strictEqual(await reader.exited, 0)
        const [alive, gone] = reader.lines.map((l) => JSON.parse(l) as { readonly unknown?: string; readonly pid?: number; readonly host?: string })
        assert.deepStrictEqual(alive, { pid: 1, host: os.hostname() }, "the holder: its process 1, alive")
        assert.isUndefined(gone?.pid)
        assert.include(gone?.unknown, `its record ${other}.lock.pid names process 1, which has exited`)
      } finally {
        await killAll(inner, holder, ...(reader !== undefined ? [reader] : []))
      }
    })

    it("a writer in another process is refused while this process holds the journal", async () => {
      const file = sqliteFile()
      await withSqlite(file, () =>
        Effect.gen(function*() {
          assert.deepInclude(recordOf(file), { pid: process.pid, host: os.hostname(), by: "controller" })
          const lines = yield* Effect.promise(() => runChild(["open", file]))
          assert.deepStrictEqual(lines, ["error Locked"])
        }))
      assert.deepStrictEqual(await runChild(["open", file]), ["ok"])
    })

    it("a stale lock (a dead holder's pid file) or an unreadable lock file is taken over", async () => {
      const file = sqliteFile()
      const dead = startChild(["bogus-mode", file])
      await dead.exited
      fs.writeFileSync(`${file}.lock.pid`, `${dead.proc.pid}\n`)
      await withSqlite(file, () =>
        Effect.sync(() => assert.deepInclude(recordOf(file), { pid: process.pid, host: os.hostname(), by: "controller" })))
      fs.writeFileSync(`${file}.lock`, "garbage: the lock file of an older trex")
      await withSqlite(file, (j) => j.append([eventAt(1)]))
      assert.isFalse(fs.existsSync(`${file}.lock.pid`))
    })

    it("a second writer in the same process is refused with Locked", async () => {
      const file = sqliteFile()
      await withSqlite(file, () =>
        Effect.gen(function*() {
          const exit = yield* Effect.exit(Effect.gen(function*() {
            yield* Journal
          }).pipe(Effect.provide(Journal.layerSqlite(file))))
          assert.isTrue(Exit.isFailure(exit), "a second writer opened the journal")
          const error = yield* Effect.flip(Effect.gen(function*() {
            yield* Journal
          }).pipe(Effect.provide(Journal.layerSqlite(file))))
          assert.strictEqual(error.reason, "Locked")
        }))
    })

    it("the lock lockWriter took is the one the journal opened in the same process then uses; released once both let go of it", async () => {
      const file = sqliteFile()
      await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        yield* lockWriter(file)
        // taken again in this process: refused; the journal opened meanwhile uses it, and a second journal is refused
        assert.strictEqual((yield* Effect.flip(Effect.scoped(lockWriter(file)))).reason, "Locked")
        yield* Effect.scoped(Effect.gen(function*() {
          const journal = yield* Journal
          yield* journal.append([JournalEvent.make("RunResumed", { at: 0 })])
          assert.strictEqual((yield* Effect.flip(Effect.provide(Effect.gen(function*() {
            return yield* Journal
          }), Journal.layerSqlite(file)))).reason, "Locked")
        }).pipe(Effect.provide(Journal.layerSqlite(file))))
        // the journal closed: still held, by lockWriter
        assert.deepStrictEqual(yield* writer(file), { pid: process.pid, host: os.hostname() })
        assert.isTrue(fs.existsSync(`${file}.lock.pid`))
      })))
      assert.isUndefined(await Effect.runPromise(writer(file)))
      assert.isFalse(fs.existsSync(`${file}.lock.pid`))
    })
  })

  describe("a run directory this process cannot write (a read-only mount)", () => {
    /** `dir` mounted read-only at a fresh path for the duration of `f` (root's permissions ignore modes; a mount does not). */
    const readOnlyView = async <A>(dir: string, f: (view: string) => Promise<A>): Promise<A> => {
      const view = path.join(tempDir(), "ro")
      fs.mkdirSync(view)
      execFileSync("mount", ["--bind", dir, view])
      try {
        execFileSync("mount", ["-o", "remount,bind,ro", view])
        return await f(view)
      } finally {
        execFileSync("umount", [view])
      }
    }

    it("a journal whose writer closed is read whole", async () => {
      const file = sqliteFile()
      await withSqlite(file, (j) => j.append([1, 2, 3].map(eventAt)))
      const read = await readOnlyView(path.dirname(file), async (view) => {
        assert.throws(() => fs.writeFileSync(path.join(view, "probe"), ""), /EROFS/)
        return withSqlite(path.join(view, "journal.sqlite"), (j) => j.read(), { readonly: true })
      })
      assert.deepStrictEqual(read.map((e) => e.event), [1, 2, 3].map(eventAt))
    })

    it("a journal with events still in its -wal file (a killed writer's) is refused with what to do, not read short", async () => {
      const file = sqliteFile()
      const copy = path.join(tempDir(), "copy")
      fs.mkdirSync(copy)
      // copied while the writer is open: the events are in journal.sqlite-wal, not yet in journal.sqlite
      await withSqlite(file, (j) =>
        Effect.gen(function*() {
          yield* j.append([1, 2, 3].map(eventAt))
          for (const f of ["journal.sqlite", "journal.sqlite-wal"]) fs.copyFileSync(path.join(path.dirname(file), f), path.join(copy, f))
        }))
      assert.isAbove(fs.statSync(path.join(copy, "journal.sqlite-wal")).size, 0)
      const error = await readOnlyView(copy, (view) => openError(path.join(view, "journal.sqlite"), { readonly: true }))
      assert.match(error.message, /its directory is not writable, and its latest events are still in journal\.sqlite-wal.*copy the run directory somewhere writable/)
      // the copy itself, where SQLite may write, reads whole
      const read = await withSqlite(path.join(copy, "journal.sqlite"), (j) => j.read(), { readonly: true })
      assert.strictEqual(read.length, 3)
    })
  })

  describe("a full disk (a tmpfs of its own, mounted for the test: needs root, as CI runs)", () => {
    /** `f` on a fresh 2 MB tmpfs, unmounted after. */
    const onSmallDisk = async <A>(f: (dir: string) => Promise<A>): Promise<A> => {
      const dir = path.join(tempDir(), "disk")
      fs.mkdirSync(dir)
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", dir])
      try {
        return await f(dir)
      } finally {
        execFileSync("umount", ["-l", dir])
      }
    }
    /** Fill the disk to its last byte (the write fails with ENOSPC part way). */
    const fill = (dir: string) => assert.throws(() => fs.writeFileSync(path.join(dir, "filler"), Buffer.alloc(8 << 20)), /ENOSPC/)

    it("an append fails as NoSpace naming the folder and the fix; the journal keeps every entry and appends again once there is room", () =>
      onSmallDisk(async (dir) => {
        const file = path.join(dir, "run", "journal.sqlite")
        const { error, appended, after } = await withSqlite(file, (j) =>
          Effect.gen(function*() {
            yield* j.append([1, 2, 3].map(eventAt))
            fill(dir)
            // SQLite reuses the pages its -wal file has already: appends go on until those are used up
            let appended = 3
            let error: JournalError | undefined
            while (error === undefined && appended < 5_000) {
              error = yield* j.append([eventAt(appended + 1)]).pipe(Effect.match({ onFailure: (e) => e, onSuccess: () => undefined }))
              if (error === undefined) appended++
            }
            const before = yield* j.read()
            assert.deepStrictEqual(before.map((e) => e.event), Array.from({ length: appended }, (_, i) => eventAt(i + 1)))
            fs.rmSync(path.join(dir, "filler"))
            yield* j.append([eventAt(appended + 1)])
            return { error, appended, after: yield* j.read() }
          }))
        assert.isDefined(error)
        assert.strictEqual(error!.reason, "NoSpace")
        assert.include(error!.message, `the disk holding ${path.join(dir, "run")} is full: free space there, then continue the run with \`trex resume ${path.join(dir, "run")}\``)
        assert.deepStrictEqual(after.map((e) => e.seq), Array.from({ length: appended + 1 }, (_, i) => i + 1))
        // closed and read again: intact, nothing damaged
        const intact = await Effect.runPromise(readIntact(file))
        assert.isUndefined(intact.damage)
        assert.strictEqual(intact.entries.length, appended + 1)
      }))

    it("a journal opened for writing on a full disk fails as NoSpace, not as a stack from its lock", () =>
      onSmallDisk(async (dir) => {
        fill(dir)
        const error = await openError(path.join(dir, "run", "journal.sqlite"))
        assert.strictEqual(error.reason, "NoSpace")
        assert.match(error.message, /\(no space left on device\): the disk holding .*\/run is full: free space there/)
      }))
  })

  describe("format version", () => {
    const withVersion = (version: number) => {
      const file = sqliteFile()
      const db = new DatabaseSync(file)
      db.exec("CREATE TABLE events (seq INTEGER PRIMARY KEY, tag TEXT NOT NULL, payload TEXT NOT NULL, crc INTEGER NOT NULL)")
      db.exec(`PRAGMA user_version = ${version}`)
      db.close()
      return file
    }

    it("a journal with a newer user_version is refused with Version", async () => {
      const file = withVersion(JournalEvent.FORMAT_VERSION + 1)
      const error = await openError(file)
      assert.strictEqual(error.reason, "Version")
      assert.match(error.message, /upgrade trex/)
      assert.isFalse(fs.existsSync(`${file}.lock.pid`), "a refused open releases the lock")
      assert.deepStrictEqual(await runChild(["open", file]).catch(() => ["?"]), ["error Version"])
    })

    it("a file at this format without the events table (made by another program) is Corrupt, for writers and readers, not a crash", async () => {
      const file = sqliteFile()
      const db = new DatabaseSync(file)
      db.exec(`PRAGMA user_version = ${JournalEvent.FORMAT_VERSION}`)
      db.close()
      for (const options of [{}, { readonly: true }]) {
        const error = await openError(file, options)
        assert.strictEqual(error.reason, "Corrupt", JSON.stringify(options))
        assert.match(error.message, /is not a readable trex journal \(no such table: events\): it is damaged or was not written by trex/)
      }
      assert.isFalse(fs.existsSync(`${file}.lock.pid`), "a refused open releases the lock")
    })

    it("a read-only open of a newer journal is refused with Version too", async () => {
      const error = await openError(withVersion(JournalEvent.FORMAT_VERSION + 1), { readonly: true })
      assert.strictEqual(error.reason, "Version")
    })

    it("migrates from version 0: an empty file and an empty database", async () => {
      const empty = sqliteFile()
      fs.writeFileSync(empty, "")
      const emptyDb = sqliteFile()
      new DatabaseSync(emptyDb).close()
      for (const file of [empty, emptyDb]) {
        await withSqlite(file, (j) =>
          Effect.gen(function*() {
            assert.deepStrictEqual(yield* j.read(), [])
            yield* j.append([eventAt(1)])
          }))
        const db = new DatabaseSync(file, { readOnly: true })
        assert.strictEqual((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version, JournalEvent.FORMAT_VERSION)
        db.close()
        assert.strictEqual(assertPrefix(await withSqlite(file, (j) => j.read())), 1)
      }
    })
  })
})
