/**
 * Server-side SVG for the report: the search tree (one path for every edge, one circle per
 * node, no listeners — the page delegates events) and the score charts. Only numbers and
 * escaped text reach the markup.
 */
import type { ReportModel, TrialPoint } from "./reportModel.ts"

// bidirectional marks, overrides and isolates: in a page they reverse the text that follows them
const BIDI = /[\u200E\u200F\u202A-\u202E\u2066-\u2069]/g
// C0 controls but tab, line feed and carriage return, DEL and C1 controls: those the terminal views take
// out (Untrusted), which a page draws as a box or not at all (NUL); the page script's `plain` has the same
const CONTROLS = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/g

const escape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`

/**
 * Text with its controls shown as `\u` escapes (`\u001b[31m`, `\u0007`), as the page's JSON shows them:
 * where a terminal view takes them out (it would act on them), the page shows that they are there.
 */
export const visibleControls = (s: string): string => s.replace(CONTROLS, escape)

/**
 * Escape text for HTML element content and double-quoted attributes, without the bidirectional
 * overrides and isolates that would show the rest of its line reversed, and with its controls as
 * `\u` escapes ({@link visibleControls}).
 */
export const escapeHtml = (s: string): string =>
  visibleControls(s.replace(BIDI, "")).replace(/[&<>"']/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === '"' ? "&quot;" : "&#39;"))

/**
 * JSON text whose bidirectional controls, DEL and C1 controls are written as `\u` escapes (JSON.stringify
 * so writes C0 controls): the same value, shown as it is.
 */
export const inertJson = (json: string): string => json.replace(BIDI, escape).replace(CONTROLS, escape)

/** A number for display: up to 4 significant digits, no exponent for ordinary magnitudes. */
export const fmt = (v: number): string => {
  if (v === 0 || !Number.isFinite(v)) return String(v)
  const a = Math.abs(v)
  if (a >= 1e6 || a < 1e-4) return v.toExponential(2)
  return String(Number(v.toPrecision(4)))
}

/** Coordinates rounded to one decimal keep a 5,000-node tree's markup small. */
const c = (v: number): string => String(Math.round(v * 10) / 10)

// Viridis, sampled: dark purple for the worst score, yellow for the best.
const STOPS: ReadonlyArray<readonly [number, number, number]> = [
  [68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]
]

/** The colour of a normalised utility `t` in [0, 1]. */
export const colour = (t: number): string => {
  const x = Math.min(1, Math.max(0, t)) * (STOPS.length - 1)
  const i = Math.min(STOPS.length - 2, Math.floor(x))
  const f = x - i
  const a = STOPS[i]!
  const b = STOPS[i + 1]!
  const h = (k: number) => Math.round(a[k]! + (b[k]! - a[k]!) * f).toString(16).padStart(2, "0")
  return `#${h(0)}${h(1)}${h(2)}`
}

/** A score mapped to [0, 1] with 1 the best, whatever the metric's direction. */
export const normaliser = (model: ReportModel): (score: number) => number => {
  const r = model.scoreRange
  if (r === undefined || r.max === r.min) return () => 1
  const maximise = model.task.metric.direction === "maximize"
  return (s) => (maximise ? (s - r.min) / (r.max - r.min) : (r.max - s) / (r.max - r.min))
}

/** Labels short enough not to run into a neighbour's. */
const SHORT: Record<string, string> = {
  Proposed: "…",
  Queued: "queued",
  Running: "running",
  Succeeded: "",
  Failed: "failed",
  Cancelled: "cancel",
  Interrupted: "stopped",
  Pruned: "pruned"
}

/** The search tree as an SVG: edges, nodes (`.node[data-i]`), labels, the best ring and the selection marks. */
export const treeSvg = (model: ReportModel): string => {
  const norm = normaliser(model)
  const r = model.labelled ? 8 : 4
  const edges: Array<string> = []
  const circles: Array<string> = []
  const labels: Array<string> = []
  model.nodes.forEach((n, i) => {
    const parent = n.p < 0 ? model.root : model.nodes[n.p]!
    const my = (parent.y + n.y) / 2
    edges.push(
      model.labelled
        ? `M${c(parent.x)} ${c(parent.y)}C${c(parent.x)} ${c(my)} ${c(n.x)} ${c(my)} ${c(n.x)} ${c(n.y)}`
        : `M${c(parent.x)} ${c(parent.y)}L${c(n.x)} ${c(n.y)}`
    )
    const fill = n.score !== undefined ? ` fill="${colour(norm(n.score))}"` : ""
    circles.push(`<circle class="node s-${n.state}" data-i="${i}" cx="${c(n.x)}" cy="${c(n.y)}" r="${r}"${fill}/>`)
    if (model.labelled) {
      const text = n.score !== undefined ? fmt(n.score) : (n.failure?.kind ?? SHORT[n.state])
      labels.push(`<text x="${c(n.x)}" y="${c(n.y + r + 16)}">${escapeHtml(text)}</text>`)
    }
  })
  const best = model.best >= 0 ? model.nodes[model.best]! : undefined
  const pad = 40
  const b = model.bounds
  const view = `${c(b.x - pad)} ${c(b.y - pad)} ${c(b.w + 2 * pad)} ${c(b.h + 2 * pad)}`
  return [
    `<svg id="tree" class="tree ${model.labelled ? "labelled" : "radial"}" viewBox="${view}" data-r="${r}" role="img" aria-label="Search tree">`,
    `<g id="viewport">`,
    `<path class="edges" d="${edges.join("")}"/>`,
    `<rect class="root" x="${c(model.root.x - r)}" y="${c(model.root.y - r)}" width="${2 * r}" height="${2 * r}" rx="2"/>`,
    `<path id="sel-path" class="sel-path" d=""/>`,
    best === undefined ? "" : `<circle class="best-ring" cx="${c(best.x)}" cy="${c(best.y)}" r="${r + 3.5}"/>`,
    `<g class="nodes">${circles.join("")}</g>`,
    model.labelled ? `<g class="labels">${labels.join("")}</g>` : "",
    `<circle id="sel-ring" class="sel-ring" r="${r + 6}" cx="0" cy="0" visibility="hidden"/>`,
    `</g></svg>`
  ].join("")
}

