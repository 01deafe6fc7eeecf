// The pure parts of the Grid Engine backend, on no Grid Engine: the job script (run by sh: its argv, its bound on
// reruns, its GPU claim and release), the parsing of qstat/qacct, the state and accounting mappings, and the example
// task's section. The backend on the real Grid Engine is GridEngineBackend.test.ts.
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Errors, TaskFile } from "@trex/core"
import { Effect } from "effect"
import { eventually } from "./support/eventually.ts"
import { bootId, cleanup, kept, lockDir, plant, sleeper, startTime, tempDir } from "./support/gpuLocks.ts"
import * as GridEngineBackend from "../src/GridEngineBackend.ts"
import * as Runner from "../src/internal/commandRunner.ts"
import * as Query from "../src/internal/gridengineQuery.ts"
import * as Script from "../src/internal/gridengineScript.ts"
import { shellQuote } from "../src/internal/shell.ts"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")
const PWNED = `/tmp/trex-pwned-ge-script-${process.pid}`
afterAll(cleanup)

/** The script of a job in `dir` (with an empty env file) that runs `command` with sh, one CPU and no GPUs but as `extra` says. */
const jobScript = (dir: string, command: string, extra: Partial<Script.ScriptInput>) => {
  fs.writeFileSync(path.join(dir, ".trex-env"), "")
  return Script.renderScript({
    jobName: "job",
    labels: { run: "r", node: "n" },
    jobDir: dir,
    envFile: path.join(dir, ".trex-env"),
    argv: ["/bin/sh", "-c", command],
    submittedAt: 0,
    gpus: 0,
    gpuResource: "gpu",
    assignGpus: true,
    gpuLockDir: "/tmp/trex-gpu-locks",
    cpus: 1,
    extraDirectives: [],
    maxRequeues: 2,
    ...extra
  })
}

describe("renderScript", () => {
  const input: Script.ScriptInput = {
    jobName: "1 my job; rm -rf /",
    labels: { run: "run,1=x", node: "n 7*" },
    jobDir: "/shared/jobs/r/n",
    envFile: "/shared/jobs/r/n/.trex-env",
    argv: ["python", "train.py", "--name", "it's $(bad)"],
    submittedAt: 1,
    gpus: 2,
    gpuResource: "gpu",
    assignGpus: true,
    gpuLockDir: "/tmp/trex-gpu-locks",
    cpus: 4,
    parallelEnvironment: "smp",
    memoryMb: 16000,
    memoryResource: "h_vmem",
    timeLimitSeconds: 3600.5,
    queue: "gpu.q",
    project: "ml",
    extraDirectives: ["-l arch=lx-amd64"],
    maxRequeues: 2
  }

  it("writes every #$ option, the labels as job context, and per-slot memory", () => {
    const s = Script.renderScript(input)
    for (const d of [
      "-N t1_my_job_rm_-rf_",
      "-S /bin/sh",
      "-wd /shared/jobs/r/n",
      "-o /shared/jobs/r/n/gridengine.stdout.log",
      "-e /shared/jobs/r/n/gridengine.stderr.log",
      "-notify",
      "-ac trex_run=run%2C1%3Dx,trex_node=n%207%2A,trex_dir=%2Fshared%2Fjobs%2Fr%2Fn",
      "-pe smp 4",
      "-l gpu=2,h_vmem=4000M,h_rt=3601",
      "-q gpu.q",
      "-P ml",
      "-l arch=lx-amd64"
    ]) assert.include(s, `#$ ${d}\n`)
    assert.include(s, `python train.py --name 'it'\\''s $(bad)' &\n`)
    assert.deepStrictEqual(Script.labelsOf({ trex_run: "run%2C1%3Dx", trex_node: "n%207%2A", trex_dir: "%2Fd" }), { labels: input.labels, jobDir: "/d" })
    assert.isUndefined(Script.labelsOf({ other: "x" }))
    // no parallel environment: one slot, the whole memory on it; no GPU lines without GPUs
    const plain = Script.renderScript({ ...input, parallelEnvironment: undefined, gpus: 0, memoryResource: undefined })
    assert.notInclude(plain, "-pe ")
    assert.include(plain, "#$ -l h_rt=3601\n")
    assert.notInclude(plain, "CUDA_VISIBLE_DEVICES")
  })

  it("refuses values that would break a #$ line", () => {
    assert.throws(() => Script.renderScript({ ...input, queue: "gpu.q -P other" }))
    assert.throws(() => Script.renderScript({ ...input, jobDir: "/shared/my jobs" }))
    assert.throws(() => Script.renderScript({ ...input, extraDirectives: ["arch=x"] }))
    assert.throws(() => Script.renderScript({ ...input, extraDirectives: ["-l a=$(id)"] }))
  })

  it("runs the hostile argv as one word each, and the job's record is JSON", () => {
    const dir = tempDir("trex-ge-script-")
    const hostile = "it's $(touch " + PWNED + ") `id` \"q\" ; *"
    fs.writeFileSync(path.join(dir, ".trex-env"), "export PLAIN='x y'\n")
    const s = Script.renderScript({
      ...input,
      jobDir: dir,
      envFile: path.join(dir, ".trex-env"),
      gpus: 0,
      argv: ["/bin/sh", "-c", "printf '<%s>' \"$1\" \"$PLAIN\"", "job", hostile]
    })
    const out = spawnSync("/bin/sh", ["-c", s], { encoding: "utf8", env: { ...process.env, JOB_ID: "42" } })
    assert.strictEqual(out.stdout, `<${hostile}><x y>`)
    assert.isFalse(fs.existsSync(PWNED))
    const record = Script.parseRecord(fs.readFileSync(path.join(dir, Script.RECORD_FILE), "utf8"))
    assert.deepStrictEqual(record, { id: "42", labels: input.labels, name: "t1_my_job_rm_-rf_", submittedAt: 1 })
  })
})

describe("the job script's bound on reruns", () => {
  it("ends a job that Grid Engine starts again past maxRequeues without running its command, and hands on no 100", () => {
    const dir = tempDir("trex-ge-reruns-")
    const render = (command: string) => jobScript(dir, command, { maxRequeues: 1 })
    const run = (command: string) => spawnSync("/bin/sh", ["-c", render(command)], { encoding: "utf8", env: { ...process.env, JOB_ID: "7" } })
    // a command's 100 would put the job in error state: the script exits 1, the code kept in its record
    assert.strictEqual(run("exit 100").status, 1)
    assert.strictEqual(Script.exitRecord(fs.readFileSync(path.join(dir, Script.EXIT_FILE), "utf8"))?.record.exit_status, "100")
    // two runs killed (no exit line: qmod -rj, a failed host): the third start is past the bound
    fs.writeFileSync(path.join(dir, Script.RUNS_FILE), "start 1\nstart 2\n")
    const third = run("echo ran")
    assert.strictEqual(third.status, Script.RERUN_LIMIT_EXIT)
    assert.strictEqual(third.stdout, "", "the command did not run")
    const record = Script.exitRecord(fs.readFileSync(path.join(dir, Script.EXIT_FILE), "utf8"))
    assert.deepInclude(record, { runs: 3, rerunLimit: 1 })
    assert.deepStrictEqual(Script.parseRuns(fs.readFileSync(path.join(dir, Script.RUNS_FILE), "utf8")).ends, [undefined, undefined])
  })
})

