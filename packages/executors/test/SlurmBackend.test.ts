// The Slurm backend against the real single-node Slurm 22.05 that scripts/services/start-slurm.sh starts
// (slurmctld + slurmd + slurmdbd, 2 fake GPUs as GRES), plus the pure parts: quoting, script, state mapping.
import { execFileSync, spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it, layer } from "@effect/vitest"
import { Backend, TaskFile } from "@trex/core"
import { Effect, Fiber, Layer, Logger, Redacted, Stream } from "effect"
import * as fc from "fast-check"
import { BackendConformance } from "@trex/core/testing"
import { assertTooBig, BULKY_RESULT_SCRIPT } from "./support/bulkyResult.ts"
import { checkLoudWatch, loudScript } from "./support/loudLog.ts"
import * as SlurmBackend from "../src/SlurmBackend.ts"
import * as Script from "../src/internal/slurmScript.ts"
import { eventually } from "./support/eventually.ts"
import { checkEndedBeforeFirstWatch, collect, ENDED_FIRST_SCRIPT, exitOf, specIn } from "./support/batchJobs.ts"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")
const workDir = fs.mkdtempSync("/tmp/trex-slurm-test-")
const run = `run-${Date.now().toString(36)}`

const startSlurm = Effect.sync(() => {
  execFileSync("bash", [path.join(repoRoot, "scripts/services/start-slurm.sh")], { stdio: ["ignore", "ignore", "inherit"], timeout: 300_000 })
})

const config: SlurmBackend.Config = { workDir, pollIntervalMs: 300 }
const TestLayer = Layer.unwrap(startSlurm.pipe(Effect.as(SlurmBackend.layer(config))))

const spec = specIn(run)

/** A file the hostile arguments would create if a shell ran them (one per test process). */
const PWNED = `/tmp/trex-pwned-${process.pid}`
const HOSTILE = [
  "",
  " ",
  "a b",
  "it's",
  "'",
  "''",
  "\"$HOME\"",
  "$(touch " + PWNED + ")",
  "`id`",
  "a;b|c&d",
  "*",
  "~",
  "-n",
  "new\nline",
  "tab\there",
  "back\\slash\\",
  "!event",
  "${PATH}",
  "ünïcødé ✓",
  "%j %x"
]

describe("shellQuote", () => {
  it("turns each hostile string into exactly one word that sh reads back unchanged", () => {
    for (const word of HOSTILE) {
      const out = spawnSync("/bin/sh", ["-c", `printf '%s' ${Script.shellQuote(word)}`], { encoding: "utf8" })
      assert.strictEqual(out.stdout, word, `quoting ${JSON.stringify(word)}`)
    }
    const argv = spawnSync("/bin/sh", ["-c", `for a in ${Script.shellJoin(HOSTILE)}; do printf '<%s>' "$a"; done`], { encoding: "utf8" })
    assert.strictEqual(argv.stdout, HOSTILE.map((w) => `<${w}>`).join(""))
    assert.isFalse(fs.existsSync(PWNED))
  })

  it("round-trips arbitrary strings through sh (property)", () => {
    // 150 strings, 30 to an sh (one sh each took 60 ms of this process's time: 9 s in all), each its own word:
    // printed between NULs, which no string holds
    fc.assert(
      fc.property(fc.array(fc.string({ unit: "grapheme", maxLength: 40 }).filter((s) => !s.includes("\0")), { minLength: 30, maxLength: 30 }), (words) => {
        const out = spawnSync("/bin/sh", ["-c", `printf '%s\\0' ${Script.shellJoin(words)}`], { encoding: "utf8" })
        return out.stdout === words.map((w) => `${w}\0`).join("")
      }),
      { numRuns: 5 }
    )
  })

  it("refuses NUL bytes", () => {
    assert.throws(() => Script.shellQuote("a\0b"))
  })
})

describe("renderScript", () => {
  const input: Script.ScriptInput = {
    jobName: "my job; rm -rf /",
    labels: { run: "run,1=x", node: "n 7" },
    jobDir: "/shared/jobs/r/n",
    envFile: "/shared/jobs/r/n/.trex-env",
    argv: ["python", "train.py", "--name", "it's $(bad)"],
    gpus: 2,
    gpuFlag: "gres",
    cpus: 4,
    memoryMb: 16000,
    timeLimitSeconds: 3601,
    partition: "gpu",
    account: "ml",
    extraDirectives: ["--constraint=ampere"]
  }

  it("writes every #SBATCH option and the labels in --comment", () => {
    const s = Script.renderScript(input)
    for (const d of [
      "--job-name=my_job_rm_-rf_",
      `--comment=${Script.labelComment(input.labels)}`,
      "--gres=gpu:2",
      "--partition=gpu",
      "--account=ml",
      "--time=0-01:00:01",
      "--mem=16000M",
      "--cpus-per-task=4",
      "--output=/shared/jobs/r/n/slurm.stdout.log",
      "--error=/shared/jobs/r/n/slurm.stderr.log",
      "--constraint=ampere"
    ]) assert.include(s, `#SBATCH ${d}\n`)
    assert.include(s, `exec python train.py --name 'it'\\''s $(bad)'\n`)
    assert.include(Script.renderScript({ ...input, gpuFlag: "gpus", gresType: "a100" }), "#SBATCH --gpus=a100:2\n")
    assert.deepStrictEqual(Script.parseLabelComment(Script.labelComment(input.labels)), input.labels)
    assert.isUndefined(Script.parseLabelComment("some other job"))
  })

  it("refuses values that would break an #SBATCH line", () => {
    assert.throws(() => Script.renderScript({ ...input, partition: "gpu --account=other" }))
    assert.throws(() => Script.renderScript({ ...input, jobDir: "/shared/my jobs" }))
  })

  it("parses sacct --parsable2 output, ExitCode and AllocTRES", () => {
    const recs = Script.parseParsable2("JobID|State|ExitCode\n12|FAILED|3:0\n13|CANCELLED by 0|0:15\n")
    assert.deepStrictEqual(recs, [{ JobID: "12", State: "FAILED", ExitCode: "3:0" }, { JobID: "13", State: "CANCELLED by 0", ExitCode: "0:15" }])
    assert.deepStrictEqual(Script.parseExitCode("3:0"), { exitCode: 3, signal: 0 })
    assert.deepStrictEqual(Script.parseExitCode(""), {})
    assert.strictEqual(Script.gpusFromTres("billing=1,cpu=1,gres/gpu=2,mem=1000M,node=1"), 2)
    assert.strictEqual(Script.gpusFromTres("cpu=1,gres/gpu:a100=4,gres/gpu=4"), 4)
    assert.isUndefined(Script.gpusFromTres("cpu=1,mem=1G"))
  })
})

