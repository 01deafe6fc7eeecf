// The default search (UCT and the heuristic researcher, whose Gaussian process refits its kernel on a
// schedule) over a recorded table in the simulator: a run interrupted at any point and resumed by a
// fresh controller (new researcher, new simulator, the journal only) gives the tree of the
// uninterrupted run, also long after the researcher's first 32 results.
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { HeuristicResearcher, TemplateExecutor } from "@trex/agents"
import { ExperimentTree, Journal, Researcher, SearchPolicy, TaskFile } from "@trex/core"
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
  // One run, interrupted at each point in turn and resumed by a fresh controller each time: every resume reads a
  // journal of that many results (12: below 32, where the kernel is searched at every count; 45, 57, 66: past the
  // search points 40, 50 and 63, whose hyperparameters a fresh researcher must take from the data as of then).
  // The results each session added are checked against the uninterrupted run's as it goes, and the whole tree at the end.
  it.live("a run interrupted after 12, 45, 57 and 66 results, resumed each time, gives the uninterrupted tree", () =>
    Effect.gen(function*() {
      const s = yield* setup
      const reference = yield* controller(s, Journal.makeMemory())
      assert.strictEqual(reference.tree.size, TRIALS)
      const expected = new Set(treeShape(reference.tree))
      const journal = Journal.makeMemory()
      const events = Effect.map(journal.read(), (entries) => entries.map((e) => e.event))
      let resumedAt = 0
      for (const stopAt of [12, 45, 57, 66]) {
        let finished = (yield* events).filter((e) => e._tag === "NodeFinished").length
        const fiber = yield* controller(s, journal, () => void finished++).pipe(Effect.forkChild)
        while (finished < stopAt) yield* Effect.sleep("1 millis")
        yield* Fiber.interrupt(fiber)
        const sofar = ExperimentTree.fold(yield* events)!.view
        const done = treeShape(sofar).filter((n) => /:(Succeeded|Failed):/.test(n))
        assert.isAtLeast(done.length, stopAt)
        assert.deepStrictEqual(done.filter((n) => !expected.has(n)), [], `the results of the session resumed after ${resumedAt} results`)
        resumedAt = done.length
      }
      const resumed = yield* controller(s, journal)
      assert.deepStrictEqual(treeShape(resumed.tree), treeShape(reference.tree), `resumed after ${resumedAt} results`)
    }), { timeout: 120_000 })
})
