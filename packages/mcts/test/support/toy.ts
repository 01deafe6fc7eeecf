// A toy world for the explorer's tests: a 2-parameter task, a researcher that walks a grid
// deterministically, and an in-process executor whose score is a known function of the strategy.
import { Cost, Errors, ExecutorAgent, ExperimentNode, type ExperimentTree, Researcher, SearchSpace, Strategy, type Task } from "@trex/core"
import { Effect, Layer, Random, Stream } from "effect"

/** A tree as a line per node (id, parent, fingerprint, state, score): two runs grew the same tree when these are equal. */
export const treeShape = (tree: ExperimentTree.TreeView): Array<string> =>
  [...tree.nodes()].map((n) => `${n.id}<${n.parent}:${n.fingerprint}:${n.state._tag}:${ExperimentNode.score(n) ?? "-"}`)

export const LRS = [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03]
export const EPOCHS = [1, 2, 3, 4, 5, 6]

export const space: SearchSpace.SearchSpace = {
  parameters: [
    { path: "training.learningRate", kind: "log", values: LRS },
    { path: "training.epochs", kind: "ordinal", values: EPOCHS }
  ]
}

export const defaultStrategy = Strategy.decodeSync({
  data: { sources: [{ name: "toy" }] },
  training: { learningRate: 0.0001, epochs: 1, batchSize: 8 }
})

export const makeTask = (budget: Task.Task["budget"], extra: Partial<Task.Task> = {}): Task.Task => ({
  name: "toy",
  objective: "maximise a known function",
  metric: { name: "score", direction: "maximize" },
  datasets: [],
  evaluation: { splits: [], extra: {} },
  constraints: {},
  budget,
  searchSpace: space,
  defaultStrategy,
  ...extra
})

/** The landscape: best at lr=0.003, epochs=4; value in [0, 1]. */
export const score = (s: Strategy.Strategy): number => {
  const i = LRS.indexOf(s.training.learningRate)
  const j = EPOCHS.indexOf(s.training.epochs)
  return 1 - (Math.abs(i - 3) + Math.abs(j - 3)) / 10
}

/** Proposes a random neighbour of the parent (one grid step), seeded by the explorer. */
export const gridResearcher: Researcher.ResearcherShape = {
  name: "grid",
  analyze: () => Effect.succeed({ summary: "toy", metricNotes: "", dataNotes: "", risks: [], notes: {} }),
  propose: (ctx, n) =>
    Effect.gen(function*() {
      const base = ctx.parentId === ExperimentNode.ROOT ? defaultStrategy : ctx.tree.get(ctx.parentId)!.strategy
      const out: Array<Researcher.Proposal> = []
      for (let i = 0; i < 20 && out.length < n; i++) {
        const p = space.parameters[yield* Random.nextIntBetween(0, 1)]!
        const idx = SearchSpace.indexOf(p, base) + ((yield* Random.nextBoolean) ? 1 : -1)
        if (idx < 0 || idx >= p.values.length) continue
        out.push({ strategy: { ...SearchSpace.set(base, p.path, p.values[idx]!), rationale: `move ${p.path}` } })
      }
      return out
    }),
  distill: () => Effect.succeed([])
}

export interface ExecLog {
  readonly runs: Array<{ node: string; reattached: boolean }>
}

/**
 * Runs a "job" in-process: Submitted, a few Progress metrics, then Finished with the score.
 * `failFor` makes chosen nodes fail for infrastructure reasons `failTimes` times.
 */
export const functionExecutor = (log: ExecLog, options: {
  readonly gpuSeconds?: number | ((s: Strategy.Strategy) => number)
  readonly stepMillis?: number
  readonly failFor?: (node: string) => { retryable: boolean } | undefined
  readonly curve?: (s: Strategy.Strategy, step: number) => number
} = {}): ExecutorAgent.ExecutorAgentShape => ({
  name: "function",
  run: (req) =>
    Stream.unwrap(Effect.sync(() => {
      log.runs.push({ node: req.node.id, reattached: req.job !== undefined })
      const failing = options.failFor?.(req.node.id)
      if (failing !== undefined) {
        return Stream.fail(new Errors.ExecutorError({ nodeId: req.node.id, message: "backend down", retryable: failing.retryable }))
      }
      const job = req.job ?? { backend: "function", id: `job-${req.node.id}`, data: {} }
      const s = score(req.node.strategy)
      const steps = [1, 2, 3, 4]
      const events: Array<Effect.Effect<ExecutorAgent.ExecutionEvent>> = [
        Effect.succeed({ _tag: "Submitted", job } as const),
        ...steps.map((step) =>
          Effect.as(Effect.sleep(options.stepMillis ?? 1), {
            _tag: "Progress",
            fraction: step / 4,
            metrics: [{ step, split: "eval", name: "score", value: options.curve?.(req.node.strategy, step) ?? (s * step) / 4 }]
          } as const)
        ),
        Effect.succeed({
          _tag: "Finished",
          result: { metrics: { score: s }, score: s, curves: [], artifacts: [], cost: Cost.make({
            gpuSeconds: typeof options.gpuSeconds === "function" ? options.gpuSeconds(req.node.strategy) : options.gpuSeconds ?? 60,
            wallSeconds: 1
          })
        }
        } as const)
      ]
      return Stream.fromIterable(req.job !== undefined ? events.slice(1) : events).pipe(Stream.mapEffect((e) => e))
    }))
})

export const layers = (researcher: Researcher.ResearcherShape, executor: ExecutorAgent.ExecutorAgentShape) =>
  Layer.mergeAll(
    Layer.succeed(Researcher.Researcher, researcher),
    Layer.succeed(ExecutorAgent.ExecutorAgent, executor)
  )
