/**
 * Both custom agents in a search of their own: `Explorer.run` with the coordinate-descent
 * researcher and the in-process executor, evaluating a known function (a toy fine-tune whose dev
 * accuracy is a formula of its learning rate, epochs, method and LoRA rank), so no backend is
 * needed. ASHA stops unpromising trials after their first epoch: their evaluations are aborted.
 *
 *   node --conditions=@trex/source examples/custom-agents/run.ts
 */
import { setTimeout as sleep } from "node:timers/promises"
import { ExecutorAgent, ExperimentNode, Journal, Researcher, SearchPolicy, SearchSpace, type Strategy, Task } from "@trex/core"
import { Asha, Explorer, Greedy } from "@trex/mcts"
import { Effect, Layer, Schema } from "effect"
import { type Evaluate, inProcess } from "./executor.ts"
import { coordinateDescent } from "./researcher.ts"

const task = Schema.decodeUnknownSync(Task.Task)({
  name: "toy-sentiment",
  objective: "Fine-tune a classifier for sentiment; maximise dev accuracy.",
  metric: { name: "accuracy", direction: "maximize" },
  budget: { maxTrials: 16 },
  searchSpace: {
    parameters: [
      { path: "training.learningRate", kind: "log", values: [1e-5, 3e-5, 1e-4, 3e-4, 1e-3] },
      { path: "training.epochs", kind: "ordinal", values: [1, 2, 3, 4] },
      { path: "training.method", kind: "categorical", values: ["full", "lora"] },
      // the rank matters only for LoRA: the researcher moves it only then
      { path: "training.lora.rank", kind: "ordinal", values: [4, 8, 16, 32], when: { path: "training.method", values: ["lora"] } }
    ]
  },
  defaultStrategy: {
    data: { sources: [{ name: "sst2" }] },
    training: { method: "full", learningRate: 1e-4, epochs: 2, batchSize: 16, lora: { rank: 8, alpha: 16 } }
  }
})

// The known function, epoch by epoch: best at learning rate 3e-4, 3 epochs, LoRA of rank 32.
const accuracyAt = (s: Strategy.Strategy, epoch: number) => {
  const lr = -0.04 * Math.log10(s.training.learningRate / 3e-4) ** 2
  const lora = s.training.method === "lora" ? 0.004 + 0.006 * Math.log2((s.training.lora?.rank ?? 4) / 4) : 0
  const overfit = epoch > 3 ? 0.01 * (epoch - 3) : 0
  return 0.9 + lr + lora - 0.08 * 0.5 ** epoch - overfit
}

const evaluate: Evaluate = async (strategy, { signal, report }) => {
  let accuracy = 0
  for (let epoch = 1; epoch <= strategy.training.epochs; epoch++) {
    await sleep(20, undefined, { signal }) // an epoch of training; a stopped trial's signal ends it here
    accuracy = accuracyAt(strategy, epoch)
    report(epoch, { accuracy })
  }
  return { accuracy }
}

const program = Effect.gen(function*() {
  const scheduler = yield* Asha.make({ metric: { name: "accuracy", direction: "maximize" }, minStep: 1 })
  const summary = yield* Explorer.run(task, {
    runId: "custom-agents-1",
    runDir: "trex-runs/custom-agents-1",
    seed: 1,
    scheduler
  }).pipe(
    Effect.provide(Layer.mergeAll(
      Journal.Journal.layerMemory,
      Layer.succeed(SearchPolicy.SearchPolicy, Greedy.make()),
      Layer.succeed(Researcher.Researcher, coordinateDescent()),
      Layer.succeed(ExecutorAgent.ExecutorAgent, inProcess(evaluate))
    ))
  )
  const pruned = [...summary.tree.nodes()].filter((n) => n.state._tag === "Pruned").length
  const best = summary.best
  const where = best === undefined ? "" : task.searchSpace!.parameters
    .filter((p) => SearchSpace.isActive(p, best.strategy))
    .map((p) => `${p.path}=${SearchSpace.get(best.strategy, p.path)}`).join(", ")
  console.log(`finished (${summary.reason}): ${summary.usage.trials} trials, ${pruned} stopped early`)
  console.log(best === undefined ? "best: none" : `best ${best.id} (accuracy ${ExperimentNode.score(best)!.toFixed(4)}): ${where}`)
  return summary
})

Effect.runPromise(program).catch((e: unknown) => {
  console.error(e)
  process.exitCode = 1
})
