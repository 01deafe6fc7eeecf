// The Grid Engine backend against the real single-host Son of Grid Engine 8.1.9 that
// scripts/services/start-gridengine.sh starts (qmaster + execd, queue all.q, consumable complex gpu=2). The pure
// parts (the job script run by sh, the parsing, the mappings) are GridEngineScript.test.ts.
import { execFileSync, spawn, spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, assert, describe, it, layer } from "@effect/vitest"
import { Backend } from "@trex/core"
import { Effect, Fiber, Layer, Redacted, Stream } from "effect"
import { BackendConformance } from "@trex/core/testing"
import { assertTooBig, BULKY_RESULT_SCRIPT } from "./support/bulkyResult.ts"
import { checkLoudWatch, loudScript } from "./support/loudLog.ts"
import { eventually } from "./support/eventually.ts"
import { checkEndedBeforeFirstWatch, collect, ENDED_FIRST_SCRIPT, exitOf, specIn } from "./support/batchJobs.ts"
import { cleanup, lockDir, plant, sleeper, startTime } from "./support/gpuLocks.ts"
import { ownSshd } from "./support/ownSshd.ts"
import * as GridEngineBackend from "../src/GridEngineBackend.ts"
import * as Script from "../src/internal/gridengineScript.ts"
import * as Query from "../src/internal/gridengineQuery.ts"
import * as Runner from "../src/internal/commandRunner.ts"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")
const workDir = fs.mkdtempSync("/tmp/trex-gridengine-test-")
const run = `run-${Date.now().toString(36)}`
const sgeRoot = process.env["SGE_ROOT"] ?? "/var/lib/gridengine"
const sgeEnv = { ...process.env, SGE_ROOT: sgeRoot, SGE_CELL: process.env["SGE_CELL"] ?? "default" }
const sge = (command: string, args: ReadonlyArray<string>) => execFileSync(command, args, { encoding: "utf8", env: sgeEnv })
const script = (name: string) => path.join(repoRoot, "scripts/services", name)

const startGridEngine = Effect.sync(() => {
  execFileSync("bash", [script("start-gridengine.sh")], { stdio: ["ignore", "ignore", "inherit"], timeout: 300_000 })
})
/** The qmaster stopped (an outage, a restart) by its pid file; `startGridEngine` brings it back. */
const stopQmaster = Effect.sync(() => {
  execFileSync("bash", ["-c", `. ${script("lib.sh")}; f=/var/spool/gridengine/qmaster/qmaster.pid; p=$(cat $f); kill $p; while running $p; do sleep 0.1; done`], { timeout: 60_000 })
})

// sgeRoot: the test process's environment may lack SGE_ROOT, as a login shell over SSH often does
const config: GridEngineBackend.Config = { workDir, pollIntervalMs: 300, sgeRoot }
const TestLayer = Layer.unwrap(startGridEngine.pipe(Effect.as(GridEngineBackend.layer(config))))

const spec = specIn(run)

/** The job's state letters in qstat (`r`, `qw`, `hqw`...), "" once it has left. */
const qstatState = (id: string) => /<state>([^<]*)<\/state>/.exec(sge("qstat", ["-xml"]).split("<job_list").find((b) => b.includes(`<JB_job_number>${id}</JB_job_number>`)) ?? "")?.[1] ?? ""

/** What the cluster says of its queue and of job `id` (`qstat -f`, `qstat -j`), for a failure's message. */
const clusterSays = (id: string): string =>
  [["-f"], ["-j", id]].map((args) => {
    try {
      return `qstat ${args.join(" ")}:\n${sge("qstat", args)}`
    } catch (e) {
      return `qstat ${args.join(" ")}: ${e instanceof Error ? e.message : String(e)}`
    }
  }).join("\n")

/**
 * `backend.submit(job)`, the job deleted (`qdel`) when the scope closes, whatever the test's end: one that fails leaves no
 * job running (a `sleep 300`, a loop waiting for a file) in one of the queue's slots, where it would break later tests.
 */
const submitted = (backend: Backend.BackendShape, job: Parameters<Backend.BackendShape["submit"]>[0]) =>
  Effect.acquireRelease(backend.submit(job), (ref) => Effect.sync(() => spawnSync("qdel", [ref.id], { env: sgeEnv, stdio: "ignore" })))

/** The pids of the job's watchers (`sh -c <program> trex-watch <script pid> <start> <JOB_ID>-...`) still running. */
const watchersOf = (id: string) =>
  fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      const argv = fs.readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0")
      return argv[3] === "trex-watch" && argv[6]?.startsWith(`${id}-`) === true
    } catch {
      return false
    }
  })

const PWNED = `/tmp/trex-pwned-ge-${process.pid}`
const RESULT = `echo '{"metrics":{"score":1}}' > result.json`

/** A job's command that says whether the process named in `pidFile` still runs (`leftover <pid>: running` or `gone`), and its devices. */
const reportLeftover = (pidFile: string) =>
  `p=$(cat ${pidFile}); s=$(sed 's/.*) //' /proc/$p/stat 2>/dev/null | cut -c1); if [ -n "$s" ] && [ "$s" != Z ]; then echo "leftover $p: running"; else echo "leftover $p: gone"; fi; echo "cuda=$CUDA_VISIBLE_DEVICES"; ${RESULT}`
/** Ends a test job's leftover `sleep` that the code under test did not. */
const endLeftover = (pid: number) =>
  Effect.sync(() => {
    if (pid > 0 && fs.existsSync(`/proc/${pid}/comm`) && fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "sleep") process.kill(pid, "SIGKILL")
  })

afterAll(cleanup)

// Grid Engine enforces h_rt within a second or two and schedules every second here (start-gridengine.sh), so the
// suite runs at its own pace; a SIGKILLed command exits 137 through the job script, read as OOM as on Local.
layer(TestLayer, { timeout: 300_000, excludeTestServices: true, concurrent: true })("GridEngineBackend: the Backend conformance suite", (it) => {
  const cases = BackendConformance.cases({
    command: (_, s) => ({ argv: ["sh", s] }),
    supportsOom: true,
    fresh: GridEngineBackend.make(config),
    timeScale: 1
  })
  for (const c of cases) it.effect(c.name, () => c.run, { timeout: 120_000 })
})

/** The job's command exited 137 by itself (its record says it was not told to end): this instance and a fresh one read Failed/OOM. */
const assertOwnOomEnd = (backend: Backend.BackendShape, ref: Parameters<Backend.BackendShape["watch"]>[0]) =>
  Effect.gen(function*() {
    const record = Script.exitRecord(fs.readFileSync(path.join(ref.data.jobDir as string, Script.EXIT_FILE), "utf8"))
    assert.strictEqual(record?.notified, false, "the script was not told to end its command")
    for (const reader of [backend, yield* GridEngineBackend.make(config)]) {
      const exit = yield* Backend.awaitExit(reader, ref)
      assert.deepStrictEqual([exit.outcome, exit.failureKind, exit.exitCode], ["Failed", "OOM", 137], exit.message)
    }
  })

