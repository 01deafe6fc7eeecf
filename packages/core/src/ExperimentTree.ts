/**
 * The experiment tree as a fold over journal events. Each node keeps the statistics that
 * search policies read — visits, value sum, successes, best score below it, pending trials
 * (virtual loss) — updated along the path to the root in O(depth) per event, one 64-byte line
 * of a typed array per level.
 *
 * Policies and researchers receive it through the read-only {@link TreeView}.
 *
 * @since 0.1.0
 */
import * as ExperimentNode from "./ExperimentNode.ts"
import * as Fingerprint from "./Fingerprint.ts"
import type * as Insight from "./Insight.ts"
import type * as JournalEvent from "./JournalEvent.ts"
import type * as Researcher from "./Researcher.ts"
import type * as Result from "./Result.ts"
import * as Task from "./Task.ts"

/**
 * Search statistics of a node and its subtree. A view's `stats` is live and backed by the tree's
 * typed arrays (its fields are getters, so `{ ...stats }` copies nothing): read its fields, or
 * copy them with {@link copyStats}.
 * @since 0.1.0 @category models
 */
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

/**
 * A node as policies see it: spec, state, statistics, children. Views are live: the tree updates
 * them in place as events arrive (a look costs no copy), so copy what must outlast the next event.
 * @since 0.1.0 @category models
 */
export interface NodeView extends ExperimentNode.ExperimentNode {
  readonly stats: Stats
  readonly children: ReadonlyArray<string>
  /** Latest progress fraction while running. */
  readonly progress?: number
  /** Why its job waits in its backend's queue, while it does (a `JobState` of `Pending`). */
  readonly waiting?: string | undefined
  /**
   * Why its backend cannot be asked about its job now (the engine, controller or host does not
   * answer), while that lasts (a `JobState` of `Running` with a `reason`): the job is taken to run on.
   */
  readonly unreachable?: string | undefined
  /** Taken out of its backend's queue by a draining run (`JobState` `Withdrawn`): its job is cancelled; it runs on resume. */
  readonly withdrawn?: boolean | undefined
  /** Why a scheduler stopped it, while its job is being cancelled (a `JobState` of `Pruning`); it then ends `Pruned`. */
  readonly pruning?: string | undefined
  /** Intermediate metrics reported while running (schedulers read them). */
  readonly curve: ReadonlyArray<Result.MetricPoint>
}

/**
 * Read-only access to the tree.
 * @since 0.1.0 @category models
 */
