/**
 * Campaign 1, crash and resume: start searches with `trex run` (the toy job on the local
 * backend, a table on the simulator backend, and the toy job in sh on the real remote backends
 * of scripts/services: Docker Engine, Podman, Slurm through slurmrestd, Grid Engine, SSH), kill
 * the controller with SIGKILL at random moments and at chosen ones (right after a trial finished
 * or started, while a job is being submitted), and `trex resume` until the run finishes.
 * Measures: finished trials lost, jobs executed twice (counted where the jobs ran: each logs its
 * start), journals that fail to open, and final trees that differ from an uninterrupted run with
 * the same seed (concurrency 1, where the order is deterministic).
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import type { JournalEvent } from "@trex/core"
import { sshHost } from "../support/sshHost.ts"
import {
  campaign,
  type CampaignOptions,
  chaosTask,
  fixtures,
  duplicates,
  finishedNodes,
  lines,
  rng,
  runDirOf,
  simTask,
  sleep,
  tmpDir,
  trex,
  trexAsync,
  treeSignature,
  tryReadJournal
} from "./lib.ts"

type Trigger = "random" | "after-done" | "after-start" | "job-dir" | "job-dir-late"
const TRIGGERS: ReadonlyArray<Trigger> = ["random", "after-done", "after-start", "job-dir"]
/**
 * On the remote backends, also 5-405 ms after a job directory appeared (cubed, so that about 2 kills in 5
 * land within 30 ms): the engine's call (sbatch, qsub, the container's create and start, the SSH launch)
 * in flight or just answered, its JobSubmitted not yet journaled. Measured from the job directory to its
 * JobSubmitted: Slurm 27-112 ms, Grid Engine 290-850 ms, Docker 160-2,200 ms.
 */
const REMOTE_TRIGGERS: ReadonlyArray<Trigger> = ["random", "job-dir", "job-dir-late", "after-done", "after-start"]

/** The real remote backends of scripts/services (Podman through the Docker backend, on its Docker-compatible API). */
export type Remote = "docker" | "podman" | "slurm" | "gridengine" | "ssh"
export const remotes: ReadonlyArray<Remote> = ["docker", "podman", "slurm", "gridengine", "ssh"]
type Kind = "local" | "simulator" | Remote

interface Scenario {
  readonly backend: Kind
  readonly concurrency: number
  readonly seed: number
  readonly trials: number
  readonly kills: number
}

interface Tally {
  kills: number
  killsByTrigger: Record<Trigger, number>
  killsBetweenSubmitAndEvent: number
  /** Jobs a kill left on the engine (submitted there) with no JobSubmitted in the journal. */
  orphansOnEngine: number
  /** Of them, those the resumed session adopted (journaled as they were, not submitted again). */
  orphansAdopted: number
  /** Kills that left a journal with no events (created, the run not yet recorded). */
  killedBeforeStart: number
  sessions: number
  finishedLost: number
  executedTwice: number
  /** Job executions the toy job logged (local and remote runs). */
  executions: number
  journalOpenFailures: number
  treeMismatches: number
  treesCompared: number
  unfinishedRuns: number
  failedByKill: number
}

const env = (k: string, d: string) => process.env[k] ?? d

/**
 * Where a scenario's jobs run and how they are counted. A remote backend's task is chaos.task.yaml
 * with chaos-job.sh as its command and the backend's section, in a folder of its own that every job
 * sees at the same path (a bind mount in containers; this machine is the cluster and the SSH host),
 * with the execution log every job appends "<run> <node>" to.
 */
interface Setup {
  readonly task: string
  readonly cliBackend: string
  readonly env: (out: string) => Record<string, string>
  /** The directory where the backend writes the job directories of a run (inside `submit`, before its JobSubmitted). */
  readonly jobsDir: (runDir: string) => string
  /** The node ids of a run's job executions, as the jobs logged them. */
  readonly executions: (runDir: string, out: string) => Array<string>
}

const localSetup = (s: Scenario): Setup => ({
  task: s.backend === "local" ? chaosTask : simTask,
  cliBackend: s.backend,
  env: (out) => ({ TREX_CHAOS_LOG: path.join(out, "executions.log"), TREX_CHAOS_MS: "120" }),
  jobsDir: (runDir) => path.join(runDir, "jobs"),
  executions: (_, out) => lines(path.join(out, "executions.log"))
})

