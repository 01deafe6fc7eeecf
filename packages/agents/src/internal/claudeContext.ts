/**
 * The text Claude sees about a run: the task (with its search space), budget, insights, best results, the path from
 * the root, the parent's existing children and other nodes — packed greedily into a token budget (tokens estimated
 * by script and runs of a kind of character, `Model.estimatedTokens`: a Chinese character about a token, a run of
 * punctuation at least one). Each node has a full form (its strategy as JSON) and a condensed one-liner; older and less relevant nodes are condensed first, then dropped.
 */
import { Budget, ExperimentNode, type ExperimentTree, Strategy, Task } from "@trex/core"
import type { Researcher } from "@trex/core"
import { estimatedTokens } from "../model/Model.ts"
import * as Space from "./spaceCheck.ts"

const fmt = (x: number): string => (Number.isInteger(x) ? String(x) : x.toPrecision(4))

const outcome = (node: ExperimentTree.NodeView): string => {
  const r = ExperimentNode.result(node)
  switch (node.state._tag) {
    case "Succeeded":
      return `succeeded score=${r?.score === undefined ? "none" : fmt(r.score)}`
    case "Failed":
      return `failed ${r?.failure?.kind ?? ""}: ${(r?.failure?.message ?? "").slice(0, 160)}`
    case "Pruned":
      return `pruned (${node.state.reason})`
    case "Cancelled":
      return "cancelled"
    default:
      return node.state._tag.toLowerCase()
  }
}

const executable = (s: Strategy.Strategy) => {
  const e = Strategy.encode(s)
  return { data: e.data, training: e.training, evaluation: e.evaluation }
}

/** A node with its whole executable strategy and rationale. */
export const fullNode = (node: ExperimentTree.NodeView): string =>
  `- ${node.id} (parent ${node.parent}, ${outcome(node)})\n  strategy: ${JSON.stringify(executable(node.strategy))}` +
  (node.strategy.rationale.length > 0 ? `\n  rationale: ${node.strategy.rationale.slice(0, 300)}` : "")

/** A node in one line: outcome and the main knobs. */
export const condensedNode = (node: ExperimentTree.NodeView): string => {
  const t = node.strategy.training
  const sources = node.strategy.data.sources.map((s) => s.name).join("+")
  return `- ${node.id} (${outcome(node)}) ${t.method} lr=${fmt(t.learningRate)} epochs=${fmt(t.epochs)} batch=${t.batchSize}` +
    `${t.lora ? ` r=${t.lora.rank}` : ""} data=${sources} format=${node.strategy.data.format}`
}

interface Item {
  readonly full: string
  readonly short?: string
}

/** Pack sections in priority order into `maxTokens`; the rest is summarised as a count. */
const pack = (sections: ReadonlyArray<{ readonly title: string; readonly items: ReadonlyArray<Item> }>, maxTokens: number): string => {
  let used = 0
  const out: Array<string> = []
  let omitted = 0
  for (const section of sections) {
    if (section.items.length === 0) continue
    const lines: Array<string> = []
    for (const item of section.items) {
      const cost = estimatedTokens(item.full) + 1
      if (used + cost <= maxTokens) {
        lines.push(item.full)
        used += cost
      } else if (item.short !== undefined && used + estimatedTokens(item.short) + 1 <= maxTokens) {
        lines.push(item.short)
        used += estimatedTokens(item.short) + 1
      } else {
        omitted++
      }
    }
    if (lines.length > 0) out.push(`## ${section.title}\n${lines.join("\n")}`)
  }
  if (omitted > 0) out.push(`(${omitted} more nodes omitted to fit the context budget)`)
  return out.join("\n\n")
}

/** The task, for every prompt (the cached prefix). */
export const describeTask = (task: Task.Task): string =>
  [
    `# Task ${task.name}`,
    `Objective: ${task.objective}`,
    `Metric: ${task.metric.name} (${task.metric.direction}${task.metric.target !== undefined ? `, target ${task.metric.target}` : ""})`,
    task.baseModel ? `Base model: ${task.baseModel.name}${task.baseModel.parameters ? ` (${task.baseModel.parameters})` : ""}` : "",
    task.datasets.length > 0
      ? `Datasets:\n${task.datasets.map((d) => `- ${d.name}${d.description ? `: ${d.description}` : ""}${d.splits ? ` [${d.splits.join(", ")}]` : ""}`).join("\n")}`
      : "",
    Object.keys(task.constraints).length > 0 ? `Constraints: ${JSON.stringify(task.constraints)}` : "",
    task.defaultStrategy ? `Default strategy: ${JSON.stringify(executable(task.defaultStrategy))}` : "",
    task.searchSpace ? Space.describeSpace(task.searchSpace) : "",
    `Budget: ${JSON.stringify(task.budget)}`
  ].filter((l) => l.length > 0).join("\n")

