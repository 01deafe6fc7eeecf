/**
 * Compare a custom policy with UCT on a recorded table, in simulated time.
 *
 *   node --conditions=@trex/source examples/custom-policy/main.ts [seeds] [trials]
 *
 * (or SEEDS=3 TRIALS=10 in the environment). Prints the mean normalised regret of each policy,
 * (best - found) / (best - worst) over the table (0 = found the best row), with its standard error:
 * `trex bench`'s own table, through its API.
 */
import * as path from "node:path"
import { Bench } from "@trex/cli"
import { Uct } from "@trex/mcts"
import { Effect } from "effect"
import { epsilonGreedy } from "./policy.ts"

const seeds = Number(process.argv[2] ?? process.env.SEEDS ?? 10)
const trials = Number(process.argv[3] ?? process.env.TRIALS ?? 20)
const taskFile = path.join(import.meta.dirname, "../recorded-table/task.yaml")

const program = Effect.gen(function*() {
  // A contender is a named policy (and a researcher: the heuristic one unless given). Both
  // policies here run with the heuristic researcher, on the same seeds.
  const contenders: ReadonlyArray<Bench.Contender> = [
    { name: "epsilon-greedy(0.2)", policy: epsilonGreedy(0.2) },
    { name: "uct", policy: Uct.make() }
  ]
  const result = yield* Bench.benchTask(taskFile, { methods: contenders, seeds, trials: [trials] })
  console.log(`${result.task}: ${result.rows} configurations, ${trials} trials, ${seeds} seeds`)
  console.log(Bench.toTable([result], [trials]))
  return result
})

Effect.runPromise(program).catch((e: unknown) => {
  console.error(e)
  process.exitCode = 1
})