// Jobs that ask no GPUs and look at no state of the whole cluster (five at a time, as the conformance suite, timed out
// at 60 s a test on this machine at load 20-28: kept one at a time).
layer(TestLayer, { timeout: 300_000, excludeTestServices: true })("GridEngineBackend on a real Grid Engine", (it) => {
  it.effect("runs Grid Engine's commands as Debian's wrapper would, without it (its `util/arch` twice a command); any other qstat as found", () =>
    Effect.gen(function*() {
      const runner = Runner.local("gridengine")
      const arch = execFileSync("/usr/share/gridengine/util/arch", { encoding: "utf8" }).trim()
      assert.deepStrictEqual(yield* Query.direct(runner, [`SGE_ROOT=${sgeRoot}`]), {
        dir: "/usr/lib/gridengine",
        vars: [`SGE_ROOT=${sgeRoot}`, "SGE_CELL=default", `SGE_ARCH=${arch}`]
      })
      // the same answers as through the wrapper
      const ge = Query.client(runner, { sgeRoot })
      assert.strictEqual(yield* ge.run("qconf", ["-sq", "all.q"]), sge("qconf", ["-sq", "all.q"]))
      assert.strictEqual((yield* ge.exec("qstat", ["-j", "999999999"])).stderr, spawnSync("qstat", ["-j", "999999999"], { encoding: "utf8", env: sgeEnv }).stderr)
      // a qstat of another install (here a script first in PATH) is left to run as found
      const bin = fs.mkdtempSync(path.join(workDir, "bin-"))
      fs.writeFileSync(path.join(bin, "qstat"), "#!/bin/sh\necho other\n", { mode: 0o755 })
      assert.isUndefined(yield* Query.direct(runner, [`PATH=${bin}:${process.env["PATH"]}`]))
    }))

  it.effect("runs a job: files, env, secrets in a 0600 file only, hostile argv, metrics, logs, result.json, labels as context", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const hostile = "it's $(touch " + PWNED + ") `id` \"q\" ; *"
      const body = [
        "set -e",
        "printf 'arg=%s\\n' \"$1\"",
        "echo \"dir=$PWD job=$TREX_JOB_DIR plain=$PLAIN secret=${#API_TOKEN} cuda=${CUDA_VISIBLE_DEVICES:-none}\"",
        "cat strategy.json; echo",
        "echo 'TREX_METRIC {\"step\":1,\"split\":\"train\",\"name\":\"loss\",\"value\":0.5}'",
        "echo 'TREX_PROGRESS {\"fraction\":0.5}'",
        "echo '{\"step\":2,\"split\":\"eval\",\"name\":\"acc\",\"value\":0.75}' >> metrics.jsonl",
        "echo oops >&2",
        "sleep 1",
        // until the watch has shown the job running (at most 60 s): a job of a second may start and end between two
        // of its polls on a loaded machine
        "i=0; until [ -e running.seen ] || [ $i -ge 600 ]; do sleep 0.1; i=$((i + 1)); done",
        "echo '{\"metrics\":{\"acc\":0.75},\"primary\":0.75}' > result.json"
      ].join("\n")
      const ref = yield* backend.submit(spec("ok", body, {
        argv: ["/bin/sh", "-c", body, "job", hostile],
        env: { PLAIN: "hello world", API_TOKEN: Redacted.make("s3cr3t-value") }
      }))
      assert.strictEqual(ref.backend, "gridengine")
      const jobDir = ref.data.jobDir as string
      const shown = sge("qstat", ["-j", ref.id])
      assert.include(shown, `${Script.CONTEXT.run}=${Script.encodeContext(run)},${Script.CONTEXT.node}=ok`)
      assert.notInclude(shown, "s3cr3t")
      const events = Array.from(yield* Stream.runCollect(backend.watch(ref).pipe(Stream.tap((e) =>
        e._tag === "State" && e.state === "Running" ? Effect.sync(() => fs.writeFileSync(path.join(jobDir, "running.seen"), "")) : Effect.void
      ))))
      const exit = exitOf(events)
      assert.strictEqual(exit.outcome, "Succeeded", JSON.stringify(exit))
      assert.strictEqual(exit.exitCode, 0)
      assert.deepStrictEqual(exit.result, { metrics: { acc: 0.75 }, primary: 0.75 })
      assert.isAtLeast(exit.wallSeconds, 1)
      const logs = events.flatMap((e) => (e._tag === "Log" ? [`${e.stream}:${e.line}`] : []))
      assert.include(logs, `stdout:arg=${hostile}`)
      assert.include(logs, `stdout:dir=${jobDir} job=${jobDir} plain=hello world secret=12 cuda=none`)
      assert.include(logs, `stdout:{"lr":0.1}`)
      assert.include(logs, "stderr:oops")
      const metrics = events.flatMap((e) => (e._tag === "Metric" ? [e.point] : []))
      // one from stdout, one from metrics.jsonl: each once (two files, read in turn, so either may come first:
      // the scheduler writes the job's stdout to its file itself, and may do so after the job wrote metrics.jsonl)
      assert.deepStrictEqual([...metrics].sort((a, b) => a.step - b.step), [{ step: 1, split: "train", name: "loss", value: 0.5 }, { step: 2, split: "eval", name: "acc", value: 0.75 }])
      assert.isTrue(events.some((e) => e._tag === "Progress" && e.fraction === 0.5))
      assert.isTrue(events.some((e) => e._tag === "State" && e.state === "Running"))
      assert.isFalse(fs.existsSync(PWNED))
      assert.strictEqual(fs.statSync(path.join(jobDir, Script.ENV_FILE)).mode & 0o777, 0o600)
      assert.notInclude(fs.readFileSync(path.join(jobDir, Script.SCRIPT_FILE), "utf8"), "s3cr3t")
      assert.deepStrictEqual(Script.parseRecord(fs.readFileSync(path.join(jobDir, Script.RECORD_FILE), "utf8"))?.id, ref.id)
      // a finished job's watch yields its Exit at once
      assert.strictEqual(exitOf(yield* collect(backend, ref)).outcome, "Succeeded")
    }))

  it.effect("a job that ended before its first watch began (a busy controller) replays its output to that watch; a later watch, or another instance's, yields its Exit alone", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const ref = yield* backend.submit(spec("ended-first", ENDED_FIRST_SCRIPT))
      // the controller looks only once the job has ended and left the queue
      yield* eventually("the job has ended and left qstat", () => fs.existsSync(path.join(ref.data.jobDir as string, Script.EXIT_FILE)) && qstatState(ref.id) === "", 60)
      yield* checkEndedBeforeFirstWatch(backend, yield* GridEngineBackend.make(config), ref)
    }).pipe(Effect.scoped))

  it.effect("a result.json over 64 MB is not read: the exit says it is too big", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      assertTooBig(yield* Backend.run(backend, spec("bulky", BULKY_RESULT_SCRIPT)), false)
    }))

  it.effect("a log of tens of megabytes reaches a slow consumer in bounded chunks: every line in order, \\r as shown, the right tail", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const ref = yield* backend.submit(spec("loud", ["sleep 2", ...loudScript, RESULT].join("\n")))
      yield* checkLoudWatch(backend.watch(ref))
    }))

  it.effect("a job that filled its disk is Failed/Infra naming the line; one over its h_vmem is Failed/OOM", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const full = yield* Backend.run(backend, spec("disk-full", "echo 'OSError: [Errno 28] No space left on device' >&2; exit 1"))
      assert.strictEqual(full.outcome, "Failed")
      assert.strictEqual(full.failureKind, "Infra")
      assert.include(full.message, "No space left on device")
      // h_vmem is a ulimit on the job: the allocation fails inside it (Python's MemoryError, exit 1)
      const oom = yield* Backend.run(backend, spec("h-vmem", "python3 -c 'x = bytearray(512 * 1024 * 1024)'", { resources: { gpus: 0, cpus: 1, memoryMb: 100 } }))
      assert.strictEqual(oom.outcome, "Failed")
      assert.strictEqual(oom.failureKind, "OOM", oom.message)
      assert.include(oom.message, "h_vmem=100M")
    }))

  it.effect("cancel is qdel with a grace: the job's SIGTERM handler runs, and the job ends Cancelled", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const body = "trap 'echo saving checkpoint; sleep 1; echo saved; exit 143' TERM; echo started; while :; do sleep 0.2; done"
      const ref = yield* submitted(backend, spec("cancel-grace", body))
      const events = yield* backend.watch(ref).pipe(
        Stream.tap((e) => (e._tag === "Log" && e.line === "started" ? backend.cancel(ref) : Effect.void)),
        Stream.runCollect,
        Effect.map((c) => Array.from(c))
      )
      const exit = exitOf(events)
      assert.strictEqual(exit.outcome, "Cancelled", exit.message)
      // without -notify and the script's relay, qdel's SIGKILL ends the job at once
      assert.include(exit.logTail, "saved")
      // the handler's own exit, not qdel's SIGKILL after the queue's notify time
      assert.strictEqual(exit.exitCode, 143, exit.message)
    }))

  it.effect("list(run) after a controller restart: a fresh instance finds running and finished jobs and reads a finished one's end back", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const done = yield* backend.submit(spec("relist-done", RESULT))
      assert.strictEqual((yield* Backend.awaitExit(backend, done)).outcome, "Succeeded")
      const running = yield* submitted(backend, spec("relist-running", "echo started; sleep 60"))
      yield* eventually("the job runs", () => qstatState(running.id) === "r", 30)
      const fresh = yield* GridEngineBackend.make(config)
      const listed = yield* fresh.list(run)
      const byNode = new Map(listed.map((j) => [j.labels.node, j]))
      assert.strictEqual(byNode.get("relist-done")?.state, "Finished")
      assert.strictEqual(byNode.get("relist-done")?.ref.id, done.id)
      assert.strictEqual(byNode.get("relist-done")?.ref.data.jobDir, done.data.jobDir)
      assert.strictEqual(byNode.get("relist-running")?.state, "Running")
      // of a node's jobs, a resumed run follows the one submitted last
      assert.isAtLeast(byNode.get("relist-running")?.submittedAt ?? 0, byNode.get("relist-done")?.submittedAt ?? Infinity)
      assert.deepStrictEqual(yield* fresh.list(`${run}-other`), [])
      const exit = yield* Backend.awaitExit(fresh, byNode.get("relist-done")!.ref)
      assert.strictEqual(exit.outcome, "Succeeded")
      assert.deepStrictEqual(exit.result, { metrics: { score: 1 } })
      yield* fresh.cancel(byNode.get("relist-running")!.ref)
      assert.strictEqual((yield* Backend.awaitExit(backend, running)).outcome, "Cancelled")
    }).pipe(Effect.scoped))

  it.effect("a qsub that prints a warning before the job id (an option set twice) submits one job and follows it", () =>
    Effect.gen(function*() {
      const backend = yield* GridEngineBackend.make({ ...config, extraDirectives: ["-j n"] })
      // before the fix: "qsub printed no job id" for a job that was queued, so a retry submitted a second one
      const exit = yield* Backend.run(backend, spec("qsub-warns", RESULT))
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
      assert.strictEqual((yield* backend.list(run)).filter((j) => j.labels.node === "qsub-warns").length, 1)
    }).pipe(Effect.scoped))

  it.effect("a job that left qstat with no accounting record fails after accountingWaitMs, naming qacct", () =>
    Effect.gen(function*() {
      const backend = yield* GridEngineBackend.make({ ...config, accountingWaitMs: 1000 })
      const exit = yield* Backend.awaitExit(backend, { backend: "gridengine", id: "9999990", data: { jobDir: workDir } })
      assert.strictEqual(exit.failureKind, "Infra")
      assert.include(exit.message, "qacct -j 9999990")
    }).pipe(Effect.scoped))

  it.effect("a job that Grid Engine runs again (its script exits 99) runs at most 1 + maxRequeues times, then fails naming maxRequeues", () =>
    Effect.gen(function*() {
      const backend = yield* GridEngineBackend.make({ ...config, maxRequeues: 1 })
      const ref = yield* backend.submit(spec("rerun", "echo ran; exit 99"))
      // before the fix, Grid Engine ran the job again every 10-15 s for as long as it was watched
      const events = yield* collect(backend, ref)
      const exit = exitOf(events)
      assert.strictEqual(exit.outcome, "Failed")
      assert.strictEqual(exit.failureKind, "Infra")
      assert.include(exit.message, "maxRequeues")
      assert.include(exit.message, "exited 99")
      assert.strictEqual(events.filter((e) => e._tag === "Log" && e.line === "ran").length, 2, "the command ran twice")
      assert.isTrue(events.some((e) => e._tag === "State" && e.state === "Pending" && /rerun 1 of at most 1 \(maxRequeues\)/.test(e.reason ?? "")), JSON.stringify(events.filter((e) => e._tag === "State")))
      assert.strictEqual(qstatState(ref.id), "", "the job has left the queue")
      const invalid = yield* Effect.flip(GridEngineBackend.fromJson({ workDir, maxRequeues: -1 }))
      assert.include(invalid.message, "backend.gridengine.maxRequeues")
    }).pipe(Effect.scoped), { timeout: 90_000 })

  it.effect("a cancel while Grid Engine waits to run a job again (its command exited 99, or `qmod -rj`) reads as cancelled, not as its last run's end: that run's exit record is left until the rerun starts", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      // the first run asks to be run again, or is rescheduled while it sleeps; a second would succeed. The first waits for
      // `go` until its job is held: on a loaded machine a `qhold` may land after Grid Engine's rerun delay (4-5 s here:
      // start-gridengine.sh), and the rerun then runs and the job leaves the queue
      const again = (first: string) => `if [ -f ran ]; then ${RESULT}; exit 0; fi; touch ran; while [ ! -f go ]; do sleep 0.1; done; ${first}`
      const jobs = [yield* submitted(backend, spec("asks-rerun", again("exit 99"))), yield* submitted(backend, spec("rescheduled", again("sleep 300")))]
      for (const ref of jobs) {
        // held, it does not run again: its rerun cannot start (and remove the record) before the cancel
        yield* eventually(() => `the first run of ${ref.id} runs: ${clusterSays(ref.id)}`, () => fs.existsSync(path.join(ref.data.jobDir as string, "ran")), 60)
        sge("qhold", ["-h", "u", ref.id])
        yield* eventually(() => `qstat lists ${ref.id} held: ${clusterSays(ref.id)}`, () => qstatState(ref.id).includes("h"), 30)
      }
      for (const ref of jobs) fs.writeFileSync(path.join(ref.data.jobDir as string, "go"), "")
      sge("qmod", ["-f", "-rj", jobs[1]!.id])
      for (const ref of jobs) {
        yield* eventually(() => `the first run of ${ref.id} ended (its exit record written) and the job waits to run again: ${clusterSays(ref.id)}`, () =>
          fs.existsSync(path.join(ref.data.jobDir as string, Script.EXIT_FILE)) && /^[^rt]+$/.test(qstatState(ref.id)), 60)
        yield* backend.cancel(ref)
      }
      for (const ref of jobs) {
        const exit = yield* Backend.awaitExit(backend, ref)
        // before the fix, the second read as its first run's end (the cancel wrote no marker: the record was there), the first as its exit 99
        assert.deepStrictEqual([exit.outcome, exit.failureKind], ["Cancelled", "Cancelled"], exit.message)
        assert.isFalse(fs.existsSync(path.join(ref.data.jobDir as string, "result.json")), "the rerun did not run")
      }
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.effect("a command that ends by itself (exit 137) after a cancel looked for its exit record, before its marker and qdel, keeps its own end (Failed/OOM) at this instance and a fresh one", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const ref = yield* backend.submit(spec("ends-as-cancelled", "echo ending; exit 137"))
      const jobDir = ref.data.jobDir as string
      // the cancel's steps, by hand in the window's order: its look found no record (the command ran); the command
      // ends and its script writes the record; then the cancel's marker (of a job with no record), then its qdel
      yield* eventually(() => `the job's exit record is written: ${clusterSays(ref.id)}`, () => fs.existsSync(path.join(jobDir, Script.EXIT_FILE)), 60)
      fs.writeFileSync(path.join(jobDir, Script.CANCEL_FILE), Script.renderCancelMarker({ waiting: false }, new Date()))
      spawnSync("qdel", [ref.id], { env: sgeEnv })
      // before the fix the marker made any end by a signal a cancel's: Cancelled
      yield* assertOwnOomEnd(backend, ref)
    }), { timeout: 90_000 })

  it.effect("a job suspended with qmod -sj whose command then ends by itself (exit 137) and is cancelled keeps its own end: the suspend's SIGUSR1 is not a cancel's", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const ref = yield* submitted(backend, spec("suspended-ends", "touch started; while [ ! -f go ]; do sleep 0.1; done; exit 137"))
      const jobDir = ref.data.jobDir as string
      yield* eventually(() => `the command runs: ${clusterSays(ref.id)}`, () => fs.existsSync(path.join(jobDir, "started")), 60)
      // with -notify, the job is listed suspended at once and gets SIGUSR1, which its script ignores; SIGSTOP comes after
      // the queue's notify time (10 s here)
      sge("qmod", ["-sj", ref.id])
      yield* eventually(() => `qstat lists the job suspended: ${clusterSays(ref.id)}`, () => qstatState(ref.id).includes("s"), 30)
      fs.writeFileSync(path.join(jobDir, "go"), "")
      const record = path.join(jobDir, Script.EXIT_FILE)
      // on a machine too busy to end the command within the notify time it is stopped: let it go on, to end by itself
      yield* eventually("the command ended", () => fs.existsSync(record), 15).pipe(Effect.ignore)
      if (!fs.existsSync(record)) sge("qmod", ["-usj", ref.id])
      yield* eventually(() => `the job's exit record is written: ${clusterSays(ref.id)}`, () => fs.existsSync(record), 30)
      yield* backend.cancel(ref)
      yield* assertOwnOomEnd(backend, ref)
    }), { timeout: 90_000 })

  it.effect("a rerun Grid Engine starts after a cancel's marker, before its qdel, does not start its command: the job reads Cancelled", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      // the first run asks to be run again (exit 99) once held; a second would succeed
      const ref = yield* submitted(backend, spec("rerun-after-marker", `if [ -f ran ]; then touch ran-again; ${RESULT}; exit 0; fi; touch ran; while [ ! -f go ]; do sleep 0.1; done; exit 99`))
      const jobDir = ref.data.jobDir as string
      yield* eventually(() => `the first run runs: ${clusterSays(ref.id)}`, () => fs.existsSync(path.join(jobDir, "ran")), 60)
      // held, its rerun waits until the marker is there
      sge("qhold", ["-h", "u", ref.id])
      fs.writeFileSync(path.join(jobDir, "go"), "")
      yield* eventually(() => `the first run ended and the job waits to run again: ${clusterSays(ref.id)}`, () =>
        fs.existsSync(path.join(jobDir, Script.EXIT_FILE)) && /^[^rt]+$/.test(qstatState(ref.id)), 60)
      // the cancel's marker (it saw run 1's record, the job waiting), then Grid Engine starts the rerun before its qdel
      fs.writeFileSync(path.join(jobDir, Script.CANCEL_FILE), Script.renderCancelMarker({ runs: 1, waiting: true }, new Date()))
      sge("qrls", ["-h", "u", ref.id])
      const exit = yield* Backend.awaitExit(backend, ref)
      // before the fix the rerun ran the command: Succeeded
      assert.deepStrictEqual([exit.outcome, exit.failureKind], ["Cancelled", "Cancelled"], exit.message)
      assert.isFalse(fs.existsSync(path.join(jobDir, "ran-again")), "the rerun did not run the command")
      assert.include(fs.readFileSync(path.join(jobDir, Script.STDERR_FILE), "utf8"), "before this run started: its command does not run")
    }), { timeout: 90_000 })

  it.effect("a command that exits 100 is a crash with its exit code, not a job in error state", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      // Grid Engine puts a job whose script exits 100 in error state: before the fix, Infra, "can't reach the job directory"
      const exit = yield* Backend.run(backend, spec("exit-100", "exit 100"))
      assert.strictEqual(exit.outcome, "Failed")
      assert.strictEqual(exit.failureKind, "Crash", exit.message)
      assert.strictEqual(exit.exitCode, 100)
    }))

  it.effect("a cluster that keeps no accounting: the job's end is read from its exit record, without qacct", () =>
    Effect.gen(function*() {
      // a cell of its own for the clients, as the real one less the accounting file (reporting_params accounting=false)
      const root = fs.mkdtempSync("/tmp/trex-ge-cell-")
      fs.mkdirSync(path.join(root, "noacct/common"), { recursive: true })
      for (const f of ["act_qmaster", "bootstrap", "host_aliases"]) {
        const from = path.join(sgeRoot, sgeEnv.SGE_CELL, "common", f)
        if (fs.existsSync(from)) fs.copyFileSync(from, path.join(root, "noacct/common", f))
      }
      const backend = yield* GridEngineBackend.make({ ...config, sgeRoot: root, sgeCell: "noacct", accountingWaitMs: 3000 })
      const ref = yield* backend.submit(spec("no-accounting", `sleep 1; ${RESULT}; exit 3`, { resources: { gpus: 0, cpus: 1, memoryMb: 200 } }))
      const exit = yield* Backend.awaitExit(backend, ref)
      // before the fix: qacct was asked until accountingWaitMs passed, and the exit record read only then
      assert.strictEqual(exit.message, `Grid Engine job ${ref.id}: job exited with code 3`)
      assert.strictEqual(exit.failureKind, "Crash")
      assert.strictEqual(exit.exitCode, 3)
      assert.deepStrictEqual(exit.result, { metrics: { score: 1 } })
      assert.isAtLeast(exit.wallSeconds, 1)
    }).pipe(Effect.scoped))

  it.effect("a job no queue could ever run (more GPUs than any host has) is refused at submit, for good, naming the settings: a plain qsub took it, and it waited for ever", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const refused = yield* Effect.flip(backend.submit(spec("too-many-gpus", RESULT, { resources: { gpus: 9, cpus: 1 } })))
      assert.strictEqual(refused.retryable, false, refused.message)
      assert.match(refused.message, /^qsub -terse -w e .* exited 1: Unable to run job: error: no suitable queues: no queue of this cluster could ever run the job \(recipe\.resources: gpus, cpus, memoryMb, timeLimitSeconds; backend\.gridengine: queue/)
      assert.notInclude(sge("qstat", ["-xml"]), "too-many-gpus", "no job left waiting")
    }))

  it.effect("refuses job files outside the job directory, bad env names and a relative workDir", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const bad = yield* Effect.flip(backend.submit(spec("bad", "true", { files: [{ path: "../escape", content: "x" }] })))
      assert.strictEqual(bad._tag, "BackendError")
      const own = yield* Effect.flip(backend.submit(spec("bad", "true", { files: [{ path: Script.CANCEL_FILE, content: "x" }] })))
      assert.include(own.message, Script.CANCEL_FILE)
      const badEnv = yield* Effect.flip(backend.submit(spec("bad", "true", { env: { "A;B": "x" } })))
      assert.include(badEnv.message, "A;B")
      const relative = yield* Effect.flip(GridEngineBackend.make({ workDir: "jobs" }))
      assert.include(relative.message, "absolute")
    }).pipe(Effect.scoped))
})

