import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { DatabaseSync } from "node:sqlite"
import { assert, describe, it } from "@effect/vitest"
import { Errors, Journal, JournalEvent, type Task, TaskFile } from "@trex/core"
import { type Explorer, ResultCache } from "@trex/mcts"
import { Effect, Exit, Fiber, Logger, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as RunDir from "../src/RunDir.ts"
import * as Cli from "../src/Cli.ts"
import * as Trex from "../src/Trex.ts"

const root = path.resolve(import.meta.dirname, "../../..")
const fixtures = path.join(import.meta.dirname, "fixtures")
const recorded = path.join(root, "examples/recorded-table/task.yaml")
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "trex-api-"))

/** The InvalidInput an effect fails with (it must fail with one). */
const invalidOf = <A, E>(self: Effect.Effect<A, E>) =>
  Effect.flip(self).pipe(Effect.map((e) => {
    assert.instanceOf(e, Errors.InvalidInput, String(e))
    return e as Errors.InvalidInput
  }))

describe("Trex: a new run gets a directory of its own", () => {
  it("RunDir.create: a second run in the same second takes the next free suffix, never the first's directory", () => {
    const out = path.join(tmp(), "runs")
    const now = new Date(Date.UTC(2026, 10, 22, 3, 15, 0))
    const ids = [1, 2, 3].map(() => RunDir.create(out, "Quick Start", now))
    assert.deepStrictEqual(ids.map((r) => r.runId), ["20261122-031500-quick-start", "20261122-031500-quick-start-2", "20261122-031500-quick-start-3"])
    for (const { runDir, runId } of ids) assert.strictEqual(runDir, path.resolve(out, runId))
    assert.deepStrictEqual(fs.readdirSync(out).sort(), ids.map((r) => r.runId), "ids sort in the order the runs started")
  })

  it.live("two runs of one task started in the same second run side by side, neither resuming the other", () =>
    Effect.gen(function*() {
      const out = tmp()
      // both prepared at one instant: the same second, so the same stamped id
      const [a, b] = yield* Effect.all(
        [1, 2].map((seed) => Trex.prepare({ taskFile: recorded, out, seed, maxTrials: 2 })),
        { concurrency: "unbounded" }
      ).pipe(Effect.provide(TestClock.layer()))
      assert.strictEqual(a!.runId, `${RunDir.newRunId("recorded-nmt-ja-en", new Date(0))}`)
      assert.strictEqual(b!.runId, `${a!.runId}-2`)
      assert.notStrictEqual(a!.runDir, b!.runDir)
      yield* Effect.all([a!, b!].map((p) => Trex.runPrepared(p)), { concurrency: "unbounded" })
      for (const [prepared, seed] of [[a!, 1], [b!, 2]] as const) {
        const events = (yield* RunDir.readEntries(prepared.runDir)).map((e) => e.event)
        const started = events.filter((e) => e._tag === "RunStarted")
        assert.deepStrictEqual(started.map((e) => [e.runId, e.seed]), [[prepared.runId, seed]])
        assert.isFalse(events.some((e) => e._tag === "RunResumed"), "not resumed")
        assert.isTrue(events.some((e) => e._tag === "RunFinished"))
      }
    }))
})

describe("Trex.runPrepared's onEnded", () => {
  it.live("is given, once, the run as its journal holds it at the end: what report.md was written from", () =>
    Effect.gen(function*() {
      const prepared = yield* Trex.prepare({ taskFile: recorded, out: tmp(), seed: 1, maxTrials: 3 })
      const ended: Array<RunDir.RunInfo> = []
      const summary = yield* Trex.runPrepared(prepared, { onEnded: (info) => void ended.push(info) })
      assert.strictEqual(ended.length, 1)
      const info = ended[0]!
      assert.strictEqual(info.finished?.reason, summary.reason)
      assert.strictEqual(info.tree.view.size, summary.tree.size)
      assert.deepStrictEqual(info.entries.map((e) => e.seq), (yield* RunDir.readEntries(prepared.runDir)).map((e) => e.seq))
      assert.include(fs.readFileSync(path.join(prepared.runDir, "report.md"), "utf8"), info.tree.view.best()!.id)
    }))
})

