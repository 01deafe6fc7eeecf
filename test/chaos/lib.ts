/**
 * Shared helpers of the chaos campaigns: running the real `trex` CLI as a child process,
 * reading a run's journal, comparing trees, and printing figures as a table and as JSON.
 */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { ExperimentTree, type JournalEvent } from "@trex/core"
import { Effect } from "effect"
import * as RunDir from "../../packages/cli/src/RunDir.ts"

export const root = path.resolve(import.meta.dirname, "../..")
export const bin = path.join(root, "packages/cli/src/bin.ts")
export const fixtures = path.join(import.meta.dirname, "fixtures")
export const chaosTask = path.join(fixtures, "chaos.task.yaml")
export const simTask = path.join(fixtures, "sim.task.yaml")

/** Options every campaign takes. */
export interface CampaignOptions {
  readonly quick: boolean
  /** Seed of the campaign's own randomness (kill times, generated inputs). */
  readonly seed?: number
  readonly log?: (line: string) => void
}

/** What a campaign measured: its figures, which of them must be zero, and what it found. */
export interface CampaignResult {
  readonly campaign: string
  readonly mode: "quick" | "full"
  readonly seconds: number
  readonly figures: Record<string, number | string>
  /** Names of figures that must be 0 for the campaign to pass. */
  readonly mustBeZero: ReadonlyArray<string>
  /**
   * Names of figures that must be above 0: they show the campaign exercised what it checks (faults
   * were injected, jobs logged their executions, a controller was refused). At 0, every figure
   * that must be 0 would pass without testing anything.
   */
  readonly mustBePositive: ReadonlyArray<string>
  /** Reproductions of anything that went wrong. */
  readonly findings: ReadonlyArray<string>
}

/** The figures of `result` that should be zero and are not. */
export const violations = (result: CampaignResult): Array<string> => [
  ...result.mustBeZero.filter((name) => result.figures[name] !== 0).map((name) => `${result.campaign}: ${name} = ${result.figures[name]}`),
  ...result.mustBePositive.filter((name) => !(typeof result.figures[name] === "number" && (result.figures[name] as number) > 0))
    .map((name) => `${result.campaign}: ${name} = ${result.figures[name]} (must be above 0, or the campaign tested nothing)`)
]

/** A child environment: ours, with PATH leading to this Node, plus `extra`. */
export const childEnv = (extra: Record<string, string> = {}): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v
  env["PATH"] = `${path.dirname(process.execPath)}:${env["PATH"] ?? ""}`
  return { ...env, ...extra }
}

export interface Ran {
  readonly status: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Run `trex ...` to its end. */
export const trex = (args: ReadonlyArray<string>, env: Record<string, string> = {}, timeoutMs = 300_000): Ran => {
  const r = spawnSync(process.execPath, ["--conditions=@trex/source", bin, ...args], {
    cwd: root,
    encoding: "utf8",
    env: childEnv(env),
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024
  })
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" }
}

/** Run `trex ...` without waiting: its output so far, and a way to wait for its end. */
export const trexAsync = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const child = spawn(process.execPath, ["--conditions=@trex/source", bin, ...args], {
    cwd: root,
    env: childEnv(env),
    stdio: ["ignore", "pipe", "pipe"]
  })
  const out = { stdout: "", stderr: "" }
  child.stdout.on("data", (d: Buffer) => (out.stdout += d.toString("utf8")))
  child.stderr.on("data", (d: Buffer) => (out.stderr += d.toString("utf8")))
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  return { child, out, exited }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

export const tmpDir = (prefix: string) => fs.mkdtempSync(path.join(os.tmpdir(), `trex-chaos-${prefix}-`))

/** Wait until `f` holds (polling every `everyMs`), or the deadline passes. */
export const waitFor = async (f: () => boolean, timeoutMs: number, everyMs = 5): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs
  while (!f()) {
    if (Date.now() > deadline) return false
    await sleep(everyMs)
  }
  return true
}