// The GPU consumable and its locks, withdraw and error state (2-GPU jobs that hold both devices), and capacity (no
// other trex job running): one at a time.
layer(TestLayer, { timeout: 300_000, excludeTestServices: true })("GridEngineBackend's GPUs and queue on a real Grid Engine", (it) => {
  it.effect("schedules the gpu consumable: 2 GPUs named in CUDA_VISIBLE_DEVICES, counted, a second 2-GPU job waits with the scheduler's reason", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      // Each job holds its GPUs until a file appears (up to 120 s), so what the test looks for happens however the
      // queue runs them, not by timing: another file's job taking one of the queue's slots (it had two then) made the second
      // 2-GPU job wait for a slot ("full"), not for the GPUs, and ran the 1-GPU jobs one after the other (hence
      // the longer bound: such a job may hold its slot a while).
      const meet = fs.mkdtempSync(path.join(workDir, "gpu-meet-"))
      const holdUntil = (file: string, what: string) =>
        [
          `i=0; while [ ! -e ${meet}/${file} ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done`,
          `[ -e ${meet}/${file} ] || { echo "${what}"; exit 7; }`
        ].join("\n")
      // the 2-GPU jobs: the one that runs holds both GPUs until the other's watch said it waits for them
      const gpu2 = (node: string) =>
        spec(node, [`echo "cuda=$CUDA_VISIBLE_DEVICES"; sleep 2`, holdUntil("gpu-waited", "the other job was not seen waiting for the GPUs")].join("\n"), {
          resources: { gpus: 2, cpus: 1 }
        })
      const waitsForGpus = (e: Backend.JobEvent) => e._tag === "State" && e.state === "Pending" && /gpu/.test(e.reason ?? "")
      const follow = (ref: Parameters<typeof backend.watch>[0]) =>
        backend.watch(ref).pipe(
          Stream.tap((e) => (waitsForGpus(e) ? Effect.sync(() => fs.writeFileSync(path.join(meet, "gpu-waited"), "")) : Effect.void)),
          Stream.runCollect,
          Effect.map((c) => Array.from(c))
        )
      const first = yield* backend.submit(gpu2("gpu-a"))
      const second = yield* backend.submit(gpu2("gpu-b"))
      const [a, b] = yield* Effect.all([follow(first), follow(second)], { concurrency: 2 })
      for (const events of [a, b]) {
        const exit = exitOf(events)
        assert.strictEqual(exit.outcome, "Succeeded", `${exit.message}: ${exit.logTail.join("\n")}`)
        const cuda = events.flatMap((e) => (e._tag === "Log" && e.line.startsWith("cuda=") ? [e.line.slice(5)] : []))
        assert.deepStrictEqual(cuda[0]!.split(",").sort(), ["0", "1"])
        assert.isAtLeast(exit.wallSeconds, 2)
        assert.strictEqual(exit.gpuSeconds, exit.wallSeconds * 2)
      }
      assert.include(sge("qacct", ["-j", first.id]), "gpu=2")
      // whichever the scheduler took first, the other waited for the GPUs it held, and said so
      assert.isTrue([a, b].some((events) => events.some(waitsForGpus)), JSON.stringify([a.slice(0, 4), b.slice(0, 4)]))
      // two 1-GPU jobs at once get different devices: each says it holds its device, then keeps it until the other
      // does too, so they hold them at the same time (one after the other, the second could get the device back)
      const holding = (self: string, other: string) =>
        spec(`gpu-${self}`, [`echo "cuda=$CUDA_VISIBLE_DEVICES"; : > ${meet}/${self}`, holdUntil(other, `gpu-${other} did not run while this job held its device`)].join("\n"), {
          resources: { gpus: 1, cpus: 1 }
        })
      const [c, d] = yield* Effect.all([backend.submit(holding("c", "d")), backend.submit(holding("d", "c"))])
      const [ce, de] = yield* Effect.all([collect(backend, c), collect(backend, d)], { concurrency: 2 })
      for (const events of [ce, de]) assert.strictEqual(exitOf(events).outcome, "Succeeded", exitOf(events).logTail.join("\n"))
      const device = (events: ReadonlyArray<Backend.JobEvent>) => events.flatMap((e) => (e._tag === "Log" && e.line.startsWith("cuda=") ? [e.line.slice(5)] : []))[0]
      assert.notStrictEqual(device(ce), device(de))
      assert.sameMembers([device(ce), device(de)], ["0", "1"])
    }), { timeout: 300_000 })

  it.effect("a GPU lock whose pid another process now has (its job killed without giving it back, the pid reused) is taken over; one whose owner lives holds", () =>
    Effect.gen(function*() {
      const locks = lockDir()
      const backend = yield* GridEngineBackend.make({ ...config, gpuLockDir: locks })
      const other = sleeper()
      // both devices locked by a job killed long ago, its pid now a process of another's, started since
      for (const i of [0, 1]) plant(locks, i, other, String(Number(startTime(other)) - 500))
      // the command leaves a child running: under sge_shepherd the script leads the job's process group, so it ends the
      // child (which says whether the devices were still locked then) before it gives them back
      const child = `trap 'if [ -d ${locks}/gpu0 ]; then echo "child saw: held"; else echo "child saw: free"; fi >&2; exit 0' TERM; while :; do sleep 0.05; done`
      const exit = yield* Backend.run(backend, spec("gpu-reused", `echo "cuda=$CUDA_VISIBLE_DEVICES"; sh -c ${JSON.stringify(child)} & ${RESULT}`, { resources: { gpus: 2, cpus: 1 } }))
      // before the fix: exit 96, "Grid Engine granted 2 gpu but only 0 of the 2 devices ... are free"
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
      assert.include(exit.logTail, "cuda=0,1")
      assert.isTrue(exit.logTail.some((l) => l.startsWith("trex: the command left processes running")), exit.logTail.join("\n"))
      assert.include(exit.logTail, "child saw: held")
      assert.deepStrictEqual(fs.readdirSync(locks).filter((f) => f !== "breaks"), [], "the job gave its devices back")
      // the owner alive, its start time right: its lock holds
      for (const i of [0, 1]) plant(locks, i, other, startTime(other))
      const held = yield* Backend.run(backend, spec("gpu-held", RESULT, { resources: { gpus: 1, cpus: 1 } }))
      assert.strictEqual(held.outcome, "Failed")
      assert.strictEqual(held.failureKind, "Infra", held.message)
      assert.include(held.message, "Grid Engine granted 1 gpu but only 0 of the")
    }).pipe(Effect.scoped))

  it.effect("a process the command started outside its process group (`setsid sleep 300 &`) is ended before the next job holds the GPUs, and the job's log names it", () => {
    let leftover = 0
    return Effect.gen(function*() {
      const locks = lockDir()
      const backend = yield* GridEngineBackend.make({ ...config, gpuLockDir: locks })
      const gpus = { resources: { gpus: 2, cpus: 1 } }
      // (run by `sh -c` without job control, `setsid` is no group leader: it makes the session and becomes `sleep`)
      const first = yield* backend.submit(spec("gpu-setsid", `setsid sleep 300 & echo $! > leftover.pid; ${RESULT}`, gpus))
      const pidFile = path.join(first.data.jobDir as string, "leftover.pid")
      // the next job needs both GPUs, so Grid Engine starts it once the first has ended: is the process still there?
      const next = yield* backend.submit(spec("gpu-after-setsid", reportLeftover(pidFile), gpus))
      const ended = yield* Backend.awaitExit(backend, first)
      leftover = Number(fs.readFileSync(pidFile, "utf8"))
      assert.strictEqual(ended.outcome, "Succeeded", ended.message)
      const after = yield* Backend.awaitExit(backend, next)
      assert.strictEqual(after.outcome, "Succeeded", after.message)
      assert.include(after.logTail, "cuda=0,1")
      // before the fix: "leftover <pid>: running", the sleep on the GPUs the next job was given
      assert.include(after.logTail, `leftover ${leftover}: gone`, after.logTail.join("\n"))
      assert.include(ended.logTail, `trex: of them, outside the job's process group (setsid, a daemon), found by ${Script.MARK_VAR} in their environment: pids ${leftover}`)
      // a job that ends as it should ends its watcher itself, which says nothing
      assert.isFalse(ended.logTail.some((l) => l.includes("was killed before it gave back")), ended.logTail.join("\n"))
      assert.deepStrictEqual(watchersOf(first.id), [], "the first job's watcher outlived it")
    }).pipe(Effect.scoped, Effect.ensuring(Effect.suspend(() => endLeftover(leftover))))
  })

  it.effect("a second cancel while qstat still lists the job the first one's qdel is ending (its script ending what its command left, after its record) keeps the first's marker: the job reads Cancelled", () => {
    let leftover = 0
    return Effect.gen(function*() {
      const backend = yield* GridEngineBackend.make({ ...config, gpuLockDir: lockDir() })
      // a process of the command, in its group, that ignores SIGTERM: after the command's end and its record, the
      // script waits LEFTOVER_GRACE_SECONDS (5 s, under the queue's 10 s notify time) before its SIGKILL, the job listed
      const body = `sh -c "trap '' TERM; exec sleep 300" & echo $! > leftover.pid; echo started; while :; do sleep 0.2; done`
      const ref = yield* submitted(backend, spec("cancel-twice", body, { resources: { gpus: 1, cpus: 1 } }))
      const jobDir = ref.data.jobDir as string
      const twice = backend.cancel(ref).pipe(
        // the first cancel's qdel has ended the command: its record (exit 143, notified, run 1) is there, the job listed
        Effect.andThen(eventually("the command's exit record", () => fs.existsSync(path.join(jobDir, Script.EXIT_FILE)), 30)),
        Effect.andThen(backend.cancel(ref))
      )
      const events = yield* backend.watch(ref).pipe(
        Stream.tap((e) => (e._tag === "Log" && e.line === "started" ? twice : Effect.void)),
        Stream.runCollect,
        Effect.map((c) => Array.from(c))
      )
      leftover = Number(fs.readFileSync(path.join(jobDir, "leftover.pid"), "utf8"))
      const exit = exitOf(events)
      // before the fix, the second cancel wrote {"runs":1,"waiting":false} over the first's: Failed / Crash, killed by signal 15
      assert.deepStrictEqual([exit.outcome, exit.failureKind], ["Cancelled", "Cancelled"], exit.message)
      assert.deepInclude(JSON.parse(fs.readFileSync(path.join(jobDir, Script.CANCEL_FILE), "utf8")), { waiting: false })
      assert.notProperty(JSON.parse(fs.readFileSync(path.join(jobDir, Script.CANCEL_FILE), "utf8")), "runs")
    }).pipe(Effect.scoped, Effect.ensuring(Effect.suspend(() => endLeftover(leftover))))
  })

  it.effect("a job whose script Grid Engine kills (a qdel past the queue's notify time) leaves no process of its command outside its process group (`setsid sleep 300 &`): its watcher ends it before the next job holds the GPUs", () => {
    let leftover = 0
    return Effect.gen(function*() {
      const locks = lockDir()
      const backend = yield* GridEngineBackend.make({ ...config, gpuLockDir: locks })
      const gpus = { resources: { gpus: 2, cpus: 1 } }
      // the command ignores the SIGTERM the script relays from qdel's SIGUSR2 (its `setsid` child, started before, does
      // not), so Grid Engine SIGKILLs the job's process group, the script with it, after the queue's notify time (10 s)
      const first = yield* submitted(backend, spec("gpu-killed", `setsid sleep 300 & echo $! > leftover.pid; trap '' TERM; echo started; while :; do sleep 1; done`, gpus))
      const jobDir = first.data.jobDir as string
      const next = yield* backend.submit(spec("gpu-after-killed", reportLeftover(path.join(jobDir, "leftover.pid")), gpus))
      const events = yield* backend.watch(first).pipe(
        Stream.tap((e) => (e._tag === "Log" && e.line === "started" ? backend.cancel(first) : Effect.void)),
        Stream.runCollect,
        Effect.map((c) => Array.from(c))
      )
      leftover = Number(fs.readFileSync(path.join(jobDir, "leftover.pid"), "utf8"))
      assert.strictEqual(exitOf(events).outcome, "Cancelled", exitOf(events).message)
      // the script was killed: it wrote no exit record
      assert.isFalse(fs.existsSync(path.join(jobDir, Script.EXIT_FILE)), "the job's script ended by itself")
      const after = yield* Backend.awaitExit(backend, next)
      assert.strictEqual(after.outcome, "Succeeded", after.message)
      assert.include(after.logTail, "cuda=0,1")
      // before the fix: "leftover <pid>: running", the sleep on the GPUs the next job was given
      assert.include(after.logTail, `leftover ${leftover}: gone`, after.logTail.join("\n"))
      const log = fs.readFileSync(path.join(jobDir, Script.STDERR_FILE), "utf8")
      assert.include(log, "was killed before it gave back its GPUs (0 1) (a qdel past its grace, h_rt)", log)
      assert.include(log, `found by ${Script.MARK_VAR} in their environment: pids ${leftover}`, log)
      yield* eventually("the watcher, its work done, ended", () => watchersOf(first.id).length === 0, 30)
    }).pipe(Effect.scoped, Effect.ensuring(Effect.suspend(() => endLeftover(leftover))))
  })

  it.effect("withdraw deletes a job only while it waits: a running one runs on", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const gpu = (node: string) => spec(node, "echo started; sleep 60", { resources: { gpus: 2, cpus: 1 } })
      const first = yield* submitted(backend, gpu("withdraw-a"))
      const second = yield* submitted(backend, gpu("withdraw-b"))
      yield* eventually("the first job runs", () => qstatState(first.id) === "r", 30)
      assert.strictEqual(qstatState(second.id), "qw")
      assert.isFalse(yield* backend.withdraw!(first), "a running job is not withdrawn")
      assert.strictEqual(qstatState(first.id), "r", "and keeps running, its hold released")
      assert.isTrue(yield* backend.withdraw!(second), "a waiting job is")
      assert.strictEqual((yield* Backend.awaitExit(backend, second)).outcome, "Cancelled")
      yield* backend.cancel(first)
      assert.strictEqual((yield* Backend.awaitExit(backend, first)).outcome, "Cancelled")
    }))

  it.effect("a held job waits with its reason; one in error state (Eqw) fails with Grid Engine's reason and is deleted", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const blocker = yield* submitted(backend, spec("eqw-blocker", "echo started; sleep 60", { resources: { gpus: 2, cpus: 1 } }))
      yield* eventually("the blocker runs", () => qstatState(blocker.id) === "r", 30)
      const ref = yield* backend.submit(spec("eqw", RESULT, { resources: { gpus: 2, cpus: 1 } }))
      sge("qhold", [ref.id])
      const states: Array<Backend.JobEvent> = []
      const watching = yield* Effect.forkChild(backend.watch(ref).pipe(Stream.tap((e) => Effect.sync(() => states.push(e))), Stream.runCollect))
      yield* eventually("the hold is reported", () => states.some((e) => e._tag === "State" && e.state === "Pending" && e.reason === "held (hqw)"), 30)
      // the job directory gone from the execution host (an unmounted or unshared filesystem): the job cannot start
      fs.rmSync(ref.data.jobDir as string, { recursive: true })
      sge("qrls", [ref.id])
      yield* backend.cancel(blocker)
      const events = Array.from(yield* Fiber.join(watching))
      const exit = exitOf(events)
      assert.strictEqual(exit.outcome, "Failed")
      assert.strictEqual(exit.failureKind, "Infra")
      assert.include(exit.message, "error state (Eqw)")
      assert.include(exit.message, "can't chdir")
      assert.include(exit.message, "deleted (qdel)")
      // before the fix: the job stayed Eqw in the queue and the watch reported it pending for ever
      yield* eventually("the job is deleted", () => qstatState(ref.id) === "", 30)
    }))

  it.effect("reports capacity: the queue's slots, the 2 gpu of the host, and the trex jobs running", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const cap = yield* backend.capacity
      assert.strictEqual(cap.gpus, Number(process.env["TREX_TEST_SGE_FAKE_GPUS"] ?? 2))
      assert.isAtLeast(cap.slots, 1)
      yield* eventually("no trex job runs", Effect.map(backend.capacity, (c) => c.inUse === 0), 60)
      const ref = yield* submitted(backend, spec("capacity", "sleep 60"))
      yield* eventually("the running job counts as in use", Effect.map(backend.capacity, (c) => c.inUse === 1), 60)
      yield* backend.cancel(ref)
      yield* eventually("the cancelled job no longer counts", Effect.map(backend.capacity, (c) => c.inUse === 0), 60)
    }), { timeout: 180_000 })
})

