import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { Cost, Fingerprint, Journal, JournalEvent, Result, Strategy, Task } from "@trex/core"
import * as HtmlReport from "../src/HtmlReport.ts"
import * as Status from "../src/Status.ts"
import type * as ReportModel from "../src/internal/reportModel.ts"
import * as ReportSvg from "../src/internal/reportSvg.ts"
import { Browser, open, pw } from "./support/browser.ts"
import { trexHere } from "./support/cli.ts"
import { hostileSettings, overriddenRun } from "./support/settingsRun.ts"

const XSS = `<img src=x onerror="window.__pwned=1"></script><script>window.__pwned=2</script>`

const task = Schema.decodeUnknownSync(Task.Task)({
  name: "add3-reversed",
  objective: "Teach a small model three-digit addition",
  metric: { name: "accuracy", direction: "maximize", target: 0.9 },
  baseModel: { name: "tiny-gpt-2m" },
  budget: { maxTrials: 40, gpuHours: 2, dollars: 20, tokens: 200_000, wallClockHours: 1 },
  defaultStrategy: {
    data: { sources: [{ name: "add3" }], format: "plain" },
    training: { learningRate: 0.001, epochs: 3, batchSize: 32 }
  }
})

/** A tiny deterministic generator, so every run of the tests builds the same journal. */
const lcg = (seed: number) => () => {
  seed = (seed * 1664525 + 1013904223) % 4294967296
  return seed / 4294967296
}

interface Options {
  readonly size: number
  readonly rationale?: (i: number) => string
  readonly withInsights?: boolean
  /** The summary of the researcher's analysis, journaled before the first proposal (none: a journal of an older trex). */
  readonly analysis?: string
  /** The settings the run recorded at its start (`RunStarted.options`; none unless given). */
  readonly settings?: JournalEvent.Of<"RunStarted">["options"]
}

/**
 * A run: each node mutates its parent's learning rate, epochs or format; most succeed with a
 * learning curve, some fail (OOM with a log tail), some are pruned or cancelled, and insights
 * are distilled every 10 results. Returns the events and the node ids.
 */
const runEvents = (options: Options) => {
  const rnd = lcg(42)
  const t0 = Date.UTC(2026, 10, 20, 9, 0, 0)
  let at = t0
  const events: Array<JournalEvent.JournalEvent> = [
    JournalEvent.make("RunStarted", { runId: "run-test", task, seed: 7, options: options.settings ?? {}, at })
  ]
  if (options.analysis !== undefined) {
    const analysis = { summary: options.analysis, metricNotes: "", dataNotes: "", risks: ["overfitting the 2-digit data"], notes: {} }
    events.push(JournalEvent.make("AnalysisCompleted", { analysis, at }))
    events.push(JournalEvent.make("BudgetCharged", { cost: Cost.make({ inputTokens: 1200, outputTokens: 300, dollars: 0.008 }), reason: "analyze", at }))
  }
  const ids: Array<string> = []
  const strategies: Array<Strategy.Strategy> = []
  const outcomes: Array<string> = []
  for (let i = 0; i < options.size; i++) {
    const parentIndex = i < 4 ? -1 : Math.floor(rnd() * i)
    const base = parentIndex < 0 ? task.defaultStrategy! : strategies[parentIndex]!
    const move = i % 3
    const enc = Strategy.encode(base)
    const strategy = Strategy.decodeSync({
      ...enc,
      data: { ...enc.data, format: move === 2 ? (enc.data.format === "plain" ? "reversed" : "plain") : enc.data.format },
      training: {
        ...enc.training,
        learningRate: move === 0 ? Number((enc.training.learningRate * (rnd() < 0.5 ? 0.5 : 2)).toPrecision(3)) : enc.training.learningRate,
        epochs: move === 1 ? enc.training.epochs + 1 : enc.training.epochs
      },
      rationale: options.rationale?.(i) ?? `try move ${move} from ${parentIndex < 0 ? "the default" : `n${parentIndex}`}`
    })
    const id = `n${i}`
    ids.push(id)
    strategies.push(strategy)
    const parent = parentIndex < 0 ? "root" : ids[parentIndex]!
    at += 1000
    events.push(JournalEvent.make("NodeProposed", {
      node: { id, parent, strategy, fingerprint: Fingerprint.of(strategy), proposedAt: at },
      at
    }))
    events.push(JournalEvent.make("NodeAdmitted", { nodeId: id, estimate: Cost.make({ gpuSeconds: 120 }), at }))
    events.push(JournalEvent.make("JobSubmitted", { nodeId: id, job: { backend: "local", id: `job-${i}`, data: {} }, at }))
    const roll = rnd()
    const gpuSeconds = 60 + Math.round(rnd() * 120)
    const cost = Cost.make({ gpuSeconds, wallSeconds: gpuSeconds, dollars: gpuSeconds * 0.001 })
    at += gpuSeconds * 1000
    const quality = (strategy.data.format === "reversed" ? 0.25 : 0) + Math.min(0.5, strategy.training.epochs * 0.08) -
      Math.abs(Math.log10(strategy.training.learningRate) + 3) * 0.1
    const curves = Array.from({ length: 8 }, (_, s) => [
      { step: s * 10, split: "train", name: "loss", value: 2 * Math.exp(-s * (0.2 + quality)) },
      { step: s * 10, split: "eval", name: "loss", value: 2.1 * Math.exp(-s * (0.18 + quality)) + 0.05 }
    ]).flat()
    if (i === options.size - 1) {
      outcomes.push("Cancelled")
      events.push(JournalEvent.make("NodeFinished", { nodeId: id, outcome: "Cancelled", reason: "budget exhausted", at }))
    } else if (i % 9 === 5) {
      outcomes.push("Failed")
      events.push(JournalEvent.make("NodeFinished", {
        nodeId: id,
        outcome: "Failed",
        result: Result.failure("OOM", "CUDA out of memory", {
          logTail: ["epoch 1 step 40 loss 1.92", "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"],
          cost,
          exitCode: 1
        }),
        at
      }))
    } else if (i % 11 === 7) {
      outcomes.push("Pruned")
      events.push(JournalEvent.make("NodeFinished", { nodeId: id, outcome: "Pruned", reason: "ASHA rung 1: below median", at }))
    } else {
      outcomes.push("Succeeded")
      const score = Math.max(0.05, Math.min(0.97, 0.35 + quality + (roll - 0.5) * 0.1))
      events.push(JournalEvent.make("NodeFinished", {
        nodeId: id,
        outcome: "Succeeded",
        result: { ...Result.success({ accuracy: score, loss: 1 - score }, score, cost), curves, summary: `accuracy ${score.toFixed(3)}` },
        at
      }))
    }
    events.push(JournalEvent.make("BudgetCharged", { nodeId: id, cost, reason: "trial", at }))
    if (options.withInsights === true && i % 10 === 9) {
      events.push(JournalEvent.make("InsightsDistilled", {
        insights: [{
          id: `i${i}`,
          text: `Reversed digits help (after ${i + 1} trials)`,
          evidence: [ids[i - 1]!, ids[i - 3]!],
          createdAt: at,
          data: {}
        }],
        at
      }))
      events.push(JournalEvent.make("BudgetCharged", { cost: Cost.make({ inputTokens: 1500, outputTokens: 300, dollars: 0.01 }), reason: "distill", at }))
    }
  }
  events.push(JournalEvent.make("RunFinished", { reason: "budget", at: at + 1000 }))
  return { events, ids, strategies, outcomes }
}

