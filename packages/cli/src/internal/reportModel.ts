/**
 * The data behind the HTML report: the journal folded into a tree, a tidy layout of that tree,
 * the score-over-time series and the budget's limits and usage. Plain and synchronous.
 */
import { Cost, ExperimentNode, ExperimentTree, Strategy } from "@trex/core"
import type { JournalEvent, Result, Task } from "@trex/core"
import { type SettingsJson, settingsJson } from "../Status.ts"

/** One experiment as the page sees it (embedded as JSON; `p` is the parent's index or -1). */
export interface NodeData {
  readonly id: string
  readonly p: number
  readonly depth: number
  /** `Interrupted`: in flight when its run stopped (no controller writes the run). */
  readonly state: ExperimentNode.StateTag | "Interrupted"
  readonly score?: number
  readonly x: number
  readonly y: number
  readonly strategy: Strategy.StrategyEncoded
  readonly fingerprint: string
  readonly prior?: number
  readonly proposedAt: number
  readonly finishedAt?: number
  readonly metrics: Record<string, number>
  readonly curves: ReadonlyArray<Series>
  readonly cost: Cost.Cost
  readonly failure?: Result.Failure
  readonly reason?: string
  readonly summary?: string
  readonly reusedFrom?: string
  /** Why its job waits in its backend's queue (a trial in flight, while a controller runs the run). */
  readonly waiting?: string
  /** Why its backend cannot be asked about its running job now (while a controller runs the run). */
  readonly unreachable?: string
  /** A drain took it out of its backend's queue: it runs on resume. */
  readonly withdrawn?: true
  readonly logs: ReadonlyArray<string>
}

/** One learning curve, stored column-wise (a 5,000-node report stays a few MB). */
export interface Series {
  readonly name: string
  readonly split: string
  readonly steps: Array<number>
  readonly values: Array<number>
}

const series = (points: ReadonlyArray<Result.MetricPoint>): ReadonlyArray<Series> => {
  const byKey = new Map<string, Series>()
  for (const p of points) {
    const key = JSON.stringify([p.name, p.split])
    let s = byKey.get(key)
    if (s === undefined) {
      s = { name: p.name, split: p.split, steps: [], values: [] }
      byKey.set(key, s)
    }
    s.steps.push(p.step)
    s.values.push(Number(p.value.toPrecision(6)))
  }
  return Array.from(byKey.values())
}

/** A finished trial on the score charts: its trial number, GPU-hours spent so far, score. */
export interface TrialPoint {
  readonly node: number
  readonly trial: number
  readonly gpuHours: number
  readonly score?: number
}

/** One budget line: what was used and the limit, if any (same unit). */
export interface BudgetRow {
  readonly label: string
  readonly used: number
  readonly limit?: number
  readonly unit: string
}

export interface InsightData {
  readonly text: string
  /** Evidence node ids and their indices (-1 for an id this journal does not hold). */
  readonly evidence: ReadonlyArray<{ readonly id: string; readonly node: number }>
}

export interface ReportModel {
  readonly task: Task.Task
  readonly runId: string
  readonly startedAt: number
  readonly finished?: { readonly reason: string; readonly at: number }
  readonly nodes: ReadonlyArray<NodeData>
  /** Index of the best node, or -1. */
  readonly best: number
  readonly bestStrategy?: Strategy.StrategyEncoded
  /** Layout of the virtual root and the tree's bounding box. */
  readonly root: { readonly x: number; readonly y: number }
  readonly bounds: Bounds
  /**
   * Small trees are drawn top-down with a score label per node; large ones radially around
   * the root (search trees are broad and shallow, so a radial layout fills the view).
   */
  readonly labelled: boolean
  readonly trials: ReadonlyArray<TrialPoint>
  readonly budget: ReadonlyArray<BudgetRow>
  readonly insights: ReadonlyArray<InsightData>
  /** The researcher's analysis of the task, when the journal holds one: its summary and risks. */
  readonly analysis?: { readonly summary: string; readonly risks: ReadonlyArray<string> }
  /** Min and max score over succeeded nodes. */
  readonly scoreRange?: { readonly min: number; readonly max: number }
  /** The settings the run takes and those its resumes set, as `trex status --json` gives them. */
  readonly settings: SettingsJson
}

/** Trees up to this size get score labels and roomier spacing. */
const LABEL_LIMIT = 300

const LOG_TAIL = 200

export interface Bounds {
  readonly x: number
  readonly y: number
  readonly w: number
  readonly h: number
}

interface Point {
  x: number
  y: number
}

