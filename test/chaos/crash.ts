/**
 * Campaign 1, crash and resume: start searches with `trex run` (the toy job on the local
 * backend, and a table on the simulator backend), kill the controller with SIGKILL at random
 * moments and at chosen ones (right after a trial finished or started, while a job is being
 * submitted), and `trex resume` until the run finishes. Measures: finished trials lost, jobs
 * executed twice, journals that fail to open, and final trees that differ from an
 * uninterrupted run with the same seed (concurrency 1, where the order is deterministic).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import type { JournalEvent } from "@trex/core"
import {
  campaign,
  type CampaignOptions,
  chaosTask,
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

type Trigger = "random" | "after-done" | "after-start" | "job-dir"
const TRIGGERS: ReadonlyArray<Trigger> = ["random", "after-done", "after-start", "job-dir"]

interface Scenario {
  readonly backend: "local" | "simulator"
  readonly concurrency: number
  readonly seed: number
  readonly trials: number
  readonly kills: number
}

interface Tally {
  kills: number
  killsByTrigger: Record<Trigger, number>
  killsBetweenSubmitAndEvent: number
  /** Kills that left a journal with no events (created, the run not yet recorded). */
  killedBeforeStart: number
  sessions: number
  finishedLost: number
  executedTwice: number
  /** Job executions the toy job logged (local runs). */
  executions: number
  journalOpenFailures: number
  treeMismatches: number
  treesCompared: number
  unfinishedRuns: number
  failedByKill: number
}

const argsFor = (s: Scenario, out: string) => [
  "run",
  s.backend === "local" ? chaosTask : simTask,
  "--backend",
  s.backend,
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
): Promise<{ killed: boolean; stdout: string; code: number | null }> => {
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
  } else if (trigger === "job-dir") {
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
          if (fresh++ >= skip) kill()
        }
      }
    }, 1)
    timers.push(poll)
  }
  const code = await t.exited
  for (const timer of timers) clearTimeout(timer)
  return { killed, stdout: t.out.stdout, code }
}

const submittedWithoutEvent = (entries: ReadonlyArray<JournalEvent.Entry>, jobsDir: string): number => {
  if (!fs.existsSync(jobsDir)) return 0
  const submitted = new Set(entries.flatMap((e) => (e.event._tag === "JobSubmitted" ? [e.event.nodeId] : [])))
  return fs.readdirSync(jobsDir).filter((n) => /^n\d+$/.test(n) && !submitted.has(n)).length
}

const runScenario = async (s: Scenario, random: () => number, tally: Tally, findings: Array<string>, log: (l: string) => void) => {
  const env = (out: string) => ({ TREX_CHAOS_LOG: path.join(out, "executions.log"), TREX_CHAOS_MS: "120" })
  // the uninterrupted reference
  const refOut = tmpDir("crash-ref")
  const refStart = Date.now()
  const ref = trex(argsFor(s, refOut), env(refOut))
  const refSeconds = (Date.now() - refStart) / 1000
  const refDir = runDirOf(ref.stdout)
  if (ref.status !== 0 || refDir === undefined) throw new Error(`reference run failed: ${ref.stderr}`)
  const refRead = await tryReadJournal(refDir)
  const refTree = "entries" in refRead ? treeSignature(refRead.entries) : []

  const out = tmpDir("crash")
  let runDir: string | undefined
  const jobsDir = () => (runDir === undefined ? undefined : path.join(runDir, "jobs"))
  // a run directory appears under `out` as soon as `trex run` starts
  const findRunDir = () => {
    const names = fs.existsSync(out) ? fs.readdirSync(out).filter((n) => n !== "executions.log") : []
    return names.length === 1 ? path.join(out, names[0]!) : undefined
  }
  let kills = 0
  let finished = false
  let known = new Map<string, string>()
  for (let round = 0; round < s.kills + 20 && !finished; round++) {
    const trigger = kills < s.kills ? TRIGGERS[(round + s.seed) % TRIGGERS.length]! : undefined
    const effective: Trigger | undefined = s.backend === "simulator" && trigger !== undefined ? "random" : trigger
    const args = runDir === undefined ? argsFor(s, out) : ["resume", runDir]
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
      if (s.backend === "local") tally.killsBetweenSubmitAndEvent += submittedWithoutEvent(read.entries, jobsDir()!)
      await sleep(random() * 300)
    } else if (r.code === 0) {
      finished = read.entries.some((e) => e.event._tag === "RunFinished")
    } else {
      findings.push(`${runDir}: a session exited ${r.code} without being killed`)
    }
  }
  if (!finished || runDir === undefined) {
    tally.unfinishedRuns++
    findings.push(`${s.backend} seed ${s.seed}: did not finish after ${kills} kills`)
    return
  }
  const final = await tryReadJournal(runDir)
  if ("error" in final) return
  if (s.backend === "local") {
    const executions = lines(path.join(out, "executions.log"))
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
  killsByTrigger: { "random": 0, "after-done": 0, "after-start": 0, "job-dir": 0 },
  killsBetweenSubmitAndEvent: 0,
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

/** Run the campaign. */
export const run = (options: CampaignOptions) =>
  campaign("crash", options, async (findings) => {
    const random = rng(options.seed ?? 1)
    const log = options.log ?? (() => {})
    const scenarios: Array<Scenario> = options.quick
      ? [
        { backend: "local", concurrency: 1, seed: 1, trials: 6, kills: 4 },
        { backend: "simulator", concurrency: 1, seed: 1, trials: 12, kills: 2 }
      ]
      : [
        ...Array.from({ length: 8 }, (_, i): Scenario => ({ backend: "local", concurrency: 1, seed: 10 + i, trials: 12, kills: 8 })),
        ...Array.from({ length: 6 }, (_, i): Scenario => ({ backend: "local", concurrency: 2, seed: 20 + i, trials: 12, kills: 6 })),
        ...Array.from({ length: 6 }, (_, i): Scenario => ({ backend: "simulator", concurrency: 1, seed: 30 + i, trials: 25, kills: 3 })),
        ...Array.from({ length: 4 }, (_, i): Scenario => ({ backend: "simulator", concurrency: 2, seed: 40 + i, trials: 25, kills: 3 }))
      ]
    const local = newTally()
    const sim = newTally()
    for (const s of scenarios) await runScenario(s, random, s.backend === "local" ? local : sim, findings, log)
    const figures = {
      "runs (local)": scenarios.filter((s) => s.backend === "local").length,
      "runs (simulator)": scenarios.filter((s) => s.backend === "simulator").length,
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
    }
    return {
      figures,
      mustBeZero: [
        "finished trials lost",
        "jobs executed twice",
        "journal files that fail to open",
        "runs that did not finish",
        "trees differing from uninterrupted (local)",
        "trees differing from uninterrupted (simulator)"
      ],
      mustBePositive: ["kills", "job executions logged (local)", "trees compared (concurrency 1, local)"]
    }
  })
