/**
 * Campaign 2, faults: trials that fail in each way a job can (exit non-zero, run past the
 * time limit, SIGKILL themselves like the OOM killer, write an invalid result.json, write
 * nothing), model calls that fail (429, 529, 500, no answer before the timeout, a malformed
 * structured output) through `ClaudeResearcher` and a local Messages API, and a backend that
 * is unavailable for a while (the local backend's job root made immutable with `chattr +i`,
 * which stops root too). The search must carry on, record each failure on its node with the
 * right kind, retry what is retryable within bounds, and never run past its budget.
 */
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import type { JournalEvent } from "@trex/core"
import { loadTask, runEmbedded } from "./embedded.ts"
import * as FakeModel from "./fakeModel.ts"
import { campaign, type CampaignOptions, chaosTask, lines, readJournal, rng, runDirOf, tmpDir, trex, trexAsync } from "./lib.ts"

const EXPECTED: Record<string, string> = { exit: "Crash", timeout: "Timeout", oom: "OOM", badjson: "InvalidOutput", nothing: "InvalidOutput" }

interface RunFacts {
  readonly completed: boolean
  readonly admitted: number
  readonly failures: Map<string, string>
  readonly dollars: number
}

const facts = (entries: ReadonlyArray<JournalEvent.Entry>): RunFacts => {
  const failures = new Map<string, string>()
  let admitted = 0
  let dollars = 0
  for (const { event } of entries) {
    if (event._tag === "NodeAdmitted") admitted++
    if (event._tag === "BudgetCharged") dollars += event.cost.dollars
    if (event._tag === "NodeFinished" && event.result?.failure !== undefined) failures.set(event.nodeId, event.result.failure.kind)
  }
  return { completed: entries.some((e) => e.event._tag === "RunFinished"), admitted, failures, dollars }
}

/** Trials failing at a set rate, each kind injected by the job itself. */
const trialFaults = async (quick: boolean, findings: Array<string>) => {
  const runs = quick ? 1 : 3
  const trials = quick ? 8 : 24
  const injected: Record<string, number> = { exit: 0, timeout: 0, oom: 0, badjson: 0, nothing: 0 }
  const recorded: Record<string, number> = { Crash: 0, Timeout: 0, OOM: 0, InvalidOutput: 0, Infra: 0, Cancelled: 0 }
  let mismatched = 0
  let completed = 0
  let overrun = 0
  for (let i = 0; i < runs; i++) {
    const out = tmpDir("faults")
    const faultLog = path.join(out, "faults.log")
    const r = trex(["run", chaosTask, "--max-trials", String(trials), "--concurrency", "2", "--seed", String(100 + i), "--out", out], {
      TREX_CHAOS_FAULT_RATE: quick ? "0.7" : "0.5",
      TREX_CHAOS_FAULT_LOG: faultLog,
      TREX_CHAOS_MS: "60"
    })
    const runDir = runDirOf(r.stdout)
    if (r.status !== 0 || runDir === undefined) {
      findings.push(`trial faults: trex run exited ${r.status}: ${r.stderr.slice(-500)}`)
      continue
    }
    const f = facts(await readJournal(runDir))
    if (f.completed) completed++
    overrun += Math.max(0, f.admitted - trials)
    const byNode = new Map(lines(faultLog).map((l) => l.split(" ") as [string, string]))
    for (const kind of byNode.values()) injected[kind]!++
    for (const kind of f.failures.values()) recorded[kind] = (recorded[kind] ?? 0) + 1
    for (const node of new Set([...byNode.keys(), ...f.failures.keys()])) {
      const want = byNode.has(node) ? EXPECTED[byNode.get(node)!] : undefined
      if (want !== f.failures.get(node)) {
        mismatched++
        findings.push(`trial faults (${runDir}): ${node} injected ${byNode.get(node) ?? "nothing"}, recorded ${f.failures.get(node) ?? "success"}`)
      }
    }
  }
  return { runs, completed, overrun, injected, recorded, mismatched }
}

/** Model calls failing through a local Messages API, in an embedded run with ClaudeResearcher. */
const modelFaults = async (quick: boolean, seed: number, findings: Array<string>) => {
  const runs = quick ? 1 : 3
  const trials = quick ? 5 : 10
  const random = rng(seed)
  const served: Record<string, number> = {}
  let completed = 0
  let overrun = 0
  let finishedTrials = 0
  for (let i = 0; i < runs; i++) {
    // every other request fails, each kind in turn (the first kind chosen at random)
    const offset = Math.floor(random() * FakeModel.MODEL_FAULTS.length)
    const server = await FakeModel.start((n) => (n % 2 === 1 ? FakeModel.MODEL_FAULTS[((n >> 1) + offset) % FakeModel.MODEL_FAULTS.length] : undefined))
    try {
      const base = await loadTask("chaos.task.yaml")
      const task = { ...base, budget: { maxTrials: trials, dollars: 0.5 } }
      const runDir = path.join(tmpDir("model-faults"), "run")
      const summary = await runEmbedded({ task, runDir, claude: { url: server.url, apiKey: "fake-key-faults", timeoutMs: 400 }, seed: i })
      const f = facts(await readJournal(runDir))
      if (f.completed) completed++
      finishedTrials += summary.tree.size
      overrun += Math.max(0, f.admitted - trials) + (f.dollars > 0.5 ? 1 : 0)
      if (f.failures.size > 0) findings.push(`model faults: trials failed: ${[...f.failures].join(", ")}`)
    } catch (e) {
      findings.push(`model faults: the run failed: ${String(e).slice(0, 500)}`)
    } finally {
      for (const [kind, n] of Object.entries(server.served)) served[kind] = (served[kind] ?? 0) + n
      await server.close()
    }
  }
  return { runs, completed, overrun, served, finishedTrials, trialsWanted: runs * trials }
}

