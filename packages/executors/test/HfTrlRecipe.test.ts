import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { describe, it, assert } from "vitest"

// The reference GPU recipe (recipes/hf-trl) cannot train here (no GPU, no PyPI),
// but its pure parts are stdlib-only Python with their own unittest suite.
const repoRoot = fileURLToPath(new URL("../../..", import.meta.url))
const python = process.env["PYTHON"] ?? "python3"

const run = (args: ReadonlyArray<string>) => {
  const result = spawnSync(python, [...args], {
    cwd: repoRoot,
    encoding: "utf8",
    timeout: 120_000,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1", TREX_JOB_DIR: "" }
  })
  if (result.error !== undefined) throw result.error
  return { status: result.status, output: `${result.stdout}\n${result.stderr}` }
}

describe("recipes/hf-trl", () => {
  it("compiles with python3", () => {
    const { status, output } = run(["-m", "compileall", "-q", "recipes/hf-trl/trex_hf_trl"])
    assert.strictEqual(status, 0, output)
  })

  it("passes its stdlib unittest suite", () => {
    const { status, output } = run([
      "-m",
      "unittest",
      "discover",
      "-s",
      "recipes/hf-trl/tests",
      "-t",
      "recipes/hf-trl"
    ])
    assert.strictEqual(status, 0, output)
    const ran = /Ran (\d+) tests? in/.exec(output)
    assert.isNotNull(ran, output)
    assert.isAbove(Number(ran?.[1] ?? 0), 0, output)
    assert.match(output, /\nOK\b/, output)
  })
})