describe("mapState", () => {
  const m = (state: string, extra: Partial<Script.StateInput> = {}) => Script.mapState({ state, requeues: 0, maxRequeues: 2, ...extra })

  it("maps waiting states to Pending with the scheduler's reason", () => {
    assert.deepStrictEqual(m("PENDING", { reason: "Resources" }), { _tag: "Pending", reason: "Resources" })
    assert.deepStrictEqual(m("PENDING", { reason: "None" }), { _tag: "Pending" })
    assert.deepStrictEqual(m("CONFIGURING"), { _tag: "Pending", reason: "CONFIGURING" })
    for (const s of ["REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD", "SUSPENDED", "STOPPED"]) {
      assert.strictEqual(m(s)._tag, "Pending", s)
    }
    assert.deepStrictEqual(m("REQUEUE_HOLD", { reason: "JobHeldAdmin" }), { _tag: "Pending", reason: "REQUEUE_HOLD: JobHeldAdmin" })
  })

  it("maps live states to Running", () => {
    for (const s of ["RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING"]) assert.deepStrictEqual(m(s), { _tag: "Running" })
  })

  it("maps terminal states to an Exit with a failure kind", () => {
    assert.deepStrictEqual(m("COMPLETED", { exitCode: "0:0" }), { _tag: "Exit", outcome: "Succeeded", exitCode: 0, message: "completed" })
    assert.deepStrictEqual(m("FAILED", { exitCode: "3:0" }), { _tag: "Exit", outcome: "Failed", failureKind: "Crash", exitCode: 3, message: "job exited with code 3" })
    assert.deepStrictEqual(m("FAILED", { exitCode: "0:9" }), { _tag: "Exit", outcome: "Failed", failureKind: "Crash", exitCode: 0, signal: 9, message: "job killed by signal 9" })
    assert.deepStrictEqual(m("FAILED", { exitCode: "137:0" }), {
      _tag: "Exit",
      outcome: "Failed",
      failureKind: "OOM",
      exitCode: 137,
      message: "job exited with code 137: out of memory (the job's own report)"
    })
    assert.include(m("SPECIAL_EXIT", { exitCode: "1:0" }), { outcome: "Failed", failureKind: "Crash", exitCode: 1 })
    assert.include(m("TIMEOUT", { exitCode: "0:0" }), { outcome: "Failed", failureKind: "Timeout" })
    assert.include(m("DEADLINE"), { outcome: "Failed", failureKind: "Timeout" })
    assert.include(m("OUT_OF_MEMORY", { exitCode: "0:125" }), { outcome: "Failed", failureKind: "OOM" })
    assert.include(m("CANCELLED by 0", { exitCode: "0:15" }), { outcome: "Cancelled", failureKind: "Cancelled" })
    assert.include(m("CANCELLED+"), { outcome: "Cancelled" })
    assert.include(m("REVOKED"), { outcome: "Failed", failureKind: "Infra" })
  })

  it("requeues NODE_FAIL, PREEMPTED and BOOT_FAIL within the bound, then fails as Infra", () => {
    for (const s of ["NODE_FAIL", "PREEMPTED", "BOOT_FAIL"]) {
      assert.deepStrictEqual(m(s, { requeues: 1 }), { _tag: "Requeue", reason: s })
      assert.deepStrictEqual(m(s, { requeues: 2 }), { _tag: "Exit", outcome: "Failed", failureKind: "Infra", message: `${s} after 2 requeue(s)` })
    }
    assert.include(m("PREEMPTED", { maxRequeues: 0 }), { _tag: "Exit", failureKind: "Infra" })
  })

  it("knows the pending reasons Slurm never gets past by itself from those that pass", () => {
    for (const r of ["PartitionTimeLimit", "BadConstraints", "InvalidAccount", "InvalidQOS", "QOSMaxGRESPerJob", "AssocMaxWallDurationPerJobLimit", "QOSMaxCpuPerJobLimit"]) {
      assert.isDefined(Script.neverStarts(r), r)
    }
    for (const r of ["Resources", "Priority", "ReqNodeNotAvail, Reserved for maintenance", "PartitionNodeLimit", "QOSGrpGRES", "JobHeldUser", "Dependency", "None", undefined]) {
      assert.isUndefined(Script.neverStarts(r), r)
    }
  })

  it("treats an unknown state as Pending, naming it", () => {
    assert.deepStrictEqual(m("FUTURE_STATE"), { _tag: "Pending", reason: "Slurm state FUTURE_STATE" })
  })
})

// Slurm keeps time limits in whole minutes and checks them every 30 s (slurmctld's fixed period), so the
// time-limit case's 4 s (1 s x timeScale 4) is a minute, which ended the job 60-90 s after its start. The case's
// job has its limit checked (one minute) and its end brought forward to now: Slurm's own check ends it, within 30 s.
// SIGKILL is a plain FAILED job on Slurm (OUT_OF_MEMORY needs the cgroup OOM killer), so no oom case.
layer(TestLayer, { timeout: 300_000, excludeTestServices: true, concurrent: true })("SlurmBackend: the Backend conformance suite", (it) => {
  const cases = BackendConformance.cases({
    command: (_, script) => ({ argv: ["sh", script] }),
    supportsOom: false,
    fresh: SlurmBackend.make(config),
    timeScale: 4,
    expireTimeLimit: (ref) =>
      Effect.gen(function*() {
        // (the conformance jobs share the node's four CPUs: it may wait for one)
        yield* eventually("the job runs", () => execFileSync("squeue", ["-h", "-j", ref.id, "-o", "%T"], { encoding: "utf8" }).trim() === "RUNNING", 150)
        const limit = /\bTimeLimit=(\S+)/.exec(execFileSync("scontrol", ["show", "job", "-o", ref.id], { encoding: "utf8" }))?.[1]
        assert.strictEqual(limit, "00:01:00", "the 4 s asked for, as Slurm keeps it")
        // what a user may do to a running job of theirs: end its limit sooner (to now, in Slurm's whole seconds)
        execFileSync("scontrol", ["update", `JobId=${ref.id}`, "EndTime=now+1"])
      })
  })
  for (const c of cases) it.effect(c.name, () => c.run, { timeout: 200_000 })
})