/** Round tick values covering [lo, hi]. */
const ticks = (lo: number, hi: number, count: number): ReadonlyArray<number> => {
  const span = hi - lo || Math.abs(hi) || 1
  const raw = span / count
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= count) ?? 10 * mag
  const out: Array<number> = []
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)))
  return out
}

const W = 460
const H = 230
const M = { left: 48, right: 12, top: 12, bottom: 38 }

/**
 * A score chart: every scored trial as a dot (`.pt[data-node]`), failures as red ticks on the
 * axis, the best-so-far as a step line, and the target when the task has one.
 */
export const scoreChart = (
  model: ReportModel,
  x: (p: TrialPoint) => number,
  xLabel: string,
  id: string
): string => {
  const task = model.task
  const scored = model.trials.filter((p) => p.score !== undefined)
  if (scored.length === 0) {
    return `<svg id="${id}" class="chart" viewBox="0 0 ${W} ${H}"><text class="empty" x="${W / 2}" y="${H / 2}">No scored trials yet</text></svg>`
  }
  const norm = normaliser(model)
  const maximise = task.metric.direction === "maximize"
  // loops, not Math.min(...ys): spreading an array passes each element as an argument, and a run
  // of some 150,000 trials overflows the stack
  let yLo = task.metric.target ?? Infinity
  let yHi = task.metric.target ?? -Infinity
  for (const p of scored) {
    if (p.score! < yLo) yLo = p.score!
    if (p.score! > yHi) yHi = p.score!
  }
  const yPad = (yHi - yLo) * 0.08 || Math.abs(yHi) * 0.1 || 1
  yLo -= yPad
  yHi += yPad
  let xHi = -Infinity
  for (const p of model.trials) xHi = Math.max(xHi, x(p))
  xHi = xHi || 1
  const yTicks = ticks(yLo, yHi, 5).map((t) => [t, fmt(t)] as const)
  // the score's tick labels end 6 px left of the axis, and begin right of the metric's name (rotated, up
  // to x = 18): a long label (`1.00e+300`, `0.000125`, at about 7 px a character) widens the margin
  let longest = 0
  for (const [, label] of yTicks) longest = Math.max(longest, label.length)
  const left = Math.max(M.left, 24 + 7 * longest)
  const px = (v: number) => left + (v / xHi) * (W - left - M.right)
  const py = (v: number) => H - M.bottom - ((v - yLo) / (yHi - yLo)) * (H - M.top - M.bottom)
  const out: Array<string> = [`<svg id="${id}" class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="Score over ${escapeHtml(xLabel)}">`]
  for (const [t, label] of yTicks) {
    out.push(`<line class="grid" x1="${left}" x2="${W - M.right}" y1="${c(py(t))}" y2="${c(py(t))}"/>`)
    out.push(`<text class="tick y" x="${left - 6}" y="${c(py(t) + 3)}">${label}</text>`)
  }
  for (const t of ticks(0, xHi, 6)) {
    out.push(`<text class="tick x" x="${c(px(t))}" y="${H - M.bottom + 15}">${fmt(t)}</text>`)
  }
  out.push(`<line class="axis" x1="${left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}"/>`)
  out.push(`<text class="axis-label" x="${(W + left) / 2}" y="${H - 4}">${escapeHtml(xLabel)}</text>`)
  out.push(
    `<text class="axis-label" transform="translate(12 ${(H - M.bottom + M.top) / 2}) rotate(-90)">${escapeHtml(task.metric.name)}</text>`
  )
  if (task.metric.target !== undefined) {
    const ty = c(py(task.metric.target))
    out.push(`<line class="target" x1="${left}" x2="${W - M.right}" y1="${ty}" y2="${ty}"/>`)
    out.push(`<text class="target-label" x="${W - M.right - 2}" y="${c(py(task.metric.target) - 4)}">target</text>`)
  }
  const fails = model.trials.filter((p) => p.score === undefined)
  if (fails.length > 0) {
    const base = H - M.bottom
    out.push(`<path class="fail-ticks" d="${fails.map((p) => `M${c(px(x(p)))} ${base - 4}v8`).join("")}"/>`)
  }
  let best: number | undefined
  const line: Array<string> = []
  for (const p of scored) {
    const s = p.score!
    if (best === undefined || (maximise ? s > best : s < best)) {
      line.push(best === undefined ? `M${c(px(x(p)))} ${c(py(s))}` : `H${c(px(x(p)))}V${c(py(s))}`)
      best = s
    }
  }
  line.push(`H${c(px(xHi))}`)
  const r = scored.length > 400 ? 2 : 3.2
  const dots = scored.map((p) =>
    `<circle class="pt" data-node="${p.node}" cx="${c(px(x(p)))}" cy="${c(py(p.score!))}" r="${r}" fill="${colour(norm(p.score!))}"/>`
  )
  out.push(`<g class="pts">${dots.join("")}</g><path class="best-line" d="${line.join("")}"/></svg>`)
  return out.join("")
}