describe("a resumed run's entries, read by prepare", () => {
  it.live("are let go of once replayed: trex resume (Cli.execute, its live view, runPrepared, the explorer) holds none of them while the run goes on", () =>
    Effect.gen(function*() {
      v8.setFlagsFromString("--expose-gc")
      const gc = vm.runInNewContext("gc") as () => void
      const first = yield* Trex.prepare({ taskFile: recorded, out: tmp(), seed: 1, maxTrials: 3 })
      yield* Trex.runPrepared(first)
      // the entries prepare read, handed to execute and dropped here (made and given in a frame that ends)
      const { held, run } = yield* Effect.suspend(() =>
        Effect.map(Trex.prepare({ resume: first.runDir, maxTrials: 6 }), (prepared) => ({ held: new WeakRef(prepared.journaled!), run: Cli.execute(prepared) }))
      )
      // looked at as the resumed session's trials finish (each is a line of the live view, written as it comes)
      const freed: Array<boolean> = []
      const write = process.stdout.write
      process.stdout.write = ((chunk: string | Uint8Array, ...rest: Array<never>) => {
        if (typeof chunk === "string" && /^done +n[4-6] /.test(chunk)) {
          gc()
          freed.push(held.deref() === undefined)
        }
        return write.call(process.stdout, chunk, ...rest)
      }) as typeof process.stdout.write
      yield* run.pipe(Effect.ensuring(Effect.sync(() => void (process.stdout.write = write))))
      // before, the entries were held for the whole session (by execute's frame and its live view, runPrepared's closures, the explorer's options and frame)
      assert.deepStrictEqual(freed, [true, true, true])
    }), 60_000)
})

