/**
 * The report's HTML document: header, tree and details panel, charts, budget, insights and
 * the best strategy, with the stylesheet, the page script and the embedded data inline.
 */
import * as Status from "../Status.ts"
import type { BudgetRow, ReportModel } from "./reportModel.ts"
import { STYLE } from "./reportStyle.ts"
import { SCRIPT } from "./reportScript.ts"
import { colour, escapeHtml, fmt, inertJson, scoreChart, treeSvg, visibleControls } from "./reportSvg.ts"
import * as Untrusted from "./untrusted.ts"

/**
 * JSON for a `<script type="application/json">`: every `<` escaped, so no `</script` or
 * `<!--` in untrusted strings can end the element early.
 */
export const embedJson = (value: unknown): string =>
  JSON.stringify(value).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029")

// the wall clock as `trex status` and report.md give it (`16s`, `4m05s`, `1h02m`): in whole minutes, a short run read `0m`
const amount = (row: BudgetRow, v: number): string =>
  row.label === "Wall clock" ? Status.duration(v * 3600)
  : row.unit === "$" ? `$${v.toFixed(2)}`
  : row.unit === "h" ? `${v.toFixed(v < 10 ? 2 : 1)} h`
  : Math.round(v).toLocaleString("en-US")

const budgetHtml = (rows: ReadonlyArray<BudgetRow>): string =>
  rows.map((row) => {
    const pct = row.limit === undefined ? undefined : Math.min(100, (100 * row.used) / row.limit)
    const limit = row.limit === undefined ? ` <span class="muted">no limit</span>` : ` / ${escapeHtml(amount(row, row.limit))}`
    const bar = pct === undefined
      ? `<div class="bar none"></div>`
      : `<div class="bar${pct >= 100 ? " full" : pct >= 80 ? " high" : ""}"><span style="width:${pct.toFixed(1)}%"></span></div>`
    return `<div class="budget-row" data-budget="${escapeHtml(row.label)}"><div class="budget-label">${
      escapeHtml(row.label)
    }</div><div class="budget-value"><b>${escapeHtml(amount(row, row.used))}</b>${limit}</div>${bar}</div>`
  }).join("")

const insightsHtml = (model: ReportModel): string =>
  model.insights.length === 0
    ? `<p class="muted">No insights were distilled in this run.</p>`
    : `<ol class="insights">${
      model.insights.map((i) =>
        `<li><p>${escapeHtml(i.text)}</p>${
          i.evidence.length === 0 ? "" : `<div class="evidence"><span class="muted">Evidence</span> ${
            i.evidence.map((e) =>
              e.node < 0
                ? `<span class="chip missing">${escapeHtml(e.id)}</span>`
                : `<a href="#" class="chip node-link" data-node="${e.node}">${escapeHtml(e.id)}</a>`
            ).join(" ")
          }</div>`
        }</li>`
      ).join("")
    }</ol>`

/** The researcher's analysis, short: the summary (cut at 600 characters, whole in the tooltip) and the risks (each cut at 200, all at 600). */
const analysisHtml = (model: ReportModel): string => {
  const a = model.analysis
  if (a === undefined || a.summary.trim() === "") return ""
  // one line, as trex status shows it, but with its controls shown as in the rest of the page
  const summary = Untrusted.line(visibleControls(a.summary))
  const short = Untrusted.line(summary, 600)
  const riskText = a.risks.map((r) => Untrusted.line(visibleControls(r), 200)).join("; ")
  const risks = a.risks.length === 0 ? "" : ` <span class="muted">Risks:</span> ${escapeHtml(Untrusted.line(riskText, 600))}`
  return `<p class="analysis" title="${escapeHtml(summary)}"><span class="muted">Analysis</span> ${escapeHtml(short)}${risks}</p>`
}

/**
 * The settings the run takes (`trex status --json`'s `settings`), each with its value as JSON, and each that a resume
 * set for the run in `trex status`'s words; nothing for a run that recorded none.
 */