export interface TreeView {
  /** The run's task, with the budget a resume set last (`RunResumed.budget`), if any. */
  readonly task: Task.Task
  /** The virtual root (the task before any experiment): id {@link ExperimentNode.ROOT}. */
  readonly root: RootView
  readonly size: number
  readonly get: (id: string) => NodeView | undefined
  /** The node's children (the root's with {@link ExperimentNode.ROOT}), in proposal order; a live array, in O(1). */
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
  /**
   * The first node of a fingerprint: the one its `NodeProposed` recorded, or, for a node whose
   * mixture is not written in canonical form (`Fingerprint.mixture`), the fingerprint of its strategy
   * now (a journal written before mixtures were fingerprinted so recorded the mixture as written).
   */
  readonly byFingerprint: (fp: string) => NodeView | undefined
  /** Whether the researcher found nothing new to propose under the node (root included). */
  readonly isExhausted: (id: string) => boolean
  readonly insights: ReadonlyArray<Insight.Insight>
  /**
   * The researcher's analysis of the task, once journaled (`AnalysisCompleted`, before the first
   * proposal); `undefined` before that, and in journals written before trex journaled it.
   */
  readonly analysis: Researcher.Analysis | undefined
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

// ---- statistics storage -----------------------------------------------------------------------
// Every node's statistics live in one Float64Array, a 64-byte line of STRIDE slots per node (the
// root at offset 0), with the offset of the parent's line in the last slot. A walk up the path
// touches one line per level and no object, so it costs a few nanoseconds per level even in a
// tree of 100k nodes (walking linked objects cost ~30 ns per level there: a cache miss each).
const VISITS = 0
const SUCCESSES = 1
const VALUE_SUM = 2
const BEST = 3
const PENDING = 4
const OPEN = 5
const PARENT = 6
const STRIDE = 8

/** The tree's statistics buffer (replaced by a larger copy as the tree grows). */
interface Storage {
  f: Float64Array
}

/** A node's statistics, read live from the tree's buffer. */
class LiveStats implements Stats {
  readonly #storage: Storage
  readonly #at: number
  constructor(storage: Storage, at: number) {
    this.#storage = storage
    this.#at = at
  }
  get visits(): number {
    return this.#storage.f[this.#at + VISITS]!
  }
  get successes(): number {
    return this.#storage.f[this.#at + SUCCESSES]!
  }
  get valueSum(): number {
    return this.#storage.f[this.#at + VALUE_SUM]!
  }
  get bestUtility(): number {
    return this.#storage.f[this.#at + BEST]!
  }
  get pending(): number {
    return this.#storage.f[this.#at + PENDING]!
  }
  get open(): number {
    return this.#storage.f[this.#at + OPEN]!
  }
  toJSON(): Stats {
    return copyStats(this)
  }
}

/**
 * A plain copy of statistics (views' `stats` are live getters).
 * @since 0.1.0 @category utils
 */
export const copyStats = (s: Stats): Stats => ({
  visits: s.visits,
  successes: s.successes,
  valueSum: s.valueSum,
  bestUtility: s.bestUtility,
  pending: s.pending,
  open: s.open
})

/** A node's view, updated in place by the tree (readers get the `NodeView` type, which is read-only). */
type LiveView = {
  -readonly [K in keyof NodeView]: NodeView[K]
}

interface MutableNode {
  readonly spec: ExperimentNode.NodeSpec
  readonly parent: MutableNode | undefined
  readonly depth: number
  /** The node's one view: live, so a change of the node costs no copy and a look costs no allocation. */
  readonly view: LiveView
  /** Offset of the node's line in the statistics buffer. */
  readonly at: number
  readonly children: Array<string>
  /** The children's views, in the order of `children`. */
  readonly childViews: Array<NodeView>
  readonly curve: Array<Result.MetricPoint>
  /** Position in `curve` of each (step, split, name); made with the first point (a node without progress reports has none). */
  curveIndex: Map<string, number> | undefined
  /** Whether this node's admission was counted in `pending` up the path. */
  counted: boolean
  exhausted: boolean
}

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
  private readonly order: Array<MutableNode> = []
  private readonly storage: Storage = { f: newBuffer(1024) }
  /** Offset of the next node's line. */
  private nextAt = STRIDE
  private readonly rootChildren: Array<string> = []
  private readonly rootChildViews: Array<NodeView> = []
  private readonly rootView: RootView
  private readonly fingerprints = new Map<string, MutableNode>()
  /**
   * Nodes not yet looked at for the fingerprint of their strategy now (see {@link alias}): done when a
   * lookup misses, so a fold that is only read (`trex status`, a report) never hashes a strategy.
   */
  private unaliased: Array<MutableNode> = []
  private readonly insightList: Array<Insight.Insight> = []
  private analysis: Researcher.Analysis | undefined
  private best: MutableNode | undefined
  private rootExhausted = false
  private range: { readonly min: number; readonly max: number } | undefined
  /**
   * While {@link fold} replays a journal: every node made (replaced ones too) and every success
   * in journal order, so the statistics are settled in one pass instead of a walk up the path
   * per event.
   */
  private deferred: { readonly made: Array<MutableNode>; readonly successes: Array<MutableNode> } | undefined
  /** Number of events applied. */
  applied = 0
  readonly view: TreeView

  private currentTask: Task.Task
  /** The run's task, with the budget a resume set last, if any. */
  get task(): Task.Task {
    return this.currentTask
  }
  readonly runId: string
  readonly seed: number

  /**
   * Index the nodes proposed since the last call by the fingerprint of their strategy now, where it is
   * not the one recorded: only a mixture not in canonical form (`Fingerprint.mixture`) can have had
   * another, recorded by a journal written before mixtures were fingerprinted in that form (hashed as
   * written). The others are hashed as written either way.
   */
  private alias(): void {
    const nodes = this.unaliased
    this.unaliased = []
    for (const node of nodes) {
      // (a node a repeated id replaced is found no more)
      if (this.nodes.get(node.spec.id) !== node) continue
      const now = Fingerprint.changed(node.spec.strategy, node.spec.fingerprint)
      if (now !== undefined && !this.fingerprints.has(now)) this.fingerprints.set(now, node)
    }
  }