/** The task's backend section: `dir` mounted in containers at its own path, the job directories under `shared`. */
const remoteSection = (kind: Remote, dir: string, shared: string): Record<string, unknown> => {
  const engine = (socketPath: string) => ({
    docker: { image: IMAGE, socketPath, network: "none", stopGraceSeconds: 1, mounts: [{ source: dir, target: dir }] }
  })
  switch (kind) {
    case "docker":
      return engine(env("DOCKER_HOST", "unix:///var/run/docker.sock").replace(/^unix:\/\//, ""))
    case "podman":
      return engine(env("TREX_TEST_PODMAN_HOST", "unix:///run/podman/podman.sock").replace(/^unix:\/\//, ""))
    case "slurm":
      return { slurm: { workDir: path.join(shared, "slurm"), pollIntervalMs: 300, rest: { url: env("TREX_TEST_SLURM_REST_URL", "http://127.0.0.1:6820"), user: "root" } } }
    case "gridengine":
      return { gridengine: { workDir: path.join(shared, "gridengine"), pollIntervalMs: 300, sgeRoot: env("SGE_ROOT", "/var/lib/gridengine") } }
    case "ssh":
      return {
        ssh: {
          remoteRoot: path.join(shared, "ssh"),
          pollInterval: "150 millis",
          killGraceSeconds: 1,
          hosts: [sshHost()]
        }
      }
  }
}

const IMAGE = env("TREX_TEST_DOCKER_IMAGE", "local/busybox:latest")

const remoteSetup = (kind: Remote): Setup => {
  // dir/task holds the task and its job alone (a resumed run refuses trainer code that changed);
  // dir/shared the execution log and the backend's job directories; all readable by the SSH host's
  // user, and the log and the SSH root writable by it
  const dir = tmpDir(`crash-${kind}`)
  const taskDir = path.join(dir, "task")
  const shared = path.join(dir, "shared")
  fs.mkdirSync(taskDir)
  fs.mkdirSync(shared)
  for (const d of [dir, taskDir, shared]) fs.chmodSync(d, 0o777)
  fs.copyFileSync(path.join(fixtures, "chaos-job.sh"), path.join(taskDir, "chaos-job.sh"))
  const log = path.join(shared, "executions.log")
  fs.writeFileSync(log, "")
  fs.chmodSync(log, 0o666)
  const task = fs.readFileSync(chaosTask, "utf8")
    .replace(/command: .*/, `command: ["/bin/sh", "{taskDir}/chaos-job.sh", "{run}", "{node}", ${JSON.stringify(log)}]`)
    .replace(/resources: .*/, `resources: { cpus: 1, timeLimitSeconds: 60 }\n  env: { TREX_CHAOS_SECONDS: "0.1" }${kind === "docker" || kind === "podman" ? `\n  image: ${IMAGE}` : ""}`)
  fs.writeFileSync(path.join(taskDir, "chaos.task.yaml"), `${task}backend: ${JSON.stringify(remoteSection(kind, dir, shared))}\n`)
  const under = (root: string) => (runDir: string) => path.join(root, path.basename(runDir))
  return {
    task: path.join(taskDir, "chaos.task.yaml"),
    cliBackend: kind === "podman" ? "docker" : kind,
    // slurmrestd's JWT, by the name backend.slurm.rest.tokenEnv defaults to
    env: () => kind === "slurm" ? { SLURM_JWT: slurmToken() } : {},
    jobsDir: kind === "docker" || kind === "podman" ? (runDir) => path.join(runDir, "jobs") : under(path.join(shared, kind)),
    executions: (runDir) => lines(log).flatMap((l) => {
      const [run, node] = l.split(" ")
      return run === path.basename(runDir) && node !== undefined ? [node] : []
    })
  }
}

let token: { value: string; at: number } | undefined
const slurmToken = (): string => {
  if (token === undefined || Date.now() - token.at > 300_000) {
    const out = execFileSync("scontrol", ["token", "username=root", "lifespan=900"], { encoding: "utf8" })
    token = { value: out.trim().split("=")[1] ?? "", at: Date.now() }
  }
  return token.value
}

const argsFor = (s: Scenario, setup: Setup, out: string) => [
  "run",
  setup.task,
  "--backend",
  setup.cliBackend,
  "--concurrency",
  String(s.concurrency),
  "--seed",
  String(s.seed),
  "--max-trials",
  String(s.trials),
  "--out",
  out
]

/** Start a session (`trex run` or `trex resume`) and kill it by `trigger`; resolves with whether it was killed. */
const session = async (
  args: ReadonlyArray<string>,
  env: Record<string, string>,
  trigger: Trigger | undefined,
  window: number,
  random: () => number,
  jobsDir: () => string | undefined
): Promise<{ killed: boolean; stdout: string; stderr: string; code: number | null }> => {
  const t = trexAsync(args, env)
  let killed = false
  const kill = () => {
    if (!killed && t.child.exitCode === null) {
      killed = true
      t.child.kill("SIGKILL")
    }
  }
  const timers: Array<NodeJS.Timeout> = []
  if (trigger === "random") {
    timers.push(setTimeout(kill, 250 + random() * window))
  } else if (trigger === "after-done" || trigger === "after-start") {
    const word = trigger === "after-done" ? /^done /m : /^start /m
    // the k-th such line of this session, then 0-5 ms (a burst of journal writes follows)
    const k = 1 + Math.floor(random() * 3)
    let seen = 0
    t.child.stdout.on("data", (d: Buffer) => {
      seen += (d.toString("utf8").match(new RegExp(word.source, "gm")) ?? []).length
      if (seen >= k && !killed) timers.push(setTimeout(kill, Math.floor(random() * 6)))
    })
  } else if (trigger === "job-dir" || trigger === "job-dir-late") {
    // a new job directory: the backend is inside `submit`, its JobSubmitted not yet journaled
    const before = new Set(jobsDir() !== undefined && fs.existsSync(jobsDir()!) ? fs.readdirSync(jobsDir()!) : [])
    const skip = Math.floor(random() * 3)
    let fresh = 0
    const poll = setInterval(() => {
      const dir = jobsDir()
      if (dir === undefined || !fs.existsSync(dir)) return
      for (const name of fs.readdirSync(dir)) {
        if (!before.has(name) && !name.startsWith(".")) {
          before.add(name)
          if (fresh++ === skip) trigger === "job-dir" ? kill() : timers.push(setTimeout(kill, 5 + 400 * random() ** 3))
        }
      }
    }, 1)
    timers.push(poll)
  }
  const code = await t.exited
  for (const timer of timers) clearTimeout(timer)
  return { killed, stdout: t.out.stdout, stderr: t.out.stderr, code }
}

const submittedWithoutEvent = (entries: ReadonlyArray<JournalEvent.Entry>, jobsDir: string): number => {
  if (!fs.existsSync(jobsDir)) return 0
  const submitted = new Set(entries.flatMap((e) => (e.event._tag === "JobSubmitted" ? [e.event.nodeId] : [])))
  // n3 (local, Docker, SSH) or n3-<time><random> (Slurm, Grid Engine)
  return fs.readdirSync(jobsDir).filter((n) => {
    const node = /^(n\d+)(-[0-9a-z]+)?$/.exec(n)?.[1]
    return node !== undefined && !submitted.has(node)
  }).length
}

/** A job directory a kill left with no JobSubmitted for its node (and, on Docker, the container it recorded). */
interface Orphan {
  readonly node: string
  readonly dir: string
  readonly container?: string
}

const orphansOf = (kind: Remote, entries: ReadonlyArray<JournalEvent.Entry>, jobsDir: string): Array<Orphan> => {
  if (!fs.existsSync(jobsDir)) return []
  const submitted = new Set(entries.flatMap((e) => (e.event._tag === "JobSubmitted" ? [e.event.nodeId] : [])))
  return fs.readdirSync(jobsDir).flatMap((name): Array<Orphan> => {
    const node = /^(n\d+)(-[0-9a-z]+)?$/.exec(name)?.[1]
    if (node === undefined || submitted.has(node)) return []
    const dir = path.join(jobsDir, name)
    if (kind !== "docker" && kind !== "podman") return [{ node, dir }]
    // the Docker backend records the container it created in .trex-job.json before starting it
    const record = path.join(dir, ".trex-job.json")
    const container = fs.existsSync(record) ? (JSON.parse(fs.readFileSync(record, "utf8")) as { container?: string }).container : undefined
    return [{ node, dir, ...(container !== undefined ? { container } : {}) }]
  })
}

const runScenario = async (s: Scenario, random: () => number, tally: Tally, findings: Array<string>, log: (l: string) => void) => {
  const setup = s.backend === "local" || s.backend === "simulator" ? localSetup(s) : remoteSetup(s.backend)
  const env = setup.env
  // the uninterrupted reference
  const refOut = tmpDir("crash-ref")
  const refStart = Date.now()
  const ref = trex(argsFor(s, setup, refOut), env(refOut))
  const refSeconds = (Date.now() - refStart) / 1000
  const refDir = runDirOf(ref.stdout)
  if (ref.status !== 0 || refDir === undefined) throw new Error(`reference run failed: ${ref.stderr}`)
  const refRead = await tryReadJournal(refDir)
  const refTree = "entries" in refRead ? treeSignature(refRead.entries) : []

  const out = tmpDir("crash")
  let runDir: string | undefined
  const jobsDir = () => (runDir === undefined ? undefined : setup.jobsDir(runDir))
  // a run directory appears under `out` as soon as `trex run` starts
  const findRunDir = () => {
    const names = fs.existsSync(out) ? fs.readdirSync(out).filter((n) => n !== "executions.log") : []
    return names.length === 1 ? path.join(out, names[0]!) : undefined
  }
  const orphans = new Map<string, Orphan>()
  let kills = 0
  let finished = false
  let known = new Map<string, string>()
  for (let round = 0; round < s.kills + 20 && !finished; round++) {
    const triggers = s.backend === "local" || s.backend === "simulator" ? TRIGGERS : REMOTE_TRIGGERS
    const trigger = kills < s.kills ? triggers[(round + s.seed) % triggers.length]! : undefined
    const effective: Trigger | undefined = s.backend === "simulator" && trigger !== undefined ? "random" : trigger
    const args = runDir === undefined ? argsFor(s, setup, out) : ["resume", runDir]
    const dirPoll = setInterval(() => (runDir ??= findRunDir()), 2)
    const r = await session(args, env(out), effective, Math.max(0.5, refSeconds - 0.6) * 1000, random, jobsDir)
    clearInterval(dirPoll)
    tally.sessions++
    runDir ??= runDirOf(r.stdout) ?? findRunDir()
    const countKill = () => {
      kills++
      tally.kills++
      tally.killsByTrigger[effective!]++
    }
    const startAgain = () => {
      if (runDir !== undefined) fs.rmSync(runDir, { recursive: true, force: true })
      runDir = undefined
    }
    if (runDir === undefined || !fs.existsSync(path.join(runDir, "journal.sqlite"))) {
      // killed before the journal existed: start again
      if (r.killed) countKill()
      startAgain()
      continue
    }
    const read = await tryReadJournal(runDir)
    if ("error" in read) {
      tally.journalOpenFailures++
      findings.push(`journal of ${runDir} fails to open after a kill: ${read.error}`)
      break
    }
    if (read.entries.length === 0 && r.killed) {
      // killed after the journal was created, before the run was recorded: nothing to resume
      // (`trex resume` says so); start again
      countKill()
      tally.killedBeforeStart++
      startAgain()
      continue
    }
    // every trial seen finished before must still be there, with the same outcome
    const now = finishedNodes(read.entries)
    for (const [id, outcome] of known) {
      if (now.get(id) !== outcome) {
        tally.finishedLost++
        findings.push(`${runDir}: ${id} was finished as ${outcome}, now ${now.get(id) ?? "missing"}`)
      }
    }
    known = now
    if (r.killed) {
      countKill()
      if (s.backend !== "simulator") tally.killsBetweenSubmitAndEvent += submittedWithoutEvent(read.entries, jobsDir()!)
      await sleep(random() * 300)
      if (s.backend !== "simulator" && s.backend !== "local") {
        for (const o of orphansOf(s.backend, read.entries, jobsDir()!)) orphans.set(`${o.dir} ${o.container ?? ""}`, o)
      }
    } else if (r.code === 0) {
      finished = read.entries.some((e) => e.event._tag === "RunFinished")
    } else {
      findings.push(`${runDir}: a session exited ${r.code} without being killed: ${r.stderr.trim().split("\n").slice(-3).join(" | ")}`)
      break
    }
  }
  if (!finished || runDir === undefined) {
    tally.unfinishedRuns++
    findings.push(`${s.backend} seed ${s.seed}: did not finish after ${kills} kills`)
    return
  }
  const final = await tryReadJournal(runDir)
  if ("error" in final) return
  if (s.backend !== "simulator") {
    const executions = setup.executions(runDir, out)
    if (s.backend !== "local") {
      // the jobs a kill left unjournaled that had reached the engine, and whether the resumed session adopted each
      const refs = final.entries.flatMap((e) => (e.event._tag === "JobSubmitted" ? [e.event] : []))
      for (const o of orphans.values()) {
        const reached = s.backend === "ssh"
          ? [".trex-pid", ".trex-exit"].some((f) => fs.existsSync(path.join(o.dir, f)))
          : s.backend === "docker" || s.backend === "podman"
          ? o.container !== undefined
          : fs.existsSync(path.join(o.dir, "result.json"))
        if (!reached) continue
        tally.orphansOnEngine++
        const adopted = s.backend === "ssh"
          ? executions.filter((n) => n === o.node).length === 1
          : s.backend === "docker" || s.backend === "podman"
          ? refs.some((e) => e.job.id === o.container)
          : refs.some((e) => typeof e.job.data["jobDir"] === "string" && path.basename(e.job.data["jobDir"]) === path.basename(o.dir))
        if (adopted) tally.orphansAdopted++
      }
    }
    tally.executions += executions.length
    const dup = duplicates(executions)
    tally.executedTwice += dup.length
    if (dup.length > 0) findings.push(`${runDir}: jobs executed twice: ${dup.join(", ")}`)
  }
  const tree = treeSignature(final.entries)
  tally.failedByKill += tree.filter((n) => n.endsWith("Failed:Infra")).length
  if (s.concurrency === 1) {
    tally.treesCompared++
    if (JSON.stringify(tree) !== JSON.stringify(refTree)) {
      tally.treeMismatches++
      const diff = tree.map((n, i) => (n === refTree[i] ? undefined : `${n} vs ${refTree[i] ?? "none"}`)).filter((d) => d !== undefined)
      findings.push(`${s.backend} seed ${s.seed} (${runDir} vs ${refDir}): trees differ: ${diff.slice(0, 3).join("; ")}`)
    }
  }
  log(`crash: ${s.backend} c=${s.concurrency} seed=${s.seed}: ${kills} kills, ${tree.length} nodes`)
}

const newTally = (): Tally => ({
  kills: 0,
  killsByTrigger: { "random": 0, "after-done": 0, "after-start": 0, "job-dir": 0, "job-dir-late": 0 },
  killsBetweenSubmitAndEvent: 0,
  orphansOnEngine: 0,
  orphansAdopted: 0,
  killedBeforeStart: 0,
  sessions: 0,
  finishedLost: 0,
  executedTwice: 0,
  executions: 0,
  journalOpenFailures: 0,
  treeMismatches: 0,
  treesCompared: 0,
  unfinishedRuns: 0,
  failedByKill: 0
})

/** The scenarios of a backend: small on the remote ones, whose jobs take a second or more to be scheduled. */
const scenariosOf = (kind: Kind, quick: boolean): Array<Scenario> => {
  const many = (n: number, seed: number, s: Omit<Scenario, "seed" | "backend">) => Array.from({ length: n }, (_, i): Scenario => ({ backend: kind, seed: seed + i, ...s }))
  switch (kind) {
    case "local":
      return quick ? many(1, 1, { concurrency: 1, trials: 6, kills: 4 }) : [
        ...many(8, 10, { concurrency: 1, trials: 12, kills: 8 }),
        ...many(6, 20, { concurrency: 2, trials: 12, kills: 6 })
      ]
    case "simulator":
      return quick ? many(1, 1, { concurrency: 1, trials: 12, kills: 2 }) : [
        ...many(6, 30, { concurrency: 1, trials: 25, kills: 3 }),
        ...many(4, 40, { concurrency: 2, trials: 25, kills: 3 })
      ]
    default:
      return quick ? many(1, 1, { concurrency: 1, trials: 8, kills: 4 }) : [
        ...many(2, 50, { concurrency: 1, trials: 10, kills: 6 }),
        ...many(1, 60, { concurrency: 2, trials: 10, kills: 5 })
      ]
  }
}

/** Figures of one remote backend, each name led by the backend's. */
const remoteFigures = (kind: Remote, runs: number, t: Tally): Record<string, number | string> => ({
  [`${kind}: runs`]: runs,
  [`${kind}: kills`]: t.kills,
  [`${kind}: kills by trigger (random / after done / after start / job directory / 5-405 ms after it)`]:
    [t.killsByTrigger.random, t.killsByTrigger["after-done"], t.killsByTrigger["after-start"], t.killsByTrigger["job-dir"], t.killsByTrigger["job-dir-late"]].join(" / "),
  [`${kind}: job directories a kill left without their JobSubmitted`]: t.killsBetweenSubmitAndEvent,
  [`${kind}: jobs a kill left on the engine unjournaled / adopted by the resumed session`]: `${t.orphansOnEngine} / ${t.orphansAdopted}`,
  [`${kind}: controller sessions`]: t.sessions,
  [`${kind}: job executions logged`]: t.executions,
  [`${kind}: finished trials lost`]: t.finishedLost,
  [`${kind}: jobs executed twice`]: t.executedTwice,
  [`${kind}: journal files that fail to open`]: t.journalOpenFailures,
  [`${kind}: runs that did not finish`]: t.unfinishedRuns,
  [`${kind}: trees compared (concurrency 1)`]: t.treesCompared,
  [`${kind}: trees differing from uninterrupted`]: t.treeMismatches,
  [`${kind}: trials failed as Infra after a kill`]: t.failedByKill
})

/**
 * Run the campaign on `backends` (default: the local and simulator backends in the quick mode,
 * which `npm test` runs with each remote backend in test/chaos-backends/; every backend in
 * the full one).
 */
export const run = (options: CampaignOptions & { readonly backends?: ReadonlyArray<Kind> }) =>
  campaign("crash", options, async (findings) => {
    const random = rng(options.seed ?? 1)
    const log = options.log ?? (() => {})
    const kinds = options.backends ?? (options.quick ? ["local", "simulator"] : ["local", "simulator", ...remotes])
    const scenarios = kinds.flatMap((k) => scenariosOf(k, options.quick))
    const tallies = new Map(kinds.map((k) => [k, newTally()]))
    for (const s of scenarios) await runScenario(s, random, tallies.get(s.backend)!, findings, log)
    const local = tallies.get("local")
    const sim = tallies.get("simulator")
    const runsOf = (k: Kind) => scenarios.filter((s) => s.backend === k).length
    const figures: Record<string, number | string> = {}
    const mustBeZero: Array<string> = []
    const mustBePositive: Array<string> = []
    if (local !== undefined && sim !== undefined) {
      Object.assign(figures, {
        "runs (local)": runsOf("local"),
        "runs (simulator)": runsOf("simulator"),
        "kills": local.kills + sim.kills,
        "kills: random moment": local.killsByTrigger.random + sim.killsByTrigger.random,
        "kills: 0-5 ms after a trial finished": local.killsByTrigger["after-done"],
        "kills: 0-5 ms after a trial started": local.killsByTrigger["after-start"],
        "kills: as a job directory appeared": local.killsByTrigger["job-dir"],
        "kills that left a job submitted but not journaled": local.killsBetweenSubmitAndEvent,
        "kills that left a journal with no events (started again)": local.killedBeforeStart + sim.killedBeforeStart,
        "controller sessions": local.sessions + sim.sessions,
        "finished trials lost": local.finishedLost + sim.finishedLost,
        "job executions logged (local)": local.executions,
        "jobs executed twice": local.executedTwice,
        "journal files that fail to open": local.journalOpenFailures + sim.journalOpenFailures,
        "runs that did not finish": local.unfinishedRuns + sim.unfinishedRuns,
        "trees compared (concurrency 1, local)": local.treesCompared,
        "trees differing from uninterrupted (local)": local.treeMismatches,
        "trees compared (concurrency 1, simulator)": sim.treesCompared,
        "trees differing from uninterrupted (simulator)": sim.treeMismatches,
        "trials failed as Infra after a kill (local)": local.failedByKill,
        "trials failed as Infra after a kill (simulator)": sim.failedByKill
      })
      mustBeZero.push(
        "finished trials lost",
        "jobs executed twice",
        "journal files that fail to open",
        "runs that did not finish",
        "trees differing from uninterrupted (local)",
        "trees differing from uninterrupted (simulator)"
      )
      mustBePositive.push("kills", "job executions logged (local)", "trees compared (concurrency 1, local)")
    }
    for (const kind of remotes) {
      const t = tallies.get(kind)
      if (t === undefined) continue
      Object.assign(figures, remoteFigures(kind, runsOf(kind), t))
      mustBeZero.push(
        ...["finished trials lost", "jobs executed twice", "journal files that fail to open", "runs that did not finish", "trees differing from uninterrupted"]
          .map((f) => `${kind}: ${f}`)
      )
      mustBePositive.push(...["kills", "job executions logged", "trees compared (concurrency 1)"].map((f) => `${kind}: ${f}`))
    }
    return { figures, mustBeZero, mustBePositive }
  })