/** A seeded generator (mulberry32). */
export const rng = (seed: number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A run's journal entries (read-only, as `trex status` reads it). */
export const readJournal = (runDir: string): Promise<ReadonlyArray<JournalEvent.Entry>> => Effect.runPromise(RunDir.readEntries(runDir))

/** The journal's entries, or the error it fails to open with. */
export const tryReadJournal = async (runDir: string): Promise<{ entries: ReadonlyArray<JournalEvent.Entry> } | { error: string }> => {
  try {
    return { entries: await readJournal(runDir) }
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) }
  }
}

/** The run directory that `trex run` prints. */
export const runDirOf = (stdout: string): string | undefined => stdout.match(/run directory: (.*)/)?.[1]?.trim()

/** One node as compared between runs: id, parent, fingerprint and outcome. */
export const nodeSignature = (n: ExperimentTree.NodeView): string => {
  const s = n.state
  const outcome = s._tag === "Succeeded"
    ? `Succeeded:${s.result.score}`
    : s._tag === "Failed"
    ? `Failed:${s.result.failure?.kind ?? "?"}`
    : s._tag
  return `${n.id}<-${n.parent ?? "-"} ${n.fingerprint.slice(0, 12)} ${outcome}`
}

/** Every node of a journal's tree, as signatures in id order. */
export const treeSignature = (entries: ReadonlyArray<JournalEvent.Entry>): Array<string> => {
  const tree = ExperimentTree.fold(entries.map((e) => e.event))
  if (tree === undefined) return []
  const nodes = [...tree.view.nodes()]
  nodes.sort((a, b) => Number(a.id.slice(1)) - Number(b.id.slice(1)))
  return nodes.map(nodeSignature)
}

/** The nodes a journal says finished, with the JSON of their outcome and result. */
export const finishedNodes = (entries: ReadonlyArray<JournalEvent.Entry>): Map<string, string> => {
  const out = new Map<string, string>()
  for (const { event } of entries) {
    if (event._tag === "NodeFinished") out.set(event.nodeId, JSON.stringify([event.outcome, event.result?.score, event.result?.failure?.kind]))
  }
  return out
}

/** Lines of a file (empty when missing). */
export const lines = (file: string): Array<string> =>
  fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\n").filter((l) => l.length > 0) : []

/** Values that occur more than once. */
export const duplicates = (values: ReadonlyArray<string>): Array<string> => {
  const seen = new Set<string>()
  const dup = new Set<string>()
  for (const v of values) (seen.has(v) ? dup : seen).add(v)
  return [...dup]
}

/** Print a campaign's figures as a table and as one line of JSON. */
export const print = (result: CampaignResult, write: (s: string) => void = (s) => process.stdout.write(s)) => {
  const rows = Object.entries(result.figures)
  const width = Math.max(...rows.map(([k]) => k.length), 6)
  write(`\n## ${result.campaign} (${result.mode}, ${result.seconds.toFixed(1)} s)\n`)
  write(`${"figure".padEnd(width)}  value\n${"-".repeat(width)}  -----\n`)
  const rule = (k: string) => (result.mustBeZero.includes(k) ? "   (must be 0)" : result.mustBePositive.includes(k) ? "   (must be > 0)" : "")
  for (const [k, v] of rows) write(`${k.padEnd(width)}  ${v}${rule(k)}\n`)
  for (const f of result.findings) write(`finding: ${f}\n`)
  write(`JSON ${JSON.stringify(result)}\n`)
}

/** Time a campaign body and package its figures. */
export const campaign = async (
  name: string,
  options: CampaignOptions,
  body: (findings: Array<string>) => Promise<{
    figures: Record<string, number | string>
    mustBeZero: ReadonlyArray<string>
    mustBePositive: ReadonlyArray<string>
  }>
): Promise<CampaignResult> => {
  const started = Date.now()
  const findings: Array<string> = []
  const { figures, mustBeZero, mustBePositive } = await body(findings)
  return {
    campaign: name,
    mode: options.quick ? "quick" : "full",
    seconds: (Date.now() - started) / 1000,
    figures,
    mustBeZero,
    mustBePositive,
    findings: findings.slice(0, 20)
  }
}