describe("a cancel's marker and the job's exit record", () => {
  it("the record says whether the script was told to end its command (qdel's SIGUSR2): not for a command that ended by itself", () => {
    const dir = tempDir("trex-ge-notified-")
    // in a session of its own: the script's relay signals its whole process group
    const run = (command: string) => spawnSync("setsid", ["-w", "/bin/sh", "-c", jobScript(dir, command, {})], { encoding: "utf8", env: { ...process.env, JOB_ID: "8" }, timeout: 30_000 })
    const record = () => Script.exitRecord(fs.readFileSync(path.join(dir, Script.EXIT_FILE), "utf8"))
    assert.strictEqual(run("exit 137").status, 137)
    assert.deepInclude(record(), { record: { failed: "0", exit_status: "137", ru_wallclock: record()!.record.ru_wallclock }, notified: false })
    // as qdel with -notify: SIGUSR2 to the job, which the command ignores and the script relays as SIGTERM; sent until the
    // script's trap takes it (before its trap line the script ignores USR2: one signal alone could come too early)
    run("while :; do kill -USR2 $PPID; sleep 0.1; done")
    assert.deepInclude(record(), { record: { failed: "0", exit_status: "143", ru_wallclock: record()!.record.ru_wallclock }, notified: true })
    assert.isUndefined(Script.exitRecord(`{"exitCode":1,"start":1,"end":2}`)?.notified, "an earlier TREX's record")
  })

  it("a run Grid Engine starts once a cancel has marked the job (a rerun, a first run dispatched before the qdel) does not start its command, and reads as cancelled", () => {
    const dir = tempDir("trex-ge-marked-")
    fs.writeFileSync(path.join(dir, Script.RUNS_FILE), "start 1\nexit 99 2\n")
    fs.writeFileSync(path.join(dir, Script.CANCEL_FILE), Script.renderCancelMarker({ runs: 1, waiting: true }, new Date()))
    const rerun = spawnSync("/bin/sh", ["-c", jobScript(dir, "echo ran", {})], { encoding: "utf8", env: { ...process.env, JOB_ID: "9" } })
    // before the fix the command ran: "ran"
    assert.strictEqual(rerun.stdout, "", "the command did not run")
    assert.strictEqual(rerun.status, 143)
    assert.include(rerun.stderr, "cancelled (.trex-cancelled) before this run started")
    const record = Script.exitRecord(fs.readFileSync(path.join(dir, Script.EXIT_FILE), "utf8"))
    assert.deepInclude(record, { runs: 2, notified: true })
    assert.isTrue(Script.cancelledBy(Script.parseCancelMarker(fs.readFileSync(path.join(dir, Script.CANCEL_FILE), "utf8"))!, record))
    assert.strictEqual(Script.mapAccounting({ record: record!.record, cancelled: true }).outcome, "Cancelled")
  })

  it("a run past maxRequeues that a cancel's marker catches reads as cancelled, not as past the bound", () => {
    const dir = tempDir("trex-ge-marked-past-")
    fs.writeFileSync(path.join(dir, Script.RUNS_FILE), "start 1\nstart 2\n")
    fs.writeFileSync(path.join(dir, Script.CANCEL_FILE), Script.renderCancelMarker({ runs: 1, waiting: true }, new Date()))
    const run = spawnSync("/bin/sh", ["-c", jobScript(dir, "echo ran", { maxRequeues: 1 })], { encoding: "utf8", env: { ...process.env, JOB_ID: "11" } })
    assert.strictEqual(run.stdout, "", "the command did not run")
    // before the fix: exit 95 (rerunLimit), Failed/Infra
    assert.strictEqual(run.status, 143)
    const record = Script.exitRecord(fs.readFileSync(path.join(dir, Script.EXIT_FILE), "utf8"))!
    assert.deepInclude(record, { runs: 3, notified: true })
    assert.isUndefined(record.rerunLimit)
    assert.isTrue(Script.cancelledBy(Script.parseCancelMarker(fs.readFileSync(path.join(dir, Script.CANCEL_FILE), "utf8"))!, record))
    assert.strictEqual(Script.mapAccounting({ record: record.record, cancelled: true }).outcome, "Cancelled")
  })

  it("a second cancel, while qstat still lists the job the first one's qdel is ending, keeps the first's marker: the end reads as cancelled", async () => {
    const dir = tempDir("trex-ge-twice-")
    const runner = Runner.local("test")
    // qstat lists the job being deleted (`dr`) until its execd reports its end
    const dr: Script.QueuedJob = { id: "12", state: "dr", name: "job", slots: 1 }
    const cancel = () =>
      Effect.runPromise(Effect.gen(function*() {
        const bytes = yield* runner.readFrom(path.join(dir, Script.EXIT_FILE), 0, 4096)
        const recorded = bytes instanceof Uint8Array ? Script.exitRecord(new TextDecoder().decode(bytes)) : undefined
        return yield* Query.markCancelled(runner, dir, recorded, Effect.succeed(dr), "job", new Date())
      }))
    assert.isTrue(await cancel(), "the first cancel marks the job")
    // its qdel: SIGUSR2 (sent until the script's trap takes it), relayed as SIGTERM to the command
    spawnSync("setsid", ["-w", "/bin/sh", "-c", jobScript(dir, "while :; do kill -USR2 $PPID; sleep 0.1; done", {})], { env: { ...process.env, JOB_ID: "12" }, timeout: 30_000 })
    const record = Script.exitRecord(fs.readFileSync(path.join(dir, Script.EXIT_FILE), "utf8"))!
    assert.deepInclude(record, { runs: 1, notified: true })
    // before the fix, the second cancel wrote {runs: 1, waiting: false} over the first's marker: "killed by signal 15", Failed
    assert.isFalse(await cancel(), "the second cancel writes no marker")
    const marker = await Effect.runPromise(Query.readCancelMarker(runner, dir))
    assert.deepStrictEqual(marker, { waiting: false })
    assert.isTrue(Script.cancelledBy(marker!, record))
    assert.strictEqual(Script.mapAccounting({ record: record.record, cancelled: true }).outcome, "Cancelled")
  })

  it("a marker not yet written whole is read again, and is no marker if it stays so; the script runs its command past an empty one", async () => {
    const dir = tempDir("trex-ge-partial-")
    const runner = Runner.local("test")
    const file = path.join(dir, Script.CANCEL_FILE)
    // an earlier TREX's cancel wrote its marker in place: empty until its time is written
    fs.writeFileSync(file, "")
    const later = setTimeout(() => fs.writeFileSync(file, "2026-12-06T10:00:00.000Z\n"), 300)
    assert.strictEqual(await Effect.runPromise(Query.readCancelMarker(runner, dir)), "earlier")
    clearTimeout(later)
    // one left empty (its cancel stopped before writing it, so before its qdel): before the fix, a cancel whatever the record
    fs.writeFileSync(file, "")
    assert.isUndefined(await Effect.runPromise(Query.readCancelMarker(runner, dir)))
    const run = spawnSync("/bin/sh", ["-c", jobScript(dir, "echo ran", {})], { encoding: "utf8", env: { ...process.env, JOB_ID: "13" } })
    assert.strictEqual(run.stdout, "ran\n")
    assert.strictEqual(run.status, 0)
  })

  it("a marker left empty (created in place where no hard link can be made, its cancel stopped before its write) keeps no later cancel out once it is old; one being written, however slowly, is waited for and kept; a cut-short one kept", async () => {
    const dir = tempDir("trex-ge-stale-")
    const runner = Runner.local("test")
    const file = path.join(dir, Script.CANCEL_FILE)
    const cancel = () => Effect.runPromise(Query.markCancelled(runner, dir, undefined, Effect.succeed(undefined), "job", new Date("2026-12-06T10:00:00.000Z")))
    // its cancel stopped between the create and the write (a minute ago), so before its qdel: before H4b, no later cancel
    // wrote one, and the end its qdel made read as the job's own
    fs.writeFileSync(file, "")
    fs.utimesSync(file, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000))
    assert.isTrue(await cancel(), "a later cancel writes its marker")
    assert.deepStrictEqual(await Effect.runPromise(Query.readCancelMarker(runner, dir)), { waiting: false })
    // a cancel still writing it (its qdel not yet run), slower than the second of rereads: waited for, and kept. Before
    // the fix it was removed after that second, this cancel's written, and the slow one's write went to a removed file
    const theirs = '{"at":"2026-12-06T09:00:00.000Z","runs":1,"waiting":true}\n'
    fs.writeFileSync(file, "")
    const writing = setTimeout(() => fs.writeFileSync(file, theirs), 1_800)
    assert.isFalse(await cancel(), "the marker being written is kept")
    clearTimeout(writing)
    assert.strictEqual(fs.readFileSync(file, "utf8"), theirs)
    // an earlier TREX's, cut short (the script counts it: not empty): kept
    fs.writeFileSync(file, "2026-12-06T0")
    assert.isFalse(await cancel())
    assert.strictEqual(fs.readFileSync(file, "utf8"), "2026-12-06T0")
  })

  it("a cancel marks a job with no record, one whose command asked to run again, and one qstat still lists under its name (a rerun may have started since the look); not one gone", () => {
    const rec = (exitCode: number, runs?: number) => Script.exitRecord(JSON.stringify({ exitCode, start: 1, end: 2, ...(runs !== undefined ? { runs } : {}), notified: 0 }))!
    const job = (state: string, name = "mine"): Script.QueuedJob => ({ id: "5", state, name, slots: 1 })
    const cases: Array<[string, Script.ExitRecord | undefined, Script.QueuedJob | "gone" | undefined, Script.CancelMarker | undefined]> = [
      ["no record", undefined, undefined, { waiting: false }],
      ["exit 99 below maxRequeues", rec(99, 1), undefined, { runs: 1, waiting: true }],
      ["waiting to run again", rec(137, 1), job("Rq"), { runs: 1, waiting: true }],
      ["in error state", rec(137, 1), job("Eqw"), { runs: 1, waiting: true }],
      // before the fix, none of these was marked: a rerun that started since the look was killed by the qdel unmarked
      ["its rerun running", rec(137, 1), job("Rr"), { runs: 1, waiting: false }],
      ["running (finishing its end, or a rerun)", rec(137, 1), job("r"), { runs: 1, waiting: false }],
      ["suspended", rec(137, 1), job("s"), { runs: 1, waiting: false }],
      ["gone from qstat: ended", rec(137, 1), "gone", undefined],
      ["the qmaster did not answer", rec(137, 1), undefined, undefined],
      ["another job under its id", rec(137, 1), job("Rq", "other"), undefined],
      ["an earlier TREX's record, running", rec(137), job("r"), undefined],
      ["an earlier TREX's record, waiting", rec(137), job("hRq"), { waiting: true }]
    ]
    for (const [what, recorded, listed, expected] of cases) assert.deepStrictEqual(Script.cancelMarker(recorded, listed, "mine"), expected, what)
  })

  it("a marker makes an end by a signal a cancel's only for a command told to end, or a job Grid Engine was to run again", () => {
    const rec = (runs: number | undefined, notified: boolean | undefined) =>
      Script.exitRecord(JSON.stringify({ exitCode: 137, start: 1, end: 2, ...(runs !== undefined ? { runs } : {}), ...(notified !== undefined ? { notified: notified ? 1 : 0 } : {}) }))!
    const marker = (m: Script.CancelMarker) => Script.parseCancelMarker(Script.renderCancelMarker(m, new Date(0))) as Script.CancelMarker
    assert.deepStrictEqual(marker({ runs: 2, waiting: true }), { runs: 2, waiting: true })
    assert.deepStrictEqual(marker({ waiting: false }), { waiting: false })
    assert.strictEqual(Script.parseCancelMarker("2026-12-06T10:00:00.000Z\n"), "earlier", "an earlier TREX's marker: a time")
    // before the fix, these read as an earlier TREX's marker: a cancel whatever the record
    for (const partial of ["", "2026-12-06T1", "{\"at\":\"2026-12-06T10:00:00.000Z\",\"wai"]) {
      assert.isUndefined(Script.parseCancelMarker(partial), `not yet written whole: ${JSON.stringify(partial)}`)
    }
    const cases: Array<[string, Script.CancelMarker | "earlier", Script.ExitRecord | undefined, boolean]> = [
      // the cancel found no record: the command's own end (after the look) stays its own; one the qdel told to end is the cancel's
      ["no record seen, ended by itself", marker({ waiting: false }), rec(1, false), false],
      ["no record seen, told to end", marker({ waiting: false }), rec(1, true), true],
      ["no record seen, the script killed before it wrote one", marker({ waiting: false }), undefined, true],
      // the cancel saw run 1's record, Grid Engine to run the job again: the job is cancelled, whatever that run's end
      ["run 1 seen waiting, no rerun", marker({ runs: 1, waiting: true }), rec(1, false), true],
      // run 1 seen while qstat listed the job finishing it: that end was before the cancel
      ["run 1 seen finishing, told to end before the cancel (h_rt)", marker({ runs: 1, waiting: false }), rec(1, true), false],
      ["run 1 seen finishing, ended by itself", marker({ runs: 1, waiting: false }), rec(1, false), false],
      // run 1 seen, and a rerun started before the qdel (between the look and qstat, or after): the rerun's end decides
      ["run 1 seen, run 2 told to end", marker({ runs: 1, waiting: false }), rec(2, true), true],
      ["run 1 seen waiting, run 2 ended by itself", marker({ runs: 1, waiting: true }), rec(2, false), false],
      // an earlier TREX's marker or record counts, as it did
      ["an earlier marker", "earlier", rec(1, false), true],
      ["an earlier record", marker({ runs: 1, waiting: false }), rec(undefined, undefined), true]
    ]
    for (const [what, m, last, expected] of cases) assert.strictEqual(Script.cancelledBy(m, last), expected, what)
  })
})

