// The Grid Engine backend against the real single-host Son of Grid Engine 8.1.9 that
// scripts/services/start-gridengine.sh starts (qmaster + execd, queue all.q, consumable complex gpu=2),
// plus the pure parts: the script, the parsing of qstat/qacct, the state and accounting mappings.
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, assert, describe, it, layer } from "@effect/vitest"
import { Backend, Errors, TaskFile } from "@trex/core"
import { Effect, Fiber, Layer, Redacted, Stream } from "effect"
import { BackendConformance } from "@trex/core/testing"
import { assertTooBig, BULKY_RESULT_SCRIPT } from "./support/bulkyResult.ts"
import { checkLoudWatch, loudScript } from "./support/loudLog.ts"
import { eventually } from "./support/eventually.ts"
import { checkEndedBeforeFirstWatch, collect, ENDED_FIRST_SCRIPT, exitOf, specIn } from "./support/batchJobs.ts"
import * as GridEngineBackend from "../src/GridEngineBackend.ts"
import * as Query from "../src/internal/gridengineQuery.ts"
import * as Script from "../src/internal/gridengineScript.ts"

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
  execFileSync("bash", ["-c", "f=/var/spool/gridengine/qmaster/qmaster.pid; p=$(cat $f); kill $p; while kill -0 $p 2>/dev/null; do sleep 0.1; done"], { timeout: 60_000 })
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

const PWNED = `/tmp/trex-pwned-ge-${process.pid}`
const RESULT = `echo '{"metrics":{"score":1}}' > result.json`

/** A process's start time: field 22 of /proc/<pid>/stat, counted after the `comm` field's last ')' (a name may hold spaces and parens). */
const startTime = (pid: number): string => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!
}
const bootId = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim()

/** The directories the script tests make (the locks they plant among them), and the processes they start: removed and ended after the file. */
const made: Array<string> = []
const sleepers: Array<ChildProcess> = []
afterAll(() => {
  for (const p of sleepers) p.kill("SIGKILL")
  for (const d of made) fs.rmSync(d, { recursive: true, force: true })
})
const tempDir = (prefix: string) => {
  const d = fs.mkdtempSync(`/tmp/${prefix}`)
  made.push(d)
  return d
}
const lockDir = () => tempDir("trex-ge-locks-")
/** A live process that no job started: a pid a killed job's lock may come to name once pids wrap. */
const sleeper = () => {
  const p = spawn("sleep", ["600"], { stdio: "ignore" })
  sleepers.push(p)
  return p.pid!
}
/**
 * Lock `gpu<i>` under `locks` as a job writes it: `owner` (pid, start time, boot id), and `pid` alone for the job
 * scripts of an earlier TREX. `start` omitted: the lock of an earlier TREX (`pid` only).
 */
