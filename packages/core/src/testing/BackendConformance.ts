/**
 * The conformance suite every {@link Backend.Backend} runs, ours and users'. Framework-neutral:
 * {@link cases} returns named effects that throw (through `node:assert/strict`) when the backend
 * misbehaves, so any test runner can run them. The scenario jobs are POSIX `sh` scripts (busybox
 * is enough) shipped through `JobSpec.files`, so remote backends receive them like any job file.
 *
 * @since 0.1.0
 */
import { Effect, Redacted, Scope, Stream } from "effect"
import assert from "node:assert/strict"
import { randomUUID } from "node:crypto"
import * as Backend from "../Backend.ts"
import type { JobRef } from "../ExperimentNode.ts"

/**
 * The jobs the suite runs. `sleep` prints `started`, sleeps `$TREX_TEST_SLEEP` seconds and writes
 * its start and end times (ms) into `result.json`; `oom` dies by SIGKILL, as under the OOM killer.
 * @since 0.1.0 @category models
 */
export type Scenario = "succeed" | "fail" | "exit-oom" | "sleep" | "metrics" | "oom" | "bad-result" | "no-result"

/** How a backend under test runs the suite. @since 0.1.0 @category models */
export interface Options {
  /**
   * The command (and image) that runs a scenario's `sh` script, written at `script` relative to
   * the job directory; the job's working directory is expected to be that directory.
   * Usually `{ argv: ["sh", script] }`, plus an `image` with a shell for container backends.
   */
  readonly command: (scenario: Scenario, script: string) => { readonly argv: ReadonlyArray<string>; readonly image?: string }
  /** Whether the backend reports a SIGKILLed job as `OOM` (runs the `oom` case). */
  readonly supportsOom: boolean
  /** Builds a second, independent instance on the same storage, as after a controller restart. */
  readonly fresh: Effect.Effect<Backend.BackendShape, unknown, Scope.Scope>
  /** Multiplies every sleep, time limit and wait, for slow (remote) backends. Default 1. */
  readonly timeScale?: number
  /**
   * For a scheduler that keeps time limits in whole minutes (Slurm rounds a limit of seconds up to a minute
   * and checks limits every 30 s): called by the time-limit case once the job is submitted, to bring the end
   * of its limit forward to now. The scheduler's own enforcement still ends the job; without it the case
   * waits for the limit as the backend set it.
   */
  readonly expireTimeLimit?: (ref: JobRef) => Effect.Effect<void, unknown>
}

/** One named case. @since 0.1.0 @category models */
export interface Case {
  readonly name: string
  readonly run: Effect.Effect<void, unknown, Backend.Backend>
}

const SCRIPT = "trex-conformance.sh"
/** What the sleep scenario prints when it has slept to its end (a killed or cancelled job never does). */
const SLEPT = "slept-to-the-end"

/** The `result.json` the succeed scenario writes, decoded. */
const SUCCEEDED = { metrics: { accuracy: 0.75 }, primary: 0.75, artifacts: [], summary: "ok" }

const writeResult = (json: string) => `printf '%s\\n' '${json}' > "$TREX_JOB_DIR/result.json"`

const scripts: Record<Scenario, string> = {
  succeed: [
    `echo "hello from trex"`,
    `[ -f "$TREX_JOB_DIR/${SCRIPT}" ] || { echo "TREX_JOB_DIR is wrong" >&2; exit 9; }`,
    writeResult(JSON.stringify(SUCCEEDED))
  ].join("\n"),
  fail: `echo "about to fail"\necho "something broke" >&2\nexit 3`,
  // the job protocol's out-of-memory code (a trainer that caught CUDA out of memory exits 137)
  "exit-oom": `echo "OOM: CUDA out of memory" >&2\nexit 137`,
  sleep: [
    `now() { t=$(date +%s%3N 2>/dev/null); case "$t" in ''|*[!0-9]*) echo "$(date +%s)000" ;; *) echo "$t" ;; esac; }`,
    `s=$(now)`,
    `echo started`,
    // a sleep killed by a cancel or a time limit ends the script: its shell, signalled a moment later
    // (a scheduler signals a job's processes one by one), would otherwise go on to say it slept to the end
    `sleep "\${TREX_TEST_SLEEP:-60}" || exit $?`,
    `echo ${SLEPT}`,
    `e=$(now)`,
    `printf '{"metrics":{"start":%s,"end":%s},"primary":0,"artifacts":[]}\\n' "$s" "$e" > "$TREX_JOB_DIR/result.json"`
  ].join("\n"),
  metrics: [
    `sleep "\${TREX_TEST_SLEEP:-1}"`,
    `for i in 1 2 3; do`,
    `  echo "TREX_METRIC {\\"step\\":$i,\\"split\\":\\"train\\",\\"name\\":\\"loss\\",\\"value\\":0.$i}"`,
    `done`,
    `echo 'TREX_PROGRESS {"fraction":0.5}'`,
    `echo '{"step":1,"split":"eval","name":"accuracy","value":0.5}' >> "$TREX_JOB_DIR/metrics.jsonl"`,
    `echo '{"step":2,"split":"eval","name":"accuracy","value":0.6}' >> "$TREX_JOB_DIR/metrics.jsonl"`,
    `echo 'TREX_METRIC not json'`,
    `sleep "\${TREX_TEST_SLEEP:-1}"`,
    writeResult(`{"metrics":{"accuracy":0.6},"primary":0.6,"artifacts":[]}`)
  ].join("\n"),
  oom: `echo "allocating"\nkill -KILL $$`,
  "bad-result": `printf '{"metrics": ' > "$TREX_JOB_DIR/result.json"\necho done`,
  "no-result": `echo done`
}

