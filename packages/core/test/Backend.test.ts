import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Queue, Stream } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Readline from "node:readline"
import * as Backend from "../src/Backend.ts"
import * as Errors from "../src/Errors.ts"
import type * as ExperimentNode from "../src/ExperimentNode.ts"
import type * as Result from "../src/Result.ts"
import * as BackendConformance from "../src/testing/BackendConformance.ts"

const failed = (failureKind: Result.FailureKind, logTail: ReadonlyArray<string>, extra: Partial<Backend.JobExit> = {}): Backend.JobExit => ({
  _tag: "Exit",
  outcome: "Failed",
  failureKind,
  exitCode: 1,
  message: "exit code 1",
  logTail,
  wallSeconds: 60,
  gpuSeconds: 60,
  ...extra
})

describe("Backend.noSpaceExit (the rule every built-in backend applies to a job's exit)", () => {
  it("a Crash whose log tail says the disk was full is Infra, its message naming the line and the fix", () => {
    for (
      const line of [
        "OSError: [Errno 28] No space left on device",
        "RuntimeError: [enforce fail at inline_container.cc:603] . unexpected pos 123 vs 456 ... No space left on device",
        "Error: ENOSPC: no space left on device, write",
        "OSError: [Errno 122] Disk quota exceeded: '/scratch/ckpt'",
        "write failed: EDQUOT"
      ]
    ) {
      const exit = Backend.noSpaceExit(failed("Crash", ["Traceback (most recent call last):", `  ${line}`, "wandb: finishing"]))
      assert.strictEqual(exit.failureKind, "Infra", line)
      assert.strictEqual(
        exit.message,
        `the job ran out of disk space (exit code 1): ${line}. The machine's failure, not the strategy's: free space where the job writes (checkpoints, outputs, logs)`
      )
      // the rest of the exit is the job's, unchanged
      assert.deepStrictEqual([exit.exitCode, exit.wallSeconds, exit.logTail.length], [1, 60, 3])
    }
  })

  it("a backend that found the disk full itself says which, for a job whose log could not hold the error", () => {
    const exit = Backend.noSpaceExit(failed("Crash", []), "the disk holding /runs/r1/jobs/n3 was full (0 KB free)")
    assert.strictEqual(exit.failureKind, "Infra")
    assert.match(exit.message!, /^the job failed \(exit code 1\) while the disk holding \/runs\/r1\/jobs\/n3 was full \(0 KB free\)\. /)
  })

  it("leaves alone a Crash that says nothing of the disk, every other kind, and a success", () => {
    const crash = failed("Crash", ["ValueError: no space in the tokenizer's vocabulary"])
    assert.strictEqual(Backend.noSpaceExit(crash), crash)
    for (const kind of ["OOM", "Timeout", "Infra", "InvalidOutput"] as const) {
      const exit = failed(kind, ["OSError: [Errno 28] No space left on device"])
      assert.strictEqual(Backend.noSpaceExit(exit, "the disk was full"), exit)
    }
    const ok: Backend.JobExit = { _tag: "Exit", outcome: "Succeeded", logTail: ["No space left on device (a warning)"], wallSeconds: 1, gpuSeconds: 0 }
    assert.strictEqual(Backend.noSpaceExit(ok, "the disk was full"), ok)
  })
})

describe("Backend.unreachable (the outage every built-in backend tells in one form)", () => {
  it("a State in the state last shown, whose reason says who, since when (UTC), why, and what is done meanwhile", () => {
    const since = Date.UTC(2026, 11, 5, 10, 3, 12, 999)
    assert.deepStrictEqual(
      Backend.unreachable({ state: "Pending", who: "Slurm", since, cause: "Unable to contact slurm controller", meanwhile: "polled again every 2 s" }),
      { _tag: "State", state: "Pending", reason: "Slurm does not answer since 10:03:12Z (Unable to contact slurm controller); polled again every 2 s" }
    )
    assert.strictEqual(Backend.unreachable({ state: "Running", who: "host gpu1", since: Date.UTC(2026, 0, 1, 23, 59, 59), cause: "ECONNREFUSED", meanwhile: "m" }).reason, "host gpu1 does not answer since 23:59:59Z (ECONNREFUSED); m")
  })
})

/**
 * A backend of one's own, as small as one can be: each job a real `sh` child process in a directory of its own,
 * its lines and exit kept in memory. `Backend.make(mine(...))` is the same backend built through `Backend.make`.
 */
