/** The real `trex` CLI from its sources, for the tests of the cli package. */
import { spawn, spawnSync } from "node:child_process"
import * as NodeConsole from "node:console"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Console, Effect } from "effect"
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

/**
 * `trex <args>` run in this process: the program of bin.ts (src/internal/ending.ts) without a process's start (about
 * 1-2 s from sources, more under load): for `trex status` and `trex notify` where a separate process is not the
 * subject, for bad input refused before anything runs, and for sessions (`trex run`, `trex resume`) where what is
 * checked is what they write and keep, not the process (no kill, signal or exit of its own). Its exit status, its
 * stdout and its stderr as the CLI's would be (CliHere.test.ts checks them against the real `trex`'s). `env` is set
 * for the command (and its jobs) and put back after it; `signal` interrupts it. (The CLI's modules are loaded by the
 * first call: a test file that starts the CLI alone does not load them.)
 */
export const trexHere = async (args: ReadonlyArray<string>, env: Record<string, string> = {}, signal?: AbortSignal) => {
  const [Cli, Ending] = await Promise.all([import("../../src/Cli.ts"), import("../../src/internal/ending.ts")])
  let stdout = ""
  let stderr = ""
  const [write, writeErr] = [process.stdout.write, process.stderr.write]
  const exitCode = process.exitCode
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]))
  process.exitCode = undefined
  Object.assign(process.env, env)
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += String(chunk)
    return true
  }) as typeof process.stdout.write
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk)
    return true
  }) as typeof process.stderr.write
  try {
    // Node's own console, on this process's streams, as the CLI's is (a test's console is the test runner's)
    const console = new NodeConsole.Console({ stdout: process.stdout, stderr: process.stderr })
    const exit = await Effect.runPromiseExit(Ending.program(Cli.command, args).pipe(Effect.provideService(Console.Console, console)), { signal })
    const end = Ending.ending(exit, undefined)
    return { status: end.code, stdout, stderr: stderr + end.stderr }
  } finally {
    process.stdout.write = write
    process.stderr.write = writeErr
    process.exitCode = exitCode
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}