  private constructor(task: Task.Task, runId: string, seed: number) {
    this.currentTask = task
    this.runId = runId
    this.seed = seed
    this.storage.f[PARENT] = -1
    this.rootView = { id: ExperimentNode.ROOT, depth: 0, stats: new LiveStats(this.storage, 0), children: this.rootChildren }
    const self = this
    const get = (id: string): NodeView | undefined => self.nodes.get(id)?.view
    this.view = {
      get task() {
        return self.currentTask
      },
      get root() {
        return self.rootView
      },
      get size() {
        return self.nodes.size
      },
      get,
      children: (id) => (id === ExperimentNode.ROOT ? self.rootChildViews : self.nodes.get(id)?.childViews ?? []),
      path: (id) => {
        const n = self.nodes.get(id)
        if (n === undefined) return []
        const out = new Array<NodeView>(n.depth)
        for (let cur: MutableNode | undefined = n; cur !== undefined; cur = cur.parent) out[cur.depth - 1] = cur.view
        return out
      },
      siblings: (id) => {
        const n = self.nodes.get(id)
        if (n === undefined) return []
        const all = n.spec.parent === ExperimentNode.ROOT ? self.rootChildViews : self.nodes.get(n.spec.parent)?.childViews ?? []
        return all.filter((c) => c.id !== id)
      },
      nodes: function*() {
        for (const n of self.nodes.values()) yield n.view
      },
      latest: (count) => {
        const from = Math.max(0, self.order.length - Math.max(0, count))
        const out = new Array<NodeView>(self.order.length - from)
        for (let i = from; i < self.order.length; i++) out[i - from] = self.order[i]!.view
        return out
      },
      frontier: () => {
        const out: Array<NodeView> = []
        for (const n of self.nodes.values()) if (ExperimentNode.isFinished(n.view)) out.push(n.view)
        return out
      },
      best: () => self.best?.view,
      isExhausted: (id) => (id === ExperimentNode.ROOT ? self.rootExhausted : self.nodes.get(id)?.exhausted === true),
      byFingerprint: (fp) => {
        const n = self.fingerprints.get(fp)
        if (n !== undefined || self.unaliased.length === 0) return n?.view
        self.alias()
        return self.fingerprints.get(fp)?.view
      },
      get insights() {
        return self.insightList
      },
      get analysis() {
        return self.analysis
      },
      utilityRange: () => self.range
    }
  }

  /** A tree for a run that has just started. */
  static empty(task: Task.Task, runId = "run", seed = 0): ExperimentTree {
    return new ExperimentTree(task, runId, seed)
  }

  /** Add `delta` to one statistic along the path to the root (root included). */
  private addUp(n: MutableNode, slot: typeof PENDING | typeof OPEN, delta: number): void {
    if (this.deferred !== undefined) return
    const f = this.storage.f
    for (let at = n.at; at !== -1; at = f[at + PARENT]!) f[at + slot] += delta
  }

