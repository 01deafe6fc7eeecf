// End-to-end trials: the job protocol, determinism, invalid strategies and the shared base-model cache.
import { spawnSync } from "node:child_process"
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { assert, describe, it } from "vitest"
import { cacheKey, pretrainConfig } from "../src/base-cache.ts"
import { nodeBin, protocolLines, runTrial, smallStrategy, tempDir } from "./helpers.ts"

// One cache for the tests that do not test the cache itself: pretraining (1 epoch here) happens once.
const sharedCache = tempDir("cache")

describe("quickstart trial", { timeout: 180_000 }, () => {
  it("speaks the job protocol end to end", async () => {
    const run = await runTrial(smallStrategy({ training: { method: "lora", lora: { rank: 4, alpha: 8 } } }), sharedCache)
    assert.equal(run.code, 0, run.stderr)
    const result = JSON.parse(readFileSync(join(run.jobDir, "result.json"), "utf8")) as {
      metrics: Record<string, number>
      primary: number
      artifacts: Array<{ name: string; path: string }>
      summary: string
    }
    const m = result.metrics
    for (const k of ["score", "target_exact_match", "base_exact_match", "train_loss"]) assert.isTrue(Number.isFinite(m[k]), k)
    assert.closeTo(m["score"] as number, 0.75 * (m["target_exact_match"] as number) + 0.25 * (m["base_exact_match"] as number), 1e-12)
    assert.equal(result.primary, m["score"])
    assert.equal(m["train_examples"], 400)
    assert.isAbove(result.artifacts.length, 0, "the trial lists its artifacts")
    for (const a of result.artifacts) assert.isTrue(existsSync(join(run.jobDir, a.path)), a.path)
    assert.match(result.summary, /reversed/)

    const metrics = protocolLines(run.stdout, "TREX_METRIC")
    const fromFile = readFileSync(join(run.jobDir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as unknown)
    assert.deepEqual(fromFile, metrics)
    // 400 examples / 32 = 13 steps per epoch, 2 epochs: per-epoch eval on both splits, then the final test numbers.
    const evals = metrics.filter((x) => x["split"] === "eval" && x["name"] === "target_exact_match")
    assert.deepEqual(evals.map((x) => x["step"]), [13, 26])
    const test = metrics.filter((x) => x["split"] === "test")
    assert.deepEqual(test.map((x) => x["name"]), ["target_exact_match", "base_exact_match", "score"])
    assert.equal(test[2]?.["value"], m["score"])
    const progress = protocolLines(run.stdout, "TREX_PROGRESS")
    assert.equal(progress.at(-1)?.["fraction"], 1)
    assert.isTrue(progress.every((p) => typeof p["fraction"] === "number" && p["fraction"] >= 0 && p["fraction"] <= 1))
  })

  it("is bit-identical for a fixed seed and differs for another", async () => {
    const [a, b, c] = await Promise.all([
      runTrial(smallStrategy(), sharedCache),
      runTrial(smallStrategy(), sharedCache),
      runTrial(smallStrategy({ training: { seed: 8 } }), sharedCache)
    ])
    for (const r of [a, b, c]) assert.equal(r.code, 0, r.stderr)
    const read = (dir: string, f: string): Buffer => readFileSync(join(dir, f))
    assert.isTrue(read(a.jobDir, "result.json").equals(read(b.jobDir, "result.json")))
    assert.isTrue(read(a.jobDir, "model.f32").equals(read(b.jobDir, "model.f32")))
    assert.isFalse(read(a.jobDir, "model.f32").equals(read(c.jobDir, "model.f32")))
  })

  it("exits 2 naming the field for an invalid strategy", async () => {
    const bad = await runTrial(smallStrategy({ data: { format: "roman" } }), sharedCache)
    assert.equal(bad.code, 2)
    assert.include(bad.stderr, "data.format")
    assert.isFalse(existsSync(join(bad.jobDir, "result.json")))
    const lr = await runTrial(smallStrategy({ training: { learningRate: -0.1 } }), sharedCache)
    assert.equal(lr.code, 2)
    assert.include(lr.stderr, "training.learningRate")
    const notJson = await runTrial("{not json", sharedCache)
    assert.equal(notJson.code, 2)
    assert.include(notJson.stderr, "strategy.json")
  })
})

describe("base model cache", { timeout: 180_000 }, () => {
  it("pretrains once for concurrent trials and takes over a stale lock", async () => {
    const cache = tempDir("cache-lock")
    // A lock left by a killed trial: its pid no longer exists.
    const dead = spawnSync(nodeBin, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" })
    const key = cacheKey(pretrainConfig(1))
    writeFileSync(join(cache, `quickstart-base-${key}.f32.lock`), `${dead.stdout}\n`)
    const runs = await Promise.all([runTrial(smallStrategy(), cache), runTrial(smallStrategy(), cache)])
    for (const r of runs) assert.equal(r.code, 0, r.stderr)
    assert.equal(runs.filter((r) => r.stderr.includes("base model pretrained")).length, 1, runs.map((r) => r.stderr).join("\n"))
    assert.deepEqual(readdirSync(cache).sort(), [`quickstart-base-${key}.f32`])
    // Same config, same file name; another pretraining config, another file.
    assert.notEqual(cacheKey(pretrainConfig(2)), key)
  })
})