/**
 * The cases, to run against `Backend.Backend` (one instance, kept across cases) with real time.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { BackendConformance } from "@trex/core/testing"
 * declare const fresh: BackendConformance.Options["fresh"]
 * for (const c of BackendConformance.cases({ command: (_, script) => ({ argv: ["sh", script] }), supportsOom: true, fresh })) {
 *   // it.live(c.name, () => c.run.pipe(Effect.provide(MyBackendLayer)))
 * }
 * ```
 * @since 0.1.0 @category cases
 */
export const cases = (options: Options): ReadonlyArray<Case> => {
  const scale = options.timeScale ?? 1
  const run = `conformance-${randomUUID().slice(0, 8)}`
  let counter = 0
  const spec = (scenario: Scenario, extra: {
    readonly sleep?: number
    readonly timeLimitSeconds?: number
    readonly run?: string
  } = {}): Backend.JobSpec => {
    const { argv, image } = options.command(scenario, SCRIPT)
    const env: Record<string, string | Redacted.Redacted<string>> = {}
    if (extra.sleep !== undefined) env["TREX_TEST_SLEEP"] = String(extra.sleep * scale)
    return {
      name: `conformance ${scenario}`,
      argv,
      ...(image !== undefined ? { image } : {}),
      env,
      files: [{ path: SCRIPT, content: scripts[scenario] + "\n" }],
      resources: { gpus: 0, cpus: 1, ...(extra.timeLimitSeconds !== undefined ? { timeLimitSeconds: extra.timeLimitSeconds * scale } : {}) },
      labels: { run: extra.run ?? run, node: `${run}-${scenario}-${++counter}` }
    }
  }
  const withBackend = <A>(f: (backend: Backend.BackendShape) => Effect.Effect<A, unknown, Scope.Scope>) =>
    Effect.scoped(Effect.gen(function*() {
      return yield* f(yield* Backend.Backend)
    }))
  const exitOf = (events: ReadonlyArray<Backend.JobEvent>): Backend.JobExit => {
    const exits = events.filter((e) => e._tag === "Exit")
    assert.equal(exits.length, 1, "a watch yields exactly one Exit")
    assert.equal(events.at(-1)?._tag, "Exit", "the Exit is the last event")
    return exits[0] as Backend.JobExit
  }
  /** Wait until the job printed `started`, so it is surely running. */
  const started = (backend: Backend.BackendShape, ref: JobRef) =>
    backend.watch(ref).pipe(
      Stream.takeUntil((e) => (e._tag === "Log" && e.line === "started") || e._tag === "Exit"),
      Stream.runCollect,
      Effect.map((events) => assert.ok(events.some((e) => e._tag === "Log" && e.line === "started"), "the job printed `started`"))
    )
  const stamps = (exit: Backend.JobExit) => {
    const metrics = (exit.result as { metrics: { start: number; end: number } }).metrics
    return { start: metrics.start, end: metrics.end }
  }

  const all: Array<Case> = [
    {
      name: "a job that succeeds yields State, then one Exit with its decoded result.json",
      run: withBackend((backend) =>
        Effect.gen(function*() {
          const ref = yield* backend.submit(spec("succeed"))
          const events = yield* Stream.runCollect(backend.watch(ref))
          const exit = exitOf(events)
          assert.equal(exit.outcome, "Succeeded", exit.message)
          assert.equal(exit.exitCode, 0)
          assert.deepEqual(exit.result, SUCCEEDED)
          assert.equal(exit.resultError, undefined)
          assert.ok(exit.logTail.includes("hello from trex"), `log tail: ${JSON.stringify(exit.logTail)}`)
          assert.ok(exit.wallSeconds >= 0 && exit.gpuSeconds === 0)
          // watching a finished job ends at once: possibly its output again, then exactly one Exit
          const again = Array.from(yield* Stream.runCollect(backend.watch(ref)))
          assert.equal(again.filter((e) => e._tag === "Exit").length, 1, "watching a finished job yields one Exit")
          assert.equal(again.at(-1)?._tag, "Exit", "the Exit comes last")
          assert.ok(again.every((e) => e._tag !== "State" || e.state !== "Pending"), "a finished job is not pending")
          assert.equal(exitOf(again).outcome, "Succeeded")
        })
      )
    },
    {
      name: "metrics from stdout and from metrics.jsonl are streamed in order",
      run: withBackend((backend) =>
        Effect.gen(function*() {
          const ref = yield* backend.submit(spec("metrics", { sleep: 1 }))
          const events = yield* Stream.runCollect(backend.watch(ref))
          assert.equal(exitOf(events).outcome, "Succeeded")
          const points = events.flatMap((e) => (e._tag === "Metric" ? [e.point] : []))
          assert.deepEqual(points.filter((p) => p.split === "train").map((p) => [p.step, p.value]), [[1, 0.1], [2, 0.2], [3, 0.3]])
          assert.deepEqual(points.filter((p) => p.split === "eval").map((p) => [p.step, p.value]), [[1, 0.5], [2, 0.6]])
          assert.ok(events.some((e) => e._tag === "Progress" && e.fraction === 0.5), "a Progress event")
          assert.ok(events.some((e) => e._tag === "Log" && e.line === "TREX_METRIC not json"), "a malformed metric line is a log line")
          assert.equal(events[0]?._tag, "State")
        })
      )
    },
    {
      name: "a non-zero exit is Failed/Crash with the exit code and the log tail; a withJob whose use watched it to its end, then failed, cancels nothing",
      run: withBackend((backend) =>
        Effect.gen(function*() {
          const cancels: Array<string> = []
          const counted: Backend.BackendShape = { ...backend, cancel: (ref) => Effect.andThen(Effect.sync(() => cancels.push(ref.id)), backend.cancel(ref)) }
          // watched through the backend's own watch, then the use fails (its recording of the result, say)
          const failed = yield* Effect.flip(Backend.withJob(counted, counted.submit(spec("fail")), (ref) =>
            Effect.flatMap(Stream.runCollect(backend.watch(ref)), (events) => Effect.fail(exitOf(events)))))
          assert.equal(failed._tag, "Exit", `the use's failure, not the backend's: ${JSON.stringify(failed)}`)
          assert.deepEqual(
            cancels,
            [],
            `withJob cancelled job ${cancels.join(", ")} after its use had watched it to its Exit through backend.watch and then failed: ` +
              "build the backend through Backend.make({ name, submit, watch, cancel, list, capacity }), whose watch tells withJob that it " +
              "delivered the Exit (withJob has no other way to know it: the use's watch is not withJob's to see, and the contract has no " +
              "per-job state to ask)"
          )
          const exit = failed as Backend.JobExit
          assert.equal(exit.outcome, "Failed")
          assert.equal(exit.failureKind, "Crash")
          assert.equal(exit.exitCode, 3)
          assert.ok(exit.logTail.includes("something broke"), `stderr in the log tail: ${JSON.stringify(exit.logTail)}`)
          assert.ok(exit.logTail.includes("about to fail"), `stdout in the log tail: ${JSON.stringify(exit.logTail)}`)
        })
      )
    },
    {
      name: "exit code 137 (the job protocol's out-of-memory code) is Failed/OOM",
      run: withBackend((backend) =>
        Effect.gen(function*() {
          const exit = yield* Backend.run(backend, spec("exit-oom"))
          assert.equal(exit.outcome, "Failed")
          assert.equal(exit.failureKind, "OOM", exit.message)
          assert.ok(exit.logTail.some((l) => l.includes("OOM: CUDA out of memory")), `stderr in the log tail: ${JSON.stringify(exit.logTail)}`)
        })
      )
    },
    {
      name: "a job over its time limit is killed: Failed/Timeout",
      run: withBackend((backend) =>
        Effect.gen(function*() {
          const exit = yield* Backend.withJob(backend, backend.submit(spec("sleep", { sleep: 60, timeLimitSeconds: 1 })), (ref) =>
            // (a hook that fails leaves no job running: withJob cancels it)
            Effect.andThen(options.expireTimeLimit?.(ref) ?? Effect.void, Backend.awaitExit(backend, ref)))
          assert.equal(exit.outcome, "Failed")
          assert.equal(exit.failureKind, "Timeout")
          assert.ok(!exit.logTail.includes(SLEPT), `killed before its end: ${JSON.stringify(exit.logTail)}`)
        })
      )
    },
    {
      name: "cancel while running ends the job as Cancelled",
      run: withBackend((backend) =>
        Effect.gen(function*() {
          const s = spec("sleep", { sleep: 60 })
          const ref = yield* backend.submit(s)
          yield* started(backend, ref)
          yield* backend.cancel(ref)
          const exit = yield* Backend.awaitExit(backend, ref)
          assert.equal(exit.outcome, "Cancelled")
          assert.ok(!exit.logTail.includes(SLEPT), `cancelled before its end: ${JSON.stringify(exit.logTail)}`)
          const info = (yield* backend.list(run)).find((j) => j.labels.node === s.labels.node)
          assert.equal(info?.state, "Finished", "a cancelled job is no longer running")
          yield* backend.cancel(ref) // cancelling a finished job is a no-op
        })
      )
    },
    {
      // (the explorer stopping its trials as a budget ends, one of them just finished, its result not yet read)
      name: "cancelling a job that has ended leaves its exit as it was: the same and a fresh instance watch and list the same exit",
      run: withBackend((backend) =>
        Effect.gen(function*() {
          // One watched to its end that exited 137 (a backend that marks its cancels, to tell them from the OOM killer's
          // kills, must not mark it), and one not watched before its cancel (its result not yet read): the backend's list says it ended.
          const specs = [spec("exit-oom"), spec("succeed")]
          const refs = yield* Effect.forEach(specs, (s) => backend.submit(s), { concurrency: "unbounded" })
          const watched = exitOf(yield* Stream.runCollect(backend.watch(refs[0]!)))
          assert.deepEqual([watched.outcome, watched.failureKind], ["Failed", "OOM"], watched.message)
          const unwatched = specs[1]!.labels.node
          const deadline = Date.now() + 60_000 * scale
          while (!(yield* backend.list(run)).some((j) => j.labels.node === unwatched && j.state === "Finished")) {
            assert.ok(Date.now() < deadline, `the backend lists ${unwatched} as finished within ${60 * scale} s`)
            yield* Effect.sleep(250)
          }
          yield* Effect.forEach(refs, (ref) => backend.cancel(ref), { concurrency: "unbounded" })
          const ended = [watched, { outcome: "Succeeded", failureKind: undefined, exitCode: 0, result: SUCCEEDED }]
          const same = (what: string, exits: ReadonlyArray<Backend.JobExit>) =>
            exits.forEach((exit, i) => {
              const was = ended[i]!
              assert.deepEqual(
                { outcome: exit.outcome, failureKind: exit.failureKind, exitCode: exit.exitCode, result: exit.result },
                { outcome: was.outcome, failureKind: was.failureKind, exitCode: was.exitCode, result: was.result },
                `${what}: the exit of ${specs[i]!.labels.node} after a cancel once it had ended (${exit.message ?? "no message"})`
              )
            })
          same("the same instance", yield* Effect.forEach(refs, (ref) => Backend.awaitExit(backend, ref), { concurrency: "unbounded" }))
          // a resumed run: it reattaches to the refs it journaled, and reconciles by listing the run's jobs
          const fresh = yield* options.fresh
          same("a fresh instance", yield* Effect.forEach(refs, (ref) => Backend.awaitExit(fresh, ref), { concurrency: "unbounded" }))
          const listed = (yield* fresh.list(run)).filter((j) => specs.some((s) => s.labels.node === j.labels.node))
          assert.deepEqual(listed.map((j) => j.state), specs.map(() => "Finished"), "a fresh instance lists the jobs as finished")
          const byNode = specs.map((s) => listed.find((j) => j.labels.node === s.labels.node)!.ref)
          same("a fresh instance's listed job", yield* Effect.forEach(byNode, (ref) => Backend.awaitExit(fresh, ref), { concurrency: "unbounded" }))
        })
      )
    },
    {
      name: "a job that writes no result.json exits with a resultError",
      run: withBackend((backend) =>
        Effect.gen(function*() {
          const exit = yield* Backend.run(backend, spec("no-result"))
          assert.equal(exit.outcome, "Succeeded")
          assert.equal(exit.result, undefined)
          assert.equal(typeof exit.resultError, "string")
        })
      )
    },
    {
      name: "a job that writes invalid JSON to result.json exits with a resultError",
      run: withBackend((backend) =>
        Effect.gen(function*() {
          const exit = yield* Backend.run(backend, spec("bad-result"))
          assert.equal(exit.outcome, "Succeeded")
          assert.equal(exit.result, undefined)
          assert.equal(typeof exit.resultError, "string")
        })
      )
    },
    {
      name: "list(run) finds exactly the run's jobs by their labels",
      run: withBackend((backend) =>
        Effect.gen(function*() {
          const listed = `${run}-list`
          const mine = [spec("succeed", { run: listed }), spec("no-result", { run: listed })]
          const other = spec("succeed", { run: `${run}-other` })
          const refs = yield* Effect.forEach([...mine, other], (s) => backend.submit(s))
          yield* Effect.forEach(refs, (ref) => Backend.awaitExit(backend, ref), { concurrency: "unbounded" })
          const jobs = yield* backend.list(listed)
          assert.deepEqual(jobs.map((j) => j.labels.node).sort(), mine.map((s) => s.labels.node).sort())
          for (const job of jobs) {
            assert.equal(job.labels.run, listed)
            assert.equal(job.state, "Finished")
            const exit = yield* Backend.awaitExit(backend, job.ref)
            assert.equal(exit.outcome, "Succeeded", "a listed ref can be watched")
          }
        })
      )
    },
    {
      name: "capacity is respected: no more jobs overlap than there are slots",
      run: withBackend((backend) =>
        Effect.gen(function*() {
          const capacity = yield* backend.capacity
          assert.ok(capacity.slots >= 1 && capacity.inUse >= 0 && capacity.inUse <= capacity.slots, JSON.stringify(capacity))
          // slots + 1 jobs (at most 5: with more slots the check is weaker, never wrong).
          const n = Math.min(capacity.slots, 4) + 1
          const refs = yield* Effect.forEach(Array.from({ length: n }, () => spec("sleep", { sleep: 1 })), (s) => backend.submit(s))
          const busy = yield* backend.capacity
          assert.ok(busy.inUse <= busy.slots, `in use ${busy.inUse} of ${busy.slots}`)
          const exits = yield* Effect.forEach(refs, (ref) => Backend.awaitExit(backend, ref), { concurrency: "unbounded" })
          for (const exit of exits) assert.equal(exit.outcome, "Succeeded", exit.message)
          const intervals = exits.map(stamps)
          const maxOverlap = Math.max(...intervals.map((a) => intervals.filter((b) => b.start <= a.start && a.start < b.end).length))
          assert.ok(maxOverlap <= capacity.slots, `${maxOverlap} jobs overlapped with ${capacity.slots} slots: ${JSON.stringify(intervals)}`)
        })
      )
    },
    {
      name: "a fresh instance (a restarted controller) watches, lists and cancels jobs of the first",
      run: withBackend((backend) =>
        Effect.gen(function*() {
          const short = spec("sleep", { sleep: 1.5 })
          const ref = yield* backend.submit(short)
          yield* started(backend, ref)
          const fresh = yield* options.fresh
          const listed = (yield* fresh.list(run)).find((j) => j.labels.node === short.labels.node)
          assert.ok(listed !== undefined, "the fresh instance lists the job")
          assert.notEqual(listed.state, "Pending")
          const exit = yield* Backend.awaitExit(fresh, ref)
          assert.equal(exit.outcome, "Succeeded", exit.message)
          const { start, end } = stamps(exit)
          assert.ok(end - start >= 1000 * scale, "the job ran to its end")
          assert.ok(exit.logTail.includes(SLEPT), `its log shows it slept to its end: ${JSON.stringify(exit.logTail)}`)

          const long = spec("sleep", { sleep: 60 })
          const longRef = yield* backend.submit(long)
          yield* started(backend, longRef)
          yield* fresh.cancel(longRef)
          assert.equal((yield* Backend.awaitExit(backend, longRef)).outcome, "Cancelled")
        })
      )
    }
  ]
  if (options.supportsOom) {
    all.push({
      name: "a job killed by SIGKILL (the OOM killer) is Failed/OOM",
      run: withBackend((backend) =>
        Effect.gen(function*() {
          const exit = yield* Backend.run(backend, spec("oom"))
          assert.equal(exit.outcome, "Failed")
          assert.equal(exit.failureKind, "OOM")
        })
      )
    })
  }
  return all
}