  /** A line for a new node, its statistics zero, under the parent's line. */
  private newLine(parentAt: number): number {
    const at = this.nextAt
    this.nextAt += STRIDE
    let f = this.storage.f
    if (at + STRIDE > f.length) {
      const bigger = newBuffer(f.length / STRIDE * 2)
      bigger.set(f)
      this.storage.f = f = bigger
    }
    f[at + BEST] = -Infinity
    f[at + PARENT] = parentAt
    return at
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
        const at = this.newLine(parent?.at ?? 0)
        const stats = new LiveStats(this.storage, at)
        const children: Array<string> = []
        const curve: Array<Result.MetricPoint> = []
        const depth = (parent?.depth ?? 0) + 1
        const node: MutableNode = {
          spec,
          parent,
          depth,
          view: { ...spec, depth, state: proposed, stats, children, curve },
          at,
          children,
          childViews: [],
          curve,
          curveIndex: undefined,
          counted: false,
          exhausted: false
        }
        const replaced = this.nodes.get(spec.id)
        this.nodes.set(spec.id, node)
        this.deferred?.made.push(node)
        // A repeated id (never written by the explorer) replaces the node, as the id lookup does.
        if (replaced !== undefined) {
          this.order[this.order.indexOf(replaced)] = node
          const siblings = replaced.parent?.childViews ?? this.rootChildViews
          siblings[siblings.indexOf(replaced.view)] = node.view
        }
        this.order.push(node)
        ;(parent?.children ?? this.rootChildren).push(spec.id)
        ;(parent?.childViews ?? this.rootChildViews).push(node.view)
        if (!this.fingerprints.has(spec.fingerprint)) this.fingerprints.set(spec.fingerprint, node)
        this.unaliased.push(node)
        return
      }
      case "NodeAdmitted": {
        const n = this.nodes.get(event.nodeId)
        if (n === undefined || ExperimentNode.isFinished(n.view)) return
        n.view.state = queued
        if (!n.counted) {
          n.counted = true
          this.addUp(n, PENDING, 1)
        }
        return
      }
      case "JobSubmitted": {
        const n = this.nodes.get(event.nodeId)
        if (n === undefined || ExperimentNode.isFinished(n.view)) return
        n.view.state = { _tag: "Running", job: event.job, startedAt: event.at }
        // a job submitted again (a retry) reports its own state
        if (n.view.waiting !== undefined) n.view.waiting = undefined
        if (n.view.unreachable !== undefined) n.view.unreachable = undefined
        if (n.view.withdrawn !== undefined) n.view.withdrawn = undefined
        if (!n.counted) {
          n.counted = true
          this.addUp(n, PENDING, 1)
        }
        return
      }
      case "JobState": {
        const n = this.nodes.get(event.nodeId)
        if (n === undefined || n.view.state._tag !== "Running") return
        if (event.state === "Pending") n.view.waiting = event.reason ?? ExperimentNode.UNSPECIFIED_WAIT
        else if (n.view.waiting !== undefined) n.view.waiting = undefined
        // `Running` with a reason: out of touch with its job (a `Pending` says why it waits instead)
        if (event.state === "Running" && event.reason !== undefined) n.view.unreachable = event.reason
        else if (n.view.unreachable !== undefined) n.view.unreachable = undefined
        if (event.state === "Withdrawn") n.view.withdrawn = true
        if (event.state === "Pruning") n.view.pruning = event.reason ?? "stopped early by a scheduler"
        return
      }
      case "JobProgress": {
        const n = this.nodes.get(event.nodeId)
        if (n === undefined) return
        if (event.fraction !== undefined) n.view.progress = event.fraction
        // A point reported twice (stdout and metrics.jsonl, or replayed after a reattach) counts
        // once: the same step, split and name replaces the earlier value.
        for (const p of event.metrics) {
          const key = `${p.step}\u0000${p.split}\u0000${p.name}`
          const index = (n.curveIndex ??= new Map())
          const i = index.get(key)
          if (i !== undefined) n.curve[i] = p
          else {
            index.set(key, n.curve.length)
            n.curve.push(p)
          }
        }
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
        if (isOpen(n.view.state._tag)) this.addUp(n, OPEN, -1)
        return
      }
      case "InsightsDistilled":
        for (const i of event.insights) this.insightList.push(i)
        return
      case "AnalysisCompleted":
        // the explorer journals one per run, and another only for one that failed (`notes.failed`) when the
        // run then stopped because its researcher kept failing; should a journal hold more, the first is the one
        // its proposals saw
        if (this.analysis === undefined || this.analysis.notes["failed"] === true) this.analysis = event.analysis
        return
      case "RunResumed":
        if (event.budget !== undefined) this.currentTask = { ...this.currentTask, budget: event.budget }
        return
      default:
        return
    }
  }

  private finish(event: JournalEvent.Of<"NodeFinished">): void {
    const n = this.nodes.get(event.nodeId)
    if (n === undefined || ExperimentNode.isFinished(n.view)) return
    if (n.view.waiting !== undefined) n.view.waiting = undefined
    if (n.view.unreachable !== undefined) n.view.unreachable = undefined
    if (n.view.withdrawn !== undefined) n.view.withdrawn = undefined
    if (n.view.pruning !== undefined) n.view.pruning = undefined
    const at = event.at
    const result = event.result
    switch (event.outcome) {
      case "Succeeded":
        n.view.state = { _tag: "Succeeded", result: result!, finishedAt: at }
        break
      case "Failed":
        n.view.state = { _tag: "Failed", result: result!, finishedAt: at }
        break
      case "Cancelled":
        n.view.state = { _tag: "Cancelled", reason: event.reason ?? "cancelled", finishedAt: at }
        break
      case "Pruned":
        n.view.state = {
          _tag: "Pruned",
          reason: event.reason ?? "pruned",
          finishedAt: at,
          ...(result !== undefined ? { result } : {})
        }
        break
    }
    const pending = n.counted ? -1 : 0
    n.counted = false
    const score = event.outcome === "Succeeded" ? result?.score : undefined
    const u = score === undefined ? undefined : Task.utility(this.task, score)
    // A cancelled trial says nothing about its strategy: it only releases its virtual loss.
    const visit = event.outcome !== "Cancelled" ? 1 : 0
    const opens = isOpen(n.view.state._tag) && !n.exhausted ? 1 : 0
    if (this.deferred !== undefined) {
      if (u !== undefined) this.deferred.successes.push(n)
    } else {
      // One pass up the path: O(depth), one buffer line per level, no allocation.
      const f = this.storage.f
      if (u === undefined) {
        for (let at = n.at; at !== -1; at = f[at + PARENT]!) {
          f[at + PENDING] += pending
          f[at + VISITS] += visit
          f[at + OPEN] += opens
        }
      } else {
        for (let at = n.at; at !== -1; at = f[at + PARENT]!) {
          f[at + PENDING] += pending
          f[at + VISITS] += visit
          f[at + OPEN] += opens
          f[at + SUCCESSES] += 1
          f[at + VALUE_SUM] += u
          if (u > f[at + BEST]!) f[at + BEST] = u
        }
      }
    }
    if (u !== undefined) {
      const range = this.range
      if (range === undefined) {
        this.range = { min: u, max: u }
        this.best = n
      } else if (u < range.min || u > range.max) {
        this.range = { min: Math.min(range.min, u), max: Math.max(range.max, u) }
        if (u > range.max) this.best = n
      }
    }
  }

  /** Replay mode of {@link fold}: node statistics are left for {@link settle}. */
  private defer(): void {
    this.deferred = { made: [], successes: [] }
  }

  /**
   * End of a replay: the statistics every walk up the path would have made, in O(nodes) for the
   * counts and the best utility (sums and maxima of each node's own contribution, children before
   * parents) and one tight pass per success for `valueSum`, whose floating-point additions must
   * happen in journal order to give exactly the numbers of the incremental fold.
   */
  private settle(): void {
    const deferred = this.deferred
    if (deferred === undefined) return
    this.deferred = undefined
    const { made, successes } = deferred
    const f = this.storage.f
    for (const n of made) {
      const at = n.at
      const tag = n.view.state._tag
      const score = tag === "Succeeded" ? ExperimentNode.score(n.view) : undefined
      f[at + PENDING] = n.counted ? 1 : 0
      f[at + VISITS] = ExperimentNode.isFinished(n.view) && tag !== "Cancelled" ? 1 : 0
      f[at + OPEN] = isOpen(tag) && !n.exhausted ? 1 : 0
      f[at + SUCCESSES] = score === undefined ? 0 : 1
      f[at + BEST] = score === undefined ? -Infinity : Task.utility(this.task, score)
      f[at + VALUE_SUM] = 0
    }
    // a node's line comes after its parent's, so lines are summed into parents from the end
    for (let at = this.nextAt - STRIDE; at > 0; at -= STRIDE) {
      const up = f[at + PARENT]!
      f[up + PENDING] += f[at + PENDING]!
      f[up + VISITS] += f[at + VISITS]!
      f[up + OPEN] += f[at + OPEN]!
      f[up + SUCCESSES] += f[at + SUCCESSES]!
      if (f[at + BEST]! > f[up + BEST]!) f[up + BEST] = f[at + BEST]!
    }
    // the walks for valueSum run over dense arrays (a parent index and a sum per line), 8 times
    // smaller than the lines, then the sums are written back
    const lines = this.nextAt / STRIDE
    const parents = new Int32Array(lines)
    const sums = new Float64Array(lines)
    for (let i = 0; i < lines; i++) {
      const up = f[i * STRIDE + PARENT]!
      parents[i] = up === -1 ? -1 : up / STRIDE
      sums[i] = f[i * STRIDE + VALUE_SUM]!
    }
    for (const n of successes) {
      const u = Task.utility(this.task, ExperimentNode.score(n.view)!)
      for (let i = n.at / STRIDE; i !== -1; i = parents[i]!) sums[i] += u
    }
    for (let i = 0; i < lines; i++) f[i * STRIDE + VALUE_SUM] = sums[i]!
  }

  /** Every node id in proposal order. */
  ids(): IterableIterator<string> {
    return this.nodes.keys()
  }
}

const proposed: ExperimentNode.NodeState = { _tag: "Proposed" }
const queued: ExperimentNode.NodeState = { _tag: "Queued" }

const newBuffer = (lines: number): Float64Array => {
  const f = new Float64Array(lines * STRIDE)
  f[BEST] = -Infinity
  return f
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
      if (tree === undefined) {
        tree = ExperimentTree.empty(e.task, e.runId, e.seed)
        tree["defer"]()
      }
      tree.applied++
      continue
    }
    tree?.apply(e)
  }
  tree?.["settle"]()
  return tree
}
