// The default search (UCT and the heuristic researcher, whose Gaussian process refits its kernel on a
// schedule) over a recorded table in the simulator: a run interrupted at any point and resumed by a
// fresh controller (new researcher, new simulator, the journal only) gives the tree of the
// uninterrupted run, also long after the researcher's first 32 results.
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { HeuristicResearcher, TemplateExecutor } from "@trex/agents"
import { Journal, Researcher, SearchPolicy, TaskFile } from "@trex/core"
import { Simulator } from "@trex/executors"
import { Explorer, Uct } from "@trex/mcts"
import { Effect, Fiber, Layer } from "effect"
import { treeShape } from "../packages/mcts/test/support/toy.ts"

const TRIALS = 70

const setup = Effect.gen(function*() {
  const loaded = yield* TaskFile.load(path.join(import.meta.dirname, "../bench/tasks/regmix-1m-pile-cc.yaml"))
  const { landscape } = yield* Simulator.fromTask(loaded.task, loaded.dir)
  return { task: { ...Simulator.completeTask(loaded.task, landscape), budget: { maxTrials: TRIALS } }, landscape }
})

/** One controller: fresh agents and simulator, the given journal. */
const controller = (
  { task, landscape }: Effect.Success<typeof setup>,
  journal: Journal.Journal["Service"],
  onFinished: () => void = () => {}
) =>
  Explorer.run(task, {
    runId: "resume",
    runDir: "/nonexistent",
    seed: 5,
    concurrency: 1,
    onEvent: (e) => {
      if (e.event._tag === "NodeFinished") onFinished()
    }
  }).pipe(
    Effect.provide(
      Layer.mergeAll(
        Layer.succeed(Journal.Journal, journal),
        Layer.succeed(SearchPolicy.SearchPolicy, Uct.make()),
        Layer.succeed(Researcher.Researcher, HeuristicResearcher.make()),
        TemplateExecutor.layer({ taskDir: ".", recipe: { command: ["simulated"], env: {}, resources: { gpus: 1, cpus: 1 } } }).pipe(
          Layer.provide(Simulator.Simulator.layer(landscape, { gpus: 1 }))
        )
      )
    ),
    Effect.scoped
  )

describe("the default search, resumed", () => {
  it.live("a run interrupted after 12, 45, 57 or 66 results resumes to the uninterrupted tree", () =>
    Effect.gen(function*() {
      const s = yield* setup
      const reference = yield* controller(s, Journal.makeMemory())
      assert.strictEqual(reference.tree.size, TRIALS)
      for (const stopAt of [12, 45, 57, 66]) {
        const journal = Journal.makeMemory()
        let finished = 0
        const fiber = yield* controller(s, journal, () => void finished++).pipe(Effect.forkChild)
        while (finished < stopAt) yield* Effect.sleep("1 millis")
        yield* Fiber.interrupt(fiber)
        const resumed = yield* controller(s, journal)
        assert.deepStrictEqual(treeShape(resumed.tree), treeShape(reference.tree), `interrupted after ${stopAt} results`)
      }
    }), { timeout: 120_000 })
})