const chattr = (flag: "+i" | "-i", dir: string) => spawnSync("chattr", [flag, dir], { encoding: "utf8" })

/** The job root unwritable for `outageMs`, starting after the second finished trial. */
const outage = async (outageMs: number, trials: number, findings: Array<string>) => {
  const out = tmpDir("outage")
  const t = trexAsync(["run", chaosTask, "--max-trials", String(trials), "--concurrency", "2", "--seed", "7", "--out", out], { TREX_CHAOS_MS: "150" })
  let state: "before" | "during" | "after" = "before"
  const window = { from: 0, to: 0 }
  let jobs: string | undefined
  let failedToStart: string | undefined
  const poll = setInterval(() => {
    if (state !== "before") return
    if ((t.out.stdout.match(/^done /gm) ?? []).length < 2) return
    const runDir = runDirOf(t.out.stdout)
    if (runDir === undefined) return
    jobs = path.join(runDir, "jobs")
    const r = chattr("+i", jobs)
    if (r.status !== 0) {
      failedToStart = r.stderr
      state = "after"
      return
    }
    state = "during"
    window.from = Date.now()
    setTimeout(() => {
      chattr("-i", jobs!)
      window.to = Date.now()
      state = "after"
    }, outageMs)
  }, 5)
  const code = await t.exited
  clearInterval(poll)
  if (jobs !== undefined) chattr("-i", jobs)
  if (failedToStart !== undefined) {
    findings.push(`outage: chattr +i is not available here: ${failedToStart.trim()}`)
    return undefined
  }
  const runDir = runDirOf(t.out.stdout)
  if (code !== 0 || runDir === undefined) {
    findings.push(`outage ${outageMs} ms: trex run exited ${code}: ${t.out.stderr.slice(-500)}`)
    return { completed: false, infra: 0, other: 0, overrun: 0, hit: 0 }
  }
  const entries = await readJournal(runDir)
  const f = facts(entries)
  const infra = [...f.failures.values()].filter((k) => k === "Infra").length
  // trials that had to be submitted while the job root was unwritable
  const hit = entries.filter((e) => e.event._tag === "NodeAdmitted" && e.event.at >= window.from && e.event.at <= window.to).length
  return { completed: f.completed, infra, other: f.failures.size - infra, overrun: Math.max(0, f.admitted - trials), hit }
}

/** Run the campaign. */
export const run = (options: CampaignOptions) =>
  campaign("faults", options, async (findings) => {
    const trialsPart = await trialFaults(options.quick, findings)
    const modelPart = await modelFaults(options.quick, options.seed ?? 1, findings)
    const short = await outage(2500, options.quick ? 6 : 10, findings)
    const long = options.quick ? undefined : await outage(12_000, 10, findings)
    const figures: Record<string, number | string> = {
      "trial-fault runs": trialsPart.runs,
      "trial-fault runs completed": trialsPart.completed,
      "faults injected by jobs": Object.values(trialsPart.injected).reduce((a, b) => a + b, 0),
      "injected exit 3 / recorded Crash": `${trialsPart.injected["exit"]} / ${trialsPart.recorded["Crash"]}`,
      "injected past time limit / recorded Timeout": `${trialsPart.injected["timeout"]} / ${trialsPart.recorded["Timeout"]}`,
      "injected SIGKILL / recorded OOM": `${trialsPart.injected["oom"]} / ${trialsPart.recorded["OOM"]}`,
      "injected bad or no result.json / recorded InvalidOutput": `${trialsPart.injected["badjson"]! + trialsPart.injected["nothing"]!} / ${trialsPart.recorded["InvalidOutput"]}`,
      "trials whose recorded failure differs from the injected one": trialsPart.mismatched,
      "model-fault runs": modelPart.runs,
      "model-fault runs completed": modelPart.completed,
      "model requests ok / 429 / 529 / 500 / timeout / malformed": ["ok", ...FakeModel.MODEL_FAULTS].map((k) => modelPart.served[k] ?? 0).join(" / "),
      "model-fault trials finished / wanted": `${modelPart.finishedTrials} / ${modelPart.trialsWanted}`,
      "backend outage 2.5 s: trials submitted during it": short === undefined ? "n/a" : short.hit,
      "backend outage 2.5 s: run completed": short === undefined ? "n/a" : short.completed ? 1 : 0,
      "backend outage 2.5 s: trials failed (retried within bounds instead)": short === undefined ? "n/a" : short.infra + short.other,
      "budget overrun": trialsPart.overrun + modelPart.overrun + (short?.overrun ?? 0) + (long?.overrun ?? 0),
      "runs not completed": trialsPart.runs - trialsPart.completed + modelPart.runs - modelPart.completed + (short !== undefined && !short.completed ? 1 : 0) +
        (long !== undefined && !long.completed ? 1 : 0)
    }
    if (long !== undefined) {
      figures["backend outage 12 s: trials submitted during it"] = long.hit
      figures["backend outage 12 s: run completed"] = long.completed ? 1 : 0
      figures["backend outage 12 s: trials failed as Infra after 2 retries"] = long.infra
    }
    return {
      figures,
      mustBeZero: [
        "trials whose recorded failure differs from the injected one",
        "budget overrun",
        "runs not completed",
        ...(short !== undefined ? ["backend outage 2.5 s: trials failed (retried within bounds instead)"] : [])
      ],
      mustBePositive: ["faults injected by jobs", ...(short !== undefined ? ["backend outage 2.5 s: trials submitted during it"] : [])]
    }
  })