const entriesOf = (events: ReadonlyArray<JournalEvent.JournalEvent>): ReadonlyArray<JournalEvent.Entry> =>
  events.map((event, i) => ({ seq: i + 1, event }))

const ANALYSIS = "Exact-match accuracy on 3-digit sums rewards carrying; reversed digits may help."
const small = runEvents({ size: 30, withInsights: true, analysis: ANALYSIS })

/** The realistic run, written to and read back from an in-memory journal. */
const renderSmall = Effect.gen(function*() {
  const journal = yield* Journal.Journal
  yield* journal.append(small.events)
  return yield* HtmlReport.fromJournal({ n5: ["loading data", "step 10 loss 2.1"] })
}).pipe(Effect.provide(Journal.Journal.layerMemory), Effect.orDie)

describe("HtmlReport (pure)", () => {
  it.effect("renders a page that says so for a journal without a run", () =>
    Effect.gen(function*() {
      const html = yield* HtmlReport.fromJournal().pipe(Effect.provide(Journal.Journal.layerMemory))
      assert.include(html, "No run recorded")
    }))

  it.effect("embeds the data with every < escaped and no external reference", () =>
    Effect.gen(function*() {
      const { events } = runEvents({ size: 6, rationale: () => XSS })
      const html = HtmlReport.render({ entries: entriesOf(events), logs: { n1: [XSS] } })
      const start = html.indexOf(`id="trex-data">`) + `id="trex-data">`.length
      const data = JSON.parse(html.slice(start, html.indexOf("</script>", start)))
      assert.strictEqual(data.nodes.length, 6)
      assert.strictEqual(data.nodes[0].rationale, XSS)
      assert.strictEqual(data.nodes[1].logs[0], XSS)
      assert.notMatch(html, /(src|href)="(https?:)?\/\//)
      assert.notInclude(html, "<img")
      assert.strictEqual(html.split("<script").length - 1, 2)
    }))

  it.effect("embeds each node's strategy as its changes from its parent's, and no empty or zero fields", () =>
    Effect.sync(() => {
      const { events } = runEvents({ size: 1000 })
      const html = HtmlReport.render({ entries: entriesOf(events) })
      const start = html.indexOf(`id="trex-data">`) + `id="trex-data">`.length
      const json = html.slice(start, html.indexOf("</script>", start))
      const data = JSON.parse(json) as { nodes: Array<Record<string, unknown> & { d: Array<unknown> }>; paths: Array<string> }
      // each node of this run changes one field of its parent's (or the default's) strategy
      for (const n of data.nodes) assert.strictEqual(n.d.length, 2, JSON.stringify(n))
      assert.includeMembers(data.paths, ["training.learningRate", "training.epochs", "data.format"])
      assert.isTrue(data.nodes.every((n) => n["strategy"] === undefined && n["logs"] === undefined))
      // the page's data per node: 974 bytes with every strategy in full and zero costs spelt out, 624 now
      assert.isBelow(json.length / data.nodes.length, 750)
    }))

  it.effect("says whether an unfinished run is in progress or was stopped; a finished one, why it finished", () =>
    Effect.sync(() => {
      const { events } = runEvents({ size: 4 })
      const unfinished = entriesOf(events.filter((e) => e._tag !== "RunFinished"))
      const status = (html: string) => /<span class="muted">status<\/span> ([^<]*)<\/span>/.exec(html)?.[1]
      assert.strictEqual(status(HtmlReport.render({ entries: unfinished })), "in progress")
      assert.strictEqual(status(HtmlReport.render({ entries: unfinished, stopped: true })), "stopped before it finished (trex resume continues it)")
      assert.strictEqual(status(HtmlReport.render({ entries: entriesOf(events), stopped: false })), "finished: budget")
      // a stopped run's trials in flight are interrupted, in the data the page draws from
      const nodes = (html: string) => {
        const start = html.indexOf(`id="trex-data">`) + `id="trex-data">`.length
        return JSON.parse(html.slice(start, html.indexOf("</script>", start))).nodes as Array<{ id: string; state: string; waiting?: string }>
      }
      const states = (html: string) => nodes(html).map((n) => n.state)
      const inFlight = (tags: ReadonlyArray<string>) => tags.filter((t) => t === "Running" || t === "Queued" || t === "Proposed").length
      // the last trial's end is not journaled: it was in flight
      const lastEnd = events.findLastIndex((e) => e._tag === "NodeFinished")
      const open = entriesOf(events.filter((e, i) => e._tag !== "RunFinished" && i !== lastEnd))
      assert.strictEqual(inFlight(states(HtmlReport.render({ entries: open }))), 1)
      const stoppedStates = states(HtmlReport.render({ entries: open, stopped: true }))
      assert.strictEqual(inFlight(stoppedStates), 0)
      assert.strictEqual(stoppedStates.filter((t) => t === "Interrupted").length, 1)
      // the header counts them: in flight while a controller runs the run, interrupted when nobody does
      assert.include(HtmlReport.render({ entries: open }), "<b>1</b><span>in flight</span>")
      assert.include(HtmlReport.render({ entries: open, stopped: true }), "<b>1</b><span>interrupted</span>")
      // a trial whose job waits in its backend's queue carries why (the details panel shows it)
      const waitingId = (events[lastEnd] as JournalEvent.Of<"NodeFinished">).nodeId
      const waits = [...open.map((e) => e.event), JournalEvent.make("JobState", { nodeId: waitingId, state: "Pending", reason: "Priority", at: 1 })]
      assert.strictEqual(nodes(HtmlReport.render({ entries: entriesOf(waits) })).find((n) => n.id === waitingId)?.waiting, "Priority")
      // so does one whose backend does not answer about its job, while that lasts
      const lost = [...waits, JournalEvent.make("JobState", { nodeId: waitingId, state: "Running", reason: "Slurm does not answer", at: 2 })]
      const shown = nodes(HtmlReport.render({ entries: entriesOf(lost) })).find((n) => n.id === waitingId) as { unreachable?: string; waiting?: string } | undefined
      assert.deepStrictEqual([shown?.unreachable, shown?.waiting], ["Slurm does not answer", undefined])
      // a damaged journal: the page says so, and does not offer a resume
      const damaged = HtmlReport.render({ entries: unfinished, stopped: true, damage: "journal x: entry 9 fails its checksum" })
      assert.strictEqual(status(damaged), "stopped at a damaged journal entry (it cannot be resumed)")
      assert.match(damaged, /<p class="damage">journal x: entry 9 fails its checksum\. This report shows what precedes the damage\.<\/p>/)
    }))

  it.effect("shows the journaled analysis under the objective, and nothing for a journal without one", () =>
    Effect.sync(() => {
      const withAnalysis = HtmlReport.render({ entries: entriesOf(runEvents({ size: 4, analysis: `${ANALYSIS} ${"More. ".repeat(200)}` }).events), logs: {} })
      const line = /<p class="analysis"[^>]*>(.*?)<\/p>/.exec(withAnalysis)?.[1] ?? ""
      assert.include(line, "Exact-match accuracy on 3-digit sums")
      assert.include(line, "overfitting the 2-digit data")
      assert.include(line, "…", "a long analysis is cut")
      assert.isBelow(line.length, 1000)
      const without = HtmlReport.render({ entries: entriesOf(runEvents({ size: 4 }).events), logs: {} })
      assert.notInclude(without, `class="analysis"`)
    }))
})

describe("HtmlReport: big runs", () => {
  it("draws the score charts of a run of 200,000 trials (no spread of every score into Math.min, which overflows the stack)", () => {
    const trials = Array.from({ length: 200_000 }, (_, i) => ({ node: i, trial: i + 1, gpuHours: i / 100, score: Math.sin(i) }))
    const model = { task, trials, scoreRange: { min: -1, max: 1 } } as unknown as ReportModel.ReportModel
    const svg = ReportSvg.scoreChart(model, (p) => p.trial, "trial", "chart-trials")
    assert.strictEqual(svg.split(`<circle class="pt"`).length - 1, 200_000)
    // the y axis spans the scores and the target (0.9 is inside [-1, 1]), the x axis the last trial
    assert.include(svg, `>200000</text>`)
  })
})

layer(Browser.layer, { timeout: "180 seconds" })("HtmlReport in Chromium", (it) => {
  it.effect("renders the tree, charts, budget and insights without errors or requests", () =>
    Effect.gen(function*() {
      const html = yield* renderSmall
      const { external, page, problems } = yield* open(html)
      const count = (selector: string) => pw(() => page.locator(selector).count())
      assert.strictEqual(yield* count("#tree .node"), 30)
      assert.strictEqual(yield* count("#tree .s-Failed"), small.outcomes.filter((o) => o === "Failed").length)
      assert.strictEqual(yield* count("#tree .s-Pruned"), small.outcomes.filter((o) => o === "Pruned").length)
      assert.strictEqual(yield* count("#tree .s-Cancelled"), 1)
      assert.strictEqual(yield* count("#tree .best-ring"), 1)
      const scored = small.outcomes.filter((o) => o === "Succeeded").length
      assert.strictEqual(yield* count("#chart-trials .pt"), scored)
      assert.strictEqual(yield* count("#chart-gpu .pt"), scored)
      for (const selector of ["#tree .edges", "#chart-trials .best-line", "#chart-gpu .best-line", "#chart-trials .fail-ticks"]) {
        const d = yield* pw(() => page.locator(selector).getAttribute("d"))
        assert.isTrue(d !== null && d.length > 20, selector)
      }
      assert.strictEqual(yield* count(".budget-row"), 5)
      const trials = yield* pw(() => page.locator(`.budget-row[data-budget="Trials"]`).innerText())
      assert.include(trials, "30")
      assert.include(trials, "40")
      assert.strictEqual(yield* count(".insights li"), 3)
      assert.include(yield* pw(() => page.locator("header .analysis").innerText()), ANALYSIS)
      // The best node is selected on load.
      const best = yield* pw(() => page.locator("#details h2").innerText())
      assert.match(best, /^n\d+$/)
      assert.deepStrictEqual(problems, [])
      assert.deepStrictEqual(external, [])
    }))

  it.effect("clicking a node shows its strategy as a diff against its parent", () =>
    Effect.gen(function*() {
      const { page, problems } = yield* open(yield* renderSmall)
      // n6 (move 0) changed its parent's learning rate; n7 (move 1) its epochs.
      for (const [i, field] of [[6, "training.learningRate"], [7, "training.epochs"]] as const) {
        yield* pw(() => page.locator(`#tree .node[data-i="${i}"]`).click())
        assert.strictEqual(yield* pw(() => page.locator("#details h2").innerText()), `n${i}`)
        const row = page.locator(`#details tr.changed[data-field="${field}"]`)
        assert.strictEqual(yield* pw(() => row.count()), 1)
        const expected = field === "training.epochs" ? small.strategies[i]!.training.epochs : small.strategies[i]!.training.learningRate
        assert.strictEqual(yield* pw(() => row.locator("td.new").innerText()), String(expected))
        assert.strictEqual(yield* pw(() => page.locator("#details tr.changed").count()), 1)
      }
      // A failed node shows its failure kind and log tail.
      yield* pw(() => page.locator(`#tree .node[data-i="5"]`).click())
      const text = yield* pw(() => page.locator("#details").innerText())
      assert.include(text, "OOM")
      assert.include(text, "CUDA out of memory. Tried to allocate")
      assert.include(text, "step 10 loss 2.1")
      // A succeeded node has learning curves.
      yield* pw(() => page.locator(`#tree .node[data-i="8"]`).click())
      assert.strictEqual(yield* pw(() => page.locator("#details svg.curve path.ln").count()), 2)
      assert.deepStrictEqual(problems, [])
    }))

  it.effect("a node's strategy, rebuilt from the changes down its path, is its own in full", () =>
    Effect.gen(function*() {
      const { page, problems } = yield* open(yield* renderSmall)
      const flat = (v: unknown, path: string, out: Record<string, string>): Record<string, string> => {
        if (v !== null && typeof v === "object") {
          const entries = Object.entries(v)
          if (entries.length === 0) out[path] = Array.isArray(v) ? "[]" : "{}"
          for (const [k, x] of entries) flat(x, Array.isArray(v) ? `${path}[${k}]` : path === "" ? k : `${path}.${k}`, out)
          return out
        }
        out[path] = JSON.stringify(v)
        return out
      }
      // the deepest node, and a first-level one (its diff is against the task's default strategy)
      const depth = (i: number): number => small.events.some((e) => e._tag === "NodeProposed" && e.node.id === small.ids[i] && e.node.parent === "root") ? 1 : 1 + depth(small.ids.indexOf((small.events.find((e) => e._tag === "NodeProposed" && e.node.id === small.ids[i]) as JournalEvent.Of<"NodeProposed">).node.parent))
      const deepest = small.ids.map((_, i) => i).reduce((a, b) => (depth(b) > depth(a) ? b : a))
      assert.isAbove(depth(deepest), 3)
      for (const i of [deepest, 0]) {
        yield* pw(() => page.evaluate(`document.querySelector('#tree .node[data-i="${i}"]').dispatchEvent(new MouseEvent("click", { bubbles: true }))`))
        yield* pw(() => page.locator(`#details[data-selected="${small.ids[i]}"]`).waitFor())
        const shown = yield* pw(() =>
          page.evaluate<Record<string, string>>(`Object.fromEntries([...document.querySelectorAll("#details tr[data-field]")].map((tr) => [tr.getAttribute("data-field"), tr.querySelector("td.new").textContent]))`)
        )
        const s = Strategy.encode(small.strategies[i]!)
        assert.deepStrictEqual(shown, flat({ data: s.data, training: s.training, evaluation: s.evaluation }, "", {}))
      }
      assert.deepStrictEqual(problems, [])
    }))

  it.effect("an insight's evidence link selects its node", () =>
    Effect.gen(function*() {
      const { page, problems } = yield* open(yield* renderSmall)
      const link = page.locator(".insights a.node-link").nth(1)
      const id = yield* pw(() => link.innerText())
      const index = small.ids.indexOf(id)
      yield* pw(() => link.click())
      assert.strictEqual(yield* pw(() => page.locator("#details h2").innerText()), id)
      assert.strictEqual(yield* pw(() => page.locator("#tree").getAttribute("data-selected")), String(index))
      assert.strictEqual(yield* pw(() => page.locator("#sel-ring").getAttribute("visibility")), "visible")
      assert.deepStrictEqual(problems, [])
    }))

  it.effect("shows the best strategy as valid JSON with a copy button", () =>
    Effect.gen(function*() {
      const { page, problems } = yield* open(yield* renderSmall)
      const json = JSON.parse(yield* pw(() => page.locator("#best-json").innerText()))
      const bestId = yield* pw(() => page.locator("#details h2").innerText())
      assert.deepStrictEqual(json, Strategy.encode(small.strategies[small.ids.indexOf(bestId)]!))
      const button = page.locator("#copy-best")
      yield* pw(() => button.click())
      // copying is asynchronous (the clipboard API answers with a promise): wait for its outcome
      yield* pw(() => page.waitForSelector("#copy-best[data-copied]", { timeout: 10_000 }))
      assert.strictEqual(yield* pw(() => button.getAttribute("data-copied")), "yes")
      assert.deepStrictEqual(problems, [])
    }))

  it.effect("keeps journal text as text (no HTML injection)", () =>
    Effect.gen(function*() {
      const { events } = runEvents({ size: 12, rationale: () => XSS, withInsights: true, analysis: XSS })
      const html = HtmlReport.render({ entries: entriesOf(events), logs: { n1: [XSS] } })
      const { external, page, problems } = yield* open(html)
      yield* pw(() => page.locator(`#tree .node[data-i="1"]`).click())
      assert.include(yield* pw(() => page.locator("#details .rationale").innerText()), XSS)
      assert.include(yield* pw(() => page.locator("#details pre.logs").innerText()), XSS)
      assert.include(yield* pw(() => page.locator("header .analysis").innerText()), XSS)
      assert.strictEqual(yield* pw(() => page.locator("img").count()), 0)
      assert.isUndefined(yield* pw(() => page.evaluate(() => (globalThis as { __pwned?: number }).__pwned)))
      assert.deepStrictEqual(problems, [])
      assert.deepStrictEqual(external, [])
    }))

  it.effect("keeps an edited journal's settings as text, each key cut where the page names it", () =>
    Effect.gen(function*() {
      const settings = hostileSettings(XSS)
      const { events } = runEvents({ size: 3, settings })
      const html = HtmlReport.render({ entries: entriesOf(events) })
      const { external, page, problems } = yield* open(html)
      const card = page.locator(".settings-card")
      yield* pw(() => card.scrollIntoViewIfNeeded())
      // each value as its JSON, shown as text (cut at 200 characters), beside its key (cut at 60)
      const shown = yield* pw(() =>
        page.evaluate<ReadonlyArray<[string, string]>>(`[...document.querySelectorAll(".settings dt")].map((dt) => [dt.textContent, dt.nextElementSibling.textContent])`)
      )
      const keys = ["researcher", "policy", `<b>key</b>| ${"k".repeat(47)}…`]
      assert.deepStrictEqual(shown, Object.values(settings).map((v, i) => [keys[i]!, Status.settingValue(v)]))
      assert.include(shown.find(([k]) => k === "researcher")![1], XSS.replaceAll(`"`, `\\"`))
      assert.strictEqual(yield* pw(() => page.locator("img, .settings script, .settings b").count()), 0)
      assert.isUndefined(yield* pw(() => page.evaluate(() => (globalThis as { __pwned?: number }).__pwned)))
      // the page names each key where a script finds it, cut as the page shows it: the 5,000-character key is not written whole
      const named = yield* pw(() => page.evaluate<ReadonlyArray<string>>(`[...document.querySelectorAll("[data-setting]")].map((e) => e.dataset.setting)`))
      assert.isTrue(named.every((k) => k.length <= 60), "each key cut")
      assert.notInclude(html, "k".repeat(100))
      assert.deepStrictEqual(problems, [])
      assert.deepStrictEqual(external, [])
    }))

  it.effect("shows journal text without the bidirectional controls that would reverse what follows them", () =>
    Effect.gen(function*() {
      // U+202E (right-to-left override) in a rationale shows the rest of it backwards; U+2067 (an isolate) likewise
      const reversing = (i: number) => `From n${i}: source "\u202Egnp.exe" (swap) \u2067then more`
      const { events, ids, strategies } = runEvents({ size: 12, rationale: reversing, analysis: reversing(0) })
      const { page, problems } = yield* open(HtmlReport.render({ entries: entriesOf(events), logs: { n1: [reversing(1)] } }))
      const controls = /[\u200E\u200F\u202A-\u202E\u2066-\u2069]/
      yield* pw(() => page.locator(`#tree .node[data-i="1"]`).click())
      const shown = [
        yield* pw(() => page.locator("#details .rationale").innerText()),
        yield* pw(() => page.locator("#details pre.logs").innerText()),
        yield* pw(() => page.locator("header .analysis").innerText()),
        yield* pw(() => page.locator("#best-json").innerText())
      ]
      for (const text of shown) assert.notMatch(text, controls)
      assert.include(shown[0], `From n1: source "gnp.exe" (swap) then more`)
      // the best strategy's JSON is still that strategy, its rationale's controls written as \u escapes
      const bestId = yield* pw(() => page.locator(".best-bar a.node-link").innerText())
      assert.deepStrictEqual(JSON.parse(shown[3]!), Strategy.encode(strategies[ids.indexOf(bestId)]!))
      assert.deepStrictEqual(problems, [])
    }))

  it.effect("shows the controls in journal text as \\u escapes, where the terminal views take them out (a box, or nothing for NUL)", () =>
    Effect.gen(function*() {
      // a bell, a colour's escape sequence, NUL, DEL and a C1 control (NEL), as a trainer's log or a model may write them
      const raw = "bell\x07 \x1b[31mred\x1b[0m nul\x00 del\x7f nel\x85 tab\tend"
      const shownAs = "bell\\u0007 \\u001b[31mred\\u001b[0m nul\\u0000 del\\u007f nel\\u0085 tab"
      const { events, ids, strategies } = runEvents({ size: 12, rationale: (i) => `n${i}: ${raw}`, analysis: raw })
      // and the reason the run ended, in the header
      const ended = events.map((e) => (e._tag === "RunFinished" ? JournalEvent.make("RunFinished", { reason: `stopped: ${raw}`, at: e.at }) : e))
      const html = HtmlReport.render({ entries: entriesOf(ended), logs: { n1: [raw] } })
      const { page, problems } = yield* open(html)
      yield* pw(() => page.locator(`#tree .node[data-i="1"]`).click())
      const shown = {
        rationale: yield* pw(() => page.locator("#details .rationale").innerText()),
        logs: yield* pw(() => page.locator("#details pre.logs").innerText()),
        analysis: yield* pw(() => page.locator("header .analysis").innerText()),
        reason: yield* pw(() => page.locator("header .chips").innerText()),
        best: yield* pw(() => page.locator("#best-json").innerText())
      }
      for (const [where, text] of Object.entries(shown)) {
        assert.notMatch(text, /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\uFFFD]/, where)
        if (where !== "best") assert.include(text, shownAs, where)
      }
      assert.include(shown.rationale, `n1: ${shownAs}\tend`)
      // the best strategy's JSON is still that strategy: its rationale's controls are JSON escapes
      const bestId = yield* pw(() => page.locator(".best-bar a.node-link").innerText())
      assert.deepStrictEqual(JSON.parse(shown.best), Strategy.encode(strategies[ids.indexOf(bestId)]!))
      assert.deepStrictEqual(problems, [])
    }))

  it.effect("keeps the header's counts whole, one row of one-line labels, beside a long reason the run ended", () =>
    Effect.gen(function*() {
      const { events } = runEvents({ size: 12 })
      // two trials in flight (a sixth count), and a long reason the run ended
      const finished = new Set(["n10", "n11"])
      const kept = events.filter((e) => !(e._tag === "NodeFinished" && finished.has(e.nodeId)) && e._tag !== "RunFinished")
      const reason = "every trial failed the same way (n1, n2, n3, n4): Crash: exited with code 1 (ModuleNotFoundError: No module named 'transformerz')"
      kept.push(JournalEvent.make("RunFinished", { reason, at: Date.UTC(2026, 10, 21) }))
      const { page, problems } = yield* open(HtmlReport.render({ entries: entriesOf(kept) }))
      const counts = yield* pw(() =>
        page.evaluate<ReadonlyArray<{ label: string; lines: number; top: number }>>(
          `[...document.querySelectorAll("header .counts > div")].map((d) => ({ label: d.querySelector("span").textContent, lines: d.querySelector("span").getClientRects().length, top: d.offsetTop }))`
        )
      )
      assert.deepStrictEqual(counts.map((c) => c.label), ["nodes", "succeeded", "failed", "pruned", "cancelled", "in flight"])
      assert.deepStrictEqual(counts.map((c) => c.lines), [1, 1, 1, 1, 1, 1], "each label on one line")
      assert.deepStrictEqual(new Set(counts.map((c) => c.top)).size, 1, "the counts in one row")
      assert.include(yield* pw(() => page.locator("header .chips").innerText()), reason)
      assert.deepStrictEqual(problems, [])
    }))

  it.effect("draws a chart's score ticks clear of the metric's name whatever their length (an MSE of 3e-5, a loss of 1e300)", () =>
    Effect.gen(function*() {
      const { events } = runEvents({ size: 12 })
      const mse = Schema.decodeUnknownSync(Task.Task)({ ...Schema.encodeSync(Task.Task)(task), metric: { name: "mse", direction: "minimize" } })
      for (const scale of [1e-4, 1e300]) {
        const scaled = events.map((e) =>
          e._tag === "RunStarted"
            ? JournalEvent.make("RunStarted", { ...e, task: mse })
            : e._tag === "NodeFinished" && e.result?.score !== undefined
            ? JournalEvent.make("NodeFinished", { ...e, result: { ...e.result, score: e.result.score * scale, metrics: { mse: e.result.score * scale } } })
            : e
        )
        // one page at a time (the file's tests share one): this scale's is closed before the next opens
        yield* Effect.scoped(Effect.gen(function*() {
          const { page, problems } = yield* open(HtmlReport.render({ entries: entriesOf(scaled) }))
          // each tick's box, and the rotated name's, in the chart's own units
          const boxes = yield* pw(() =>
            page.evaluate<{ ticks: ReadonlyArray<{ x: number; text: string }>; name: { x: number; width: number } }>(
              `(() => { const svg = document.querySelector("svg.chart"); const name = svg.querySelector(".axis-label[transform]").getBoundingClientRect(); const origin = svg.getBoundingClientRect(); const k = 460 / origin.width;
                return { ticks: [...svg.querySelectorAll(".tick.y")].map((t) => ({ x: (t.getBoundingClientRect().x - origin.x) * k, text: t.textContent })), name: { x: (name.x - origin.x) * k, width: name.width * k } } })()`
            )
          )
          assert.isAbove(boxes.ticks.length, 2)
          assert.isAtLeast(boxes.name.x, 0)
          for (const t of boxes.ticks) assert.isAbove(t.x, boxes.name.x + boxes.name.width, `tick ${t.text} overlaps the metric's name or is cut`)
          assert.deepStrictEqual(problems, [])
        }))
      }
    }))

  it.effect("shows the settings a real run takes, as trex status --json gives them, and the one a resume set in trex status's words", () =>
    Effect.gen(function*() {
      const { runDir } = yield* Effect.promise(() => overriddenRun())
      const status = yield* Effect.promise(() => trexHere(["status", runDir]))
      const json = JSON.parse((yield* Effect.promise(() => trexHere(["status", runDir, "--json"]))).stdout)
      const report = yield* Effect.promise(() => trexHere(["report", runDir, "--html"]))
      assert.strictEqual(report.status, 0, report.stderr)
      const { external, page, problems } = yield* open(readFileSync(join(runDir, "report.html"), "utf8"))
      const card = page.locator(".settings-card")
      assert.strictEqual(yield* pw(() => card.count()), 1)
      yield* pw(() => card.scrollIntoViewIfNeeded())
      assert.isTrue(yield* pw(() => card.isVisible()))
      // the override, as trex status says it, and its row marked
      const said = status.stdout.split("\n").filter((l) => l.startsWith("Setting: "))
      assert.strictEqual(said.length, 1)
      assert.deepStrictEqual(yield* pw(() => card.locator(".override").allInnerTexts()), said)
      assert.deepStrictEqual(yield* pw(() => card.locator("dd.overridden").allInnerTexts()), ["60"])
      // every setting, in trex status --json's order, with its value as JSON, each value beside its name
      const shown = yield* pw(() =>
        page.evaluate<ReadonlyArray<{ key: string; value: string; beside: boolean }>>(
          `[...document.querySelectorAll(".settings dt")].map((dt) => { const dd = dt.nextElementSibling; const a = dt.getBoundingClientRect(); const b = dd.getBoundingClientRect();
            return { key: dt.textContent, value: dd.textContent, beside: Math.abs(a.top - b.top) < 4 && a.right <= b.left } })`
        )
      )
      assert.deepStrictEqual(shown.map((r) => [r.key, r.value]), Object.entries(json.settings).map(([k, v]) => [k, JSON.stringify(v)]))
      assert.isTrue(shown.every((r) => r.beside), "each value on its name's row")
      assert.deepStrictEqual(problems, [])
      assert.deepStrictEqual(external, [])
    }), 120_000)

  it.effect("gives a short run's wall clock in seconds, as trex status does (not 0m)", () =>
    Effect.gen(function*() {
      const { events } = runEvents({ size: 3 })
      // the same run, 16 s long
      const t0 = events[0]!.at
      const short = events.map((e, i) => ({ ...e, at: t0 + (i === events.length - 1 ? 16_000 : Math.min(15_000, e.at - t0)) }) as JournalEvent.JournalEvent)
      const { page, problems } = yield* open(HtmlReport.render({ entries: entriesOf(short) }))
      assert.strictEqual(
        yield* pw(() => page.locator(`.budget-row[data-budget="Wall clock"] .budget-value`).innerText()),
        `${Status.duration(16)} / ${Status.duration(3600)}`
      )
      assert.strictEqual(Status.duration(16), "16s")
      assert.deepStrictEqual(problems, [])
    }))

  it.effect("renders a 5,000-node tree that stays interactive", () =>
    Effect.gen(function*() {
      const { events } = runEvents({ size: 5000 })
      const renderStart = performance.now()
      const html = HtmlReport.render({ entries: entriesOf(events) })
      const renderMs = performance.now() - renderStart
      const { loadMs, page, problems } = yield* open(html)
      assert.strictEqual(yield* pw(() => page.locator("#tree .node").count()), 5000)
      const shot = join(mkdtempSync(join(tmpdir(), "trex-shots-")), "large.png")
      writeFileSync(shot, yield* pw(() => page.screenshot()))
      // Zoomed out, nodes overlap: click whichever node is on top at the node's centre.
      const box = yield* pw(() => page.locator(`#tree .node[data-i="4321"]`).boundingBox())
      const x = box!.x + box!.width / 2
      const y = box!.y + box!.height / 2
      const hit = yield* pw(() =>
        page.evaluate<string | null>(`document.elementFromPoint(${x}, ${y})?.getAttribute("data-i") ?? null`)
      )
      assert.isNotNull(hit)
      const clickStart = performance.now()
      yield* pw(() => page.mouse.click(x, y))
      yield* pw(() => page.locator(`#details[data-selected="n${hit}"]`).waitFor())
      const clickMs = performance.now() - clickStart
      yield* pw(() => page.mouse.move(700, 400))
      yield* pw(() => page.mouse.wheel(0, -400))
      const zoomed = yield* pw(() => page.locator("#tree").getAttribute("viewBox"))
      yield* pw(() => page.locator("#fit").click())
      assert.notStrictEqual(zoomed, yield* pw(() => page.locator("#tree").getAttribute("viewBox")))
      console.log(
        `5,000 nodes: render ${renderMs.toFixed(0)} ms, ${(html.length / 1e6).toFixed(1)} MB, ` +
          `load to ready ${loadMs.toFixed(0)} ms, click to details ${clickMs.toFixed(0)} ms; screenshot ${shot}`
      )
      assert.deepStrictEqual(problems, [])
    }), 180_000)

  it.effect("screenshots change when a node is selected", () =>
    Effect.gen(function*() {
      const { page } = yield* open(yield* renderSmall)
      const dir = mkdtempSync(join(tmpdir(), "trex-shots-"))
      const before = yield* pw(() => page.screenshot({ fullPage: true }))
      yield* pw(() => page.locator(`#tree .node[data-i="5"]`).click())
      const after = yield* pw(() => page.screenshot({ fullPage: true }))
      writeFileSync(join(dir, "before.png"), before)
      writeFileSync(join(dir, "after.png"), after)
      writeFileSync(join(dir, "details.png"), yield* pw(() => page.locator("#details").screenshot()))
      console.log(`screenshots in ${dir}`)
      for (const png of [before, after]) {
        assert.strictEqual(png.subarray(1, 4).toString("latin1"), "PNG")
        assert.strictEqual(png.readUInt32BE(16), 1440)
        assert.isAbove(png.readUInt32BE(20), 1000)
        assert.isAbove(png.length, 50_000)
      }
      assert.isFalse(before.equals(after))
    }))
})