layer(TestLayer, { timeout: 300_000, excludeTestServices: true })("SlurmBackend on a real Slurm", (it) => {
  it.effect("runs a job: files, env, secrets in a 0600 file only, hostile argv, metrics, logs and result.json", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const hostile = "it's $(touch " + PWNED + ") `id` \"q\" ; *"
      const body = [
        "set -e",
        "printf 'arg=%s\\n' \"$1\"",
        "echo \"dir=$PWD job=$TREX_JOB_DIR plain=$PLAIN secret=${#API_TOKEN}\"",
        "cat strategy.json; echo",
        "echo 'TREX_METRIC {\"step\":1,\"split\":\"train\",\"name\":\"loss\",\"value\":0.5}'",
        "echo 'TREX_PROGRESS {\"fraction\":0.5}'",
        "echo '{\"step\":2,\"split\":\"eval\",\"name\":\"acc\",\"value\":0.75}' >> metrics.jsonl",
        "echo oops >&2",
        "echo '{\"metrics\":{\"acc\":0.75},\"primary\":0.75}' > result.json"
      ].join("\n")
      const ref = yield* backend.submit(spec("ok", body, {
        argv: ["/bin/sh", "-c", body, "job", hostile],
        env: { PLAIN: "hello world", API_TOKEN: Redacted.make("s3cr3t-value") }
      }))
      assert.strictEqual(ref.backend, "slurm")
      const jobDir = ref.data.jobDir as string
      const events = yield* collect(backend, ref)
      const exit = exitOf(events)
      assert.strictEqual(exit.outcome, "Succeeded", JSON.stringify(exit))
      assert.strictEqual(exit.exitCode, 0)
      assert.deepStrictEqual(exit.result, { metrics: { acc: 0.75 }, primary: 0.75 })
      const logs = events.flatMap((e) => (e._tag === "Log" ? [`${e.stream}:${e.line}`] : []))
      assert.include(logs, `stdout:arg=${hostile}`)
      assert.include(logs, `stdout:dir=${jobDir} job=${jobDir} plain=hello world secret=12`)
      assert.include(logs, `stdout:{"lr":0.1}`)
      assert.include(logs, "stderr:oops")
      const metrics = events.flatMap((e) => (e._tag === "Metric" ? [e.point] : []))
      // one from stdout, one from metrics.jsonl: each once (two files, read in turn, so either may come first:
      // the scheduler writes the job's stdout to its file itself, and may do so after the job wrote metrics.jsonl)
      assert.deepStrictEqual([...metrics].sort((a, b) => a.step - b.step), [{ step: 1, split: "train", name: "loss", value: 0.5 }, { step: 2, split: "eval", name: "acc", value: 0.75 }])
      assert.isTrue(events.some((e) => e._tag === "Progress" && e.fraction === 0.5))
      assert.isTrue(events.some((e) => e._tag === "State" && e.state === "Running") || exit.wallSeconds <= 2)
      assert.isFalse(fs.existsSync(PWNED))
      // The secret lives only in the 0600 env file: not in the script, not in Slurm's view of the job.
      assert.strictEqual(fs.statSync(path.join(jobDir, Script.ENV_FILE)).mode & 0o777, 0o600)
      assert.notInclude(fs.readFileSync(path.join(jobDir, Script.SCRIPT_FILE), "utf8"), "s3cr3t")
      const shown = execFileSync("scontrol", ["show", "job", ref.id], { encoding: "utf8" })
      assert.notInclude(shown, "s3cr3t")
      assert.include(shown, `Comment=${Script.labelComment({ run, node: "ok" })}`)
      // A finished job's watch yields its Exit at once.
      const again = exitOf(yield* collect(backend, ref))
      assert.strictEqual(again.outcome, "Succeeded")
    }))

  it.effect("reports a non-zero exit as Failed/Crash with sacct's exit code, and a missing result.json", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const exit = yield* Backend.run(backend, spec("crash", "echo about to fail; exit 3"))
      assert.strictEqual(exit.outcome, "Failed")
      assert.strictEqual(exit.failureKind, "Crash")
      assert.strictEqual(exit.exitCode, 3)
      assert.include(exit.logTail, "about to fail")
      assert.isUndefined(exit.result)
      assert.include(exit.resultError ?? "", "result.json")
    }))

  it.effect("a result.json over 64 MB is not read: the exit says it is too big, not that it is not JSON", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      assertTooBig(yield* Backend.run(backend, spec("bulky", BULKY_RESULT_SCRIPT)), false)
    }))

  it.effect("a log of tens of megabytes reaches a slow consumer in bounded chunks: every line in order, \\r as shown, the right tail", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      // running when the watch first looks (its lines read as the job writes them), then ~20 MB at once
      const body = ["sleep 2", ...loudScript, RESULT].join("\n")
      const ref = yield* backend.submit(spec("loud", body))
      yield* checkLoudWatch(backend.watch(ref))
    }))

  it.effect("a job that ended before its first watch began (a busy controller) replays its output to that watch; a later watch, or another instance's, yields its Exit alone", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const ref = yield* backend.submit(spec("ended-first", ENDED_FIRST_SCRIPT))
      // the controller looks only once Slurm has the job ended
      yield* eventually("the job has ended", () => execFileSync("squeue", ["-h", "-t", "all", "-j", ref.id, "-o", "%T"], { encoding: "utf8" }).trim() === "COMPLETED", 60)
      yield* checkEndedBeforeFirstWatch(backend, yield* SlurmBackend.make(config), ref)
    }).pipe(Effect.scoped))

  it.effect("schedules GRES: gpus 2 sees two CUDA devices, sacct counts them, a second 2-GPU job waits for Resources", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const gpu = (node: string) => spec(node, "echo \"cuda=$CUDA_VISIBLE_DEVICES\"; sleep 3", { resources: { gpus: 2, cpus: 1 } })
      const first = yield* backend.submit(gpu("gpu-a"))
      const second = yield* backend.submit(gpu("gpu-b"))
      const [a, b] = yield* Effect.all([collect(backend, first), collect(backend, second)], { concurrency: 2 })
      for (const events of [a, b]) {
        const exit = exitOf(events)
        assert.strictEqual(exit.outcome, "Succeeded")
        const cuda = events.flatMap((e) => (e._tag === "Log" && e.line.startsWith("cuda=") ? [e.line.slice(5)] : []))
        assert.strictEqual(cuda.length, 1)
        assert.strictEqual(cuda[0]!.split(",").length, 2, cuda[0])
        assert.isAtLeast(exit.wallSeconds, 3)
        assert.strictEqual(exit.gpuSeconds, exit.wallSeconds * 2)
      }
      const tres = execFileSync("sacct", ["-X", "-n", "-P", "-j", first.id, "-o", "AllocTRES"], { encoding: "utf8" })
      assert.strictEqual(Script.gpusFromTres(tres.trim()), 2)
      assert.isTrue(b.some((e) => e._tag === "State" && e.state === "Pending" && e.reason === "Resources"), JSON.stringify(b.slice(0, 4)))
    }))

  it.effect("cancels with scancel: a running job ends Cancelled; list(run) finds the run's jobs by comment", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const ref = yield* backend.submit(spec("cancel-me", "echo started; sleep 120"))
      const listed = yield* backend.list(run)
      const mine = listed.find((j) => j.ref.id === ref.id)
      assert.isDefined(mine)
      assert.deepStrictEqual(mine!.labels, { run, node: "cancel-me" })
      assert.notStrictEqual(mine!.state, "Finished")
      assert.deepStrictEqual(yield* backend.list(`${run}-other`), [])
      const events = yield* backend.watch(ref).pipe(
        Stream.tap((e) => (e._tag === "Log" && e.line === "started" ? backend.cancel(ref) : Effect.void)),
        Stream.runCollect,
        Effect.map((c) => Array.from(c))
      )
      const exit = exitOf(events)
      assert.strictEqual(exit.outcome, "Cancelled")
      assert.strictEqual(exit.failureKind, "Cancelled")
      assert.isBelow(exit.wallSeconds, 60)
      const after = (yield* backend.list(run)).find((j) => j.ref.id === ref.id)
      assert.strictEqual(after?.state, "Finished")
    }))

  it.effect("withdraw cancels a job only while it is pending: a running one runs on", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      // both want the node's two GPUs: the second waits for the first
      const gpu = (node: string) => spec(node, "echo started; sleep 120", { resources: { gpus: 2, cpus: 1 } })
      const first = yield* backend.submit(gpu("withdraw-a"))
      const second = yield* backend.submit(gpu("withdraw-b"))
      const stateOf = (ref: typeof first) => Effect.map(backend.list(run), (jobs) => jobs.find((j) => j.ref.id === ref.id)?.state)
      for (let i = 0; i < 200 && (yield* stateOf(first)) !== "Running"; i++) yield* Effect.sleep("100 millis")
      assert.strictEqual(yield* stateOf(first), "Running")
      assert.strictEqual(yield* stateOf(second), "Pending")
      assert.isFalse(yield* backend.withdraw!(first), "a running job is not withdrawn")
      assert.isTrue(yield* backend.withdraw!(second), "a pending job is")
      assert.strictEqual((yield* Backend.awaitExit(backend, second)).outcome, "Cancelled")
      assert.notStrictEqual(yield* stateOf(first), "Finished", "the running job still runs")
      yield* backend.cancel(first)
      assert.strictEqual((yield* Backend.awaitExit(backend, first)).outcome, "Cancelled")
    }))

  it.effect("bounds requeues: a job Slurm requeued more than maxRequeues times is cancelled as Failed/Infra", () =>
    Effect.gen(function*() {
      const backend = yield* SlurmBackend.make({ ...config, maxRequeues: 0 })
      const ref = yield* backend.submit(spec("requeued", "echo started; sleep 120"))
      const events = yield* backend.watch(ref).pipe(
        Stream.tap((e) => (e._tag === "Log" && e.line === "started" ? Effect.sync(() => execFileSync("scontrol", ["requeue", ref.id])) : Effect.void)),
        Stream.runCollect,
        Effect.map((c) => Array.from(c))
      )
      const exit = exitOf(events)
      assert.strictEqual(exit.outcome, "Failed")
      assert.strictEqual(exit.failureKind, "Infra")
      assert.include(exit.message, "requeued 1 times")
      const state = execFileSync("squeue", ["-h", "-t", "all", "-j", ref.id, "-o", "%T"], { encoding: "utf8" }).trim()
      assert.strictEqual(state, "CANCELLED")
    }).pipe(Effect.scoped))

  it.effect("reports capacity: the node's CPUs and its 2 GRES GPUs, and the trex jobs running", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const cap = yield* backend.capacity
      assert.strictEqual(cap.gpus, 2)
      assert.isAtLeast(cap.slots, 1)
      // the earlier tests' jobs have ended (or are ending): start from none in use
      yield* eventually("no trex job runs", Effect.map(backend.capacity, (c) => c.inUse === 0), 60)
      const ref = yield* backend.submit(spec("capacity", "sleep 60"))
      yield* eventually("the running job counts as in use", Effect.map(backend.capacity, (c) => c.inUse === 1), 60)
      yield* backend.cancel(ref)
      yield* eventually("the cancelled job no longer counts", Effect.map(backend.capacity, (c) => c.inUse === 0), 60)
    }), 120_000)

  it.effect("a partition the cluster does not have, or resources no node has, is refused for good, naming the setting: submitting again cannot mend it", () =>
    Effect.gen(function*() {
      const partition = yield* Effect.flip(Effect.flatMap(SlurmBackend.make({ ...config, partition: "nosuch" }), (b) => b.submit(spec("nopart", "true"))))
      assert.strictEqual(partition.retryable, false, partition.message)
      assert.match(partition.message, /invalid partition.*: backend\.slurm\.partition names a partition this cluster does not have/s)
      const backend = yield* Backend.Backend
      const gpus = yield* Effect.flip(backend.submit(spec("toomany", "true", { resources: { gpus: 9, cpus: 1 } })))
      assert.strictEqual(gpus.retryable, false, gpus.message)
      assert.match(gpus.message, /Requested node configuration is not available: no node of the partition has what the job asks for/)
    }))

  it.effect("a job Slurm would never start (its time limit over its partition's MaxTime: Slurm keeps it pending) is cancelled after stuckAfterMs and fails Infra, not to be run again, also for a later watch; one within the limit runs", () =>
    Effect.gen(function*() {
      // a partition of its own with a 1-minute MaxTime (EnforcePartLimits=NO, Slurm's default, takes longer jobs and keeps them pending)
      yield* Effect.acquireRelease(
        Effect.sync(() => execFileSync("scontrol", ["create", "PartitionName=trexshort", "Nodes=localhost", "MaxTime=1", "State=UP"])),
        // (its jobs first: Slurm keeps a partition that has jobs)
        () => Effect.sync(() => execFileSync("bash", ["-c", "scancel -p trexshort; for i in $(seq 50); do scontrol delete PartitionName=trexshort 2>/dev/null && exit 0; sleep 0.2; done; exit 1"]))
      )
      const backend = yield* SlurmBackend.make({ ...config, partition: "trexshort", stuckAfterMs: 3_000 })
      const ref = yield* backend.submit(spec("too-long", RESULT, { resources: { gpus: 0, cpus: 1, timeLimitSeconds: 600 } }))
      const events = Array.from(yield* Stream.runCollect(backend.watch(ref)))
      assert.include(events.flatMap((e) => (e._tag === "State" ? [e.reason] : [])), "PartitionTimeLimit")
      const exit = events.at(-1) as Backend.JobExit
      assert.deepStrictEqual([exit.outcome, exit.failureKind, exit.retryable], ["Failed", "Infra", false])
      assert.strictEqual(
        exit.message,
        "Slurm would never start it (pending: PartitionTimeLimit): its time limit is over its partition's MaxTime: lower recipe.resources.timeLimitSeconds, or name another partition (backend.slurm.partition); cancelled after 3 s (stuckAfterMs)"
      )
      assert.strictEqual(execFileSync("sacct", ["-X", "-n", "-P", "-j", ref.id, "-o", "State"], { encoding: "utf8" }).trim().split(" ")[0], "CANCELLED")
      // a later controller (a resumed run) reads the same end, not a cancel
      const later = yield* Backend.awaitExit(yield* SlurmBackend.make(config), ref)
      assert.deepStrictEqual([later.outcome, later.failureKind, later.retryable, later.message], ["Failed", "Infra", false, exit.message])
      // a controller that looks at such a job late (a resumed run, an hour after its submission) counts that hour:
      // with the default window (10 minutes) it takes it back at once
      const old = yield* (yield* SlurmBackend.make({ ...config, partition: "trexshort" })).submit(spec("too-long-old", RESULT, { resources: { gpus: 0, cpus: 1, timeLimitSeconds: 600 } }))
      const resumed = yield* Backend.awaitExit(yield* SlurmBackend.make(config), { ...old, data: { ...old.data, submittedAt: Date.now() - 3_600_000 } })
      assert.deepStrictEqual([resumed.outcome, resumed.failureKind], ["Failed", "Infra"], resumed.message)
      assert.match(resumed.message ?? "", /cancelled after 600 s \(stuckAfterMs\)$/)
      const fits = yield* Backend.awaitExit(backend, yield* backend.submit(spec("fits", RESULT, { resources: { gpus: 0, cpus: 1, timeLimitSeconds: 60 } })))
      assert.strictEqual(fits.outcome, "Succeeded", fits.message)
    }).pipe(Effect.scoped), 120_000)

  it.effect("refuses job files outside the job directory and bad env names", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const bad = yield* Effect.flip(backend.submit(spec("bad", "true", { files: [{ path: "../escape", content: "x" }] })))
      assert.strictEqual(bad._tag, "BackendError")
      const badEnv = yield* Effect.flip(backend.submit(spec("bad", "true", { env: { "A;B": "x" } })))
      assert.include(badEnv.message, "A;B")
    }))
})

