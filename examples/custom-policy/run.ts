/**
 * A custom policy in a search of its own: `Explorer.run` with the policy as a layer, on the
 * recorded table of ../recorded-table, in simulated time (seconds, no GPU).
 *
 *   node --conditions=@trex/source examples/custom-policy/run.ts
 */
import * as path from "node:path"
import { HeuristicResearcher, TemplateExecutor } from "@trex/agents"
import { ExperimentNode, Journal, Researcher, SearchPolicy, TaskFile } from "@trex/core"
import { Simulator } from "@trex/executors"
import { Explorer } from "@trex/mcts"
import { Effect, Layer } from "effect"
import { epsilonGreedy } from "./policy.ts"

const program = Effect.gen(function*() {
  const loaded = yield* TaskFile.load(path.join(import.meta.dirname, "../recorded-table/task.yaml"))
  // The recorded table, and the task completed from it: its search space and default strategy.
  // (The task file declares neither: without completeTask the researcher has nothing to propose.)
  const { landscape } = yield* Simulator.fromTask(loaded.task, loaded.dir, loaded.file)
  const task = Simulator.completeTask(loaded.task, landscape)
  const summary = yield* Explorer.run(task, { runId: "my-policy-1", runDir: "trex-runs/my-policy-1", seed: 1 }).pipe(
    Effect.provide(Layer.mergeAll(
      Journal.Journal.layerMemory,
      Layer.succeed(SearchPolicy.SearchPolicy, epsilonGreedy(0.2)),
      Layer.succeed(Researcher.Researcher, HeuristicResearcher.make()),
      TemplateExecutor.layer({ taskDir: loaded.dir, recipe: { command: ["simulated"], env: {}, resources: { gpus: 1, cpus: 1 } } }).pipe(
        Layer.provide(Simulator.Simulator.layer(landscape, { gpus: 1 }))
      )
    ))
  )
  const best = summary.best === undefined ? "none" : `${summary.best.id} (${task.metric.name} ${ExperimentNode.score(summary.best)})`
  console.log(`finished (${summary.reason}): ${summary.usage.trials} trials, best ${best}`)
  return summary
})

Effect.runPromise(program).catch((e: unknown) => {
  console.error(e)
  process.exitCode = 1
})