const settingsHtml = (model: ReportModel): string => {
  const { settingOverrides, settings } = model.settings
  const keys = Object.keys(settings)
  if (keys.length === 0) return ""
  const overridden = new Set(settingOverrides.map((o) => o.key))
  // a key as the page shows it: cut, as other journal text is (an edited journal's key may be huge, and it is written twice a row)
  const key = (k: string) => escapeHtml(Untrusted.line(k, 60))
  return `<section class="card wide settings-card"><h2>Settings</h2><p class="muted">The settings the run takes, as the next <code>trex resume</code> reads them.</p>${
    settingOverrides.map((o) => `<p class="override" data-setting="${key(o.key)}">Setting: ${escapeHtml(Status.settingOverrideText(o))}</p>`).join("")
  }<dl class="kv settings">${
    keys.map((k) =>
      `<dt${overridden.has(k) ? ` class="overridden"` : ""} data-setting="${key(k)}">${key(k)}</dt><dd${
        overridden.has(k) ? ` class="overridden"` : ""
      } data-setting="${key(k)}">${escapeHtml(Status.settingValue(settings[k]))}</dd>`
    ).join("")
  }</dl></section>`
}

const count = (model: ReportModel, state: string): number => model.nodes.filter((n) => n.state === state).length

/** How the page shows a run's state: `stopped` (no controller writes it), and the journal's `damage`. */
export interface RunState {
  readonly stopped?: boolean
  readonly damage?: string
  /** Why the jobs' own log lines are left out. */
  readonly logsWithheld?: string
}

const headerHtml = (model: ReportModel, state: RunState): string => {
  const t = model.task
  const best = model.best >= 0 ? model.nodes[model.best]! : undefined
  const chip = (label: string, value: string) => `<span class="chip"><span class="muted">${label}</span> ${escapeHtml(value)}</span>`
  const interrupted = count(model, "Interrupted")
  const open = interrupted + count(model, "Proposed") + count(model, "Queued") + count(model, "Running")
  const status = model.finished !== undefined
    ? `finished: ${model.finished.reason}${
      state.damage !== undefined ? ""
      : interrupted > 0 ? " (trex resume runs the trials it had in flight)"
      // a stop with nothing in flight: the run goes on from where it stopped, as trex status says
      : model.finished.reason === "stopped by request" ? " (trex resume continues it)"
      : ""
    }`
    : state.damage !== undefined
    ? "stopped at a damaged journal entry (it cannot be resumed)"
    : state.stopped === true
    ? "stopped before it finished (trex resume continues it)"
    : "in progress"
  const stats: ReadonlyArray<readonly [string, number, string]> = [
    ["nodes", model.nodes.length, ""],
    ["succeeded", count(model, "Succeeded"), ""],
    ["failed", count(model, "Failed"), "fail"],
    ["pruned", count(model, "Pruned"), "prune"],
    ["cancelled", count(model, "Cancelled"), "cancel"],
    // trials in flight, or interrupted when nobody runs the run (they run on resume)
    ...(open > 0 ? [[interrupted > 0 ? "interrupted" : "in flight", open, ""] as const] : [])
  ]
  return `<header>
<div class="title"><div class="brand">TREX report</div><h1>${escapeHtml(t.name)}</h1><p class="objective">${escapeHtml(t.objective)}</p>${
    analysisHtml(model)
  }${state.damage === undefined ? "" : `<p class="damage">${escapeHtml(state.damage)}. This report shows what precedes the damage.</p>`}${
    state.logsWithheld === undefined ? "" : `<p class="withheld muted">${escapeHtml(state.logsWithheld)}.</p>`
  }
<div class="chips">${chip("metric", `${t.metric.name} (${t.metric.direction})`)}${
    t.metric.target === undefined ? "" : chip("target", fmt(t.metric.target))
  }${t.baseModel === undefined ? "" : chip("base model", t.baseModel.name)}${chip("run", model.runId)}${chip("status", status)}${
    chip("started", new Date(model.startedAt).toISOString().replace("T", " ").slice(0, 16) + " UTC")
  }</div></div>
<div class="summary"><div class="best-score"><div class="muted">best ${escapeHtml(t.metric.name)}</div><div class="big">${
    best?.score === undefined ? "—" : fmt(best.score)
  }</div><div class="muted">${best === undefined ? "no successful trial" : `node <a href="#" class="node-link" data-node="${model.best}">${escapeHtml(best.id)}</a>`}</div></div>
<div class="counts">${stats.map(([label, n, cls]) => `<div class="${cls}"><b>${n}</b><span>${label}</span></div>`).join("")}</div></div>
</header>`
}

