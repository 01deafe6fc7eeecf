/**
 * Compare a custom researcher with the built-in heuristic one on a recorded table, in simulated time.
 *
 *   node --conditions=@trex/source examples/custom-agents/main.ts [seeds] [trials]
 *
 * (or SEEDS=3 TRIALS=10 in the environment). Both run under UCT, on the same seeds, so the
 * difference is the researcher's. Prints the mean normalised regret of each, (best - found) /
 * (best - worst) over the table (0 = found the best row), with its standard error: `trex bench`'s
 * own table, through its API.
 */
import * as path from "node:path"
import { Bench } from "@trex/cli"
import { Uct } from "@trex/mcts"
import { Effect } from "effect"
import { coordinateDescent } from "./researcher.ts"

const seeds = Number(process.argv[2] ?? process.env.SEEDS ?? 10)
const trials = Number(process.argv[3] ?? process.env.TRIALS ?? 20)
const taskFile = path.join(import.meta.dirname, "../recorded-table/task.yaml")

const program = Effect.gen(function*() {
  // A contender is a named policy and a researcher (the heuristic one unless given). The same
  // researcher serves every seed: it keeps no state outside the tree it is given.
  const contenders: ReadonlyArray<Bench.Contender> = [
    { name: "coordinate-descent", policy: Uct.make(), researcher: coordinateDescent() },
    { name: "heuristic", policy: Uct.make() }
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