describe("Trex: options are checked before anything is written", () => {
  const refused = (options: unknown, source: string, message: RegExp) =>
    Effect.gen(function*() {
      const out = tmp()
      const base = typeof options === "object" && options !== null && !("out" in options) ? { ...options, out } : options
      const e = yield* invalidOf(Trex.prepare(base as Trex.Options))
      assert.strictEqual(e.source, source, e.message)
      assert.match(e.message, message)
      assert.deepStrictEqual(fs.readdirSync(out), [], "no run directory")
    })

  it.effect("a value of the wrong type, from an untyped caller, is named with what the field takes", () =>
    Effect.gen(function*() {
      const taskFile = path.join(fixtures, "toy.task.yaml")
      yield* refused({ taskFile, maxTrials: "5" }, "maxTrials", /maxTrials: expected an integer of at least 1 \(the trial budget, e\.g\. 5\), got "5" \(a string: write 5 without quotes\)/)
      yield* refused({ taskFile, maxTrials: 0 }, "maxTrials", /maxTrials: expected an integer of at least 1/)
      yield* refused({ taskFile, seed: "x" }, "seed", /seed: expected an integer \(e\.g\. 1\), got "x"/)
      yield* refused({ taskFile, seed: Number.NaN }, "seed", /seed: expected an integer \(e\.g\. 1\), got NaN/)
      yield* refused({ taskFile, out: 5 }, "out", /out: expected the directory that holds run directories, e\.g\. "trex-runs", got 5/)
      yield* refused({ taskFile, backend: "simulater" }, "backend", /backend: expected one of "local", "simulator".*; did you mean "simulator"\?/)
      // a webhook's address (a secret) on its own, or a list of them, as --notify takes it: what the option takes, the address not shown
      const what = `expected an object \\(the webhooks told of the run's end, e\\.g\\. \\{ urls: \\["https:\\/\\/hooks\\.slack\\.com\\/services\\/T000\\/B000\\/XXXX"\\], best: true \\}\\)`
      yield* refused({ taskFile, notify: "https://hooks.example/T1/secret" }, "notify", new RegExp(`notify: ${what}, got a string: give an address in urls, \\{ urls: \\[address\\] \\}$`))
      yield* refused({ taskFile, notify: ["https://hooks.example/T1/secret"] }, "notify", new RegExp(`notify: ${what}, got a list: give it as urls, \\{ urls: \\[\\.\\.\\.\\] \\}$`))
      yield* refused({ taskFile, seed: "x", concurrency: 0 }, "options", /seed: .*\n {2}concurrency: expected an integer of at least 1/)
      // how the model retries and waits (trex run --model-max-retries, --model-retry-delay, --model-max-retry-delay, --model-timeout)
      yield* refused({ taskFile, modelMaxRetries: 1.5 }, "modelMaxRetries", /modelMaxRetries: expected an integer of at least 0 \(retries of a model call that failed retryably, after its first attempt, e\.g\. 4\), got 1\.5/)
      yield* refused({ taskFile, modelRetryDelaySeconds: -1 }, "modelRetryDelaySeconds", /modelRetryDelaySeconds: expected a number of at least 0 \(seconds: the first wait before a model call's retry/)
      yield* refused({ taskFile, modelMaxRetryDelaySeconds: "30" }, "modelMaxRetryDelaySeconds", /modelMaxRetryDelaySeconds: expected a number of at least 0/)
      yield* refused({ taskFile, modelTimeoutSeconds: 0 }, "modelTimeoutSeconds", /modelTimeoutSeconds: expected a number above 0 and at most 2147483 \(seconds one attempt of a model call may take, e\.g\. 600\), got 0/)
      yield* refused({ taskFile, modelTimeoutSeconds: 3e6 }, "modelTimeoutSeconds", /modelTimeoutSeconds: expected a number above 0 and at most 2147483 \(seconds one attempt .*\), got 3000000/)
      // how the explorer asks a failed researcher again (trex run --researcher-retries, --researcher-retry-delay)
      yield* refused({ taskFile, researcherRetries: -1 }, "researcherRetries", /researcherRetries: expected an integer of at least 0 \(times a researcher that failed retryably is asked again before the run stops, e\.g\. 3\), got -1/)
      yield* refused({ taskFile, researcherRetryDelaySeconds: Number.NaN }, "researcherRetryDelaySeconds", /researcherRetryDelaySeconds: expected a wait of 0 or more seconds \(the first wait before a researcher that failed retryably is asked again, doubled each time\), e\.g\. 2, got NaN/)
      // a resume takes them, for its session: refused here only for the run that is not there
      const resumed = yield* invalidOf(Trex.prepare({ resume: path.join(tmp(), "no-such-run"), modelMaxRetries: 8, modelTimeoutSeconds: 1200, researcherRetries: 5, researcherRetryDelaySeconds: 10 }))
      assert.notInclude(resumed.message, "leave out")
    }))

  it.effect("an unknown key is refused with the option it likely misspells", () =>
    refused({ taskFile: path.join(fixtures, "toy.task.yaml"), concurency: 4 }, "concurency", /concurency: not an option; did you mean "concurrency"\?/))

  it.effect("what to run is said once: a task file, a task or a run to resume, and a resume takes only maxTrials", () =>
    Effect.gen(function*() {
      yield* refused({}, "options", /give taskFile \(the path of a task file\), task \(a task object\) or resume \(a run directory\)/)
      yield* refused({ taskFile: "a.yaml", task: {} }, "task", /give taskFile or task, not both/)
      yield* refused({ resume: "trex-runs/x", out: "y", seed: 2 }, "out", /a resumed run keeps the task and settings it started with: leave out out, seed/)
      const e = yield* invalidOf(Trex.prepare(5 as unknown as Trex.Options))
      assert.match(e.message, /the options are 5: give an object/)
    }))

  it.live("a task whose default strategy lies outside its search space is refused, naming the field, the values allowed and the fix, as trex run and trex check refuse it", () =>
    Effect.gen(function*() {
      const task = {
        name: "t",
        objective: "o",
        metric: { name: "score", direction: "maximize" as const },
        recipe: { command: ["true"] },
        searchSpace: { parameters: [{ path: "training.epochs", kind: "ordinal" as const, values: [1, 2, 3] }] },
        defaultStrategy: { data: { sources: [{ name: "toy" }] }, training: { learningRate: 0.001, epochs: 7, batchSize: 8 } }
      }
      const field = /defaultStrategy\.training\.epochs: 7 is not one of searchSpace\.parameters\[0\]\.values \[1, 2, 3\]: .*\. Set it to one of them, or add 7 to them$/m
      yield* refused({ task }, "task", field)
      const out = tmp()
      const error = yield* Effect.promise(() => Trex.start({ task, out }).then(() => undefined, (e: unknown) => e))
      assert.instanceOf(error, Errors.InvalidInput)
      assert.match((error as Errors.InvalidInput).message, field)
      assert.deepStrictEqual(fs.readdirSync(out), [])
    }))

  it.live("Trex.start rejects with the InvalidInput, and leaves no run directory", () =>
    Effect.promise(async () => {
      const out = tmp()
      const error = await Trex.start({ taskFile: path.join(fixtures, "toy.task.yaml"), out, maxTrials: "5" as unknown as number }).then(() => undefined, (e: unknown) => e)
      assert.instanceOf(error, Errors.InvalidInput)
      assert.deepStrictEqual(fs.readdirSync(out), [])
    }))
})

describe("Trex: a folder for runs where no folder can be made", () => {
  // In /proc, mkdir answers ENOENT under a folder that exists, and Node's recursive mkdirSync asks again
  // without end: each is run in a child process, killed (trex run handles SIGTERM) if it hangs so.
  const out = `/proc/trex-runs-${process.pid}/nested`
  const fix = `cannot make /proc/trex-runs-${process.pid}: mkdir answers ENOENT though /proc exists: its filesystem makes no folders (as /proc's): ` +
    `name a folder on a disk you can write (e.g. trex-runs)`
  const child = (args: ReadonlyArray<string>) => spawnSync(process.execPath, ["--conditions=@trex/source", ...args], { cwd: root, encoding: "utf8", timeout: 60_000, killSignal: "SIGKILL" })

  it("trex run --out under /proc exits 2 at once, naming the folder and the fix, detached too (it hung in mkdirSync)", { timeout: 70_000 }, () => {
    const r = child([path.join(root, "packages/cli/src/bin.ts"), "run", path.join(fixtures, "toy.task.yaml"), "--out", out, "--max-trials", "1"])
    assert.strictEqual(r.signal, null, "trex run hung")
    assert.strictEqual(r.status, 2, r.stdout + r.stderr)
    assert.strictEqual(r.stdout, "")
    assert.match(r.stderr, new RegExp(`^trex: cannot make the run directory ${out}/\\d{8}-\\d{6}-toy under ${out} \\(--out\\): `))
    assert.include(r.stderr, fix)
    // detached: the launcher makes the folder for its controller's output first
    const detached = child([path.join(root, "packages/cli/src/bin.ts"), "run", path.join(fixtures, "toy.task.yaml"), "--out", out, "--max-trials", "1", "--detach"])
    assert.strictEqual(detached.signal, null, "trex run --detach hung")
    assert.strictEqual(detached.status, 2, detached.stdout + detached.stderr)
    assert.match(detached.stderr, new RegExp(`^trex: cannot write the detached controller's output to ${out}/\\.trex-detached-`))
    assert.include(detached.stderr, fix)
  })

  it("Trex.start with out under /proc rejects at once with InvalidInput on out, naming the folder and the fix", { timeout: 70_000 }, () => {
    const script = `
      import { Trex } from "@trex/cli"
      const [taskFile, out] = process.argv.slice(1)
      const error = await Trex.start({ taskFile, out, maxTrials: 1, logLevel: "None" }).then(() => undefined, (e) => e)
      console.log(JSON.stringify({ tag: error?._tag, source: error?.source, message: error?.message }))`
    const r = child(["--input-type=module", "-e", script, path.join(fixtures, "toy.task.yaml"), out])
    assert.strictEqual(r.signal, null, "Trex.start hung")
    assert.strictEqual(r.status, 0, r.stderr)
    const seen = JSON.parse(r.stdout) as { tag: string; source: string; message: string }
    assert.deepInclude(seen, { tag: "InvalidInput", source: "out" })
    assert.include(seen.message, fix)
  })
})

describe("Trex.start: a run that fails after it started", () => {
  it("does not end the embedding process while nobody awaits done: done rejects with the typed error when awaited later", { timeout: 60_000 }, () => {
    // A second start that resumes a run this process still runs: prepared (the journal reads), it fails
    // as it opens the journal (locked). The caller reads its events to their end, then does other work
    // (stops the first run and waits for it) before it awaits `done`, as an application does.
    const script = `
      import { Trex } from "@trex/cli"
      const [taskFile, out] = process.argv.slice(1)
      const first = await Trex.start({ taskFile, out, maxTrials: 2, paused: true, logLevel: "None" })
      for await (const { event } of first.events) if (event._tag === "RunStarted") break
      const second = await Trex.start({ resume: first.runDir, logLevel: "None" })
      for await (const _ of second.events);
      first.stop("cancel")
      const stopped = await first.done
      const error = await second.done.then(() => undefined, (e) => e)
      console.log(JSON.stringify({ first: stopped.reason, tag: error?._tag, reason: error?.reason, message: error?.message }))`
    const r = spawnSync(process.execPath, ["--conditions=@trex/source", "--input-type=module", "-e", script, path.join(fixtures, "toy.task.yaml"), tmp()], {
      cwd: root,
      encoding: "utf8",
      timeout: 60_000
    })
    assert.strictEqual(r.status, 0, r.stderr)
    const seen = JSON.parse(r.stdout) as { first: string; tag: string; reason: string; message: string }
    assert.deepInclude(seen, { first: "stopped by request", tag: "JournalError", reason: "Locked" })
    assert.match(seen.message, /already open for writing in this process/)
  })
})

describe("Trex: resuming a run wired in code", () => {
  /** A run directory whose journal holds a RunStarted with these recorded options, as Explorer.run writes it. */
  const handWired = (options: Record<string, string>) =>
    Effect.gen(function*() {
      const { task } = yield* TaskFile.load(path.join(fixtures, "toy.task.yaml"))
      const runDir = path.join(tmp(), "my-run")
      fs.mkdirSync(runDir)
      yield* Effect.scoped(Effect.gen(function*() {
        const journal = yield* Journal.Journal
        yield* journal.append([JournalEvent.make("RunStarted", { runId: "my-run", task, seed: 1, options, at: 1 })])
      }).pipe(Effect.provide(Journal.Journal.layerSqlite(RunDir.journalFile(runDir)))))
      return runDir
    })

  it.effect("one that recorded no CLI settings: resume says to resume it from code; status still reads it", () =>
    Effect.gen(function*() {
      const runDir = yield* handWired({})
      const e = yield* invalidOf(Trex.prepare({ resume: runDir }))
      assert.match(e.message, /this run was not started by `trex run` or Trex\.start: it was wired in code \(Explorer\.run with its own layers\)/)
      assert.include(e.message, `call Explorer.run again with the same runId (my-run) and runDir, Journal.Journal.layerSqlite(${JSON.stringify(RunDir.journalFile(runDir))})`)
      assert.match(e.message, /`trex status` and `trex report` work on it/)
      assert.notMatch(e.message, /not readable by this trex/)
      assert.strictEqual((yield* RunDir.load(runDir)).started.runId, "my-run")
    }))

  it.effect("one whose settings name a backend this trex does not know: recorded by another trex", () =>
    Effect.gen(function*() {
      const runDir = yield* handWired({
        taskFile: "t.yaml",
        taskDir: ".",
        backend: "modal",
        researcher: "heuristic",
        executor: "template",
        policy: "uct",
        scheduler: "none",
        modelApi: "anthropic"
      })
      const e = yield* invalidOf(Trex.prepare({ resume: runDir }))
      assert.match(e.message, /the run's recorded settings are not ones this trex knows:\n {2}backend: Expected "local" \| "simulator"/)
      assert.match(e.message, /started by another version of trex/)
    }))
})

describe("Trex.search: the event stream", () => {
  it.live("a reader forked after search returns gets every event from RunStarted, and its stream ends with the run", () =>
    Effect.scoped(Effect.gen(function*() {
      const search = yield* Trex.search({ taskFile: recorded, out: tmp(), maxTrials: 3, reuse: false })
      const reader = yield* Stream.runCollect(search.events).pipe(Effect.forkChild)
      const firstThree = yield* search.events.pipe(Stream.take(3), Stream.runCollect, Effect.forkChild)
      // the type says how it can fail (a BackendError or an Explorer.Error), not `unknown`
      const awaited: Effect.Effect<Explorer.Summary, Errors.BackendError | Explorer.Error> = search.await
      const summary = yield* awaited
      const journaled = yield* RunDir.readEntries(search.runDir)
      const seen = yield* Fiber.join(reader)
      assert.deepStrictEqual(seen.map((e) => e.seq), journaled.map((e) => e.seq), "every journaled event, in order")
      assert.strictEqual(seen[0]!.event._tag, "RunStarted")
      assert.strictEqual(seen.at(-1)!.event._tag, "RunFinished")
      assert.deepStrictEqual((yield* Fiber.join(firstThree)).map((e) => e.seq), [1, 2, 3])
      // a reader that starts after the run ended gets the whole run, and its end
      const late = yield* Stream.runCollect(search.events)
      assert.deepStrictEqual(late.map((e) => e.seq), journaled.map((e) => e.seq))
      assert.isDefined(summary.reason)
    })))

  it.live("an interrupted search ends its stream too, and its await says it was interrupted", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const search = yield* Trex.search({ taskFile: recorded, out: tmp(), maxTrials: 3, paused: true }).pipe(Scope.provide(scope))
      const reader = yield* Stream.runCollect(search.events).pipe(Effect.forkChild)
      const awaited = yield* Effect.exit(search.await).pipe(Effect.forkChild)
      // paused, it records its start and waits
      yield* Effect.promise(() => waitFor(() => fs.existsSync(RunDir.journalFile(search.runDir)) && entriesOf(search.runDir).length > 0))
      yield* Scope.close(scope, Exit.void)
      const seen = yield* Fiber.join(reader)
      assert.strictEqual(seen[0]?.event._tag, "RunStarted")
      assert.isFalse(seen.some((e) => e.event._tag === "NodeFinished"), "no trial ran while paused")
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.join(awaited)))
    }))
})