/**
 * Stop one Slurm daemon (as an outage, a restart) by its pid file, waiting until it has ended: a zombie (the daemon
 * ended, pid 1 yet to reap it: a second here, never under a pid 1 that does not reap) has ended, as start-slurm.sh's
 * `running` sees it; `kill -0` would wait for the reap. `startSlurm` brings it back.
 */
const stopDaemon = (daemon: "slurmctld" | "slurmdbd" | "slurmd", signal: "TERM" | "KILL" = "TERM") =>
  Effect.sync(() => {
    execFileSync("bash", ["-c", `. scripts/services/lib.sh; f=/run/slurm/${daemon}.pid; p=$(cat $f); kill -${signal} $p; while running $p; do sleep 0.1; done`], { cwd: repoRoot, timeout: 30_000 })
  })

const RESULT = `echo '{"metrics":{"score":1}}' > result.json`

/**
 * Runs `effect` with Slurm's clients (the backend's sbatch and squeue, this file's too) reading a copy of the
 * cluster's slurm.conf with a `MessageTimeout` of 4 s instead of 10 (the daemons keep theirs): a client retries its
 * connection to a controller that is down for MessageTimeout - 1 s, and `squeue -j` tries twice, so a watch learnt of
 * the outage after 18 s, a submit and a list after 9, and a frozen controller's sbatch timed out after 10 (measured
 * against a closed port: 18.1, 9.0 and 9.0 s with 10; 6 and 3 s with 4). SLURM_CONF is what a login node whose
 * clients want other timeouts than the cluster's sets; the backend passes it on (commandRunner's login environment).
 */