const legendHtml = (model: ReportModel): string => {
  const r = model.scoreRange
  const gradient = [0, 0.25, 0.5, 0.75, 1].map((t) => colour(t)).join(",")
  const worst = r === undefined ? "" : fmt(model.task.metric.direction === "maximize" ? r.min : r.max)
  const bestScore = r === undefined ? "" : fmt(model.task.metric.direction === "maximize" ? r.max : r.min)
  return `<div class="legend"><span class="scale"><span>${worst}</span><i style="background:linear-gradient(90deg,${gradient})"></i><span>${bestScore}</span></span>
<span><i class="dot best"></i>best</span><span><i class="dot failed"></i>failed</span><span><i class="dot pruned"></i>pruned</span><span><i class="dot cancelled"></i>cancelled</span><span><i class="dot pending"></i>in flight or stopped</span>
<span class="muted hint">drag to pan · scroll to zoom · click a node</span></div>`
}

const bestHtml = (model: ReportModel): string =>
  model.bestStrategy === undefined
    ? `<p class="muted">No trial has succeeded yet.</p>`
    : `<div class="best-bar"><span class="muted">From node <a href="#" class="node-link" data-node="${model.best}">${
      escapeHtml(model.nodes[model.best]!.id)
    }</a></span><button id="copy-best" type="button">Copy JSON</button></div><pre id="best-json">${
      escapeHtml(inertJson(JSON.stringify(model.bestStrategy, null, 2)))
    }</pre>`

/**
 * A strategy's executable part (data, training, evaluation) as the page's diff shows it: each leaf
 * at its path (`training.lora.rank`, `data.sources[0].name`) with its value as JSON text, an
 * empty object or list as `{}` or `[]`.
 */
const flatStrategy = (strategy: unknown): Map<string, string> => {
  const out = new Map<string, string>()
  const walk = (v: unknown, path: string, inArray: boolean, key: string) => {
    const at = inArray ? `${path}[${key}]` : path === "" ? key : `${path}.${key}`
    if (v === undefined) return
    if (v !== null && typeof v === "object") {
      const keys = Object.keys(v)
      if (keys.length === 0) out.set(at, Array.isArray(v) ? "[]" : "{}")
      for (const k of keys) walk((v as Record<string, unknown>)[k], at, Array.isArray(v), k)
      return
    }
    out.set(at, JSON.stringify(v))
  }
  if (strategy !== null && typeof strategy === "object") {
    const s = strategy as Record<string, unknown>
    for (const k of ["data", "training", "evaluation"]) walk(s[k], "", false, k)
  }
  return out
}

/** A node as the page's data holds it: its strategy as its changes from its parent's, no empty or zero fields. */
interface EmbeddedNode {
  readonly id: string
  readonly p: number
  /**
   * The executable strategy as changes from the parent's (from the task's default strategy for a
   * first-level node): path index (into the data's `paths`), then its value as JSON text, or
   * `null` for a path the parent has and this node does not. A 50,000-node report was 62 MB with
   * every strategy in full, a third of it strategies repeating their parent's.
   */
  readonly d: ReadonlyArray<number | string | null>
  readonly rationale?: string
  readonly [key: string]: unknown
}

const COST_KEYS = ["gpuSeconds", "wallSeconds", "dollars", "inputTokens", "outputTokens"] as const

/** Round a layout coordinate as the SVG does (one decimal). */
const coord = (v: number): number => Math.round(v * 10) / 10

