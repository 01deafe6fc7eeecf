/**
 * Compare a custom policy with UCT on a recorded table, in simulated time.
 *
 *   node --conditions=@trex/source examples/custom-policy/main.ts [seeds] [trials]
 *
 * (or SEEDS=3 TRIALS=10 in the environment). Prints the mean normalised regret of each policy:
 * (best - found) / (best - worst) over the table, 0 = found the best row.
 */
import * as path from "node:path"
import { HeuristicResearcher, TemplateExecutor } from "@trex/agents"
import { ExperimentNode, Journal, Researcher, SearchPolicy, type Task, TaskFile } from "@trex/core"
import { Simulator } from "@trex/executors"
import { Explorer, Uct } from "@trex/mcts"
import { Effect, Layer } from "effect"
import { epsilonGreedy } from "./policy.ts"

const seeds = Number(process.argv[2] ?? process.env.SEEDS ?? 10)
const trials = Number(process.argv[3] ?? process.env.TRIALS ?? 20)
const taskFile = path.join(import.meta.dirname, "../recorded-table/task.yaml")

/** One seeded, sequential run; returns the normalised regret of the best score found. */
const runOnce = (task: Task.Task, landscape: Simulator.Landscape, policy: SearchPolicy.SearchPolicyShape, seed: number) =>
  Explorer.run(task, { runId: `${policy.name}-${seed}`, runDir: "unused", seed, concurrency: 1 }).pipe(
    Effect.map((summary) => {
      const score = summary.best === undefined ? undefined : ExperimentNode.score(summary.best)
      return score === undefined ? 1 : Simulator.regret(landscape, score)
    }),
    Effect.provide(Layer.mergeAll(
      Journal.Journal.layerMemory,
      Layer.succeed(SearchPolicy.SearchPolicy, policy),
      Layer.succeed(Researcher.Researcher, HeuristicResearcher.make()),
      // The simulator ignores the command: it replays the table row that matches strategy.json.
      TemplateExecutor.layer({ taskDir: ".", recipe: { command: ["simulated"], env: {}, resources: { gpus: 1, cpus: 1 } } }).pipe(
        Layer.provide(Simulator.Simulator.layer(landscape, { gpus: 1 }))
      )
    ))
  )

const program = Effect.gen(function*() {
  const loaded = yield* TaskFile.load(taskFile)
  const { landscape } = yield* Simulator.fromTask(loaded.task, loaded.dir)
  const task: Task.Task = { ...Simulator.completeTask(loaded.task, landscape), budget: { maxTrials: trials } }
  const policies = [epsilonGreedy(0.2), Uct.make()]
  const means: Record<string, number> = {}
  for (const policy of policies) {
    let sum = 0
    for (let seed = 0; seed < seeds; seed++) sum += (yield* runOnce(task, landscape, policy, seed))
    means[policy.name] = sum / seeds
  }
  console.log(`${task.name}: ${Simulator.configurations(landscape).length} configurations, ${trials} trials, ${seeds} seeds`)
  console.log("mean normalised regret (lower is better):")
  for (const [name, regret] of Object.entries(means)) console.log(`  ${name.padEnd(22)} ${regret.toFixed(3)}`)
  return means
})

Effect.runPromise(program).catch((e: unknown) => {
  console.error(e)
  process.exitCode = 1
})