const withShortClientTimeout = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const before = process.env["SLURM_CONF"]
      const conf = path.join(workDir, "slurm-client.conf")
      fs.writeFileSync(conf, `${fs.readFileSync(before ?? "/etc/slurm/slurm.conf", "utf8")}\nMessageTimeout=4\n`)
      process.env["SLURM_CONF"] = conf
      return before
    }),
    () => effect,
    (before) => Effect.sync(() => before === undefined ? delete process.env["SLURM_CONF"] : void (process.env["SLURM_CONF"] = before))
  )

/**
 * Writes the `go` file a job that loops `until [ -e go ]` waits for, in the job directory `jobDir()` names once it is
 * submitted: as a finalizer, so that a test that fails before it would write it leaves no job holding a slot of the
 * shared test cluster.
 */
const releasing = (jobDir: () => string | undefined) =>
  Effect.ensuring(Effect.sync(() => {
    const dir = jobDir()
    if (dir !== undefined && fs.existsSync(dir)) fs.writeFileSync(path.join(dir, "go"), "")
  }))

/** The pids of the `sbatch` processes this process runs (the local runner's children). */
const sbatches = (): Array<string> =>
  fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, "utf8")
      const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      return stat.includes("(sbatch)") && state !== "Z" && ppid === String(process.pid)
    } catch {
      return false
    }
  })

