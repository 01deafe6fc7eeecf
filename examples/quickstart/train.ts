// TREX quickstart trial: fine-tune a pretrained 2-digit adder into a 3-digit adder, as the strategy says.
//
//   TREX_JOB_DIR=/abs/job/dir node examples/quickstart/train.ts
//
// Reads $TREX_JOB_DIR/strategy.json, speaks the job protocol through the shipped reporter (TREX_METRIC /
// TREX_PROGRESS lines, metrics.jsonl, result.json) and exits 0; an invalid strategy exits 2, any other failure 1.
import { writeFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { jobDir, metric, progress, readStrategy, TrexReporterError, writeResult } from "../../packages/executors/reporters/trex_reporter.mjs"
import { DEFAULT_PRETRAIN_EPOCHS, loadOrPretrain, pretrainConfig, serialize } from "./src/base-cache.ts"
import { heldOut, trainingProblems, type Problem } from "./src/data.ts"
import { cloneBase, initLora, mergeLora, type Model } from "./src/model.ts"
import { makeRng } from "./src/rng.ts"
import { parseStrategy, StrategyError, type TrialConfig } from "./src/strategy.ts"
import { exactMatch, train } from "./src/train-loop.ts"

const EVAL_SUBSET = 100

async function main(): Promise<void> {
  const dir = jobDir()
  let cfg: TrialConfig
  try {
    cfg = parseStrategy(readStrategy(), process.env)
  } catch (e) {
    // An invalid strategy (bad field, or strategy.json missing / not JSON) is the caller's error: exit 2.
    if (e instanceof StrategyError || e instanceof TrexReporterError) {
      process.stderr.write(`${e.message}\n`)
      process.exit(2)
    }
    throw e
  }
  const here = dirname(fileURLToPath(import.meta.url))
  const cacheDir = resolve(process.env["TREX_CACHE_DIR"] || join(here, ".cache"))
  const log = (msg: string): void => void process.stderr.write(`[quickstart] ${msg}\n`)

  progress(0, "loading base model")
  const pcfg = pretrainConfig(cfg.pretrainEpochs ?? DEFAULT_PRETRAIN_EPOCHS)
  const baseInfo = await loadOrPretrain(cacheDir, pcfg, log)
  log(`base model ${baseInfo.trained ? "pretrained" : "loaded"} in ${baseInfo.seconds.toFixed(2)} s`)

  const rng = makeRng(cfg.seed)
  const mode = cfg.trainable === "head" ? "head" : cfg.method === "full" ? "full" : "lora" // qlora is lora here
  const model: Model = {
    base: cloneBase(baseInfo.weights),
    lora: mode === "lora" ? initLora(cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout, rng) : undefined,
    mode
  }
  const problems = trainingProblems(cfg.numExamples, cfg.weights, rng)
  const evalTarget = heldOut("add3")
  const evalBase = heldOut("add2")
  const accuracies = (target: ReadonlyArray<Problem>, base: ReadonlyArray<Problem>) => {
    const t = exactMatch(model, target, cfg.format)
    const b = exactMatch(model, base, cfg.format)
    return { target: t, base: b, score: 0.75 * t + 0.25 * b }
  }

  const t0 = performance.now()
  const outcome = train(
    model,
    problems,
    { format: cfg.format, learningRate: cfg.learningRate, schedule: cfg.schedule, warmupRatio: cfg.warmupRatio, epochs: cfg.epochs, batchSize: cfg.batchSize },
    rng,
    {
      lossEvery: 100,
      onLoss: (step, loss) => metric({ step, split: "train", name: "loss", value: loss }),
      onEpoch: (epoch, step, loss) => {
        const acc = accuracies(evalTarget.slice(0, EVAL_SUBSET), evalBase.slice(0, EVAL_SUBSET))
        metric({ step, split: "train", name: "epoch_loss", value: loss })
        metric({ step, split: "eval", name: "target_exact_match", value: acc.target })
        metric({ step, split: "eval", name: "base_exact_match", value: acc.base })
        metric({ step, split: "eval", name: "score", value: acc.score })
        progress(Math.min(0.95, (0.95 * epoch) / cfg.epochs), `epoch ${epoch}/${cfg.epochs}`)
      }
    }
  )
  const trainSeconds = (performance.now() - t0) / 1000
  const final = accuracies(evalTarget, evalBase)
  metric({ step: outcome.steps, split: "test", name: "target_exact_match", value: final.target })
  metric({ step: outcome.steps, split: "test", name: "base_exact_match", value: final.base })
  metric({ step: outcome.steps, split: "test", name: "score", value: final.score })

  // The fine-tuned model as one plain weight file (a LoRA adapter is merged in), same layout as the cached base.
  const merged = mergeLora(model)
  writeFileSync(join(dir, "model.f32"), serialize(merged))

  // Keep result.json free of timings so that a fixed seed gives a bit-identical file.
  writeResult({
    metrics: {
      score: final.score,
      target_exact_match: final.target,
      base_exact_match: final.base,
      train_loss: outcome.finalLoss,
      steps: outcome.steps,
      train_examples: problems.length
    },
    primary: final.score,
    artifacts: [{ name: "model", path: "model.f32" }],
    summary:
      `${cfg.format}, ${cfg.numExamples} examples (${Math.round(cfg.weights.add2 * 100)}% add2 replay), ` +
      `${mode}, lr ${cfg.learningRate}, ${cfg.epochs} epochs: 3-digit ${(final.target * 100).toFixed(1)}%, ` +
      `2-digit ${(final.base * 100).toFixed(1)}%`
  })
  progress(1, "done")
  log(`trained in ${trainSeconds.toFixed(2)} s; score ${final.score.toFixed(4)}`)
}

main().catch((e: unknown) => {
  process.stderr.write(`quickstart trial failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
  process.exit(1)
})