/**
 * The page's data: the nodes with their strategies as changes from their parents', the paths
 * those changes name, and the task's default strategy as path-value pairs (`base`, `null` when
 * the task has none: the diff of a first-level node then shows its fields alone).
 */
const embedData = (model: ReportModel) => {
  const paths: Array<string> = []
  const index = new Map<string, number>()
  const at = (path: string) => {
    let i = index.get(path)
    if (i === undefined) {
      i = paths.length
      index.set(path, i)
      paths.push(path)
    }
    return i
  }
  const defaultStrategy = model.task.defaultStrategy
  // as the page received it before: the default strategy as JSON
  const defaultFlat = defaultStrategy === undefined ? new Map<string, string>() : flatStrategy(JSON.parse(JSON.stringify(defaultStrategy)))
  const base = defaultStrategy === undefined ? null : [...defaultFlat].flatMap(([k, v]) => [at(k), v])
  const nodes = model.nodes.map((n): EmbeddedNode => {
    const mine = flatStrategy(n.strategy)
    // the parent's strategy flattened again, rather than every node's flattening kept in memory
    const theirs = n.p >= 0 ? flatStrategy(model.nodes[n.p]!.strategy) : defaultFlat
    const d: Array<number | string | null> = []
    for (const [k, v] of mine) if (theirs.get(k) !== v) d.push(at(k), v)
    for (const k of theirs.keys()) if (!mine.has(k)) d.push(at(k), null)
    const { cost, curves, logs, metrics, strategy, x, y, ...rest } = n
    const spent = Object.fromEntries(COST_KEYS.filter((k) => cost[k] !== 0).map((k) => [k, cost[k]]))
    return {
      ...rest,
      x: coord(x),
      y: coord(y),
      d,
      ...(strategy.rationale !== undefined && strategy.rationale !== "" ? { rationale: strategy.rationale } : {}),
      ...(Object.keys(metrics).length > 0 ? { metrics } : {}),
      ...(curves.length > 0 ? { curves } : {}),
      ...(Object.keys(spent).length > 0 ? { cost: spent } : {}),
      ...(logs.length > 0 ? { logs } : {})
    }
  })
  return { nodes, paths, base, best: model.best, startedAt: model.startedAt, metric: model.task.metric }
}

/** The complete page for a run. */
export const page = (model: ReportModel, state: RunState = {}): string => {
  const data = embedData(model)
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>TREX · ${escapeHtml(model.task.name)}</title><style>${STYLE}</style></head>
<body>${headerHtml(model, state)}
<main>
<section class="card tree-card"><div class="card-head"><h2>Search tree</h2><div class="tools"><button type="button" id="fit">Fit</button><button type="button" id="goto-best"${
    model.best < 0 ? " disabled" : ""
  }>Best</button></div></div>
<div class="tree-wrap">${treeSvg(model)}<div id="tip" class="tip" hidden></div></div>${legendHtml(model)}</section>
<aside class="card details" id="details"><p class="muted">Click a node to see its strategy, metrics, curves, cost and logs.</p></aside>
<section class="card"><h2>Score over trials</h2>${scoreChart(model, (p) => p.trial, "trial", "chart-trials")}</section>
<section class="card"><h2>Score over GPU-hours</h2>${scoreChart(model, (p) => p.gpuHours, "GPU-hours", "chart-gpu")}</section>
<section class="card"><h2>Budget</h2><div class="budget">${budgetHtml(model.budget)}</div></section>
<section class="card insights-card"><h2>Insights</h2>${insightsHtml(model)}</section>
${settingsHtml(model)}
<section class="card wide"><h2>Best strategy</h2>${bestHtml(model)}</section>
</main>
<script type="application/json" id="trex-data">${embedJson(data)}</script>
<script>${SCRIPT}</script>
</body></html>
`
}

/** The page for a journal that holds no run yet. */
export const emptyPage = (): string =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>TREX report</title><style>${STYLE}</style></head>
<body><header><div class="title"><div class="brand">TREX report</div><h1>No run recorded</h1><p class="objective">This journal holds no RunStarted event yet.</p></div></header></body></html>
`
