import { ExperimentNode, type ExperimentTree, type Insight, SearchSpace, Task } from "@trex/core"

/** What an insight says about one parameter value, machine-readably (kept in `Insight.data`). */
export interface ValueEffect {
  readonly path: string
  readonly value: SearchSpace.Value
  /** Comparisons where the value won, out of `pairs`. */
  readonly wins: number
  readonly pairs: number
  /** Mean utility difference (value side minus the other); positive is better. */
  readonly delta: number
}

interface Tally {
  wins: number
  pairs: number
  deltaSum: number
  evidence: Set<string>
}

/** The one declared parameter on which two strategies differ, or undefined (none or several). */
const soleDifference = (space: SearchSpace.SearchSpace, a: ExperimentTree.NodeView, b: ExperimentTree.NodeView) => {
  let found: SearchSpace.Parameter | undefined
  for (const p of space.parameters) {
    if (SearchSpace.get(a.strategy, p.path) !== SearchSpace.get(b.strategy, p.path)) {
      if (found !== undefined) return undefined
      found = p
    }
  }
  return found
}

const fmt = (v: number) => Number(v.toPrecision(3)).toString()

/**
 * Statistics over finished results: every parent-child and sibling pair of succeeded nodes
 * that differ in exactly one declared parameter is a controlled comparison. A value that wins
 * at least 70% (or at most 30%) of at least `minPairs` comparisons becomes an insight.
 * Already-known insights (same id) are not repeated.
 */
export const distillInsights = (
  tree: ExperimentTree.TreeView,
  space: SearchSpace.SearchSpace,
  now: number,
  minPairs: number
): Array<Insight.Insight> => {
  const scored: Array<ExperimentTree.NodeView> = []
  for (const n of tree.nodes()) if (ExperimentNode.score(n) !== undefined) scored.push(n)
  const byId = new Map(scored.map((n) => [n.id, n]))
  const tallies = new Map<string, { path: string; value: SearchSpace.Value; t: Tally }>()
  const compare = (a: ExperimentTree.NodeView, b: ExperimentTree.NodeView) => {
    const p = soleDifference(space, a, b)
    if (p === undefined) return
    const ua = Task.utility(tree.task, ExperimentNode.score(a)!)
    const ub = Task.utility(tree.task, ExperimentNode.score(b)!)
    for (const [side, other, us, uo] of [[a, b, ua, ub], [b, a, ub, ua]] as const) {
      const value = SearchSpace.get(side.strategy, p.path) as SearchSpace.Value
      const key = `${p.path}=${JSON.stringify(value)}`
      const entry = tallies.get(key) ?? { path: p.path, value, t: { wins: 0, pairs: 0, deltaSum: 0, evidence: new Set() } }
      entry.t.pairs++
      if (us > uo) entry.t.wins++
      entry.t.deltaSum += us - uo
      entry.t.evidence.add(side.id).add(other.id)
      tallies.set(key, entry)
    }
  }
  const seenPairs = new Set<string>()
  for (const n of scored) {
    const parent = byId.get(n.parent)
    if (parent !== undefined) compare(parent, n)
    for (const sibId of tree.get(n.parent)?.children ?? tree.root.children) {
      if (sibId <= n.id) continue
      const sib = byId.get(sibId)
      const pairKey = `${n.id}|${sibId}`
      if (sib === undefined || seenPairs.has(pairKey)) continue
      seenPairs.add(pairKey)
      compare(n, sib)
    }
  }
  const known = new Set(tree.insights.map((i) => i.id))
  const out: Array<Insight.Insight> = []
  for (const [key, { path, value, t }] of tallies) {
    if (t.pairs < minPairs) continue
    const rate = t.wins / t.pairs
    const delta = t.deltaSum / t.pairs
    const helps = rate >= 0.7 && delta > 0
    const hurts = rate <= 0.3 && delta < 0
    if (!helps && !hurts) continue
    const id = `heuristic:${key}:${helps ? "helps" : "hurts"}`
    if (known.has(id)) continue
    const shown = typeof value === "number" ? fmt(value) : String(value)
    const rawDelta = tree.task.metric.direction === "maximize" ? delta : -delta
    const text = helps
      ? `${path}=${shown} beat its comparison in ${t.wins} of ${t.pairs} pairs, ${rawDelta >= 0 ? "+" : ""}${fmt(rawDelta)} ${tree.task.metric.name} on average`
      : `${path}=${shown} lost ${t.pairs - t.wins} of ${t.pairs} comparisons, ${rawDelta >= 0 ? "+" : ""}${fmt(rawDelta)} ${tree.task.metric.name} on average`
    const data: ValueEffect = { path, value, wins: t.wins, pairs: t.pairs, delta }
    out.push({ id, text, evidence: [...t.evidence].sort(), createdAt: now, data: { ...data } })
  }
  return out
}