describe("the job script's GPU claim", () => {
  const render = (locks: string, gpus: number, command = "echo \"cuda=$CUDA_VISIBLE_DEVICES\"") =>
    jobScript(tempDir("trex-ge-claim-"), command, { gpus, gpuLockDir: locks, maxRequeues: 2 })
  // no nvidia-smi and no cell to ask: the host's device count falls back to the granted count
  const { CUDA_VISIBLE_DEVICES: _, ...rest } = process.env
  const jobEnv = (env: Record<string, string>) => ({ ...rest, PATH: "/usr/bin:/bin", SGE_ROOT: "/nonexistent", JOB_ID: "1", ...env })
  const claim = (locks: string, gpus: number, env: Record<string, string> = {}) =>
    spawnSync("/bin/sh", ["-c", render(locks, gpus)], { encoding: "utf8", env: jobEnv(env) })
  /** The device locks under `locks` (not the directory of break locks). */
  const held = (locks: string) => fs.readdirSync(locks).filter((f) => f.startsWith("gpu"))
  /** Another user of the cell: a uid of its own (nobody's), which needs no account. */
  const OTHER = ["--reuid=65534", "--regid=65534", "--clear-groups"]
  /** The claim run as another user of the cell (its job directory opened to it). */
  const claimAs = (locks: string, gpus: number) => {
    const script = render(locks, gpus)
    fs.chmodSync(/^cd '?([^' ]+)'? \|\| exit 97$/m.exec(script)![1]!, 0o777)
    return spawnSync("setpriv", [...OTHER, "/bin/sh", "-c", script], { encoding: "utf8", env: jobEnv({}) })
  }

  it("takes over a lock whose job is gone, refuses one whose job lives, and keeps what the site set", () => {
    const locks = lockDir()
    plant(locks, 0, 999999999)
    const stale = claim(locks, 1)
    assert.strictEqual(stale.stdout, "cuda=0\n", stale.stderr)
    plant(locks, 0, process.pid, startTime(process.pid))
    const busy = claim(locks, 1)
    assert.strictEqual(busy.status, Script.GPU_CLAIM_EXIT)
    assert.include(busy.stderr, "trex: Grid Engine granted 1 gpu but only 0 of the 1 devices")
    assert.strictEqual(claim(locks, 1, { CUDA_VISIBLE_DEVICES: "3" }).stdout, "cuda=3\n")
    assert.strictEqual(claim(locks, 2, { SGE_HGR_gpu: "2 5" }).stdout, "cuda=2,5\n")
  })

  it("a lock whose pid now names another process (a killed job's, its pid reused) is taken over: the owner is its pid and start time", () => {
    const locks = lockDir()
    const other = sleeper()
    // before the fix, a live pid held the lock whoever it was: the job exited 96
    plant(locks, 0, other, String(Number(startTime(other)) - 500))
    const reused = claim(locks, 1)
    assert.strictEqual(reused.stdout, "cuda=0\n", reused.stderr)
    // the lock of a live owner, its start time right, holds
    plant(locks, 0, other, startTime(other))
    assert.strictEqual(claim(locks, 1).status, Script.GPU_CLAIM_EXIT)
    // a lock of a boot before this one is stale, whatever its pid and start time
    fs.writeFileSync(path.join(locks, "gpu0", "owner"), `${other} ${startTime(other)} 00000000-0000-0000-0000-000000000000\n`)
    assert.strictEqual(claim(locks, 1).stdout, "cuda=0\n")
    // an owner whose name holds spaces and parens (its stat line's `comm` field): its start time is read right, its lock holds
    const named = path.join(tempDir("trex-ge-comm-"), "a) b (c) d")
    fs.copyFileSync("/bin/sleep", named)
    fs.chmodSync(named, 0o755)
    const odd = spawn(named, ["600"], { stdio: "ignore" })
    kept(odd)
    assert.include(fs.readFileSync(`/proc/${odd.pid}/stat`, "utf8"), "(a) b (c) d)")
    plant(locks, 0, odd.pid!, startTime(odd.pid!))
    assert.strictEqual(claim(locks, 1).status, Script.GPU_CLAIM_EXIT)
  })

  it("a lock of an earlier TREX (its pid only) is taken over when its process started after it was written, kept when before", () => {
    const locks = lockDir()
    const hourAgo = Date.now() / 1000 - 3600
    fs.utimesSync(plant(locks, 0, sleeper()) + "/pid", hourAgo, hourAgo)
    const reused = claim(locks, 1)
    assert.strictEqual(reused.stdout, "cuda=0\n", reused.stderr)
    // this test's process started before the lock was written: it may be the owner
    plant(locks, 0, process.pid)
    assert.strictEqual(claim(locks, 1).status, Script.GPU_CLAIM_EXIT)
  })

  it("a lock with no owner, younger than the grace (its claimer between mkdir and writing, or its files given back before the directory), is looked at again: refused once its owner is written, taken once it is gone; an older one is taken", async () => {
    const locks = lockDir()
    const lock = path.join(locks, "gpu0")
    const claimLater = () => {
      const p = spawn("/bin/sh", ["-c", render(locks, 1)], { env: jobEnv({}) })
      let out = ""
      p.stdout.on("data", (b) => (out += String(b)))
      return new Promise<{ code: number | null; out: string }>((resolve) => p.on("close", (code) => resolve({ code, out })))
    }
    const aWhile = () => new Promise((resolve) => setTimeout(resolve, 1500))
    // being given back: its files removed, the directory a moment later (before, the claim found it neither owned nor
    // stale and was refused at once, exit 96)
    fs.mkdirSync(lock)
    const given = claimLater()
    await aWhile()
    fs.rmdirSync(lock)
    assert.deepStrictEqual(await given, { code: 0, out: "cuda=0\n" })
    // being taken: its owner, a live one, written a moment later
    fs.rmSync(lock, { recursive: true, force: true })
    fs.mkdirSync(lock)
    const taken = claimLater()
    await aWhile()
    plant(locks, 0, process.pid, startTime(process.pid))
    assert.strictEqual((await taken).code, Script.GPU_CLAIM_EXIT)
    // one that no claimer wrote into within the grace is stale
    fs.rmSync(lock, { recursive: true, force: true })
    fs.mkdirSync(lock)
    const old = Date.now() / 1000 - 120
    fs.utimesSync(lock, old, old)
    assert.strictEqual(claim(locks, 1).stdout, "cuda=0\n")
  })

  it("a job gives back its devices when its command ends, or when it cannot get them all: the next job finds them free", () => {
    const locks = lockDir()
    assert.strictEqual(claim(locks, 2).stdout, "cuda=0,1\n")
    assert.deepStrictEqual(held(locks), [])
    // one that cannot get all it was granted gives back those it got
    plant(locks, 1, process.pid, startTime(process.pid))
    assert.strictEqual(claim(locks, 2).status, Script.GPU_CLAIM_EXIT)
    assert.deepStrictEqual(held(locks), ["gpu1"])
  })

  it("a command's processes left running are ended before its devices are given back, and the job's log says so", () => {
    const locks = lockDir()
    const seen = path.join(locks, "seen")
    const ready = path.join(locks, "ready")
    // a child that outlives the command; on SIGTERM it writes whether the device is still locked, then exits. The
    // command ends once the child has set its trap (a busy machine may not have run the child's first line yet when
    // the command ends), and the child's `sleep` of the moment is of the group too: the log names both
    const child = `trap 'if [ -d ${locks}/gpu0 ]; then echo held; else echo free; fi > ${seen}; exit 0' TERM; : > ${ready}; while :; do sleep 0.05; done`
    const command = `sh -c ${JSON.stringify(child)} & until [ -e ${ready} ]; do sleep 0.01; done; echo "left=$!"`
    // setsid: the script leads its process group (and session), as under Grid Engine's shepherd
    const job = spawnSync("setsid", ["-w", "/bin/sh", "-c", render(locks, 1, command)], { encoding: "utf8", env: jobEnv({}), timeout: 20_000 })
    const left = Number(/left=(\d+)/.exec(job.stdout)?.[1])
    // a zombie (ended, not yet reaped by whoever adopted it) is gone
    const alive = fs.existsSync(`/proc/${left}`) && !/\) Z /.test(fs.readFileSync(`/proc/${left}/stat`, "utf8"))
    if (alive) process.kill(left, "SIGKILL")
    assert.isFalse(alive, `the child ${left} outlived its job: ${job.stderr}`)
    assert.strictEqual(fs.readFileSync(seen, "utf8"), "held\n", "the device was still locked when the child was told to end")
    const said = /trex: the command left processes running \(pids ([\d ]+)\): ending them \(SIGTERM, SIGKILL after 5 s\) before its GPUs \(0\) are given back/.exec(job.stderr)
    assert.include(said?.[1]?.split(" ") ?? [], String(left), job.stderr)
    assert.deepStrictEqual(held(locks), [])
  })

  it("a job writes its exit record before it ends what its command left and gives its devices back: a cancel meanwhile, or a qdel's SIGKILL, finds the command's own end", () => {
    const locks = lockDir()
    const seen = path.join(locks, "seen")
    const ready = path.join(locks, "ready")
    // a child that outlives the command (exit 0); on the script's SIGTERM it writes whether the job's exit record is there
    const child = `trap 'if [ -e "$TREX_JOB_DIR/${Script.EXIT_FILE}" ]; then echo recorded; else echo none; fi > ${seen}; exit 0' TERM; : > ${ready}; while :; do sleep 0.05; done`
    const dir = tempDir("trex-ge-record-first-")
    const script = jobScript(dir, `sh -c ${shellQuote(child)} & until [ -e ${ready} ]; do sleep 0.01; done`, { gpus: 1, gpuLockDir: locks })
    const job = spawnSync("setsid", ["-w", "/bin/sh", "-c", script], { encoding: "utf8", env: jobEnv({}), timeout: 20_000 })
    assert.strictEqual(job.status, 0, job.stderr)
    // before the fix: "none" (the record came after the devices were given back, up to 35 s later)
    assert.strictEqual(fs.readFileSync(seen, "utf8"), "recorded\n", job.stderr)
    assert.deepInclude(Script.exitRecord(fs.readFileSync(path.join(dir, Script.EXIT_FILE), "utf8")), { runs: 1, notified: false })
    assert.strictEqual(Script.exitRecord(fs.readFileSync(path.join(dir, Script.EXIT_FILE), "utf8"))?.record.exit_status, "0")
    assert.deepStrictEqual(held(locks), [])
  })

  it("a process that left the job's process group (setsid) is found by the job's mark in its environment and ended before the devices are given back; the log names it", () => {
    const locks = lockDir()
    const seen = path.join(locks, "seen")
    const pidFile = path.join(locks, "pid")
    // a server that daemonises: a session (and process group) of its own, its parent gone, its stdio closed
    const daemon = `echo $$ > ${pidFile}.tmp; trap 'if [ -d ${locks}/gpu0 ]; then echo held; else echo free; fi > ${seen}; exit 0' TERM; mv ${pidFile}.tmp ${pidFile}; while :; do sleep 0.05; done`
    const command = `setsid sh -c ${shellQuote(daemon)} </dev/null >/dev/null 2>&1 & until [ -e ${pidFile} ]; do sleep 0.01; done`
    const job = spawnSync("setsid", ["-w", "/bin/sh", "-c", render(locks, 1, command)], { encoding: "utf8", env: jobEnv({}), timeout: 20_000 })
    const left = Number(fs.readFileSync(pidFile, "utf8"))
    const alive = fs.existsSync(`/proc/${left}`) && !/\) Z /.test(fs.readFileSync(`/proc/${left}/stat`, "utf8"))
    if (alive) process.kill(left, "SIGKILL")
    // before, the script saw its process group only: the daemon ran on, on the device given back
    assert.isFalse(alive, `the daemon ${left} outlived its job: ${job.stderr}`)
    assert.strictEqual(fs.readFileSync(seen, "utf8"), "held\n", "the device was still locked when the daemon was told to end")
    // the daemon and its `sleep` of the moment, which has its environment
    const outside = new RegExp(`trex: of them, outside the job's process group \\(setsid, a daemon\\), found by ${Script.MARK_VAR} in their environment: pids ([\\d ]+)\n`).exec(job.stderr)
    assert.include(outside?.[1]?.split(" ") ?? [], String(left), job.stderr)
    const all = /trex: the command left processes running \(pids ([\d ]+)\)/.exec(job.stderr)
    assert.include(all?.[1]?.split(" ") ?? [], String(left), job.stderr)
    assert.deepStrictEqual(held(locks), [])
  })

  it("a job whose script is killed with its process group (a qdel past its grace, h_rt) leaves a watcher that ends what its command started outside that group, then gives the devices back; a claim meanwhile waits for them", async () => {
    const locks = lockDir()
    const seen = path.join(locks, "seen")
    const pidFile = path.join(locks, "pid")
    // told to end, the daemon takes 1.5 s to, so that the next job's claim, started at once, finds the watcher at work
    const daemon = `echo $$ > ${pidFile}.tmp; trap 'if [ -d ${locks}/gpu0 ]; then echo held; else echo free; fi > ${seen}; sleep 1.5; exit 0' TERM; mv ${pidFile}.tmp ${pidFile}; while :; do sleep 0.05; done`
    const command = `setsid sh -c ${shellQuote(daemon)} </dev/null >/dev/null 2>&1 & until [ -e ${pidFile} ]; do sleep 0.01; done; echo started; while :; do sleep 0.05; done`
    // setsid (not a group leader, it does not fork): the script leads its process group, as under sge_shepherd
    const job = kept(spawn("setsid", ["/bin/sh", "-c", render(locks, 1, command)], { env: jobEnv({}) }))
    let out = ""
    let err = ""
    job.stdout!.on("data", (b) => (out += String(b)))
    job.stderr!.on("data", (b) => (err += String(b)))
    // the output's pipes close once the watcher, which holds them too, has ended
    const closed = new Promise((resolve) => job.on("close", resolve))
    const exited = new Promise((resolve) => job.on("exit", resolve))
    await Effect.runPromise(eventually("the command started its daemon", () => out === "started\n", 30))
    const left = Number(fs.readFileSync(pidFile, "utf8"))
    process.kill(-job.pid!, "SIGKILL")
    // reaped at once, as sge_shepherd reaps the job's script (a zombie reads as a live owner)
    await exited
    // the next job on the device: it waits while the watcher ends the daemon (before, it took the lock as stale at once)
    const alive = `s=$(sed 's/.*) //' /proc/${left}/stat 2>/dev/null | cut -c1); [ -n "$s" ] && [ "$s" != Z ]`
    const next = spawnSync("/bin/sh", ["-c", render(locks, 1, `if ${alive}; then echo "daemon: running"; else echo "daemon: gone"; fi; echo "cuda=$CUDA_VISIBLE_DEVICES"`)], { encoding: "utf8", env: jobEnv({}), timeout: 60_000 })
    await closed
    const running = fs.existsSync(`/proc/${left}`) && !/\) Z /.test(fs.readFileSync(`/proc/${left}/stat`, "utf8"))
    if (running) process.kill(left, "SIGKILL")
    // before, nothing ended it: it ran on, on the device the next job was given
    assert.isFalse(running, `the daemon ${left} outlived its job's killed script: ${err}`)
    assert.strictEqual(next.stdout, "daemon: gone\ncuda=0\n", next.stderr)
    assert.strictEqual(fs.readFileSync(seen, "utf8"), "held\n", "the device was still locked when the daemon was told to end")
    assert.match(err, new RegExp(`trex: the job's script \\(pid ${job.pid}\\) was killed before it gave back its GPUs \\(0\\) \\(a qdel past its grace, h_rt\\): its watcher \\(pid \\d+\\) ends what the command left running, then gives them back\n`))
    assert.include(err, `found by ${Script.MARK_VAR} in their environment: pids ${left}`)
    assert.deepStrictEqual(held(locks), [])
  }, 60_000)

  it("a process of the command that outlives SIGKILL becomes the locks' owner, in `owner` and in `pid` (which earlier scripts read alone)", () => {
    const locks = lockDir()
    fs.chmodSync(locks, 0o1777)
    // a clock 20 s further on at each look, so that the waits (5 s to SIGKILL, 30 s after) pass in a moment, and a
    // `sleep` of whole seconds only (POSIX's; dash's is the system's)
    const bin = lockDir()
    fs.chmodSync(bin, 0o777)
    fs.writeFileSync(path.join(bin, "date"), `#!/bin/sh\nn=$(cat ${bin}/n 2>/dev/null || echo 0); echo $((n + 1)) > ${bin}/n; echo $(($(/bin/date +%s) + n * 20))\n`, { mode: 0o755 })
    fs.writeFileSync(path.join(bin, "sleep"), `#!/bin/sh\ncase "$1" in *[!0-9]*) echo "sleep: invalid time interval '$1'" >&2; exit 1;; esac\nexec /bin/sleep "$1"\n`, { mode: 0o755 })
    const ready = path.join(locks, "ready")
    const script = render(locks, 1, `until [ -e ${ready} ]; do /bin/sleep 0.05; done; echo "cuda=$CUDA_VISIBLE_DEVICES"`)
    fs.chmodSync(/^cd '?([^' ]+)'? \|\| exit 97$/m.exec(script)![1]!, 0o777)
    // the job runs as another user, leading its process group; a process of root's joins that group: the job's SIGKILL
    // cannot end it (EPERM), as it cannot end one stuck in the kernel
    const harness = `my ($script, $ready) = @ARGV; $| = 1;
      my $job = fork // die; if (!$job) { setpgrp(0, 0); exec("setpriv", ${OTHER.map((o) => JSON.stringify(o)).join(", ")}, "/bin/sh", "-c", $script); die }
      setpgrp($job, $job);
      my $stuck = fork // die; if (!$stuck) { setpgrp(0, $job) or die "setpgid: $!"; open(STDOUT, ">", "/dev/null"); open(STDERR, ">", "/dev/null"); open(my $f, ">", $ready); close $f; exec("sleep", "600"); die }
      print "stuck=$stuck\n"; waitpid($job, 0); exit($? >> 8)`
    const job = spawnSync("perl", ["-e", harness, script, ready], { encoding: "utf8", env: jobEnv({ PATH: `${bin}:/usr/bin:/bin` }), timeout: 30_000 })
    const stuck = Number(/stuck=(\d+)/.exec(job.stdout)?.[1])
    try {
      assert.include(job.stdout, "cuda=0", job.stderr)
      assert.include(job.stderr, `trex: process ${stuck} of the command outlived SIGKILL: GPUs 0 stay locked as long as it lives`)
      assert.strictEqual(fs.readFileSync(path.join(locks, "gpu0", "owner"), "utf8"), `${stuck} ${startTime(stuck)} ${bootId}\n`)
      // before, `pid` named the job's script, gone: an earlier TREX's job took the device beside the process
      assert.strictEqual(fs.readFileSync(path.join(locks, "gpu0", "pid"), "utf8"), `${stuck}\n`)
      // before, the wait's `sleep 0.1` failed at once, its error in the log at each of 350 turns of a loop that did not wait
      assert.notInclude(job.stderr, "invalid time interval")
    } finally {
      if (stuck > 0) process.kill(stuck, "SIGKILL")
    }
  })

  it("a lock of another user's killed job, in the sticky lock directory, is taken over in place and given back for anyone to take", async () => {
    const locks = lockDir()
    fs.chmodSync(locks, 0o1777)
    // root's job holds device 0 and is killed with its process group and its watcher (a crashed node; or
    // ENABLE_ADDGRP_KILL, which ends every process of the job): its lock stays
    const go = path.join(locks, "never")
    const job = spawn("setsid", ["-w", "/bin/sh", "-c", render(locks, 1, `echo "cuda=$CUDA_VISIBLE_DEVICES"; while [ ! -e ${go} ]; do sleep 0.05; done`)], { env: jobEnv({}) })
    kept(job)
    let out = ""
    job.stdout!.on("data", (b) => (out += String(b)))
    await Effect.runPromise(eventually("root's job claimed device 0", () => out === "cuda=0\n", 30))
    const ended = new Promise((resolve) => job.on("close", resolve))
    process.kill(Number(fs.readFileSync(path.join(locks, "gpu0", "watch"), "utf8").split(" ")[0]), "SIGKILL")
    process.kill(-Number(fs.readFileSync(path.join(locks, "gpu0", "pid"), "utf8")), "SIGKILL")
    await ended
    // before, the other user could neither remove root's lock nor write in it: the job exited 96
    const taken = claimAs(locks, 1)
    assert.strictEqual(taken.stdout, "cuda=0\n", taken.stderr)
    // given back: root's directory stays, marked released, and the next job of either user takes it
    assert.strictEqual(fs.readFileSync(path.join(locks, "gpu0", "owner"), "utf8"), "0 0 released\n")
    assert.strictEqual(claimAs(locks, 1).stdout, "cuda=0\n")
    assert.strictEqual(claim(locks, 1).stdout, "cuda=0\n")
    assert.deepStrictEqual(held(locks), [])
  }, 60_000)

  it("a live owner this job cannot see (another user's under /proc hidepid=2, or in another pid namespace) keeps its lock", async () => {
    // another user's: the claim runs as another user with a /proc of its own mounted hidepid=2 (a mount namespace of its own)
    const locks = lockDir()
    fs.chmodSync(locks, 0o777)
    const owner = sleeper()
    fs.chmodSync(plant(locks, 0, owner, startTime(owner)), 0o777)
    const script = render(locks, 1)
    fs.chmodSync(/^cd '?([^' ]+)'? \|\| exit 97$/m.exec(script)![1]!, 0o777)
    const hidden = spawnSync("unshare", ["-m", "--propagation", "private", "/bin/sh", "-c",
      `mount -t proc -o hidepid=2 proc /proc && exec setpriv ${OTHER.join(" ")} /bin/sh -c "$0"`, script], { encoding: "utf8", env: jobEnv({}) })
    assert.strictEqual(hidden.status, Script.GPU_CLAIM_EXIT, `${hidden.stdout}${hidden.stderr}`)
    assert.include(hidden.stderr, `kept as held, their owners not visible from this job (another pid namespace, or /proc mounted hidepid): ${locks}/gpu0`)
    // a job in a pid namespace of its own holds the device: a job outside it cannot tell its pid's process, and keeps the lock
    const locks2 = lockDir()
    const go = path.join(locks2, "go")
    const inside = spawn("unshare", ["--pid", "--fork", "--mount-proc", "/bin/sh", "-c", render(locks2, 1, `echo "cuda=$CUDA_VISIBLE_DEVICES"; while [ ! -e ${go} ]; do sleep 0.05; done`)], { env: jobEnv({}) })
    kept(inside)
    let out = ""
    inside.stdout!.on("data", (b) => (out += String(b)))
    const exited = new Promise<number | null>((resolve) => inside.on("close", (code) => resolve(code)))
    await Effect.runPromise(eventually("the job in its pid namespace claimed device 0", () => out === "cuda=0\n", 30))
    const outside = claim(locks2, 1)
    fs.writeFileSync(go, "")
    assert.strictEqual(outside.status, Script.GPU_CLAIM_EXIT, outside.stdout)
    assert.include(outside.stderr, `${locks2}/gpu0`)
    assert.strictEqual(await exited, 0)
  }, 60_000)

  it("a stale lock an earlier TREX's job is breaking (its `gpu<i>.break` held) is left to it; a break lock older than the grace is broken", () => {
    const locks = lockDir()
    fs.chmodSync(locks, 0o1777)
    // a killed job's lock, as this TREX makes it (0777: another user may take it over in place)
    fs.chmodSync(plant(locks, 0, 999999999), 0o777)
    // an earlier TREX breaks under `gpu0.break` alone, then `rm -rf` and `mkdir`: before, this job took the lock in
    // place meanwhile, and both held device 0
    const oldBreak = path.join(locks, "gpu0.break")
    fs.mkdirSync(oldBreak)
    const refused = claim(locks, 1)
    assert.strictEqual(refused.status, Script.GPU_CLAIM_EXIT, refused.stdout)
    assert.isTrue(fs.existsSync(oldBreak))
    assert.deepStrictEqual(fs.readdirSync(path.join(locks, "breaks")), [])
    // one left by a killed breaker of another user, which this one cannot remove from the sticky directory, is passed
    const old = Date.now() / 1000 - 120
    fs.utimesSync(oldBreak, old, old)
    const passed = claimAs(locks, 1)
    assert.strictEqual(passed.stdout, "cuda=0\n", passed.stderr)
    // its own user's job breaks it, and removes it (and the lock, given back)
    const broken = claim(locks, 1)
    assert.strictEqual(broken.stdout, "cuda=0\n", broken.stderr)
    assert.deepStrictEqual(fs.readdirSync(locks), ["breaks"])
  })

  it("a lock given back (owner `0 0 released`) is free even where the boot id cannot be read", () => {
    const locks = lockDir()
    const dir = path.join(locks, "gpu0")
    fs.mkdirSync(dir)
    fs.writeFileSync(path.join(dir, "owner"), "0 0 released\n")
    // the boot id hidden (a mount namespace of its own): before, pid 0 was judged by `kill -0 0`, which signals the
    // job's own process group and succeeds, so the lock was held for ever (exit 96)
    const job = spawnSync("unshare", ["-m", "--propagation", "private", "/bin/sh", "-c",
      `mount --bind /dev/null /proc/sys/kernel/random/boot_id && exec /bin/sh -c "$0"`, render(locks, 1)], { encoding: "utf8", env: jobEnv({}) })
    assert.strictEqual(job.stdout, "cuda=0\n", job.stderr)
  })

  it("two jobs that find one stale lock at once: one takes it, the other is refused", async () => {
    const locks = lockDir()
    const go = path.join(locks, "go")
    // the host's device count from an nvidia-smi that answers both jobs at once (a barrier), so that they judge the lock together
    const bin = lockDir()
    const barrier = path.join(bin, "barrier")
    fs.writeFileSync(path.join(bin, "nvidia-smi"), `#!/bin/sh\ntouch ${barrier}.$$\nwhile [ ! -e ${barrier} ]; do sleep 0.01; done\necho 'GPU 0: Fake (UUID: GPU-0)'\n`, { mode: 0o755 })
    const arrived = () => fs.readdirSync(bin).filter((f) => f.startsWith("barrier.")).length
    for (let round = 0; round < 10; round++) {
      for (const f of fs.readdirSync(bin)) if (f.startsWith("barrier")) fs.rmSync(path.join(bin, f))
      fs.rmSync(go, { force: true })
      plant(locks, 0, 999999999)
      // each holds the device until the test says go, so that a second claim cannot follow a released first
      const jobs = [0, 1].map(() => {
        const p = spawn("/bin/sh", ["-c", render(locks, 1, `echo "cuda=$CUDA_VISIBLE_DEVICES"; while [ ! -e ${go} ]; do sleep 0.05; done`)], {
          env: jobEnv({ PATH: `${bin}:/usr/bin:/bin` })
        })
        let out = ""
        p.stdout.on("data", (b) => (out += String(b)))
        const exited = new Promise<number | null>((resolve) => p.on("close", (code) => resolve(code)))
        return { exited, out: () => out, claimed: () => out.startsWith("cuda=") }
      })
      const until = (done: () => boolean) => new Promise<void>((resolve) => {
        const look = () => (done() ? resolve() : setTimeout(look, 10))
        look()
      })
      await until(() => arrived() === 2)
      fs.writeFileSync(barrier, "")
      // both claimed (both hold the lock: the defect) or one refused
      let ended = false
      for (const j of jobs) void j.exited.then(() => (ended = true))
      await until(() => ended || jobs.every((j) => j.claimed()))
      fs.writeFileSync(go, "")
      const codes = await Promise.all(jobs.map((j) => j.exited))
      assert.sameMembers(codes, [0, Script.GPU_CLAIM_EXIT], `round ${round}: ${jobs.map((j) => j.out()).join(" | ")}`)
    }
  }, 120_000)
})

