/** The real `trex` CLI from its sources, for the tests of the cli package. */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import * as RunDir from "../../src/RunDir.ts"

/** The repository's root (the CLI's working directory). */
export const root = path.resolve(import.meta.dirname, "../../../..")
export const bin = path.join(root, "packages/cli/src/bin.ts")
/** The toy task and its job (packages/cli/test/fixtures). */
export const fixtures = path.join(import.meta.dirname, "../fixtures")

/** A fresh temporary directory. */
export const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "trex-cli-"))

/** Writes `text` to `dir/name`; returns its path. */
export const writeTask = (dir: string, name: string, text: string) => {
  const file = path.join(dir, name)
  fs.writeFileSync(file, text)
  return file
}

/** A run directory's journal entries. */
export const readJournal = (runDir: string) => Effect.runPromise(RunDir.readEntries(runDir))

/** Runs the CLI to its end; an `env` entry of `undefined` removes that variable. */
export const trex = (args: ReadonlyArray<string>, env: Record<string, string | undefined> = {}, cwd = root) =>
  spawnSync(process.execPath, ["--conditions=@trex/source", bin, ...args], {
    cwd,
    encoding: "utf8",
    env: Object.fromEntries(Object.entries({ ...process.env, ...env }).filter(([, v]) => v !== undefined)),
    timeout: 120_000
  })

/**
 * Runs the CLI to its end without blocking this process (a server of the test's answers the CLI meanwhile);
 * `nodeFlags` go to its node process alone (`--import=<hook>`), not to the processes it starts.
 */
export const trexAsync = (args: ReadonlyArray<string>, env: Record<string, string | undefined> = {}, cwd = root, nodeFlags: ReadonlyArray<string> = []) =>
  new Promise<{ readonly status: number | null; readonly stdout: string; readonly stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeFlags, "--conditions=@trex/source", bin, ...args], {
      cwd,
      env: Object.fromEntries(Object.entries({ ...process.env, ...env }).filter(([, v]) => v !== undefined)),
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 120_000
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    child.on("error", reject)
    child.on("close", (status) => resolve({ status, stdout, stderr }))
  })