const mine = (root: string): Backend.BackendShape => {
  interface Job {
    readonly run: string
    readonly child: ChildProcess.ChildProcess
    readonly events: Array<Backend.JobEvent>
    readonly listeners: Set<(event: Backend.JobEvent) => void>
    cancelled: boolean
  }
  const jobs = new Map<string, Job>()
  const emit = (job: Job, event: Backend.JobEvent) => {
    job.events.push(event)
    for (const listener of job.listeners) listener(event)
  }
  const find = (ref: ExperimentNode.JobRef, operation: string) =>
    Effect.suspend(() => {
      const job = jobs.get(ref.id)
      return job !== undefined
        ? Effect.succeed(job)
        : Effect.fail(new Errors.BackendError({ backend: "mine", operation, message: `unknown job ${ref.id}`, retryable: false }))
    })
  const ended = (job: Job) => job.events.at(-1)?._tag === "Exit"
  return {
    name: "mine",
    submit: (spec) =>
      Effect.sync(() => {
        const id = `job-${jobs.size + 1}`
        const dir = Path.join(root, id)
        Fs.mkdirSync(dir, { recursive: true })
        for (const file of spec.files) Fs.writeFileSync(Path.join(dir, file.path), file.content)
        const child = ChildProcess.spawn(spec.argv[0]!, spec.argv.slice(1), {
          cwd: dir,
          env: { ...process.env, ...Backend.revealEnv(spec.env), TREX_JOB_DIR: dir },
          stdio: ["ignore", "pipe", "pipe"],
          detached: true // a group of its own, so that a cancel ends the script's children too
        })
        const job: Job = { run: spec.labels.run, child, events: [{ _tag: "State", state: "Running" }], listeners: new Set(), cancelled: false }
        jobs.set(id, job)
        const lines: Array<string> = []
        for (const stream of ["stdout", "stderr"] as const) {
          Readline.createInterface({ input: child[stream] }).on("line", (line) => {
            lines.push(line)
            emit(job, { _tag: "Log", stream, line })
          })
        }
        child.on("close", (code) =>
          emit(job, {
            _tag: "Exit",
            outcome: job.cancelled ? "Cancelled" : code === 0 ? "Succeeded" : "Failed",
            ...(code !== 0 && !job.cancelled ? { failureKind: "Crash" as const } : {}),
            ...(code !== null ? { exitCode: code } : {}),
            logTail: lines.slice(-20),
            wallSeconds: 0,
            gpuSeconds: 0
          }))
        return { backend: "mine", id, data: {} }
      }),
    watch: (ref) =>
      Stream.unwrap(Effect.map(find(ref, "watch"), (job) =>
        Stream.callback<Backend.JobEvent>((queue) =>
          Effect.acquireRelease(
            Effect.sync(() => {
              const deliver = (event: Backend.JobEvent) => {
                Queue.offerUnsafe(queue, event)
                if (event._tag === "Exit") Queue.endUnsafe(queue)
              }
              for (const event of job.events) deliver(event)
              if (!ended(job)) job.listeners.add(deliver)
              return deliver
            }),
            (deliver) => Effect.sync(() => job.listeners.delete(deliver))
          )
        ))),
    cancel: (ref) =>
      Effect.map(find(ref, "cancel"), (job) => {
        if (ended(job)) return
        job.cancelled = true
        process.kill(-job.child.pid!, "SIGKILL")
      }),
    list: (run) =>
      Effect.sync(() =>
        [...jobs].filter(([, job]) => job.run === run).map(([id, job]) => ({
          ref: { backend: "mine", id, data: {} },
          labels: { run, node: id },
          state: ended(job) ? "Finished" as const : "Running" as const
        }))
      ),
    capacity: Effect.sync(() => ({ slots: 4, gpus: 0, inUse: [...jobs.values()].filter((job) => !ended(job)).length }))
  }
}

/** A directory for `mine`'s jobs, removed with what is left in it when the test's scope closes. */
const tmpRoot = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-backend-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const script = (node: string, text: string): Backend.JobSpec => ({
  name: node,
  argv: ["sh", "job.sh"],
  env: {},
  files: [{ path: "job.sh", content: text + "\n" }],
  resources: { gpus: 0, cpus: 1 },
  labels: { run: "r", node }
})