describe("qstat, qacct and the mappings", () => {
  it("parses qstat -xml, qstat -j and qacct -j", () => {
    const xml = `<job_info><queue_info><job_list state="running"><JB_job_number>7</JB_job_number><JB_name>a</JB_name><state>r</state><slots>2</slots></job_list></queue_info>
<job_info><job_list state="pending"><JB_job_number>8</JB_job_number><JB_name>b&amp;c</JB_name><state>Eqw</state><slots>1</slots></job_list></job_info></job_info>`
    assert.deepStrictEqual([...Script.parseQstat(xml).values()], [{ id: "7", state: "r", name: "a", slots: 2 }, { id: "8", state: "Eqw", name: "b&c", slots: 1 }])
    const details = Script.parseJobDetails([
      "job_number:                 8",
      "error reason          1:      12/05/2026 05:47:09 [0:23638]: error: can't chdir to /gone: No such file or directory",
      "scheduling info:            (-l gpu=2) cannot run at host \"localhost\" because it offers only hc:gpu=0.000000",
      "                            another line"
    ].join("\n"))
    assert.deepStrictEqual(details.errorReasons, ["can't chdir to /gone: No such file or directory"])
    assert.strictEqual(Script.pendingReason(details), "(-l gpu=2) cannot run at host \"localhost\" because it offers only hc:gpu=0.000000")
    assert.isUndefined(Script.pendingReason(Script.parseJobDetails("scheduling info:            (Collecting of scheduler job information is turned off)")))
    const acct = Script.parseQacct("==============\njobname  old\nfailed   0\nexit_status 1\n==============\njobname  mine\nfailed       100 : assumedly after job\nexit_status  137                  (Killed)\nru_wallclock 2s\n")
    assert.strictEqual(acct.length, 2)
    assert.strictEqual(Script.pickRecord(acct, "mine")?.failed, "100 : assumedly after job")
    assert.strictEqual(Script.pickRecord(acct, "old")?.exit_status, "1")
    assert.isUndefined(Script.pickRecord(acct, "other"))
    assert.deepStrictEqual(Script.categoryRequests("-l gpu=1,h_rt=3,h_vmem=50M -q all.q"), { gpu: "1", h_rt: "3", h_vmem: "50M" })
    assert.strictEqual(Script.memoryBytes("3.5MB"), 3.5 * 1024 * 1024)
    assert.strictEqual(Script.memoryBytes("50M"), 50 * 1024 * 1024)
    assert.strictEqual(Script.hostComplex("hostname localhost\ncomplex_values        gpu=4,mem_free=2G\nuser_lists NONE", "gpu"), 4)
    assert.strictEqual(Script.hostComplex("complex_values NONE", "gpu"), 0)
    assert.strictEqual(Script.parseClusterQueues("CLUSTER QUEUE CQLOAD USED RES AVAIL TOTAL aoACDS cdsuE\n-----\nall.q 0.4 0 0 2 2 0 0\ngpu.q 0.1 1 0 3 4 0 0\n", undefined), 6)
    assert.strictEqual(Script.parseClusterQueues("all.q 0.4 0 0 2 2 0 0\ngpu.q 0.1 1 0 3 4 0 0\n", ["gpu.q"]), 4)
  })

  it("tells a qmaster that does not answer from one that refuses, and a qsub that sent nothing from one that may have", () => {
    const e = (message: string) => new Errors.BackendError({ backend: "gridengine", operation: "qstat", message, retryable: true })
    const down = "qstat -xml exited 1: error: commlib error: got select error (Connection refused) error: unable to send message to qmaster using port 6444 on host \"localhost\": got send error"
    assert.isTrue(Query.isQmasterUnreachable(e(down)))
    // a qmaster starting, its act_qmaster not yet written (a clean-clone CI run's qdel, during the restart)
    assert.isTrue(Query.isQmasterUnreachable(e("qdel 346 exited 1: error: unable to read qmaster name: qmaster hostname in \"/var/lib/gridengine/default/common/act_qmaster\" has zero length")))
    assert.isTrue(Query.isConnectFailure(e("qsub -terse x exited 1: Unable to run job: unable to send message to qmaster using port 6444 on host \"localhost\": got send error")))
    assert.isFalse(Query.isConnectFailure(e("qsub -terse x exited 1: error: failed receiving gdi request response for mid=1 (got syncron message receive timeout error)")))
    const refused = "qstat -xml exited 1: error: commlib error: access denied (client IP resolved to host name \"localhost\". This is not identical to clients host name \"vm\")"
    assert.isFalse(Query.isQmasterUnreachable(e(refused)))
    assert.isFalse(Query.isQmasterUnreachable(e("qstat -xml exited 1: denied: host \"n1\" is neither submit nor admin host")))
  })

  it("reads the job script's exit record as an accounting record", () => {
    assert.deepStrictEqual(Script.exitRecord(`{"exitCode":3,"start":100,"end":107,"gpus":2}`), { record: { failed: "0", exit_status: "3", ru_wallclock: "7s" }, gpus: 2 })
    assert.deepStrictEqual(Script.exitRecord(`{"exitCode":99,"start":1,"end":2,"runs":3,"gpus":0,"category":"-l h_vmem=100M","rerunLimit":2}`), {
      record: { failed: "0", exit_status: "99", ru_wallclock: "1s", category: "-l h_vmem=100M" },
      gpus: 0,
      runs: 3,
      rerunLimit: 2
    })
    assert.deepStrictEqual(Script.parseRuns("start 1\nexit 99 2\nstart 3\nstart 9\nexit 1 10\nstart 11\n"), { starts: 4, ends: [99, undefined, 1] })
    assert.isUndefined(Script.exitRecord("{\"exitCode\":"))
    assert.isUndefined(Script.exitRecord(`{"start":1}`))
  })

  it("maps every state letter", () => {
    assert.deepStrictEqual(Script.mapLive("qw"), { _tag: "Pending" })
    assert.deepStrictEqual(Script.mapLive("hqw"), { _tag: "Pending", reason: "held (hqw)", held: true })
    assert.deepStrictEqual(Script.mapLive("hRwq"), { _tag: "Pending", reason: "held (hRwq)", held: true })
    for (const s of ["r", "t", "Rr", "Rt", "hr"]) assert.deepStrictEqual(Script.mapLive(s), { _tag: "Running" }, s)
    for (const s of ["s", "S", "T", "ts", "Rs"]) assert.strictEqual(Script.mapLive(s)._tag, "Pending", s)
    for (const s of ["Eqw", "Ehqw", "EhRqw"]) assert.deepStrictEqual(Script.mapLive(s), { _tag: "Error" }, s)
    for (const s of ["dr", "dt", "dRr"]) assert.deepStrictEqual(Script.mapLive(s), { _tag: "Deleting" }, s)
    assert.deepStrictEqual(Script.mapLive("Rq"), { _tag: "Pending", reason: "rescheduled (Rq): Grid Engine runs the job again" })
    assert.deepStrictEqual(Script.mapLive("zz"), { _tag: "Pending", reason: "Grid Engine state zz" })
  })

  it("a cancel counts as waiting to run again only a queued or errored job of the ref's name, not a suspended one", () => {
    const job = (state: string, name = "trex-a") => ({ id: "7", state, name, slots: 1 })
    for (const s of ["qw", "hqw", "hRwq", "Rq", "Eqw", "Ehqw", "EhRqw"]) assert.isTrue(Script.waitsToRun(job(s), "trex-a"), s)
    // suspended (its command may have ended: its own end must not read as cancelled), running, being deleted
    for (const s of ["s", "S", "T", "ts", "Rs", "St", "r", "t", "Rr", "Rt", "hr", "dr", "dt", "dRr"]) assert.isFalse(Script.waitsToRun(job(s), "trex-a"), s)
    // a reused id: another job waits under it
    assert.isFalse(Script.waitsToRun(job("qw", "someone-else"), "trex-a"))
    assert.isFalse(Script.waitsToRun(job("Eqw", "someone-else"), "trex-a"))
    // a ref with no name (an earlier TREX) takes the listed job as its own, as the watch does
    assert.isTrue(Script.waitsToRun(job("qw"), undefined))
    assert.isFalse(Script.waitsToRun(undefined, "trex-a"))
  })

  it("maps accounting records onto exits", () => {
    const m = (record: Record<string, string>, cancelled = false) => Script.mapAccounting({ record, cancelled })
    assert.include(m({ failed: "0", exit_status: "0" }), { outcome: "Succeeded", exitCode: 0 })
    assert.include(m({ failed: "0", exit_status: "3" }), { outcome: "Failed", failureKind: "Crash", exitCode: 3 })
    assert.include(m({ failed: "0", exit_status: "137 (Killed)" }), { outcome: "Failed", failureKind: "OOM", exitCode: 137 })
    assert.include(m({ failed: "0", exit_status: "143" }), { outcome: "Failed", failureKind: "Crash", signal: 15 })
    assert.include(m({ failed: "0", exit_status: "143" }, true), { outcome: "Cancelled", failureKind: "Cancelled" })
    assert.include(m({ failed: "100 : assumedly after job", exit_status: "137" }), { outcome: "Failed", failureKind: "OOM", signal: 9 })
    assert.include(m({ failed: "100 : assumedly after job", exit_status: "137" }, true), { outcome: "Cancelled" })
    assert.include(m({ failed: "0", exit_status: "0" }, true), { outcome: "Succeeded" })
    assert.include(m({ failed: "37  : qmaster enforced h_rt, h_cpu, or h_vmem limit", exit_status: "137", category: "-l h_rt=1", ru_wallclock: "2s" }), { outcome: "Failed", failureKind: "Timeout" })
    assert.include(m({ failed: "37  : qmaster enforced h_rt, h_cpu, or h_vmem limit", exit_status: "137", category: "-l h_rt=60,h_vmem=100M", maxvmem: "99.5MB" }), { failureKind: "OOM" })
    assert.include(m({ failed: "37  : qmaster enforced h_rt, h_cpu, or h_vmem limit", exit_status: "137", category: "-l h_vmem=100M" }), { failureKind: "OOM" })
    const infra = m({ failed: "26  : opening input/output file", exit_status: "0", jobnumber: "12" })
    assert.include(infra, { outcome: "Failed", failureKind: "Infra" })
    assert.include(infra.message, "qacct -j 12")
  })
})

