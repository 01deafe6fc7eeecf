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
// ~/.cache when the home folder exists: trex/node-compile-cache), not Node's default in the shared temporary folder,
// where another user of a login node could lay out code for this one to load; and only when that folder (or, until
// it is made, its nearest existing parent) is this user's and no one else may write it (not a user's folder for root
// under `sudo` that kept the user's HOME or XDG_CACHE_HOME). Silent when the cache cannot be used.
// NODE_DISABLE_COMPILE_CACHE=1 turns it off; NODE_COMPILE_CACHE=<dir> is Node's own: it takes it before trex starts.
const cacheFolder = (): string | undefined => {
  const xdg = process.env["XDG_CACHE_HOME"]
  if (xdg !== undefined && path.isAbsolute(xdg)) return path.join(xdg, "trex", "node-compile-cache")
  const home = os.homedir()
  return home !== "" && fs.existsSync(home) ? path.join(home, ".cache", "trex", "node-compile-cache") : undefined
}
/**
 * The folder, or its nearest existing parent, is this user's, and no one else may write it: not others, nor a group
 * other than the user's own (with Debian's user private groups, umask 002 makes folders writable by that group).
 */
const isPrivate = (folder: string): boolean => {
  const uid = process.geteuid?.()
  if (uid === undefined) return true // no uids to compare (Windows): the user's profile folder is private there
  for (let at = folder; ; at = path.dirname(at)) {
    try {
      const stat = fs.statSync(at)
      return stat.uid === uid && (stat.mode & 0o002) === 0 && ((stat.mode & 0o020) === 0 || stat.gid === process.getegid?.())
    } catch {
      if (path.dirname(at) === at) return false
    }
  }
}
if (!process.env["NODE_COMPILE_CACHE"]) {
  const folder = cacheFolder()
  if (folder !== undefined && isPrivate(folder)) module.enableCompileCache?.(folder)
}
await import("./main.ts")
