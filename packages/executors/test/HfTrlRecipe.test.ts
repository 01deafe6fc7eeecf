import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Fingerprint } from "@trex/core"
import { describe, it, assert } from "vitest"

// The reference GPU recipe (recipes/hf-trl) cannot train here (no GPU, no PyPI),
// but its pure parts are stdlib-only Python with their own unittest suite.
const repoRoot = fileURLToPath(new URL("../../..", import.meta.url))
const python = process.env["PYTHON"] ?? "python3"

const run = (args: ReadonlyArray<string>, input?: string) => {
  const result = spawnSync(python, [...args], {
    cwd: repoRoot,
    ...(input !== undefined ? { input } : {}),
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

  it("reads a mixture's shares as Fingerprint.mixture rounds them: the same sources, the same 9 decimals", () => {
    // Weights at the fingerprint's rounding edges (a share of 5e-10, a half billionth, 1/3 written two ways)
    // and seeded random ones over nine orders of magnitude: the recipe keeps exactly the sources the
    // fingerprint keeps, with the same billionths, or equal fingerprints could draw different data.
    let state = 12345
    const next = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
    const mixtures: Array<Array<number>> = [
      [1, 2], [0.333333333, 0.666666667], [1, 4e-10], [1, 5e-10], [1, 5.000001e-10], [0.4999999996, 0.5000000004],
      [5e-10, 0.9999999995], [1.5e-9, 1, 1], [3, 3, 3], [0.1, 0.2, 0.7], [1e-9, 1e-9, 1e-9, 1e-9], [0, 2]
    ]
    for (let i = 0; i < 300; i++) {
      mixtures.push(Array.from({ length: 2 + Math.floor(next() * 4) }, () => next() * 10 ** -Math.floor(next() * 10)))
    }
    // shares within a hair of a half billionth, each mixture written in two orders (thousandths summing to 1.024; a
    // float sum of the first differs in its last bit with the order, and read that way it had two fingerprints)
    mixtures.push([0.86, 0.95, 0.917, 0.345], [0.345, 0.917, 0.95, 0.86])
    for (let i = 0; i < 40; i++) {
      const parts = Array.from({ length: 2 + Math.floor(next() * 3) }, () => 1 + Math.floor(next() * 300))
      const rest = 1024 - parts.reduce((a, b) => a + b, 0)
      if (rest > 0) mixtures.push([...parts, rest].map((k) => k / 1000), [rest, ...parts].reverse().map((k) => k / 1000))
    }
    const expected = mixtures.map((weights) =>
      Fingerprint.mixture(weights.map((weight, j) => ({ name: `s${j}`, weight }))).map((s) => [s.name, Math.round(s.weight * 1e9)])
    )
    const script = [
      "import json, sys",
      "sys.path.insert(0, 'recipes/hf-trl')",
      "from trex_hf_trl.recipe import Source, canonical_mixture, fingerprint_shares",
      "out = []",
      "for weights in json.load(sys.stdin):",
      "    kept = canonical_mixture(tuple(Source(name=f's{j}', weight=w) for j, w in enumerate(weights)))",
      "    shares = fingerprint_shares(weights)",
      "    out.append([[m.source.name, shares[m.index]] for m in kept])",
      "print(json.dumps(out))"
    ].join("\n")
    const { status, output } = run(["-c", script], JSON.stringify(mixtures))
    assert.strictEqual(status, 0, output)
    const got = JSON.parse(output.trim()) as Array<Array<[string, number]>>
    mixtures.forEach((weights, i) => assert.deepStrictEqual(got[i], expected[i], `weights ${JSON.stringify(weights)}`))
  })
})