/**
 * Tidy layered layout in O(n): leaves take consecutive slots (children in proposal order), a
 * parent sits centred between its first and last child, depth sets the row. Top-down for
 * small trees; for large ones the slots wrap around the root and depth is the radius.
 */
const layout = (
  tree: ExperimentTree.TreeView,
  radial: boolean
): { readonly pos: Map<string, Point>; readonly bounds: Bounds } => {
  const pos = new Map<string, Point>()
  let slot = 0
  let leafDepths = 0
  // Iterative post-order: a search tree can be thousands of levels deep.
  const stack: Array<{ readonly id: string; readonly depth: number; expanded: boolean }> = [
    { id: ExperimentNode.ROOT, depth: 0, expanded: false }
  ]
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!
    const kids = top.id === ExperimentNode.ROOT ? tree.root.children : tree.get(top.id)?.children ?? []
    if (!top.expanded && kids.length > 0) {
      top.expanded = true
      for (let k = kids.length - 1; k >= 0; k--) stack.push({ id: kids[k]!, depth: top.depth + 1, expanded: false })
      continue
    }
    stack.pop()
    if (kids.length === 0) leafDepths += top.depth
    const x = kids.length === 0 ? slot++ : (pos.get(kids[0]!)!.x + pos.get(kids[kids.length - 1]!)!.x) / 2
    pos.set(top.id, { x, y: top.depth })
  }
  // Radial: space the rings so that leaves at their mean depth sit about 12 units apart.
  const ring = Math.max(40, (12 * slot) / (2 * Math.PI * Math.max(1, leafDepths / slot)))
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity
  for (const p of pos.values()) {
    if (radial) {
      const angle = (2 * Math.PI * (p.x + 0.5)) / slot
      const r = p.y * ring
      p.x = r * Math.sin(angle)
      p.y = -r * Math.cos(angle)
    } else {
      p.x *= 44
      p.y *= 72
    }
    minX = Math.min(minX, p.x)
    minY = Math.min(minY, p.y)
    maxX = Math.max(maxX, p.x)
    maxY = Math.max(maxY, p.y)
  }
  return { pos, bounds: { x: minX, y: minY, w: Math.max(1, maxX - minX), h: Math.max(1, maxY - minY) } }
}

/** Seconds the run was active: from each start or resume to the last event before the next. */
const activeSeconds = (entries: ReadonlyArray<JournalEvent.Entry>): number => {
  let total = 0
  let from: number | undefined
  let last = 0
  for (const { event } of entries) {
    if (event._tag === "RunStarted" || event._tag === "RunResumed") {
      if (from !== undefined) total += last - from
      from = event.at
    }
    last = event.at
  }
  if (from !== undefined) total += last - from
  return Math.max(0, total / 1000)
}

const budgetRows = (
  task: Task.Task,
  entries: ReadonlyArray<JournalEvent.Entry>,
  nodes: ReadonlyArray<NodeData>
): ReadonlyArray<BudgetRow> => {
  const admitted = new Set<string>()
  let charged: Cost.Cost | undefined
  for (const { event } of entries) {
    if (event._tag === "NodeAdmitted" || event._tag === "JobSubmitted") admitted.add(event.nodeId)
    else if (event._tag === "BudgetCharged") charged = Cost.add(charged ?? Cost.zero, event.cost)
  }
  // Runs that journal no charges (older or hand-made journals) still show what their trials cost.
  const spent = charged ?? nodes.reduce((acc, n) => Cost.add(acc, n.cost), Cost.zero)
  const b = task.budget
  const row = (label: string, used: number, unit: string, limit: number | undefined): BudgetRow =>
    limit === undefined ? { label, used, unit } : { label, used, unit, limit }
  return [
    row("Trials", admitted.size, "", b.maxTrials),
    row("GPU-hours", spent.gpuSeconds / 3600, "h", b.gpuHours),
    row("Dollars", spent.dollars, "$", b.dollars),
    row("Tokens", Cost.tokens(spent), "", b.tokens),
    row("Wall clock", activeSeconds(entries) / 3600, "h", b.wallClockHours)
  ]
}

