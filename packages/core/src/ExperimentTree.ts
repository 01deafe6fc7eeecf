/**
 * The experiment tree as a fold over journal events. Each node keeps the statistics that
 * search policies read — visits, value sum, successes, best score below it, pending trials
 * (virtual loss) — updated along the path to the root in O(depth) per event.
 *
 * Policies and researchers receive it through the read-only {@link TreeView}.
 *
 * @since 0.1.0
 */
import * as ExperimentNode from "./ExperimentNode.ts"
import type * as Insight from "./Insight.ts"
import type * as JournalEvent from "./JournalEvent.ts"
import type * as Result from "./Result.ts"
import * as Task from "./Task.ts"

/** Search statistics of a node and its subtree. @since 0.1.0 @category models */
export interface Stats {
  /** Finished trials in the subtree (successes and failures). */
  readonly visits: number
  /** Finished successful trials with a score in the subtree. */
  readonly successes: number
  /** Sum of utilities (score, sign-flipped when minimising) of those successes. */
  readonly valueSum: number
  /** Best utility in the subtree (-Infinity when none). */
  readonly bestUtility: number
  /** Trials in the subtree admitted or running, not yet finished (virtual loss). */
  readonly pending: number
  /** Nodes in the subtree (itself included) that may still be expanded: finished, not cancelled, not exhausted. */
  readonly open: number
}

/** A node as policies see it: spec, state, statistics, children. @since 0.1.0 @category models */
export interface NodeView extends ExperimentNode.ExperimentNode {
  readonly stats: Stats
  readonly children: ReadonlyArray<string>
  /** Latest progress fraction while running. */
  readonly progress?: number
  /** Intermediate metrics reported while running (schedulers read them). */
  readonly curve: ReadonlyArray<Result.MetricPoint>
}

/**
 * Read-only access to the tree.
 * @since 0.1.0 @category models
 */
export interface TreeView {
  readonly task: Task.Task
  /** The virtual root (the task before any experiment): id {@link ExperimentNode.ROOT}. */
  readonly root: RootView
  readonly size: number
  readonly get: (id: string) => NodeView | undefined
  readonly children: (id: string) => ReadonlyArray<NodeView>
  /** Nodes from the root's child down to `id`. */
  readonly path: (id: string) => ReadonlyArray<NodeView>
  readonly siblings: (id: string) => ReadonlyArray<NodeView>
  /** Every node, in proposal order. */
  readonly nodes: () => Iterable<NodeView>
  /** The last `count` nodes in proposal order, in O(count). */
  readonly latest: (count: number) => ReadonlyArray<NodeView>
  /** Every finished node (candidates for expansion, with the root, which is not a `NodeView`). */
  readonly frontier: () => ReadonlyArray<NodeView>
  /** The best succeeded node, if any. */
  readonly best: () => NodeView | undefined
  readonly byFingerprint: (fp: string) => NodeView | undefined
  /** Whether the researcher found nothing new to propose under the node (root included). */
  readonly isExhausted: (id: string) => boolean
  readonly insights: ReadonlyArray<Insight.Insight>
  /** Min and max utility over succeeded nodes (for min-max normalisation). */
  readonly utilityRange: () => { readonly min: number; readonly max: number } | undefined
}

/** The virtual root's view. @since 0.1.0 @category models */
export interface RootView {
  readonly id: typeof ExperimentNode.ROOT
  readonly depth: 0
  readonly stats: Stats
  readonly children: ReadonlyArray<string>
}

interface MutableStats {
  visits: number
  successes: number
  valueSum: number
  bestUtility: number
  pending: number
  open: number
}

interface MutableNode {
  readonly spec: ExperimentNode.NodeSpec
  readonly depth: number
  state: ExperimentNode.NodeState
  readonly stats: MutableStats
  readonly children: Array<string>
  progress: number | undefined
  readonly curve: Array<Result.MetricPoint>
  /** Position in `curve` of each (step, split, name). */
  readonly curveIndex: Map<string, number>
  /** Whether this node's admission was counted in `pending` up the path. */
  counted: boolean
  /** The node's current view, until the node changes (views are immutable snapshots). */
  cached: NodeView | undefined
  exhausted: boolean
}

const newStats = (): MutableStats => ({ visits: 0, successes: 0, valueSum: 0, bestUtility: -Infinity, pending: 0, open: 0 })

/** A snapshot of a node, made once per change of the node (so readers pay O(1) per look). */
const view = (n: MutableNode): NodeView =>
  (n.cached ??= {
    ...n.spec,
    depth: n.depth,
    state: n.state,
    stats: { ...n.stats },
    children: n.children.slice(),
    curve: n.curve.slice(),
    ...(n.progress !== undefined ? { progress: n.progress } : {})
  })