/**
 * The qmaster back, and the execution daemon restarted with it: an execd finds a restarted qmaster by itself only
 * after about 30 s (its reconnect interval), while a restarted one registers at once and reports the jobs that ended
 * meanwhile (a controlled shutdown leaves its jobs running).
 */
const restartGridEngine = Effect.andThen(
  Effect.sync(() => {
    execFileSync("bash", ["-c", `. ${script("lib.sh")}; /usr/lib/gridengine/sge_qmaster; f=/var/spool/gridengine/execd/localhost/execd.pid; p=$(cat $f); kill $p; while running $p; do sleep 0.1; done`], { env: sgeEnv, timeout: 60_000 })
  }),
  startGridEngine
)

layer(TestLayer, { timeout: 300_000, excludeTestServices: true })("GridEngineBackend when Grid Engine's daemons stop", (it) => {
  // (one test: the execd the first part kills is the one the two starts bring back, a restart less)
  it.effect("ends a job whose execd died from its exit record: Grid Engine lists it running until the host is back; then two starts at once with the execd down (test files side by side, each bringing Grid Engine up) both succeed, one execd between them", () =>
    Effect.gen(function*() {
      const backend = yield* GridEngineBackend.make({ ...config, exitReportWaitMs: 1500 })
      const ref = yield* backend.submit(spec("execd-dead", `echo started; sleep 2; ${RESULT}; exit 3`, { resources: { gpus: 1, cpus: 1 } }))
      yield* eventually("the job runs", () => qstatState(ref.id) === "r", 30)
      // a host that crashed: its execd never reports the job's end
      execFileSync("bash", ["-c", `. ${script("lib.sh")}; p=$(cat /var/spool/gridengine/execd/localhost/execd.pid); kill -9 $p; while running $p; do sleep 0.1; done`])
      // before the fix, the watch followed a job listed running until the execd came back (here: never, the test timed out)
      const exit = yield* Backend.awaitExit(backend, ref)
      assert.strictEqual(exit.outcome, "Failed")
      assert.strictEqual(exit.exitCode, 3, exit.message)
      assert.include(exit.message, Script.EXIT_FILE)
      assert.include(exit.message, "qhost")
      assert.deepStrictEqual(exit.result, { metrics: { score: 1 } })
      assert.isAtLeast(exit.wallSeconds, 2)
      assert.strictEqual(exit.gpuSeconds, exit.wallSeconds)
      assert.strictEqual(qstatState(ref.id), "r", "Grid Engine still lists it running")

      // the execd still down: two starts at once
      const start = () =>
        new Promise<{ readonly code: number | null; readonly stderr: string }>((resolve) => {
          const child = spawn("bash", [script("start-gridengine.sh")], { stdio: ["ignore", "ignore", "pipe"] })
          let stderr = ""
          child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
          child.on("exit", (code) => resolve({ code, stderr }))
        })
      // before the lock, the second sge_execd failed to bind the first one's port and its start exited 100
      const starts = yield* Effect.promise(() => Promise.all([start(), start()]))
      for (const s of starts) assert.strictEqual(s.code, 0, s.stderr)
      // one daemon: an sge_execd forked by the execd (the instant before it execs a shepherd for a job that other test
      // files run side by side) is not a second one (a CI run counted 2 so), nor is the zombie the daemon's start leaves
      // (its middle fork exits once it has forked the daemon; this machine's pid 1 reaps it about a second later, and a
      // CI run counted 2 so: a zombie with ppid 1 beside the daemon, pids n and n+1)
      const execds = spawnSync("ps", ["-C", "sge_execd", "-o", "pid=,ppid=,stat="], { encoding: "utf8" }).stdout.trim().split("\n")
        .map((l) => l.trim().split(/\s+/)).filter(([, , stat]) => !stat?.startsWith("Z"))
      const pids = new Set(execds.map(([pid]) => pid))
      assert.deepStrictEqual(execds.filter(([, ppid]) => !pids.has(ppid)).length, 1, JSON.stringify(execds))
    }).pipe(Effect.scoped, Effect.ensuring(startGridEngine)), { timeout: 300_000 })

  it.effect("waits for a stopped qmaster: a running job's watch, a submit, a list, a cancel and a withdraw go on once it is back, one job each; past qmasterWaitMs a watch and a cancel fail clearly", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const impatient = yield* GridEngineBackend.make({ ...config, qmasterWaitMs: 1500 })
      // the job runs until the test lets it end (a file `go` in its directory): a job that only slept 3 s could start
      // and end between two of the test's looks at qstat on a busy machine, and the test waited for it to run for ever
      // (in a CI run, qstat -j then said the job was gone, and the job that needed its GPUs was running)
      const ref = yield* backend.submit(spec("qmaster-running", `echo started; sleep 3; while [ ! -e go ]; do sleep 0.2; done; ${RESULT}`))
      const watching = yield* Effect.forkChild(collect(backend, ref))
      // two jobs that wait (for the GPUs a running job holds): one to cancel, one to withdraw during the outage
      const blocker = yield* backend.submit(spec("qmaster-blocker", "echo started; sleep 120", { resources: { gpus: 2, cpus: 1 } }))
      const toCancel = yield* backend.submit(spec("qmaster-cancel", RESULT, { resources: { gpus: 1, cpus: 1 } }))
      const toWithdraw = yield* backend.submit(spec("qmaster-withdraw", RESULT, { resources: { gpus: 1, cpus: 1 } }))
      // (what the cluster says goes with a failure)
      yield* eventually("the job runs", () => qstatState(ref.id) === "r", 60).pipe(Effect.mapError((e) => new Error(`${e.message}\n${clusterSays(ref.id)}`)))
      yield* stopQmaster
      // qsub cannot reach the qmaster: nothing was submitted, so the backend submits again once it answers
      const submitting = yield* Effect.forkChild(backend.submit(spec("qmaster-submitted", RESULT)))
      // what a resumed run reconciles its trials with: failing, it had them submitted again
      const listing = yield* Effect.forkChild(backend.list(run))
      // before the fix, a cancel and a withdraw failed at once (Connection refused), leaving their jobs queued
      const cancelling = yield* Effect.forkChild(backend.cancel(toCancel))
      const withdrawing = yield* Effect.forkChild(backend.withdraw!(toWithdraw))
      const notCancelled = yield* Effect.flip(impatient.cancel(toCancel))
      assert.include(notCancelled.message, "(qmasterWaitMs) while deleting job")
      const err = yield* Effect.flip(Backend.awaitExit(impatient, ref))
      assert.strictEqual(err._tag, "BackendError")
      assert.include(err.message, "did not answer")
      assert.include(err.message, "(qmasterWaitMs)")
      assert.include(err.message, "trex resume")
      // the job runs to its end meanwhile; its execd reports it once the qmaster is back
      fs.writeFileSync(path.join(ref.data.jobDir as string, "go"), "")
      yield* eventually("the job ran to its end while the qmaster was away", () => fs.existsSync(path.join(ref.data.jobDir as string, "result.json")), 30)
      // before the fix, the watch failed at the first qstat that could not reach the qmaster
      yield* restartGridEngine
      const events = yield* Fiber.join(watching)
      const exit = exitOf(events)
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
      assert.deepStrictEqual(exit.result, { metrics: { score: 1 } })
      assert.isAtLeast(exit.wallSeconds, 3)
      // the outage was told (for `trex status`: the trial is unreachable, and why) once, in the state last shown
      const told = events.filter((e) => e._tag === "State" && /^the Grid Engine qmaster does not answer since \d\d:\d\d:\d\dZ .*\(qmasterWaitMs\)$/.test(e.reason ?? ""))
      assert.strictEqual(told.length, 1, JSON.stringify(events.filter((e) => e._tag === "State")))
      assert.isTrue((yield* Fiber.join(listing)).some((j) => j.ref.id === ref.id), "the list waited for the qmaster")
      const submitted = yield* Fiber.join(submitting)
      assert.strictEqual((yield* Backend.awaitExit(backend, submitted)).outcome, "Succeeded")
      const jobs = (yield* backend.list(run)).filter((j) => j.labels.node === "qmaster-submitted")
      assert.deepStrictEqual(jobs.map((j) => j.ref.id), [submitted.id])
      yield* Fiber.join(cancelling)
      assert.isTrue(yield* Fiber.join(withdrawing), "the waiting job was withdrawn")
      for (const waited of [toCancel, toWithdraw]) assert.strictEqual((yield* Backend.awaitExit(backend, waited)).outcome, "Cancelled")
      yield* backend.cancel(blocker)
    }).pipe(Effect.scoped, Effect.ensuring(startGridEngine)), { timeout: 300_000 })
})