layer(TestLayer, { timeout: 300_000, excludeTestServices: true })("SlurmBackend when Slurm misbehaves", (it) => {
  it.effect("waits for a stopped slurmctld: a running job's watch, a submit and a list go on once it is back, one job each", () => {
    let jobDir: string | undefined
    return Effect.gen(function*() {
      const backend = yield* Backend.Backend
      // it ends once told to, after slurmctld is back: a job that ends during the outage is reported by its
      // slurmstepd only on its next try, 15 s later (RETRY_DELAY, not configurable), which the test waited for
      const ref = yield* backend.submit(spec("ctld-running", `echo started; until [ -e go ]; do sleep 0.2; done; ${RESULT}`))
      jobDir = ref.data.jobDir as string
      const events: Array<Backend.JobEvent> = []
      const watching = yield* Effect.forkChild(Stream.runForEach(backend.watch(ref), (e) => Effect.sync(() => void events.push(e))))
      yield* eventually("the job runs", () => execFileSync("squeue", ["-h", "-j", ref.id, "-o", "%T"], { encoding: "utf8" }).trim() === "RUNNING", 30)
      yield* stopDaemon("slurmctld")
      // what the submit and the list warn of, once their first try has failed (each warns once, at an outage's start)
      const warned: Array<string> = []
      const warnings = Logger.layer([Logger.make((o) => void warned.push(String(o.message)))])
      // sbatch cannot reach the controller: nothing was submitted, so the backend submits again once it answers
      const submitting = yield* Effect.forkChild(backend.submit(spec("ctld-submitted", RESULT)).pipe(Effect.provide(warnings)))
      // what a resumed run reconciles its trials with: failing, it had them submitted again
      const listing = yield* Effect.forkChild(backend.list(run).pipe(Effect.provide(warnings)))
      // Slurm back once the watch, the submit and the list have each failed once (`squeue -j` retries for twice
      // MessageTimeout - 1 s itself): before the fix the watch failed on the first, and so did the submit and the list
      const outageTold = (e: Backend.JobEvent) => e._tag === "State" && /^Slurm does not answer since /.test(e.reason ?? "")
      yield* eventually("the watch, the submit and the list each found Slurm not answering", () =>
        events.some(outageTold) && warned.some((w) => w.includes("submitting ctld-submitted again")) &&
        warned.some((w) => w.includes("listing the jobs of run")), 90)
      yield* startSlurm
      // the controller it restarted reads the cluster's slurm.conf, not this test's clients' copy (before, it read the
      // copy until its next restart: "Node localhost appears to have a different slurm.conf" in slurmctld's log)
      assert.match(execFileSync("scontrol", ["show", "config"], { encoding: "utf8" }), /^SLURM_CONF\s+= \/etc\/slurm\/slurm\.conf$/m)
      fs.writeFileSync(path.join(ref.data.jobDir as string, "go"), "")
      yield* Fiber.join(watching)
      const exit = exitOf(events)
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
      assert.deepStrictEqual(exit.result, { metrics: { score: 1 } })
      // the outage is told (for `trex status`: the trial is unreachable, and why), and its end
      const states = [...events].flatMap((e) => (e._tag === "State" ? [e] : []))
      // (in the state last shown: the watch may not have polled the job running yet)
      const told = states.findIndex((e) => /^Slurm does not answer since \d\d:\d\d:\d\dZ .*\(controllerWaitMs\)$/.test(e.reason ?? ""))
      assert.isAtLeast(told, 0, JSON.stringify(states))
      // back in touch: a Running state, unless the controller had the job's end by its first poll (the job may end
      // as soon as slurmctld is back): its Exit then ends the outage
      const after = JSON.stringify(states.slice(told + 1))
      assert.include([JSON.stringify([]), JSON.stringify([{ _tag: "State", state: "Running" }])], after, JSON.stringify(states))
      assert.isTrue((yield* Fiber.join(listing)).some((j) => j.ref.id === ref.id), "the list waited for the controller")
      const submitted = yield* Fiber.join(submitting)
      assert.strictEqual((yield* Backend.awaitExit(backend, submitted)).outcome, "Succeeded")
      const jobs = (yield* backend.list(run)).filter((j) => j.labels.node === "ctld-submitted")
      assert.deepStrictEqual(jobs.map((j) => j.ref.id), [submitted.id])
    }).pipe(withShortClientTimeout, Effect.ensuring(startSlurm), releasing(() => jobDir))
  }, { timeout: 120_000 })

  it.effect("an sbatch that timed out after its request went out (slurmctld stopped while it read it) is not sent again: the job Slurm made is the one followed", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const signalCtld = (signal: "STOP" | "CONT") => Effect.sync(() => execFileSync("bash", ["-c", `kill -${signal} $(cat /run/slurm/slurmctld.pid)`]))
      // frozen, the controller takes the connection (the kernel does) but answers nothing: sbatch times out (MessageTimeout)
      yield* signalCtld("STOP")
      const submitting = yield* Effect.forkChild(backend.submit(spec("ctld-frozen", RESULT)))
      // thawed once that sbatch (a child of this process) has timed out, not before
      yield* eventually("sbatch started", () => sbatches().length > 0, 30)
      const first = sbatches()
      yield* eventually("sbatch timed out", () => !sbatches().some((p) => first.includes(p)), 60)
      // thawed, it reads the request it was sent and makes the job
      yield* signalCtld("CONT")
      const ref = yield* Fiber.join(submitting)
      const jobDir = ref.data["jobDir"] as string
      const jobs = execFileSync("squeue", ["--me", "-h", "-t", "all", "-o", "%i|%Z"], { encoding: "utf8" }).split("\n").filter((l) => l.endsWith(`|${jobDir}`))
      assert.deepStrictEqual(jobs, [`${ref.id}|${jobDir}`], "one job, the one followed")
      assert.strictEqual((yield* Backend.awaitExit(backend, ref)).outcome, "Succeeded")
    }).pipe(withShortClientTimeout, Effect.ensuring(Effect.sync(() => execFileSync("bash", ["-c", "kill -CONT $(cat /run/slurm/slurmctld.pid) || true"])))), { timeout: 120_000 })

  it.effect("ends a job whose node's slurmd died: its exit is read from accounting while the job is COMPLETING", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const ref = yield* backend.submit(spec("slurmd-dead", `echo started; sleep 3; ${RESULT}`))
      yield* eventually("the job runs", () => execFileSync("squeue", ["-h", "-j", ref.id, "-o", "%T"], { encoding: "utf8" }).trim() === "RUNNING", 30)
      // a node that crashed: the job ends, but no slurmd reports its clean-up, so it stays COMPLETING
      yield* stopDaemon("slurmd", "KILL")
      // before the fix, the watch ended only once slurmd was back (here: never, the test timed out)
      const exit = exitOf(yield* collect(backend, ref))
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
      assert.deepStrictEqual(exit.result, { metrics: { score: 1 } })
      assert.isAtLeast(exit.wallSeconds, 3)
    }).pipe(Effect.ensuring(startSlurm)), { timeout: 60_000 })

  it.effect("reads a job's end from the controller while accounting lags: sacct still has it running", () => {
    // slurmctld's connection to slurmdbd, cut (its packets dropped): sacct answers from a database that
    // heard of the job's start but not of its end, as when slurmdbd is slow or has just come back
    const port = () => /127\.0\.0\.1:(\d+)\s+127\.0\.0\.1:6819\b.*slurmctld/.exec(execFileSync("ss", ["-tnp"], { encoding: "utf8" }))?.[1]
    const rule = (op: "-I" | "-D", p: string) => ["OUTPUT", "-p", "tcp", "--sport", p, "--dport", "6819", "-j", "DROP"].toSpliced(0, 0, op)
    let cut: string | undefined
    let jobDir: string | undefined
    return Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const ref = yield* backend.submit(spec("acct-lags", "sleep 2; until [ -e go ]; do sleep 0.2; done; exit 3", { resources: { gpus: 1, cpus: 1 } }))
      jobDir = ref.data.jobDir as string
      const acct = () => execFileSync("sacct", ["-X", "-n", "-P", "-j", ref.id, "-o", "State"], { encoding: "utf8" }).trim()
      yield* eventually("accounting has the job running", () => acct() === "RUNNING", 30)
      cut = port()
      assert.isDefined(cut, "slurmctld's connection to slurmdbd")
      execFileSync("iptables", rule("-I", cut!))
      fs.writeFileSync(`${ref.data.jobDir as string}/go`, "")
      const exit = exitOf(yield* collect(backend, ref))
      assert.strictEqual(acct(), "RUNNING", "accounting still lags")
      assert.strictEqual(exit.outcome, "Failed")
      // before the fix: undefined and 0 (the controller's answer was used without its exit code and run time)
      assert.strictEqual(exit.exitCode, 3, exit.message)
      assert.isAtLeast(exit.wallSeconds, 2)
    }).pipe(
      Effect.ensuring(Effect.sync(() => cut !== undefined && spawnSync("iptables", rule("-D", cut)))),
      Effect.ensuring(startSlurm),
      releasing(() => jobDir)
    )
  }, { timeout: 60_000 })

  it.effect("reads a job that ended while slurmdbd was down from the controller: its exit code and run time", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      yield* stopDaemon("slurmdbd")
      const ref = yield* backend.submit(spec("dbd-down", "sleep 3; exit 3", { resources: { gpus: 1, cpus: 1 } }))
      const exit = exitOf(yield* collect(backend, ref))
      assert.strictEqual(exit.outcome, "Failed")
      assert.strictEqual(exit.exitCode, 3, exit.message)
      // before the fix, 0: a budget in GPU-hours did not count the jobs that ended while accounting was down
      assert.isAtLeast(exit.wallSeconds, 3)
      assert.strictEqual(exit.gpuSeconds, exit.wallSeconds)
    }).pipe(Effect.ensuring(startSlurm)), { timeout: 60_000 })
})

