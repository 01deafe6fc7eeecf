#!/usr/bin/env node
/**
 * The `trex` executable: checks the Node.js version, then loads the program. Nothing else is
 * imported first, so an old Node gets a message instead of a failed import.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as module from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { unsupported } from "./nodeVersion.ts"

const problem = unsupported(process.versions.node)
if (problem !== undefined) {
  process.stderr.write(`${problem}\n`)
  process.exit(1)
}
// Node's on-disk cache of the compiled program (and, from sources, of their stripped types): every start after the
// first compiles none of the modules it loads again. In this user's own cache folder ($XDG_CACHE_HOME, else
// ~/.cache when the home folder exists: trex/node-compile-cache), not Node's default in the shared temporary folder, where another user of a
// login node could lay out code for this one to load. Silent when the cache cannot be used (a folder this user may
// not write); NODE_COMPILE_CACHE=<dir> moves it, NODE_DISABLE_COMPILE_CACHE=1 turns it off.
if (process.env["NODE_COMPILE_CACHE"] !== undefined && process.env["NODE_COMPILE_CACHE"] !== "") module.enableCompileCache?.()
else {
  const home = os.homedir()
  const base = process.env["XDG_CACHE_HOME"] !== undefined && path.isAbsolute(process.env["XDG_CACHE_HOME"])
    ? process.env["XDG_CACHE_HOME"]
    : home !== "" && fs.existsSync(home) ? path.join(home, ".cache") : undefined
  if (base !== undefined) module.enableCompileCache?.(path.join(base, "trex", "node-compile-cache"))
}
await import("./main.ts")