const startSshd = () => execFileSync("bash", [script("start-sshd.sh")], { stdio: ["ignore", "ignore", "inherit"], timeout: 300_000 })

/** A work directory anyone may write, and the SSH settings of `sdktest` on `port` (the test sshd's host key). */
const overSsh = (port = Number(process.env["TREX_TEST_SSH_PORT"] ?? 2222)) => {
  const keyDir = process.env["SSH_KEY_DIR"] ?? "/var/lib/trex-test-ssh"
  const hostKey = fs.readFileSync(path.join(keyDir, "known_hosts"), "utf8").trim().split(/\s+/)[2]!
  const remoteDir = fs.mkdtempSync("/tmp/trex-gridengine-ssh-")
  fs.chmodSync(remoteDir, 0o777)
  return {
    remoteDir,
    ssh: {
      host: "127.0.0.1",
      port,
      username: "sdktest",
      privateKey: Redacted.make(fs.readFileSync(path.join(keyDir, "id_ed25519"), "utf8")),
      hostKeySha256: createHash("sha256").update(Buffer.from(hostKey, "base64")).digest("base64")
    }
  }
}

describe("GridEngineBackend over SSH", () => {
  it.live("runs the same logic over SSH (ssh2 exec + SFTP) as another user, SGE_ROOT from the config", () =>
    Effect.gen(function*() {
      yield* startGridEngine
      startSshd()
      const { remoteDir, ssh } = overSsh()
      const backend = yield* GridEngineBackend.make({ workDir: remoteDir, pollIntervalMs: 300, sgeRoot, ssh })
      const ref = yield* backend.submit(spec("ssh", "echo \"user=$(id -un) secret=$TOKEN\"; echo '{\"metrics\":{},\"primary\":1}' > result.json", {
        env: { TOKEN: Redacted.make("t0k") }
      }))
      const oom = yield* backend.submit(spec("ssh-oom", "exit 137"))
      const jobDir = ref.data.jobDir as string
      assert.strictEqual(fs.statSync(path.join(jobDir, Script.ENV_FILE)).uid, Number(execFileSync("id", ["-u", "sdktest"], { encoding: "utf8" })))
      const exit = exitOf(yield* collect(backend, ref))
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
      assert.deepStrictEqual(exit.result, { metrics: {}, primary: 1 })
      assert.include(exit.logTail, "user=sdktest secret=t0k")
      assert.isTrue((yield* backend.list(run)).some((j) => j.ref.id === ref.id), "list over SSH sees the job (qstat as sdktest)")
      // a cancel of a job that has ended leaves its exit; before the fix, over SSH, it waited for ever (its look for the
      // exit record, a read of 0 bytes, closed the connection and never answered)
      const oomExit = exitOf(yield* collect(backend, oom))
      assert.deepStrictEqual([oomExit.outcome, oomExit.failureKind], ["Failed", "OOM"], oomExit.message)
      for (const [ended, was] of [[ref, exit], [oom, oomExit]] as const) {
        yield* backend.cancel(ended).pipe(Effect.timeout("60 seconds"))
        const again = yield* Backend.awaitExit(backend, ended).pipe(Effect.timeout("60 seconds"))
        assert.deepStrictEqual([again.outcome, again.failureKind, again.exitCode], [was.outcome, was.failureKind, was.exitCode], again.message)
      }
    }).pipe(Effect.scoped), { timeout: 300_000 })

  it.live("a cancel over an SFTP server that refuses hardlink@openssh.com still marks the job (renamed into place by OpenSSH's server, or created in place where it refuses rename too): a held job deleted before it ran reads Cancelled", () =>
    Effect.gen(function*() {
      yield* startGridEngine
      startSshd()
      const sshdDir = yield* Effect.acquireRelease(Effect.sync(() => fs.mkdtempSync("/tmp/trex-gridengine-sshd-")), (d) => Effect.sync(() => fs.rmSync(d, { recursive: true, force: true })))
      for (const refused of ["hardlink,fsync", "hardlink,fsync,rename"]) {
        const { port } = yield* ownSshd(sshdDir, `MaxSessions 100\nSubsystem sftp internal-sftp -P ${refused}`)
        const { remoteDir, ssh } = overSsh(port)
        // held (hqw): deleted by the cancel before it runs, its end read from the marker at once
        const backend = yield* GridEngineBackend.make({ workDir: remoteDir, pollIntervalMs: 300, sgeRoot, ssh, extraDirectives: ["-h"] })
        const ref = yield* backend.submit(spec("ssh-no-hardlink", "echo ran"))
        yield* backend.cancel(ref).pipe(Effect.timeout("60 seconds"))
        const marker = path.join(ref.data.jobDir as string, Script.CANCEL_FILE)
        // before H4a: no marker ("cannot write ...: Server does not support this extended request", warned)
        assert.deepStrictEqual(Script.parseCancelMarker(fs.readFileSync(marker, "utf8")), { waiting: false }, refused)
        assert.strictEqual(fs.statSync(marker).uid, Number(execFileSync("id", ["-u", "sdktest"], { encoding: "utf8" })))
        const exit = yield* Backend.awaitExit(backend, ref).pipe(Effect.timeout("60 seconds"))
        assert.strictEqual(exit.outcome, "Cancelled", exit.message)
      }
    }).pipe(Effect.scoped), { timeout: 120_000 })
})
