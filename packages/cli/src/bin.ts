#!/usr/bin/env node
/**
 * The `trex` executable: checks the Node.js version, then loads the program. Nothing else is
 * imported first, so an old Node gets a message instead of a failed import.
 *
 * @since 0.1.0
 */
import { unsupported } from "./nodeVersion.ts"

const problem = unsupported(process.versions.node)
if (problem !== undefined) {
  process.stderr.write(`${problem}\n`)
  process.exit(1)
}
await import("./main.ts")
