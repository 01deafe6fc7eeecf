/**
 * A researcher in a few dozen lines: coordinate descent over the task's declared search space.
 * Each child changes one parameter of its parent's strategy by one step (a neighbouring value; any
 * other value of a categorical parameter), the parameters taken in turn down a branch; after a step
 * that improved on its parent, the same parameter is tried again first. Deterministic: it draws no
 * random numbers, so a run repeats and a resumed run proposes what the uninterrupted one would.
 */
import { Effect } from "effect"
import { Errors, ExperimentNode, type ExperimentTree, Fingerprint, type Insight, type Researcher, SearchSpace, type Strategy, Task } from "@trex/core"

/** The task's search space and default strategy, or a researcher error that retrying cannot mend. */
const declared = (task: Task.Task, operation: string) =>
  task.searchSpace === undefined || task.searchSpace.parameters.length === 0 || task.defaultStrategy === undefined
    ? Effect.fail(new Errors.ResearcherError({ operation, message: `task "${task.name}" needs a searchSpace and a defaultStrategy`, retryable: false }))
    : Effect.succeed({ space: task.searchSpace, defaults: task.defaultStrategy })

const show = (v: unknown) => (typeof v === "string" ? JSON.stringify(v) : String(v))
/** The values of a strategy's parameters, as a key (a pool's points are keyed the same way). */
const keyOf = (space: SearchSpace.SearchSpace, s: Strategy.Strategy) => JSON.stringify(space.parameters.map((p) => SearchSpace.get(s, p.path)))
/** The first parameter in which two strategies differ (-1 if none). */
const moved = (space: SearchSpace.SearchSpace, a: Strategy.Strategy, b: Strategy.Strategy) =>
  space.parameters.findIndex((p) => SearchSpace.get(a, p.path) !== SearchSpace.get(b, p.path))

/** Where to start cycling: after the parameter the parent changed, or at it again when that change paid off. */
const startOf = (tree: ExperimentTree.TreeView, space: SearchSpace.SearchSpace, defaults: Strategy.Strategy, parent: ExperimentTree.NodeView) => {
  const grand = parent.parent === ExperimentNode.ROOT ? undefined : tree.get(parent.parent)
  const i = moved(space, parent.strategy, grand?.strategy ?? defaults)
  if (i < 0) return parent.depth % space.parameters.length
  const mine = ExperimentNode.score(parent)
  const theirs = grand === undefined ? undefined : ExperimentNode.score(grand)
  const improved = mine !== undefined && theirs !== undefined && Task.isBetter(tree.task, mine, theirs)
  return improved ? i : (i + 1) % space.parameters.length
}

export const coordinateDescent = (): Researcher.ResearcherShape => {
  // a finite pool of valid configurations (a recorded table's rows), keyed: moves off it are skipped
  const pools = new WeakMap<object, ReadonlySet<string>>()
  const inPool = (space: SearchSpace.SearchSpace, s: Strategy.Strategy) => {
    if (space.points === undefined) return true
    let keys = pools.get(space.points)
    if (keys === undefined) pools.set(space.points, (keys = new Set(space.points.map((pt) => JSON.stringify(pt)))))
    return keys.has(keyOf(space, s))
  }
  return {
    name: "coordinate-descent",
    analyze: (task) =>
      Effect.map(declared(task, "analyze"), ({ space }) => ({
        summary: `Coordinate descent over ${space.parameters.map((p) => p.path).join(", ")}, ${task.metric.direction === "maximize" ? "maximising" : "minimising"} ${task.metric.name}.`,
        metricNotes: "",
        dataNotes: "",
        risks: [],
        notes: {}
      })),
    propose: (context, n) =>
      Effect.gen(function*() {
        const { space, defaults } = yield* declared(context.task, "propose")
        const parent = context.parentId === ExperimentNode.ROOT ? undefined : context.tree.get(context.parentId)
        const from = parent?.strategy ?? defaults
        const out: Array<Researcher.Proposal> = []
        const seen = new Set<string>()
        const offer = (strategy: Strategy.Strategy, rationale: string) => {
          // parameters whose condition does not hold are held at the default, as the explorer holds them
          const held = SearchSpace.normalize(space, strategy, defaults)
          const fp = Fingerprint.of(held)
          if (out.length >= n || seen.has(fp) || context.tried(fp) || !inPool(space, held)) return
          seen.add(fp)
          out.push({ strategy: { ...held, rationale } })
        }
        if (parent === undefined) offer(defaults, "Baseline: the task's default strategy.")
        const start = parent === undefined ? 0 : startOf(context.tree, space, defaults, parent)
        const params = space.parameters
        for (let k = 0; k < params.length && out.length < n; k++) {
          const p = params[(start + k) % params.length]!
          if (p.values.length < 2 || !SearchSpace.isActive(p, from)) continue
          const i = SearchSpace.indexOf(p, from)
          const to = p.kind === "categorical" ? p.values.map((_, j) => j).filter((j) => j !== i) : [i + 1, i - 1].filter((j) => j >= 0 && j < p.values.length)
          for (const j of to) {
            const why = `From ${parent?.id ?? "the default strategy"}: ${p.path} ${show(SearchSpace.get(from, p.path))} -> ${show(p.values[j])} (coordinate ${params.indexOf(p) + 1} of ${params.length}).`
            offer(SearchSpace.set(from, p.path, p.values[j]!), why)
          }
        }
        // fewer than n (none, once every neighbour is tried): the explorer then marks the node exhausted
        return out
      }),
    distill: (context) =>
      Effect.sync(() => {
        const space = context.task.searchSpace
        if (space === undefined) return []
        // every finished single-parameter step: how the child's score compares with its parent's
        const steps = new Map<string, Array<{ readonly id: string; readonly delta: number }>>()
        for (const node of context.tree.nodes()) {
          const parent = context.tree.get(node.parent)
          const mine = ExperimentNode.score(node)
          const theirs = parent === undefined ? undefined : ExperimentNode.score(parent)
          if (parent === undefined || mine === undefined || theirs === undefined) continue
          const changed = space.parameters.filter((p) => SearchSpace.get(node.strategy, p.path) !== SearchSpace.get(parent.strategy, p.path))
          if (changed.length !== 1) continue
          const path = changed[0]!.path
          steps.set(path, [...(steps.get(path) ?? []), { id: node.id, delta: Task.utility(context.task, mine) - Task.utility(context.task, theirs) }])
        }
        const known = new Set(context.tree.insights.map((i) => i.id))
        const out: Array<Insight.Insight> = []
        for (const [path, s] of steps) {
          const id = `coordinate-descent:${path}`
          if (s.length < 3 || known.has(id)) continue
          const better = s.filter((x) => x.delta > 0).length
          const mean = s.reduce((acc, x) => acc + x.delta, 0) / s.length
          out.push({
            id,
            text: `Changing ${path} alone improved ${context.task.metric.name} in ${better} of ${s.length} steps (${mean >= 0 ? "+" : ""}${Number(mean.toPrecision(3))} on average, as utility).`,
            evidence: s.map((x) => x.id),
            createdAt: context.now,
            data: { path, steps: s.length, better, meanDelta: mean }
          })
        }
        return out
      })
  }
}
