/** The real `trex` CLI from its sources, for the tests of the cli package. */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Cause, Effect, Exit } from "effect"
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
 * `trex <args>` run in this process (the CLI's own command, without a process's start: about 1-2 s from sources, more
 * under load), for a command that reads a run and prints it (`status`, `status --json`): its exit status (1 or 2 for
 * an error, as bin.ts sets it), what it wrote to stdout, and its error as bin.ts prints it. (The CLI's modules are
 * loaded by the first call: a test file that starts the CLI alone does not load them.)
 */
export const trexHere = async (args: ReadonlyArray<string>) => {
  const [Cli, { Command }, NodeServices] = await Promise.all([import("../../src/Cli.ts"), import("effect/cli"), import("@effect/platform-node/NodeServices")])
  let stdout = ""
  const write = process.stdout.write
  const exitCode = process.exitCode
  process.exitCode = undefined
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += String(chunk)
    return true
  }) as typeof process.stdout.write
  let status: number
  let stderr = ""
  try {
    const exit = await Effect.runPromiseExit(Command.runWith(Cli.command, { version: "0.1.0" })(args).pipe(Effect.provide(NodeServices.layer)))
    const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) as { readonly _tag?: string; readonly reason?: string; readonly message?: string } : undefined
    status = error === undefined ? Number(process.exitCode ?? 0) : error._tag === "InvalidInput" || error.reason === "Locked" ? 2 : 1
    if (error !== undefined) stderr = `trex: ${error.message}\n`
  } finally {
    process.stdout.write = write
    process.exitCode = exitCode
  }
  return { status, stdout, stderr }
}
