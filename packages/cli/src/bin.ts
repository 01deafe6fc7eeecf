#!/usr/bin/env node
/**
 * The `trex` executable: checks the Node.js version, then loads the program. Nothing else is
 * imported first, so an old Node gets a message instead of a failed import.
 *
 * @since 0.1.0
 */
import * as module from "node:module"
import { unsupported } from "./nodeVersion.ts"

const problem = unsupported(process.versions.node)
if (problem !== undefined) {
  process.stderr.write(`${problem}\n`)
  process.exit(1)
}
// Node's on-disk cache of the compiled program (and, from sources, of their stripped types): every start after the
// first compiles none of the modules it loads again. Silent when the cache cannot be used (a folder this user may not
// write); NODE_COMPILE_CACHE=<dir> moves it, NODE_DISABLE_COMPILE_CACHE=1 turns it off.
module.enableCompileCache?.()
await import("./main.ts")