describe("Trex: options of the run itself", () => {
  it.live("paused: the run records its start and starts no trial until resumed", () =>
    Effect.scoped(Effect.gen(function*() {
      const search = yield* Trex.search({ taskFile: recorded, out: tmp(), maxTrials: 2, paused: true, reuse: false })
      // the run records its start in the background: waited for (a loaded machine may take a while), then given
      // the time an unpaused run takes to propose its first trial
      const started = () => entriesOf(search.runDir).some((e) => e.event._tag === "RunStarted")
      for (let i = 0; i < 600 && !started(); i++) yield* Effect.sleep("50 millis")
      yield* Effect.sleep("300 millis")
      const before = entriesOf(search.runDir).map((e) => e.event._tag)
      assert.include(before, "RunStarted")
      assert.notInclude(before, "NodeProposed")
      yield* search.resume
      const summary = yield* search.await
      assert.strictEqual(summary.usage.trials, 2)
    })))

  it.live("a resumed run may start paused too, and a bad paused or logLevel is named", () =>
    Effect.gen(function*() {
      const e = yield* invalidOf(Trex.prepare({ taskFile: recorded, out: tmp(), logLevel: "Loud" } as unknown as Trex.Options))
      assert.strictEqual(e.source, "logLevel")
      assert.match(e.message, /logLevel: expected one of "All", "Fatal", "Error", "Warn", "Info", "Debug", "Trace", "None" \(the least severe log entry written\), got "Loud"/)
      const p = yield* invalidOf(Trex.prepare({ taskFile: recorded, out: tmp(), paused: "yes" } as unknown as Trex.Options))
      assert.strictEqual(p.source, "paused")
    }))

  /** A search whose report.md cannot be written (a directory is in its way): the run logs a warning at its end. */
  const warnings = (logLevel: Trex.Options["logLevel"]) =>
    Effect.gen(function*() {
      const logged: Array<string> = []
      const logger = Logger.make(({ logLevel: level, message }) => void logged.push(`${level}: ${String(message)}`))
      yield* Effect.scoped(Effect.gen(function*() {
        const search = yield* Trex.search({ taskFile: recorded, out: tmp(), maxTrials: 1, reuse: false, paused: true, ...(logLevel !== undefined ? { logLevel } : {}) })
        fs.mkdirSync(path.join(search.runDir, "report.md"))
        yield* search.resume
        yield* search.await
      })).pipe(Effect.provide(Logger.layer([logger])))
      return logged
    })

  it.live("report.md is written when a search ends; one that cannot be written is a warning, which logLevel silences", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual((yield* warnings(undefined)).filter((l) => /report\.md/.test(l)).map((l) => l.replace(/ .*/, "")), ["Warn:"])
      assert.match((yield* warnings("Warn")).join("\n"), /cannot write .*report\.md: EISDIR/)
      assert.deepStrictEqual(yield* warnings("Error"), [])
      assert.deepStrictEqual(yield* warnings("None"), [])
    }))

  it.live("Trex.start writes report.md at the end of the run, once (the CLI writes it the same way)", () =>
    Effect.promise(async () => {
      const handle = await Trex.start({ taskFile: recorded, out: tmp(), maxTrials: 2, reuse: false })
      let events = 0
      for await (const _ of handle.events) events++
      const summary = await handle.done
      const report = fs.readFileSync(path.join(handle.runDir, "report.md"), "utf8")
      assert.include(report, summary.runId)
      assert.strictEqual(events, entriesOf(handle.runDir).length)
    }))
})