describe("examples/backends/gridengine.task.yaml", () => {
  it.effect("decodes through fromJson; errors name the field; the SSH key is only referenced", () =>
    Effect.gen(function*() {
      const { task } = yield* TaskFile.load(path.join(repoRoot, "examples/backends/gridengine.task.yaml"))
      const section = (task.backend as { gridengine: Record<string, unknown> }).gridengine
      const config = yield* GridEngineBackend.fromJson(section)
      assert.deepInclude(config, { workDir: "/shared/trex-jobs", queue: "gpu.q", project: "ml-research", gpuResource: "gpu", parallelEnvironment: "smp" })
      const s = Script.renderScript({
        jobName: "t",
        labels: { run: "r", node: "n" },
        jobDir: `${config.workDir}/r/n`,
        envFile: `${config.workDir}/r/n/.trex-env`,
        argv: task.recipe!.command,
        submittedAt: 0,
        gpus: task.recipe!.resources.gpus,
        gpuResource: config.gpuResource!,
        assignGpus: true,
        gpuLockDir: "/tmp/trex-gpu-locks",
        cpus: task.recipe!.resources.cpus,
        parallelEnvironment: config.parallelEnvironment,
        memoryMb: task.recipe!.resources.memoryMb,
        memoryResource: "h_vmem",
        timeLimitSeconds: task.recipe!.resources.timeLimitSeconds,
        queue: config.queue,
        project: config.project,
        extraDirectives: config.extraDirectives ?? [],
        maxRequeues: config.maxRequeues ?? 2
      })
      for (const d of ["-l gpu=1,h_vmem=8192M,h_rt=7200", "-pe smp 8", "-q gpu.q", "-P ml-research"]) assert.include(s, `#$ ${d}\n`)
      const noKey = yield* Effect.flip(GridEngineBackend.fromJson({ ...section, ssh: { host: "h", username: "u", privateKeyFile: "/nonexistent/key" } }))
      assert.include(noKey.message, "/nonexistent/key")
      const typo = yield* Effect.flip(GridEngineBackend.fromJson({ ...section, queu: "gpu.q" }))
      assert.strictEqual(typo._tag, "InvalidInput")
      assert.include(typo.message, "backend.gridengine.queu")
      const wrong = yield* Effect.flip(GridEngineBackend.fromJson({ ...section, slots: 0 }))
      assert.include(wrong.message, "backend.gridengine.slots")
      const relative = yield* Effect.flip(GridEngineBackend.fromJson({ ...section, workDir: "jobs" }))
      assert.include(relative.message, "workDir")
    }))
})
