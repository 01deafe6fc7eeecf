/** The real `trex` CLI from its sources, for the tests of the cli package. */
import { spawnSync } from "node:child_process"
import * as path from "node:path"

/** The repository's root (the CLI's working directory). */
export const root = path.resolve(import.meta.dirname, "../../../..")
export const bin = path.join(root, "packages/cli/src/bin.ts")

/** Runs the CLI to its end; an `env` entry of `undefined` removes that variable. */
export const trex = (args: ReadonlyArray<string>, env: Record<string, string | undefined> = {}, cwd = root) =>
  spawnSync(process.execPath, ["--conditions=@trex/source", bin, ...args], {
    cwd,
    encoding: "utf8",
    env: Object.fromEntries(Object.entries({ ...process.env, ...env }).filter(([, v]) => v !== undefined)),
    timeout: 120_000
  })