const nodeData = (
  n: ExperimentTree.NodeView,
  index: ReadonlyMap<string, number>,
  at: { x: number; y: number },
  logs: ReadonlyArray<string>,
  stopped: boolean
): NodeData => {
  const result = ExperimentNode.result(n)
  const s = n.state
  const score = ExperimentNode.score(n)
  return {
    id: n.id,
    p: index.get(n.parent) ?? -1,
    depth: n.depth,
    state: stopped && ExperimentNode.isPending(n) ? "Interrupted" : s._tag,
    x: at.x,
    y: at.y,
    strategy: Strategy.encode(n.strategy),
    fingerprint: n.fingerprint,
    proposedAt: n.proposedAt,
    metrics: result?.metrics ?? {},
    // Finished trials carry their full curves; running ones the points reported so far.
    curves: series(result !== undefined && result.curves.length > 0 ? result.curves : n.curve),
    cost: result?.cost ?? Cost.zero,
    logs: logs.slice(-LOG_TAIL),
    ...(score !== undefined ? { score } : {}),
    ...(n.prior !== undefined ? { prior: n.prior } : {}),
    ...("finishedAt" in s ? { finishedAt: s.finishedAt } : {}),
    // a pruned trial's job was cancelled: its reason says why, the cancel is no failure of its own
    ...(result?.failure !== undefined && s._tag !== "Pruned" ? { failure: result.failure } : {}),
    ...("reason" in s ? { reason: s.reason } : {}),
    ...(result?.summary !== undefined ? { summary: result.summary } : {}),
    ...(result?.reusedFrom !== undefined ? { reusedFrom: result.reusedFrom } : {}),
    // a wait is news only while a controller runs the run
    ...(n.waiting !== undefined && !stopped ? { waiting: n.waiting } : {}),
    ...(n.unreachable !== undefined && !stopped ? { unreachable: n.unreachable } : {}),
    ...(n.withdrawn === true ? { withdrawn: true as const } : {})
  }
}

/** Fold a run's journal into the report's model; `undefined` when the journal holds no run. */
export const build = (
  entries: ReadonlyArray<JournalEvent.Entry>,
  logs: Readonly<Record<string, ReadonlyArray<string>>> = {},
  stopped = false
): ReportModel | undefined => {
  const folded = ExperimentTree.fold(entries.map((e) => e.event))
  if (folded === undefined) return undefined
  const tree = folded.view
  const ids = Array.from(folded.ids())
  const labelled = ids.length <= LABEL_LIMIT
  const { bounds, pos } = layout(tree, !labelled)
  const index = new Map(ids.map((id, i) => [id, i] as const))
  const nodes = ids.map((id) => nodeData(tree.get(id)!, index, pos.get(id)!, logs[id] ?? [], stopped))

  const trials: Array<TrialPoint> = []
  let gpuSeconds = 0
  let startedAt = 0
  let finished: { reason: string; at: number } | undefined
  for (const { event } of entries) {
    if (event._tag === "RunStarted") startedAt = event.at
    else if (event._tag === "RunFinished") finished = { reason: event.reason, at: event.at }
    else if (event._tag === "NodeFinished" && event.outcome !== "Cancelled") {
      const i = index.get(event.nodeId)
      if (i === undefined) continue
      gpuSeconds += event.result?.cost.gpuSeconds ?? 0
      const score = event.outcome === "Succeeded" ? event.result?.score : undefined
      const point = { node: i, trial: trials.length + 1, gpuHours: gpuSeconds / 3600 }
      trials.push(score === undefined ? point : { ...point, score })
    }
  }
  const range = tree.utilityRange()
  const best = tree.best()
  const bestIndex = best === undefined ? -1 : index.get(best.id)!
  const toScore = (u: number) => (folded.task.metric.direction === "maximize" ? u : -u)
  const scoreRange = range === undefined ? undefined : {
    min: Math.min(toScore(range.min), toScore(range.max)),
    max: Math.max(toScore(range.min), toScore(range.max))
  }
  const started = entries.find((e) => e.event._tag === "RunStarted")!.event as JournalEvent.Of<"RunStarted">
  return {
    task: folded.task,
    runId: folded.runId,
    settings: settingsJson({ started, entries }),
    startedAt,
    nodes,
    best: bestIndex,
    root: pos.get(ExperimentNode.ROOT)!,
    bounds,
    labelled,
    trials,
    budget: budgetRows(folded.task, entries, nodes),
    insights: tree.insights.map((i) => ({
      text: i.text,
      evidence: i.evidence.map((id) => ({ id, node: index.get(id) ?? -1 }))
    })),
    ...(finished !== undefined ? { finished } : {}),
    ...(tree.analysis !== undefined ? { analysis: { summary: tree.analysis.summary, risks: tree.analysis.risks } } : {}),
    ...(bestIndex >= 0 ? { bestStrategy: nodes[bestIndex]!.strategy } : {}),
    ...(scoreRange !== undefined ? { scoreRange } : {})
  }
}