describe("SlurmBackend with slurmrestd and over SSH", () => {
  it.live("reads live states from slurmrestd when configured (a bad token fails clearly)", () =>
    Effect.gen(function*() {
      yield* startSlurm
      const token = execFileSync("scontrol", ["token", "username=root", "lifespan=600"], { encoding: "utf8" }).trim().split("=")[1]!
      const rest = { url: process.env["TREX_TEST_SLURM_REST_URL"] ?? "http://127.0.0.1:6820", user: "root" }
      const bad = yield* SlurmBackend.make({ ...config, rest: { ...rest, token: Redacted.make("not-a-token") } })
      const badRef = yield* bad.submit(spec("rest-bad", "true"))
      const err = yield* Effect.flip(Backend.awaitExit(bad, badRef))
      assert.include(err.message, "slurmrestd")
      const backend = yield* SlurmBackend.make({ ...config, rest: { ...rest, token: Redacted.make(token) } })
      const ref = yield* backend.submit(spec("rest", "echo via rest; sleep 1; exit 3"))
      const events = yield* collect(backend, ref)
      const exit = exitOf(events)
      assert.strictEqual(exit.outcome, "Failed")
      assert.strictEqual(exit.exitCode, 3, "the exit code comes from sacct, not slurmrestd's raw wait status")
      assert.include(exit.logTail, "via rest")
      assert.isTrue(events.some((e) => e._tag === "State"))
    }).pipe(Effect.scoped), { timeout: 300_000 })

  it.live("runs the same logic over SSH (ssh2 exec + SFTP) as another user, checking the host key", () =>
    Effect.gen(function*() {
      yield* startSlurm
      execFileSync("bash", [path.join(repoRoot, "scripts/services/start-sshd.sh")], { stdio: ["ignore", "ignore", "inherit"], timeout: 300_000 })
      const keyDir = process.env.SSH_KEY_DIR ?? "/var/lib/trex-test-ssh"
      const hostKey = fs.readFileSync(path.join(keyDir, "known_hosts"), "utf8").trim().split(/\s+/)[2]!
      const remoteDir = fs.mkdtempSync("/tmp/trex-slurm-ssh-")
      fs.chmodSync(remoteDir, 0o777)
      const ssh = {
        host: "127.0.0.1",
        port: Number(process.env["TREX_TEST_SSH_PORT"] ?? 2222),
        username: "sdktest",
        privateKey: Redacted.make(fs.readFileSync(path.join(keyDir, "id_ed25519"), "utf8")),
        hostKeySha256: createHash("sha256").update(Buffer.from(hostKey, "base64")).digest("base64")
      }
      const wrongHost = yield* Effect.flip(SlurmBackend.make({ workDir: remoteDir, ssh: { ...ssh, hostKeySha256: "AAAA" } }))
      assert.strictEqual(wrongHost._tag, "BackendError")
      const backend = yield* SlurmBackend.make({ workDir: remoteDir, pollIntervalMs: 300, ssh })
      const ref = yield* backend.submit(spec("ssh", "echo \"user=$(id -un) secret=$TOKEN\"; echo '{\"metrics\":{},\"primary\":1}' > result.json", {
        env: { TOKEN: Redacted.make("t0k") }
      }))
      const jobDir = ref.data.jobDir as string
      assert.strictEqual(fs.statSync(path.join(jobDir, Script.ENV_FILE)).uid, Number(execFileSync("id", ["-u", "sdktest"], { encoding: "utf8" })))
      assert.strictEqual(fs.statSync(path.join(jobDir, Script.ENV_FILE)).mode & 0o777, 0o600)
      const events = yield* collect(backend, ref)
      const exit = exitOf(events)
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
      assert.deepStrictEqual(exit.result, { metrics: {}, primary: 1 })
      assert.include(exit.logTail, "user=sdktest secret=t0k")
      const listed = yield* backend.list(run)
      assert.isTrue(listed.some((j) => j.ref.id === ref.id), "list over SSH sees the job (squeue --me as sdktest)")
    }).pipe(Effect.scoped), { timeout: 300_000 })
})