const remaining = (budget: Budget.Budget, usage: Budget.Usage): string => {
  const parts = [`trials run ${usage.trials}${budget.maxTrials !== undefined ? ` of ${budget.maxTrials}` : ""}`]
  if (budget.gpuHours !== undefined) parts.push(`GPU hours ${fmt(usage.spent.gpuSeconds / 3600)} of ${budget.gpuHours}`)
  if (budget.dollars !== undefined) parts.push(`dollars ${fmt(usage.spent.dollars)} of ${budget.dollars}`)
  if (budget.wallClockHours !== undefined) parts.push(`hours ${fmt(usage.elapsedSeconds / 3600)} of ${budget.wallClockHours}`)
  return parts.join("; ")
}

const bestNodes = (tree: ExperimentTree.TreeView, k: number): Array<ExperimentTree.NodeView> =>
  [...tree.nodes()]
    .filter((n) => ExperimentNode.score(n) !== undefined)
    .sort((a, b) => Task.utility(tree.task, ExperimentNode.score(b)!) - Task.utility(tree.task, ExperimentNode.score(a)!))
    .slice(0, k)

/** What the model sees when proposing children of `context.parentId`. */
export const describeProposal = (context: Researcher.ProposalContext, n: number, maxTokens: number): string => {
  const { tree } = context
  const path = context.parentId === ExperimentNode.ROOT ? [] : tree.path(context.parentId)
  const children = tree.children(context.parentId)
  const best = bestNodes(tree, 5)
  const shown = new Set([...path, ...children, ...best].map((x) => x.id))
  const rest = [...tree.nodes()].filter((x) => !shown.has(x.id) && ExperimentNode.isFinished(x)).reverse()
  const node = (x: ExperimentTree.NodeView): Item => ({ full: fullNode(x), short: condensedNode(x) })
  const body = pack([
    { title: "Budget", items: [{ full: remaining(tree.task.budget, context.usage) }] },
    { title: "Analysis", items: [{ full: context.analysis.summary, short: context.analysis.summary.slice(0, 400) }] },
    { title: "Insights so far", items: tree.insights.slice(-20).reverse().map((i) => ({ full: `- ${i.text} (evidence ${i.evidence.join(", ")})` })) },
    { title: "Path from the root to the node being expanded (nearest last)", items: path.map((x, i) => i >= path.length - 3 ? node(x) : { full: condensedNode(x) }) },
    { title: "Best results so far", items: best.map(node) },
    { title: `Existing children of ${context.parentId}`, items: children.map(node) },
    { title: "Other finished experiments (most recent first)", items: rest.map((x) => ({ full: condensedNode(x) })) }
  ], maxTokens)
  return `${body}\n\nPropose ${n} new, distinct strategies as children of ${context.parentId === ExperimentNode.ROOT ? "the root (first experiments)" : `node ${context.parentId}`}. ` +
    `Each must differ in its executable part from every experiment above. Give each a rationale and a prior in [0, 1] for how likely it is to beat the best so far.`
}

/** What the model sees when distilling insights. */
export const describeDistill = (context: Researcher.DistillContext, maxTokens: number): string => {
  const finished = [...context.tree.nodes()].filter(ExperimentNode.isFinished).reverse()
  const best = bestNodes(context.tree, 5)
  const body = pack([
    { title: "Existing insights (do not repeat them)", items: context.tree.insights.map((i) => ({ full: `- ${i.text}` })) },
    { title: "Best results", items: best.map((x) => ({ full: fullNode(x), short: condensedNode(x) })) },
    { title: "Finished experiments (most recent first)", items: finished.map((x) => ({ full: condensedNode(x) })) }
  ], maxTokens)
  return `${body}\n\nState new insights (patterns that explain the results) with the ids of the nodes that support each.`
}