describe("Trex: results of earlier runs", () => {
  /** A run directory under `root` whose journal holds a RunStarted of `task` and a second entry, damaged unless `intact`. */
  const journalOf = (root: string, name: string, task: Task.Task, intact: boolean) =>
    Effect.gen(function*() {
      const runDir = path.join(root, name)
      fs.mkdirSync(runDir, { recursive: true })
      yield* Effect.scoped(Effect.gen(function*() {
        const journal = yield* Journal.Journal
        yield* journal.append([
          JournalEvent.make("RunStarted", { runId: name, task, seed: 1, options: {}, at: 1 }),
          JournalEvent.make("RunResumed", { at: 2 })
        ])
      }).pipe(Effect.provide(Journal.Journal.layerSqlite(RunDir.journalFile(runDir)))))
      if (!intact) {
        const db = new DatabaseSync(RunDir.journalFile(runDir))
        db.exec("UPDATE events SET crc = crc + 1 WHERE seq = 2")
        db.close()
      }
      return runDir
    })

  it.effect("the journals of other tasks are read no further than their first event; those of the task, whole", () =>
    Effect.gen(function*() {
      const root = tmp()
      const { task } = yield* TaskFile.load(path.join(fixtures, "toy.task.yaml"))
      const other = { ...task, name: "another-task" }
      // read whole, the other task's journal would show its damaged second entry
      yield* journalOf(root, "a-other", other, false)
      yield* journalOf(root, "b-same", task, true)
      const keep = (started: JournalEvent.Of<"RunStarted">) => ResultCache.reusable(started, { task })
      const read = yield* RunDir.siblingJournals(root, path.join(root, "none"), { keep })
      assert.deepStrictEqual(read.map((entries) => entries.map((e) => e.event._tag)), [["RunStarted", "RunResumed"]])
      assert.strictEqual((read[0]![0]!.event as JournalEvent.Of<"RunStarted">).runId, "b-same")
      // without keep, every journal is read (the damaged one up to its damage)
      assert.strictEqual((yield* RunDir.siblingJournals(root, path.join(root, "none"))).length, 2)
      // trainer code recorded by the run counts: another code is another identity
      assert.isFalse(ResultCache.reusable(JournalEvent.make("RunStarted", { runId: "x", task, seed: 1, options: { code: "abc" }, at: 1 }), { task, code: "def" }))
      assert.isTrue(ResultCache.reusable(JournalEvent.make("RunStarted", { runId: "x", task, seed: 1, options: { code: "abc" }, at: 1 }), { task: { ...task, budget: { maxTrials: 9 } }, code: "abc" }))
    }))

  it.effect("hands the journals of a folder over one at a time (each read after the one before is taken), with only the events asked for", () =>
    Effect.gen(function*() {
      const root = tmp()
      const { task } = yield* TaskFile.load(path.join(fixtures, "toy.task.yaml"))
      yield* journalOf(root, "a", task, true)
      const b = yield* journalOf(root, "b", task, true)
      const taken: Array<Array<string>> = []
      yield* RunDir.eachSiblingJournal(root, path.join(root, "none"), {}, (entries) => {
        taken.push(entries.map((e) => e.event._tag))
        if (taken.length === 1) {
          // damaged while the first is taken: had it been read already, the second would show both its entries
          const db = new DatabaseSync(RunDir.journalFile(b))
          db.exec("UPDATE events SET crc = crc + 1 WHERE seq = 2")
          db.close()
        }
      })
      assert.deepStrictEqual(taken, [["RunStarted", "RunResumed"], ["RunStarted"]])
      const started = yield* RunDir.siblingJournals(root, path.join(root, "none"), { tags: ["RunStarted"] })
      assert.deepStrictEqual(started.map((entries) => entries.map((e) => e.event._tag)), [["RunStarted"], ["RunStarted"]])
    }))
})