const plant = (locks: string, i: number, pid: number, start?: string) => {
  const dir = path.join(locks, `gpu${i}`)
  fs.mkdirSync(dir, { recursive: true })
  if (start !== undefined) fs.writeFileSync(path.join(dir, "owner"), `${pid} ${start} ${bootId}\n`)
  fs.writeFileSync(path.join(dir, "pid"), `${pid}\n`)
  return dir
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
    fs.writeFileSync(path.join(dir, ".trex-env"), "")
    const render = (command: string) =>
      Script.renderScript({
        jobName: "reruns",
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
        maxRequeues: 1
      })
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

describe("the job script's GPU claim", () => {
  const render = (locks: string, gpus: number, command = "echo \"cuda=$CUDA_VISIBLE_DEVICES\"") => {
    const dir = tempDir("trex-ge-claim-")
    fs.writeFileSync(path.join(dir, ".trex-env"), "")
    return Script.renderScript({
      jobName: "claim",
      labels: { run: "r", node: "n" },
      jobDir: dir,
      envFile: path.join(dir, ".trex-env"),
      argv: ["/bin/sh", "-c", command],
      submittedAt: 0,
      gpus,
      gpuResource: "gpu",
      assignGpus: true,
      gpuLockDir: locks,
      cpus: 1,
      extraDirectives: [],
      maxRequeues: 2
    })
  }
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
    sleepers.push(odd)
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

  it("a lock with no owner yet (its claimer between mkdir and writing) is taken over only once it is older than the grace", () => {
    const locks = lockDir()
    fs.mkdirSync(path.join(locks, "gpu0"))
    assert.strictEqual(claim(locks, 1).status, Script.GPU_CLAIM_EXIT)
    const old = Date.now() / 1000 - 120
    fs.utimesSync(path.join(locks, "gpu0"), old, old)
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
    // root's job holds device 0 and is killed with its process group (qdel's SIGKILL): its lock stays
    const go = path.join(locks, "never")
    const job = spawn("setsid", ["-w", "/bin/sh", "-c", render(locks, 1, `echo "cuda=$CUDA_VISIBLE_DEVICES"; while [ ! -e ${go} ]; do sleep 0.05; done`)], { env: jobEnv({}) })
    sleepers.push(job)
    let out = ""
    job.stdout!.on("data", (b) => (out += String(b)))
    await Effect.runPromise(eventually("root's job claimed device 0", () => out === "cuda=0\n", 30))
    const ended = new Promise((resolve) => job.on("close", resolve))
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
    sleepers.push(inside)
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

layer(TestLayer, { timeout: 300_000, excludeTestServices: true })("GridEngineBackend on a real Grid Engine", (it) => {
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
      const events = yield* collect(backend, ref)
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

  it.effect("schedules the gpu consumable: 2 GPUs named in CUDA_VISIBLE_DEVICES, counted, a second 2-GPU job waits with the scheduler's reason", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      // Each job holds its GPUs until a file appears (up to 120 s), so what the test looks for happens however the
      // queue runs them, not by timing: another file's job taking one of the queue's two slots made the second
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

  it.effect("cancel is qdel with a grace: the job's SIGTERM handler runs, and the job ends Cancelled", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const body = "trap 'echo saving checkpoint; sleep 1; echo saved; exit 143' TERM; echo started; while :; do sleep 0.2; done"
      const ref = yield* backend.submit(spec("cancel-grace", body))
      const events = yield* backend.watch(ref).pipe(
        Stream.tap((e) => (e._tag === "Log" && e.line === "started" ? backend.cancel(ref) : Effect.void)),
        Stream.runCollect,
        Effect.map((c) => Array.from(c))
      )
      const exit = exitOf(events)
      assert.strictEqual(exit.outcome, "Cancelled", exit.message)
      // without -notify and the script's relay, qdel's SIGKILL ends the job at once
      assert.include(exit.logTail, "saved")
      assert.isBelow(exit.wallSeconds, 10)
    }))

  it.effect("withdraw deletes a job only while it waits: a running one runs on", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const gpu = (node: string) => spec(node, "echo started; sleep 60", { resources: { gpus: 2, cpus: 1 } })
      const first = yield* backend.submit(gpu("withdraw-a"))
      const second = yield* backend.submit(gpu("withdraw-b"))
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
      const blocker = yield* backend.submit(spec("eqw-blocker", "echo started; sleep 60", { resources: { gpus: 2, cpus: 1 } }))
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

  it.effect("list(run) after a controller restart: a fresh instance finds running and finished jobs and reads a finished one's end back", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const done = yield* backend.submit(spec("relist-done", RESULT))
      assert.strictEqual((yield* Backend.awaitExit(backend, done)).outcome, "Succeeded")
      const running = yield* backend.submit(spec("relist-running", "echo started; sleep 60"))
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

  it.effect("reports capacity: the queue's slots, the 2 gpu of the host, and the trex jobs running", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const cap = yield* backend.capacity
      assert.strictEqual(cap.gpus, Number(process.env["TREX_TEST_SGE_FAKE_GPUS"] ?? 2))
      assert.isAtLeast(cap.slots, 1)
      yield* eventually("no trex job runs", Effect.map(backend.capacity, (c) => c.inUse === 0), 60)
      const ref = yield* backend.submit(spec("capacity", "sleep 60"))
      yield* eventually("the running job counts as in use", Effect.map(backend.capacity, (c) => c.inUse === 1), 60)
      yield* backend.cancel(ref)
      yield* eventually("the cancelled job no longer counts", Effect.map(backend.capacity, (c) => c.inUse === 0), 60)
    }))

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

/**
 * The qmaster back, and the execution daemon restarted with it: an execd finds a restarted qmaster by itself only
 * after about 30 s (its reconnect interval), while a restarted one registers at once and reports the jobs that ended
 * meanwhile (a controlled shutdown leaves its jobs running).
 */
const restartGridEngine = Effect.andThen(
  Effect.sync(() => {
    execFileSync("bash", ["-c", "/usr/lib/gridengine/sge_qmaster; f=/var/spool/gridengine/execd/localhost/execd.pid; p=$(cat $f); kill $p; while kill -0 $p 2>/dev/null; do sleep 0.1; done"], { env: sgeEnv, timeout: 60_000 })
  }),
  startGridEngine
)

layer(TestLayer, { timeout: 300_000, excludeTestServices: true })("GridEngineBackend when Grid Engine's daemons stop", (it) => {
  it.effect("ends a job whose execd died from its exit record: Grid Engine lists it running until the host is back", () =>
    Effect.gen(function*() {
      const backend = yield* GridEngineBackend.make({ ...config, exitReportWaitMs: 1500 })
      const ref = yield* backend.submit(spec("execd-dead", `echo started; sleep 2; ${RESULT}; exit 3`, { resources: { gpus: 1, cpus: 1 } }))
      yield* eventually("the job runs", () => qstatState(ref.id) === "r", 30)
      // a host that crashed: its execd never reports the job's end
      execFileSync("bash", ["-c", "p=$(cat /var/spool/gridengine/execd/localhost/execd.pid); kill -9 $p; while kill -0 $p 2>/dev/null; do sleep 0.1; done"])
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
    }).pipe(Effect.scoped, Effect.ensuring(startGridEngine)), { timeout: 60_000 })

  it.effect("two starts at once with the execd down (test files side by side, each bringing Grid Engine up) both succeed, one execd between them", () =>
    Effect.gen(function*() {
      execFileSync("bash", ["-c", "p=$(cat /var/spool/gridengine/execd/localhost/execd.pid); kill -9 $p; while kill -0 $p 2>/dev/null; do sleep 0.1; done"])
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
      assert.strictEqual(spawnSync("pgrep", ["-xc", "sge_execd"], { encoding: "utf8" }).stdout.trim(), "1")
    }).pipe(Effect.ensuring(startGridEngine)), { timeout: 120_000 })


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
    }).pipe(Effect.scoped, Effect.ensuring(startGridEngine)), { timeout: 120_000 })
})

describe("GridEngineBackend over SSH", () => {
  it.live("runs the same logic over SSH (ssh2 exec + SFTP) as another user, SGE_ROOT from the config", () =>
    Effect.gen(function*() {
      yield* startGridEngine
      execFileSync("bash", [script("start-sshd.sh")], { stdio: ["ignore", "ignore", "inherit"], timeout: 300_000 })
      const keyDir = process.env["SSH_KEY_DIR"] ?? "/var/lib/trex-test-ssh"
      const hostKey = fs.readFileSync(path.join(keyDir, "known_hosts"), "utf8").trim().split(/\s+/)[2]!
      const remoteDir = fs.mkdtempSync("/tmp/trex-gridengine-ssh-")
      fs.chmodSync(remoteDir, 0o777)
      const backend = yield* GridEngineBackend.make({
        workDir: remoteDir,
        pollIntervalMs: 300,
        sgeRoot,
        ssh: {
          host: "127.0.0.1",
          port: Number(process.env["TREX_TEST_SSH_PORT"] ?? 2222),
          username: "sdktest",
          privateKey: Redacted.make(fs.readFileSync(path.join(keyDir, "id_ed25519"), "utf8")),
          hostKeySha256: createHash("sha256").update(Buffer.from(hostKey, "base64")).digest("base64")
        }
      })
      const ref = yield* backend.submit(spec("ssh", "echo \"user=$(id -un) secret=$TOKEN\"; echo '{\"metrics\":{},\"primary\":1}' > result.json", {
        env: { TOKEN: Redacted.make("t0k") }
      }))
      const jobDir = ref.data.jobDir as string
      assert.strictEqual(fs.statSync(path.join(jobDir, Script.ENV_FILE)).uid, Number(execFileSync("id", ["-u", "sdktest"], { encoding: "utf8" })))
      const exit = exitOf(yield* collect(backend, ref))
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
      assert.deepStrictEqual(exit.result, { metrics: {}, primary: 1 })
      assert.include(exit.logTail, "user=sdktest secret=t0k")
      assert.isTrue((yield* backend.list(run)).some((j) => j.ref.id === ref.id), "list over SSH sees the job (qstat as sdktest)")
    }).pipe(Effect.scoped), { timeout: 300_000 })
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
