/**
 * A user's program, as test/packaging.test.ts installs it: in a fresh project with the five packages
 * from their `npm pack` tarballs and `effect`, type-checked by `tsc` against the installed declarations
 * and run by plain Node (no `@trex/source` condition). It imports every entry point, runs a search
 * through the embedding API and one through `Explorer.run`, on the recorded table copied to `task/`,
 * and prints what it saw as JSON.
 */
import * as path from "node:path"
import * as Agents from "@trex/agents"
import { HeuristicResearcher, TemplateExecutor } from "@trex/agents"
import * as Cli from "@trex/cli"
import { Trex } from "@trex/cli"
import * as Core from "@trex/core"
import { Journal, Researcher, TaskFile } from "@trex/core"
import * as Testing from "@trex/core/testing"
import * as Executors from "@trex/executors"
import { Simulator } from "@trex/executors"
import * as Reporter from "@trex/executors/reporters/trex_reporter.mjs"
import * as Mcts from "@trex/mcts"
import { Explorer, Uct } from "@trex/mcts"
import { Effect, Layer } from "effect"

const taskFile = path.join(import.meta.dirname, "task", "task.yaml")
const out = path.join(import.meta.dirname, "trex-runs")

// The embedding API, as README.md shows it.
const search = await Trex.start({ taskFile, out, maxTrials: 4, seed: 1, logLevel: "None" })
let finished = 0
for await (const { event } of search.events) if (event._tag === "NodeFinished") finished++
const summary = await search.done

// The Effect API: the loop and its layers, as docs/guide-custom-policy.md builds them.
const explored = await Effect.runPromise(Effect.gen(function*() {
  const loaded = yield* TaskFile.load(taskFile)
  const { landscape } = yield* Simulator.fromTask(loaded.task, loaded.dir, loaded.file)
  const task = Simulator.completeTask(loaded.task, landscape)
  return yield* Explorer.run(task, { runId: "effect-api", runDir: path.join(out, "effect-api"), seed: 2, concurrency: 1 }).pipe(
    Effect.provide(Layer.mergeAll(
      Journal.Journal.layerMemory,
      Uct.layer(),
      Layer.succeed(Researcher.Researcher, HeuristicResearcher.make()),
      TemplateExecutor.layer({ taskDir: loaded.dir, recipe: { command: ["simulated"], env: {}, resources: { gpus: 1, cpus: 1 } } }).pipe(
        Layer.provide(Simulator.Simulator.layer(landscape, { gpus: 1 }))
      )
    ))
  )
}))

const modules: Record<string, object> = { Agents, Cli, Core, Testing, Executors, Mcts, Reporter }
console.log(JSON.stringify({
  exports: Object.fromEntries(Object.entries(modules).map(([name, m]) => [name, Object.keys(m).sort()])),
  trex: { reason: summary.reason, trials: summary.usage.trials, finished, best: summary.best?.id, runDir: search.runDir },
  explorer: { reason: explored.reason, trials: explored.usage.trials, best: explored.best?.id }
}))