const entriesOf = (runDir: string): ReadonlyArray<JournalEvent.Entry> => Effect.runSync(RunDir.readEntries(runDir).pipe(Effect.orElseSucceed(() => [])))

const waitFor = async (ready: () => boolean, ms = 10_000) => {
  const until = Date.now() + ms
  while (!ready()) {
    if (Date.now() > until) throw new Error("timed out waiting")
    await new Promise((r) => setTimeout(r, 20))
  }
}

describe("Trex: budgets", () => {
  /** The recorded table's task, with `budget` for its limits, run to its end on the simulator. */
  const runOut = (budget: NonNullable<Trex.Options["budget"]>) =>
    Effect.gen(function*() {
      const prepared = yield* Trex.prepare({ taskFile: recorded, out: tmp(), concurrency: 1, reuse: false, budget, logLevel: "None" })
      return { prepared, summary: yield* Trex.runPrepared(prepared) }
    })

  it.live("a resume that raises one limit while the run has used up another is refused, naming it and the flag that makes room; with room, it runs on", () =>
    Effect.gen(function*() {
      // the budget option of a new run replaces the task's limits (the table's task has only maxTrials: 20)
      const { prepared, summary } = yield* runOut({ gpuHours: 30 })
      assert.strictEqual(summary.reason, "budget: gpuHours")
      const started = (yield* RunDir.readEntries(prepared.runDir))[0]!.event
      assert.deepStrictEqual(started._tag === "RunStarted" ? started.task.budget : undefined, { maxTrials: 20, gpuHours: 30 })
      const trials = summary.usage.trials
      assert.isBelow(trials, 20)
      // more trials cannot help: the GPU-hours left are less than a trial takes (the run would start none)
      const more = yield* invalidOf(Trex.prepare({ resume: prepared.runDir, maxTrials: 30 }))
      assert.strictEqual(more.source, "gpuHours")
      assert.match(more.message, /resumed with this budget, the run would start no trial:\n {2}gpuHours: [\d.]+ of 30 GPU-hours used, and a trial is expected to take [\d.]+ more \(give --gpu-hours [\d.]+ or more\)/)
      // nor too few GPU-hours, and the trials given too few are named too
      const both = yield* invalidOf(Trex.prepare({ resume: prepared.runDir, budget: { gpuHours: 20, maxTrials: trials } }))
      assert.match(both.message, new RegExp(`maxTrials: ${trials} of ${trials} trials used \\(give --max-trials ${trials + 1} or more\\)`))
      assert.match(both.message, /gpuHours: [\d.]+ of 20 GPU-hours used/)
      // the flag the message names, with the value it gives, runs at least one more trial
      const room = Number(/give --gpu-hours ([\d.]+) or more/.exec(more.message)![1])
      const again = yield* Trex.prepare({ resume: prepared.runDir, budget: { gpuHours: room }, logLevel: "None" })
      // the entries prepare read come with it: the run replays from them instead of reading its journal again
      assert.deepStrictEqual(again.journaled, yield* RunDir.readEntries(prepared.runDir))
      const resumed = yield* Trex.runPrepared(again)
      assert.isAbove(resumed.usage.trials, trials)
      assert.isAtMost(resumed.usage.spent.gpuSeconds, room * 3600 + 1e-6)
      assert.deepStrictEqual(resumed.tree.task.budget, { maxTrials: 20, gpuHours: room }, "the limits not given are kept")
      // maxTrials once, on its own or in budget
      const twice = yield* invalidOf(Trex.prepare({ resume: prepared.runDir, maxTrials: 40, budget: { maxTrials: 40 } }))
      assert.strictEqual(twice.source, "maxTrials")
      const bad = yield* invalidOf(Trex.prepare({ resume: prepared.runDir, budget: { gpuHours: -1 } }))
      assert.match(bad.message, /budget: gpuHours: Expected a value greater than 0/)
    }))

  it.live("a wall clock used up by a run's earlier sessions is named, with the flag that gives it more", () =>
    Effect.gen(function*() {
      const { prepared } = yield* runOut({ maxTrials: 2 })
      // the run's first session took 30 minutes (its last event, 30 minutes after its start)
      const entries = yield* RunDir.readEntries(prepared.runDir)
      const first = entries[0]!.event.at
      yield* Effect.scoped(Effect.gen(function*() {
        const journal = yield* Journal.Journal
        yield* journal.append([JournalEvent.make("InsightsDistilled", { insights: [], at: first + 30 * 60_000 })])
      })).pipe(Effect.provide(Journal.Journal.layerSqlite(RunDir.journalFile(prepared.runDir))))
      assert.strictEqual((yield* RunDir.readEntries(prepared.runDir)).length, entries.length + 1)
      const e = yield* invalidOf(Trex.prepare({ resume: prepared.runDir, budget: { maxTrials: 5, wallClockHours: 0.25 } }))
      assert.strictEqual(e.source, "wallClockHours")
      assert.match(e.message, /wallClockHours: 0\.5 of 0\.25 hours of wall clock used(, and a trial is expected to take [\d.e-]+ more)? \(give --wall-clock-hours [\d.]+ or more\)/)
      const resumed = yield* Trex.runPrepared(yield* Trex.prepare({ resume: prepared.runDir, budget: { maxTrials: 5, wallClockHours: 1 }, logLevel: "None" }))
      assert.strictEqual(resumed.usage.trials, 5)
    }))
})

