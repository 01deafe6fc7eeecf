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
 * A parameter's value for a reader: integers whole, other numbers to 6 significant digits (rounded
 * to 3, 1024 read as 1020 and 2048 as 2050, values the space does not have).
 */
export const showValue = (v: unknown): string =>
  typeof v === "number" ? (Number.isInteger(v) ? String(v) : Number(v.toPrecision(6)).toString()) : typeof v === "string" ? v : JSON.stringify(v)

/** Running tallies for one tree: each scored node is compared once, when first seen. */
export interface Tallies {
  readonly byKey: Map<string, { path: string; value: SearchSpace.Value; t: Tally }>
  readonly processed: Set<string>
}

/** Fresh tallies. */
export const emptyTallies = (): Tallies => ({ byKey: new Map(), processed: new Set() })

/** Sibling comparisons per new node (the most recent siblings), so a wide node costs O(1) per trial. */
const SIBLINGS = 16

/**
 * Statistics over finished results: every parent-child and sibling pair of succeeded nodes
 * that differ in exactly one declared parameter is a controlled comparison. A value that wins
 * at least 70% (or at most 30%) of at least `minPairs` comparisons becomes an insight.
 * Already-known insights (same id) are not repeated. Incremental: `tallies` carries what was
 * counted before, and only nodes finished since are compared (against their parent and their
 * most recent siblings), so distilling costs O(new nodes) however large the tree grows.
 */
export const distillInsights = (
  tree: ExperimentTree.TreeView,
  space: SearchSpace.SearchSpace,
  now: number,
  minPairs: number,
  tallies: Tallies,
  window: number
): Array<Insight.Insight> => {
  const compare = (a: ExperimentTree.NodeView, b: ExperimentTree.NodeView) => {
    const p = soleDifference(space, a, b)
    if (p === undefined) return
    const ua = Task.utility(tree.task, ExperimentNode.score(a)!)
    const ub = Task.utility(tree.task, ExperimentNode.score(b)!)
    for (const [side, other, us, uo] of [[a, b, ua, ub], [b, a, ub, ua]] as const) {
      const value = SearchSpace.get(side.strategy, p.path) as SearchSpace.Value | undefined
      // a strategy that leaves the parameter unset (a default strategy without it) has no value of it to credit
      if (value === undefined) continue
      const key = `${p.path}=${JSON.stringify(value)}`
      const entry = tallies.byKey.get(key) ?? { path: p.path, value, t: { wins: 0, pairs: 0, deltaSum: 0, evidence: new Set() } }
      entry.t.pairs++
      if (us > uo) entry.t.wins++
      entry.t.deltaSum += us - uo
      entry.t.evidence.add(side.id).add(other.id)
      tallies.byKey.set(key, entry)
    }
  }
  for (const n of tree.latest(window)) {
    if (tallies.processed.has(n.id) || ExperimentNode.score(n) === undefined) continue
    const parent = tree.get(n.parent)
    if (parent !== undefined && tallies.processed.has(parent.id)) compare(parent, n)
    const siblings = tree.get(n.parent)?.children ?? tree.root.children
    let compared = 0
    for (let k = siblings.length - 1; k >= 0 && compared < SIBLINGS; k--) {
      const sibId = siblings[k]!
      if (sibId === n.id || !tallies.processed.has(sibId)) continue
      compare(n, tree.get(sibId)!)
      compared++
    }
    // children finished before their parent (a parent counted late) are compared now
    for (const childId of n.children) if (tallies.processed.has(childId)) compare(n, tree.get(childId)!)
    tallies.processed.add(n.id)
  }
  const known = new Set(tree.insights.map((i) => i.id))
  const out: Array<Insight.Insight> = []
  for (const [key, { path, value, t }] of tallies.byKey) {
    if (t.pairs < minPairs) continue
    const rate = t.wins / t.pairs
    const delta = t.deltaSum / t.pairs
    const helps = rate >= 0.7 && delta > 0
    const hurts = rate <= 0.3 && delta < 0
    if (!helps && !hurts) continue
    const id = `heuristic:${key}:${helps ? "helps" : "hurts"}`
    if (known.has(id)) continue
    const shown = showValue(value)
    const rawDelta = tree.task.metric.direction === "maximize" ? delta : -delta
    const text = helps
      ? `${path}=${shown} beat its comparison in ${t.wins} of ${t.pairs} pairs, ${rawDelta >= 0 ? "+" : ""}${fmt(rawDelta)} ${tree.task.metric.name} on average`
      : `${path}=${shown} lost ${t.pairs - t.wins} of ${t.pairs} comparisons, ${rawDelta >= 0 ? "+" : ""}${fmt(rawDelta)} ${tree.task.metric.name} on average`
    const data: ValueEffect = { path, value, wins: t.wins, pairs: t.pairs, delta }
    out.push({ id, text, evidence: [...t.evidence].sort(), createdAt: now, data: { ...data } })
  }
  return out
}
