// The shipped job-protocol reporters (Node and Python), run for real as child processes in a temp job dir.
import { spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { assert, describe, it } from "vitest"

const here = dirname(fileURLToPath(import.meta.url))
const reporters = resolve(here, "../reporters")
const repoRoot = resolve(here, "../../..")
const nodeBin = existsSync(join(repoRoot, "node_modules/.bin/node")) ? join(repoRoot, "node_modules/.bin/node") : process.execPath
const nodeReporter = pathToFileURL(join(reporters, "trex_reporter.mjs")).href

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly dir: string
}

function makeJobDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "trex-reporter-"))
  writeFileSync(join(dir, "strategy.json"), JSON.stringify({ data: { format: "reversed" }, training: { learningRate: 0.01 } }))
  writeFileSync(join(dir, "job.json"), JSON.stringify({ run: "run-1", node: "node-7", task: { name: "t" } }))
  return dir
}

function run(lang: "node" | "python", body: string, env: Record<string, string | undefined> = {}): Run {
  const dir = makeJobDir()
  const script = join(mkdtempSync(join(tmpdir(), "trex-reporter-src-")), lang === "node" ? "job.mjs" : "job.py")
  const source =
    lang === "node"
      ? `import * as trex from ${JSON.stringify(nodeReporter)}\n${body}\n`
      : `import sys\nsys.path.insert(0, ${JSON.stringify(reporters)})\nimport trex_reporter as trex\n${body}\n`
  writeFileSync(script, source)
  const r = spawnSync(lang === "node" ? nodeBin : "python3", [script], {
    env: { ...process.env, TREX_JOB_DIR: dir, ...env },
    encoding: "utf8"
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, dir }
}

const lines = (stdout: string, prefix: string): unknown[] =>
  stdout
    .split("\n")
    .filter((l) => l.startsWith(`${prefix} `))
    .map((l) => JSON.parse(l.slice(prefix.length + 1)) as unknown)

const happy = {
  node: `
const s = trex.readStrategy()
const j = trex.readJob()
trex.progress(0.25, "epoch 1/4")
trex.metric({ step: 0, split: "train", name: "loss", value: 2.5 })
trex.metric({ step: 120, split: "train", name: "loss", value: 0.53 })
trex.metric({ step: 120, split: "eval", name: "acc", value: 1 })
trex.progress(1)
trex.writeResult({ metrics: { score: 0.81, lr: s.training.learningRate }, artifacts: [{ name: "adapter", path: "adapter.bin" }], summary: j.node + " " + trex.jobDir().length })
`,
  python: `
s = trex.read_strategy()
j = trex.read_job()
trex.progress(0.25, "epoch 1/4")
trex.metric(0, "train", "loss", 2.5)
trex.metric(step=120, split="train", name="loss", value=0.53)
trex.metric(120, "eval", "acc", 1)
trex.progress(1)
trex.write_result({"score": 0.81, "lr": s["training"]["learningRate"]}, artifacts=[{"name": "adapter", "path": "adapter.bin"}], summary=j["node"] + " " + str(len(trex.job_dir())))
`
}

describe.each(["node", "python"] as const)("%s reporter", (lang) => {
  it("prints metric and progress lines, appends metrics.jsonl and writes result.json atomically", () => {
    const r = run(lang, happy[lang])
    assert.equal(r.code, 0, r.stderr)
    const expected = [
      { step: 0, split: "train", name: "loss", value: 2.5 },
      { step: 120, split: "train", name: "loss", value: 0.53 },
      { step: 120, split: "eval", name: "acc", value: 1 }
    ]
    assert.deepEqual(lines(r.stdout, "TREX_METRIC"), expected)
    const jsonl = readFileSync(join(r.dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as unknown)
    assert.deepEqual(jsonl, expected)
    assert.deepEqual(lines(r.stdout, "TREX_PROGRESS"), [{ fraction: 0.25, message: "epoch 1/4" }, { fraction: 1 }])
    const result = JSON.parse(readFileSync(join(r.dir, "result.json"), "utf8")) as unknown
    assert.deepEqual(result, {
      metrics: { score: 0.81, lr: 0.01 },
      primary: 0.81, // defaults to metrics.score
      artifacts: [{ name: "adapter", path: "adapter.bin" }],
      summary: `node-7 ${r.dir.length}`
    })
    // Only the final file is left: the temporary one was renamed into place.
    assert.deepEqual(readdirSync(r.dir).sort(), ["job.json", "metrics.jsonl", "result.json", "strategy.json"])
  })

  const bad: Array<[string, string, string, RegExp]> = [
    [
      "a NaN metric value",
      `trex.metric({ step: 1, split: "train", name: "loss", value: NaN })`,
      `trex.metric(1, "train", "loss", float("nan"))`,
      /finite number/
    ],
    ["a negative step", `trex.metric({ step: -1, split: "train", name: "loss", value: 1 })`, `trex.metric(-1, "train", "loss", 1.0)`, /non-negative integer/],
    ["a fractional step", `trex.metric({ step: 1.5, split: "train", name: "loss", value: 1 })`, `trex.metric(1.5, "train", "loss", 1.0)`, /non-negative integer/],
    ["an infinite result metric", `trex.writeResult({ metrics: { score: Infinity } })`, `trex.write_result({"score": float("inf")})`, /finite number/],
    ["a progress fraction above 1", `trex.progress(1.5)`, `trex.progress(1.5)`, /\[0, 1\]/],
    [
      "an artifact outside the job dir",
      `trex.writeResult({ metrics: {}, artifacts: [{ name: "x", path: "../x" }] })`,
      `trex.write_result({}, artifacts=[{"name": "x", "path": "../x"}])`,
      /inside the job dir/
    ]
  ]
  for (const [what, nodeCode, pyCode, message] of bad) {
    it(`raises a clear error for ${what}`, () => {
      const r = run(lang, lang === "node" ? nodeCode : pyCode)
      assert.notEqual(r.code, 0)
      assert.match(r.stderr, /TrexReporterError/)
      assert.match(r.stderr, message)
      assert.isFalse(existsSync(join(r.dir, "metrics.jsonl")))
      assert.isFalse(existsSync(join(r.dir, "result.json")))
    })
  }

  it("refuses to run without TREX_JOB_DIR", () => {
    const r = run(lang, lang === "node" ? "trex.jobDir()" : "trex.job_dir()", { TREX_JOB_DIR: "" })
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /TREX_JOB_DIR is not set/)
  })
})