describe("examples/backends/slurm.task.yaml", () => {
  it.effect("decodes through fromJson; secrets are only referenced (key file, token variable)", () =>
    Effect.gen(function*() {
      const { task } = yield* TaskFile.load(path.join(repoRoot, "examples/backends/slurm.task.yaml"))
      const section = (task.backend as { slurm: Record<string, unknown> }).slurm
      const config = yield* SlurmBackend.fromJson(section)
      assert.deepInclude(config, { workDir: "/shared/trex-jobs", partition: "gpu", account: "ml-research", gpuFlag: "gres", gpuType: "a100", maxRequeues: 2 })
      const script = Script.renderScript({
        jobName: "t",
        labels: { run: "r", node: "n" },
        jobDir: `${config.workDir}/r/n`,
        envFile: `${config.workDir}/r/n/.trex-env`,
        argv: task.recipe!.command,
        gpus: task.recipe!.resources.gpus,
        gpuFlag: config.gpuFlag!,
        gresType: config.gpuType,
        cpus: task.recipe!.resources.cpus,
        memoryMb: task.recipe!.resources.memoryMb,
        timeLimitSeconds: task.recipe!.resources.timeLimitSeconds,
        partition: config.partition,
        account: config.account,
        extraDirectives: config.extraDirectives ?? []
      })
      for (const d of ["--gres=gpu:a100:1", "--cpus-per-task=8", "--mem=65536M", "--time=0-02:00:00", "--partition=gpu", "--account=ml-research"]) {
        assert.include(script, `#SBATCH ${d}\n`)
      }
      const noKey = yield* Effect.flip(SlurmBackend.fromJson({ ...section, ssh: { host: "h", username: "u", privateKeyFile: "/nonexistent/key" } }))
      assert.include(noKey.message, "/nonexistent/key")
      const noToken = yield* Effect.flip(SlurmBackend.fromJson({ ...section, rest: { url: "http://x:6820", user: "u" } }, {}))
      assert.include(noToken.message, "SLURM_JWT")
      const withToken = yield* SlurmBackend.fromJson({ ...section, rest: { url: "http://x:6820", user: "u", tokenEnv: "MY_JWT" } }, { MY_JWT: "jwt" })
      assert.strictEqual(Redacted.value(withToken.rest!.token), "jwt")
      const typo = yield* Effect.flip(SlurmBackend.fromJson({ ...section, partiton: "gpu" }))
      assert.strictEqual(typo._tag, "InvalidInput")
    }))
})