describe("Backend.withJob", () => {
  it.live("a withJob nested in another of the same job keeps the job's end for the outer one: no cancel of the ended job, either way round; a running one is cancelled, once", () =>
    Effect.gen(function*() {
      const backend = Backend.make(mine(yield* tmpRoot))
      const cancels: Array<string> = []
      const counted: Backend.BackendShape = { ...backend, cancel: (ref) => Effect.andThen(Effect.sync(() => cancels.push(ref.id)), backend.cancel(ref)) }
      const names: Record<string, string> = {}
      const take = <A, E>(node: string, text: string, use: (ref: ExperimentNode.JobRef) => Effect.Effect<A, E>) =>
        Backend.withJob(counted, counted.submit(script(node, text)), (ref) => Effect.andThen(Effect.sync(() => (names[ref.id] = node)), use(ref)))
      const again = <A, E>(ref: ExperimentNode.JobRef, use: Effect.Effect<A, E>) => Backend.withJob(counted, Effect.succeed(ref), () => use)
      // watched to its end in the inner withJob, which succeeds; the outer one's use then fails
      const inner = yield* Effect.exit(take("inner-saw", "echo done", (ref) =>
        Effect.andThen(again(ref, Stream.runDrain(backend.watch(ref))), Effect.fail("recording failed"))))
      // watched to its end in the outer withJob; an inner one of the same job then fails, and so does the outer one
      const outer = yield* Effect.exit(take("outer-saw", "echo done", (ref) =>
        Effect.andThen(Stream.runDrain(backend.watch(ref)), again(ref, Effect.fail("recording failed")))))
      // watched only until it started, in an inner withJob that succeeds; the outer one's use then fails
      const running = yield* Effect.exit(take("running", "echo started\nsleep 60", (ref) =>
        Effect.andThen(
          again(ref, backend.watch(ref).pipe(Stream.takeUntil((e) => e._tag === "Log" && e.line === "started"), Stream.runDrain)),
          Effect.fail("gave up")
        )))
      // watched until it started in an inner withJob that fails (and cancels it), and so does the outer one: one cancel
      const cancelled = yield* Effect.exit(take("inner-cancelled", "echo started\nsleep 60", (ref) =>
        again(ref, backend.watch(ref).pipe(Stream.takeUntil((e) => e._tag === "Log" && e.line === "started"), Stream.runDrain, Effect.andThen(Effect.fail("gave up"))))))
      assert.deepStrictEqual([inner._tag, outer._tag, running._tag, cancelled._tag], ["Failure", "Failure", "Failure", "Failure"])
      assert.deepStrictEqual(cancels.map((id) => names[id]), ["running", "inner-cancelled"])
      const outcomes = yield* Effect.forEach(Object.keys(names), (id) => Effect.map(Backend.awaitExit(backend, { backend: "mine", id, data: {} }), (e) => [names[id], e.outcome]))
      assert.deepStrictEqual(outcomes, [["inner-saw", "Succeeded"], ["outer-saw", "Succeeded"], ["running", "Cancelled"], ["inner-cancelled", "Cancelled"]])
    }).pipe(Effect.scoped))

  it.live("a backend of one's own not built through Backend.make: its ended job is cancelled after a use that watched it through backend.watch and failed, and the conformance case says to build it through Backend.make", () =>
    Effect.gen(function*() {
      const [nonZero] = BackendConformance.cases({ command: (_, file) => ({ argv: ["sh", file] }), supportsOom: false, fresh: Effect.die("not run") })
        .filter((c) => c.name.startsWith("a non-zero exit"))
      const raw = mine(yield* tmpRoot)
      const failure = yield* Effect.exit(Effect.provideService(nonZero!.run, Backend.Backend, raw))
      assert.isTrue(Exit.isFailure(failure))
      assert.include(
        Exit.isFailure(failure) ? String(Cause.squash(failure.cause)) : "",
        "withJob cancelled job job-1 after its use had watched it to its Exit through backend.watch and then failed: " +
          "build the backend through Backend.make({ name, submit, watch, cancel, list, capacity })"
      )
      // the cancel of the ended job changed nothing, as the contract asks
      assert.strictEqual((yield* Backend.awaitExit(raw, { backend: "mine", id: "job-1", data: {} })).outcome, "Failed")
      // the same members built through Backend.make pass the case
      yield* Effect.provideService(nonZero!.run, Backend.Backend, Backend.make(mine(yield* tmpRoot)))
    }).pipe(Effect.scoped))
})
