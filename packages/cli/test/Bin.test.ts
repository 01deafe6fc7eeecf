// The `trex` executable's start: it keeps Node's compile cache of the modules it loads (about 950 from sources), so a
// start after the first compiles none of them again (about 1.3 s of CPU a start instead of 2, measured idle).
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { bin, root, tmp } from "./support/cli.ts"

/** `trex --version` with `TMPDIR` a fresh folder (where Node keeps its compile cache by default) and `env`: that folder. */
const versionIn = (env: Record<string, string> = {}) => {
  const dir = tmp()
  const environment: Record<string, string | undefined> = { ...process.env, TMPDIR: dir, ...env }
  delete environment.NODE_COMPILE_CACHE
  const r = spawnSync(process.execPath, ["--conditions=@trex/source", bin, "--version"], { cwd: root, encoding: "utf8", env: environment, timeout: 120_000 })
  assert.strictEqual(r.status, 0, r.stderr)
  assert.strictEqual(r.stderr, "")
  return dir
}
const cached = (dir: string) => {
  const cache = path.join(dir, "node-compile-cache")
  return fs.existsSync(cache) ? fs.readdirSync(cache, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length : 0
}

describe("trex: its start", () => {
  it("keeps Node's compile cache of what it loads (in $TMPDIR/node-compile-cache), unless NODE_DISABLE_COMPILE_CACHE says not to", () => {
    assert.isAbove(cached(versionIn()), 100)
    assert.strictEqual(cached(versionIn({ NODE_DISABLE_COMPILE_CACHE: "1" })), 0)
  })
})
