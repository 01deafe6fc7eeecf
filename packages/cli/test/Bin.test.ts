// The `trex` executable's start: it keeps Node's compile cache of the modules it loads (about 950 from sources), so a
// start after the first compiles none of them again (about 1.3 s of CPU a start instead of 2, measured idle), in the
// user's own cache folder rather than Node's default in the shared temporary folder.
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { bin, root, tmp } from "./support/cli.ts"

/** `trex --version` with `TMPDIR`, `XDG_CACHE_HOME` and `HOME` fresh folders, and `env`; the three folders. */
const versionIn = (env: Record<string, string | undefined> = {}) => {
  const dirs = { tmp: tmp(), cache: tmp(), home: tmp() }
  const environment: Record<string, string | undefined> = { ...process.env, TMPDIR: dirs.tmp, XDG_CACHE_HOME: dirs.cache, HOME: dirs.home, NODE_COMPILE_CACHE: undefined, ...env }
  const r = spawnSync(process.execPath, ["--conditions=@trex/source", bin, "--version"], {
    cwd: root,
    encoding: "utf8",
    env: Object.fromEntries(Object.entries(environment).filter(([, v]) => v !== undefined)),
    timeout: 120_000
  })
  assert.strictEqual(r.status, 0, r.stderr)
  assert.strictEqual(r.stderr, "")
  return dirs
}
/** The files of a compile cache in `dir`, or 0. */
const cached = (dir: string) =>
  fs.existsSync(dir) ? fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length : 0

describe("trex: its start", () => {
  it("keeps Node's compile cache of what it loads in the user's cache folder ($XDG_CACHE_HOME, else ~/.cache), never in the shared $TMPDIR; none in a folder another user may write; NODE_COMPILE_CACHE moves it, NODE_DISABLE_COMPILE_CACHE turns it off", () => {
    const xdg = versionIn()
    assert.isAbove(cached(path.join(xdg.cache, "trex", "node-compile-cache")), 100)
    assert.strictEqual(cached(path.join(xdg.tmp, "node-compile-cache")), 0)
    const home = versionIn({ XDG_CACHE_HOME: undefined })
    assert.isAbove(cached(path.join(home.home, ".cache", "trex", "node-compile-cache")), 100)
    assert.strictEqual(cached(path.join(home.tmp, "node-compile-cache")), 0)
    const moved = tmp()
    const named = versionIn({ NODE_COMPILE_CACHE: moved })
    assert.isAbove(cached(moved), 100)
    assert.strictEqual(cached(path.join(named.cache, "trex")), 0)
    const off = versionIn({ NODE_DISABLE_COMPILE_CACHE: "1" })
    assert.strictEqual(cached(off.cache) + cached(off.tmp) + cached(off.home), 0)
    // a cache folder another user may write, or another user's (root under sudo with the user's HOME kept): not read
    const open = tmp()
    fs.chmodSync(open, 0o777)
    versionIn({ XDG_CACHE_HOME: open })
    assert.strictEqual(cached(open), 0)
    if (process.getuid?.() === 0) {
      const theirs = tmp()
      fs.chownSync(theirs, 65534, 65534)
      versionIn({ XDG_CACHE_HOME: theirs })
      assert.strictEqual(cached(theirs), 0)
    }
    // a home folder that does not exist is not made (a service user's, such as nobody's /nonexistent)
    const gone = path.join(tmp(), "no-such-home")
    versionIn({ XDG_CACHE_HOME: undefined, HOME: gone })
    assert.isFalse(fs.existsSync(gone))
  })
})