/**
 * The mutable tree. Build it with {@link fold} or {@link ExperimentTree.empty} and feed it
 * events in journal order with {@link ExperimentTree.apply}.
 *
 * @example
 * ```ts
 * import { ExperimentTree } from "@trex/core"
 * declare const entries: ReadonlyArray<{ event: any }>
 * const tree = ExperimentTree.fold(entries.map((e) => e.event))
 * tree?.view.best()
 * ```
 * @since 0.1.0 @category models
 */
export class ExperimentTree {
  private readonly nodes = new Map<string, MutableNode>()
  private readonly order: Array<string> = []
  private readonly rootStats = newStats()
  private readonly rootChildren: Array<string> = []
  private readonly fingerprints = new Map<string, string>()
  private readonly insightList: Array<Insight.Insight> = []
  private bestId: string | undefined
  private rootExhausted = false
  private minUtility = Infinity
  private maxUtility = -Infinity
  /** Number of events applied. */
  applied = 0
  readonly view: TreeView

  readonly task: Task.Task
  readonly runId: string
  readonly seed: number

  private constructor(task: Task.Task, runId: string, seed: number) {
    this.task = task
    this.runId = runId
    this.seed = seed
    const self = this
    const get = (id: string): NodeView | undefined => {
      const n = self.nodes.get(id)
      return n === undefined ? undefined : view(n)
    }
    const childIds = (id: string): ReadonlyArray<string> =>
      id === ExperimentNode.ROOT ? self.rootChildren : self.nodes.get(id)?.children ?? []
    this.view = {
      task,
      get root() {
        return { id: ExperimentNode.ROOT, depth: 0, stats: self.rootStats, children: self.rootChildren } as const
      },
      get size() {
        return self.nodes.size
      },
      get,
      children: (id) => childIds(id).map((c) => view(self.nodes.get(c)!)),
      path: (id) => {
        const out: Array<NodeView> = []
        let cur = self.nodes.get(id)
        while (cur !== undefined) {
          out.push(view(cur))
          cur = self.nodes.get(cur.spec.parent)
        }
        return out.reverse()
      },
      siblings: (id) => {
        const n = self.nodes.get(id)
        if (n === undefined) return []
        return childIds(n.spec.parent).filter((c) => c !== id).map((c) => view(self.nodes.get(c)!))
      },
      nodes: function*() {
        for (const n of self.nodes.values()) yield view(n)
      },
      latest: (count) => self.order.slice(Math.max(0, self.order.length - count)).map((id) => view(self.nodes.get(id)!)),
      frontier: () => {
        const out: Array<NodeView> = []
        for (const n of self.nodes.values()) if (ExperimentNode.isFinished(n)) out.push(view(n))
        return out
      },
      best: () => (self.bestId === undefined ? undefined : get(self.bestId)),
      isExhausted: (id) => (id === ExperimentNode.ROOT ? self.rootExhausted : self.nodes.get(id)?.exhausted === true),
      byFingerprint: (fp) => {
        const id = self.fingerprints.get(fp)
        return id === undefined ? undefined : get(id)
      },
      get insights() {
        return self.insightList
      },
      utilityRange: () => (self.maxUtility === -Infinity ? undefined : { min: self.minUtility, max: self.maxUtility })
    }
  }

  /** A tree for a run that has just started. */
  static empty(task: Task.Task, runId = "run", seed = 0): ExperimentTree {
    return new ExperimentTree(task, runId, seed)
  }

  /** Mutable access to a node's stats along the path to the root (root included). */
  private forPath(id: string, f: (s: MutableStats) => void): void {
    let cur = this.nodes.get(id)
    while (cur !== undefined) {
      f(cur.stats)
      cur.cached = undefined
      cur = this.nodes.get(cur.spec.parent)
    }
    f(this.rootStats)
  }

