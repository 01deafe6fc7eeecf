// Shared helpers for the quickstart tests: run a trial as a child process in a temp job dir.
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
export const quickstartDir = resolve(here, "..")
export const repoRoot = resolve(quickstartDir, "../..")
export const trainScript = join(quickstartDir, "train.ts")

/** Node 24 (runs .ts directly): the workspace's `node` devDependency, else the running node. */
export const nodeBin = ((): string => {
  const local = join(repoRoot, "node_modules/.bin/node")
  return existsSync(local) ? local : process.execPath
})()

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `trex-qs-${prefix}-`))
}

/** A small, fast strategy for tests (merged over by `patch` one level deep per section). */
export function smallStrategy(patch: { data?: object; training?: object } = {}): Record<string, unknown> {
  return {
    data: { sources: [{ name: "add3", weight: 0.8 }, { name: "add2", weight: 0.2 }], format: "reversed", numExamples: 400, ...patch.data },
    training: { method: "full", learningRate: 0.01, schedule: "cosine", epochs: 2, batchSize: 32, seed: 7, ...patch.training },
    evaluation: { splits: ["target", "base"] },
    rationale: "test"
  }
}

export interface TrialRun {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  readonly jobDir: string
}

/** Start train.ts on `strategy` in a fresh job dir; resolves when the process exits. */
export function runTrial(strategy: unknown, cacheDir: string, env: Record<string, string> = {}): Promise<TrialRun> {
  const jobDir = tempDir("job")
  mkdirSync(jobDir, { recursive: true })
  writeFileSync(join(jobDir, "strategy.json"), typeof strategy === "string" ? strategy : JSON.stringify(strategy))
  writeFileSync(join(jobDir, "job.json"), JSON.stringify({ run: "test-run", node: "n1" }))
  return new Promise((done, fail) => {
    const child = spawn(nodeBin, [trainScript], {
      env: { ...process.env, TREX_JOB_DIR: jobDir, TREX_CACHE_DIR: cacheDir, TREX_QUICKSTART_PRETRAIN_EPOCHS: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()))
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
    child.on("error", fail)
    child.on("close", (code, signal) => done({ code, signal, stdout, stderr, jobDir }))
  })
}

/** Parse the `PREFIX {json}` lines of a stdout. */
export function protocolLines(stdout: string, prefix: "TREX_METRIC" | "TREX_PROGRESS"): Array<Record<string, unknown>> {
  return stdout
    .split("\n")
    .filter((l) => l.startsWith(`${prefix} `))
    .map((l) => JSON.parse(l.slice(prefix.length + 1)) as Record<string, unknown>)
}
