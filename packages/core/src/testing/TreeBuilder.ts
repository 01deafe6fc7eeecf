/**
 * Build experiment trees in tests: propose, run and finish nodes through real journal events,
 * so every tree a test sees is one the explorer could have produced.
 *
 * @since 0.1.0
 */
import * as Cost from "../Cost.ts"
import * as ExperimentNode from "../ExperimentNode.ts"
import * as ExperimentTree from "../ExperimentTree.ts"
import * as Fingerprint from "../Fingerprint.ts"
import * as JournalEvent from "../JournalEvent.ts"
import * as Result from "../Result.ts"
import * as SearchSpace from "../SearchSpace.ts"
import * as Strategy from "../Strategy.ts"
import type * as Task from "../Task.ts"

/** A small task with a 3-parameter space, for tests. @since 0.1.0 @category fixtures */
export const task = (overrides: Partial<Task.Task> = {}): Task.Task => ({
  name: "conformance",
  objective: "maximise a score",
  metric: { name: "score", direction: "maximize" },
  datasets: [],
  evaluation: { splits: [], extra: {} },
  constraints: {},
  budget: { maxTrials: 50 },
  searchSpace: {
    parameters: [
      { path: "training.learningRate", kind: "log", values: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2] },
      { path: "training.epochs", kind: "ordinal", values: [1, 2, 3, 4] },
      { path: "data.format", kind: "categorical", values: ["plain", "reversed", "scratchpad"] }
    ]
  },
  defaultStrategy: Strategy.decodeSync({
    data: { sources: [{ name: "d" }], format: "plain" },
    training: { learningRate: 1e-4, epochs: 1, batchSize: 8 }
  }),
  ...overrides
})

/**
 * A tree under construction. Each method appends the events the explorer would.
 * @example
 * ```ts
 * import { TreeBuilder } from "@trex/core/testing"
 * const b = new TreeBuilder.TreeBuilder(TreeBuilder.task())
 * const n1 = b.succeed("root", { "training.epochs": 2 }, 0.5)
 * b.fail(n1, { "training.epochs": 3 }, "OOM")
 * ```
 * @since 0.1.0 @category models
 */
export class TreeBuilder {
  readonly tree: ExperimentTree.ExperimentTree
  readonly events: Array<JournalEvent.JournalEvent> = []
  private clock = 0
  private readonly task: Task.Task

  constructor(task: Task.Task) {
    this.task = task
    const started = JournalEvent.make("RunStarted", { runId: "test", task, seed: 0, options: {}, at: 0 })
    this.events.push(started)
    this.tree = ExperimentTree.fold([started])!
  }

  get view(): ExperimentTree.TreeView {
    return this.tree.view
  }

  private emit(event: JournalEvent.JournalEvent): void {
    this.events.push(event)
    this.tree.apply(event)
  }

  /** Propose a child of `parent` whose strategy is the parent's (or the default) with `changes`. */
  propose(parent: string, changes: Record<string, SearchSpace.Value> = {}, prior?: number): string {
    const base = parent === ExperimentNode.ROOT ? this.task.defaultStrategy! : this.view.get(parent)!.strategy
    let strategy = base
    for (const [path, value] of Object.entries(changes)) strategy = SearchSpace.set(strategy, path, value)
    const id = `n${this.view.size + 1}`
    this.emit(JournalEvent.make("NodeProposed", {
      node: {
        id,
        parent,
        strategy,
        fingerprint: `${Fingerprint.of(strategy)}${this.view.byFingerprint(Fingerprint.of(strategy)) ? `-${id}` : ""}`,
        proposedAt: ++this.clock,
        ...(prior !== undefined ? { prior } : {})
      },
      at: this.clock
    }))
    return id
  }

  /** Admit and start a proposed node. */
  start(id: string): string {
    this.emit(JournalEvent.make("NodeAdmitted", { nodeId: id, estimate: Cost.zero, at: ++this.clock }))
    this.emit(JournalEvent.make("JobSubmitted", { nodeId: id, job: { backend: "test", id: `job-${id}`, data: {} }, at: ++this.clock }))
    return id
  }

  /** Finish a started node with a score. */
  finish(id: string, score: number): string {
    this.emit(JournalEvent.make("NodeFinished", { nodeId: id, outcome: "Succeeded", result: Result.success({ score }, score), at: ++this.clock }))
    return id
  }

  /** A running node's job waits in its backend's queue (`Pending`, and why), has left it (`Running`), or was withdrawn from it. */
  jobState(id: string, state: JournalEvent.Of<"JobState">["state"], reason?: string): string {
    this.emit(JournalEvent.make("JobState", { nodeId: id, state, ...(reason !== undefined ? { reason } : {}), at: ++this.clock }))
    return id
  }

  /** Report an intermediate metric for a running node. */
  progress(id: string, step: number, value: number, name = "score", split = "eval"): string {
    this.emit(JournalEvent.make("JobProgress", { nodeId: id, metrics: [{ step, split, name, value }], at: ++this.clock }))
    return id
  }

  /** Propose, run and succeed. */
  succeed(parent: string, changes: Record<string, SearchSpace.Value>, score: number): string {
    return this.finish(this.start(this.propose(parent, changes)), score)
  }

  /** Propose, run and fail with a kind. */
  fail(parent: string, changes: Record<string, SearchSpace.Value>, kind: Result.FailureKind = "Crash"): string {
    const id = this.start(this.propose(parent, changes))
    this.emit(JournalEvent.make("NodeFinished", { nodeId: id, outcome: "Failed", result: Result.failure(kind, "failed in a test"), at: ++this.clock }))
    return id
  }

  /** Propose and cancel. */
  cancel(parent: string, changes: Record<string, SearchSpace.Value>): string {
    const id = this.start(this.propose(parent, changes))
    this.emit(JournalEvent.make("NodeFinished", { nodeId: id, outcome: "Cancelled", reason: "test", at: ++this.clock }))
    return id
  }
}

/**
 * A random valid tree of `size` nodes: random parents among finished nodes, random outcomes
 * (mostly successes), a few still running. `rand` in [0, 1).
 * @since 0.1.0 @category fixtures
 */
export const random = (size: number, rand: () => number, t: Task.Task = task()): TreeBuilder => {
  const b = new TreeBuilder(t)
  const space = t.searchSpace!
  for (let i = 0; i < size; i++) {
    const open = ["root", ...b.view.frontier().filter((n) => n.state._tag !== "Cancelled").map((n) => n.id)]
    const parent = open[Math.floor(rand() * open.length)]!
    const p = space.parameters[Math.floor(rand() * space.parameters.length)]!
    const changes = { [p.path]: p.values[Math.floor(rand() * p.values.length)]! }
    const roll = rand()
    if (roll < 0.7) b.succeed(parent, changes, Math.round(rand() * 1000) / 1000)
    else if (roll < 0.82) b.fail(parent, changes, "Crash")
    else if (roll < 0.9) b.cancel(parent, changes)
    else b.start(b.propose(parent, changes))
  }
  return b
}