  /**
   * Apply one event. Events must come in journal order; `RunStarted` is consumed by
   * {@link fold}. Unknown node ids are ignored (a journal written by a newer version may
   * carry nodes this fold cannot place), so a fold never throws on valid journals.
   */
  apply(event: JournalEvent.JournalEvent): void {
    this.applied++
    switch (event._tag) {
      case "NodeProposed": {
        const spec = event.node
        const parent = spec.parent === ExperimentNode.ROOT ? undefined : this.nodes.get(spec.parent)
        const node: MutableNode = {
          spec,
          depth: (parent?.depth ?? 0) + 1,
          state: { _tag: "Proposed" },
          stats: newStats(),
          children: [],
          progress: undefined,
          curve: [],
          curveIndex: new Map(),
          counted: false,
          cached: undefined,
          exhausted: false
        }
        this.nodes.set(spec.id, node)
        this.order.push(spec.id)
        ;(parent?.children ?? this.rootChildren).push(spec.id)
        if (parent !== undefined) parent.cached = undefined
        if (!this.fingerprints.has(spec.fingerprint)) this.fingerprints.set(spec.fingerprint, spec.id)
        return
      }
      case "NodeAdmitted": {
        const n = this.nodes.get(event.nodeId)
        if (n === undefined || ExperimentNode.isFinished(n)) return
        n.state = { _tag: "Queued" }
        n.cached = undefined
        if (!n.counted) {
          n.counted = true
          this.forPath(n.spec.id, (s) => s.pending++)
        }
        return
      }
      case "JobSubmitted": {
        const n = this.nodes.get(event.nodeId)
        if (n === undefined || ExperimentNode.isFinished(n)) return
        n.state = { _tag: "Running", job: event.job, startedAt: event.at }
        n.cached = undefined
        if (!n.counted) {
          n.counted = true
          this.forPath(n.spec.id, (s) => s.pending++)
        }
        return
      }
      case "JobProgress": {
        const n = this.nodes.get(event.nodeId)
        if (n === undefined) return
        if (event.fraction !== undefined) n.progress = event.fraction
        // A point reported twice (stdout and metrics.jsonl, or replayed after a reattach) counts
        // once: the same step, split and name replaces the earlier value.
        for (const p of event.metrics) {
          const key = `${p.step}\u0000${p.split}\u0000${p.name}`
          const i = n.curveIndex.get(key)
          if (i !== undefined) n.curve[i] = p
          else {
            n.curveIndex.set(key, n.curve.length)
            n.curve.push(p)
          }
        }
        n.cached = undefined
        return
      }
      case "NodeFinished":
        return this.finish(event)
      case "NodeExhausted": {
        if (event.nodeId === ExperimentNode.ROOT) {
          this.rootExhausted = true
          return
        }
        const n = this.nodes.get(event.nodeId)
        if (n === undefined || n.exhausted) return
        n.exhausted = true
        n.cached = undefined
        if (isOpen(n.state._tag)) this.forPath(n.spec.id, (st) => st.open--)
        return
      }
      case "InsightsDistilled":
        for (const i of event.insights) this.insightList.push(i)
        return
      default:
        return
    }
  }

  private finish(event: JournalEvent.Of<"NodeFinished">): void {
    const n = this.nodes.get(event.nodeId)
    if (n === undefined || ExperimentNode.isFinished(n)) return
    const at = event.at
    const result = event.result
    switch (event.outcome) {
      case "Succeeded":
        n.state = { _tag: "Succeeded", result: result!, finishedAt: at }
        break
      case "Failed":
        n.state = { _tag: "Failed", result: result!, finishedAt: at }
        break
      case "Cancelled":
        n.state = { _tag: "Cancelled", reason: event.reason ?? "cancelled", finishedAt: at }
        break
      case "Pruned":
        n.state = {
          _tag: "Pruned",
          reason: event.reason ?? "pruned",
          finishedAt: at,
          ...(result !== undefined ? { result } : {})
        }
        break
    }
    n.cached = undefined
    const wasCounted = n.counted
    n.counted = false
    const score = event.outcome === "Succeeded" ? result?.score : undefined
    const u = score === undefined ? undefined : Task.utility(this.task, score)
    // A cancelled trial says nothing about its strategy: it only releases its virtual loss.
    const visit = event.outcome !== "Cancelled"
    const opens = isOpen(n.state._tag) && !n.exhausted
    this.forPath(n.spec.id, (s) => {
      if (wasCounted) s.pending--
      if (visit) s.visits++
      if (opens) s.open++
      if (u !== undefined) {
        s.successes++
        s.valueSum += u
        if (u > s.bestUtility) s.bestUtility = u
      }
    })
    if (u !== undefined) {
      if (u < this.minUtility) this.minUtility = u
      if (u > this.maxUtility) {
        this.maxUtility = u
        this.bestId = n.spec.id
      }
    }
  }

  /** Every node id in proposal order. */
  ids(): IterableIterator<string> {
    return this.nodes.keys()
  }
}

/** Whether a node in this state may be expanded (when not exhausted). */
const isOpen = (tag: ExperimentNode.StateTag): boolean => tag === "Succeeded" || tag === "Failed" || tag === "Pruned"

/**
 * Fold events (starting with `RunStarted`) into a tree; `undefined` when there is no `RunStarted`.
 * Replaying any prefix of a journal gives the tree that existed at that point.
 * @since 0.1.0 @category constructors
 */
export const fold = (events: Iterable<JournalEvent.JournalEvent>): ExperimentTree | undefined => {
  let tree: ExperimentTree | undefined
  for (const e of events) {
    if (e._tag === "RunStarted") {
      if (tree === undefined) tree = ExperimentTree.empty(e.task, e.runId, e.seed)
      tree.applied++
      continue
    }
    tree?.apply(e)
  }
  return tree
}