describe("Trex: results of a simulated run", () => {
  it.live("are reused only while the recorded table is unchanged: an edited table runs them again, and a run of the old one does not resume", () =>
    Effect.gen(function*() {
      const taskDir = tmp()
      for (const f of ["task.yaml", "nmt-ja-en.csv"]) fs.copyFileSync(path.join(root, "examples/recorded-table", f), path.join(taskDir, f))
      const out = tmp()
      const run = () =>
        Effect.gen(function*() {
          const prepared = yield* Trex.prepare({ taskFile: path.join(taskDir, "task.yaml"), out, maxTrials: 3, concurrency: 1, logLevel: "None" })
          const summary = yield* Trex.runPrepared(prepared)
          const reused = [...summary.tree.nodes()].filter((n) => n.state._tag === "Succeeded" && n.state.result.reusedFrom !== undefined)
          return { prepared, summary, reused }
        })
      const first = yield* run()
      assert.strictEqual(first.reused.length, 0)
      assert.strictEqual((yield* run()).reused.length, 3, "the same table: the first run's results are reused")
      // the table's first run scored 14.4: edited, it scores otherwise, and nothing read from the old table is reused
      const table = path.join(taskDir, "nmt-ja-en.csv")
      const text = fs.readFileSync(table, "utf8")
      const n1 = first.summary.tree.get("n1")!
      const old = String(n1.state._tag === "Succeeded" ? n1.state.result.score : NaN)
      assert.include(text, `,${old},`)
      fs.writeFileSync(table, text.replaceAll(`,${old},`, `,${Number(old) + 10},`))
      const edited = yield* run()
      assert.strictEqual(edited.reused.length, 0, "the table changed")
      const e = edited.summary.tree.get("n1")!
      assert.strictEqual(e.state._tag === "Succeeded" ? e.state.result.score : undefined, Number(old) + 10)
      const refused = yield* invalidOf(Trex.prepare({ resume: first.prepared.runDir, maxTrials: 5 }))
      assert.match(refused.message, /or the recorded table it replays \(nmt-ja-en\.csv\), changed since this run started/)
    }))
})
