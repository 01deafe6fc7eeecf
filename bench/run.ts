// `npm run bench`: engine figures, each against a baseline measured in the same run.
//
//   1. Orchestration overhead per trial: the Explorer (UCT + heuristic researcher + template
//      executor) over a zero-cost simulator, with the in-memory and the SQLite journal, at 1k,
//      10k, 30k and 100k trials (1k and 5k with --quick); baseline: the same number of jobs
//      submitted straight to the simulator. Each run is stopped after --cap seconds (default 600)
//      and reports how far it got. Time in the policy's `select` and the researcher's `propose`
//      and `distill` is shown apart from the rest (the engine: explorer, journal, executor,
//      simulator), and so is the cost of the last 10% of trials (the cost grows with the tree).
//   1b. The engine alone at the largest size: the same loop with an O(1) policy and an O(1)
//      researcher, with both journals, on two trees: a spine with 399 leaves per level (depth
//      trials / 400: 251 at 100k, as deep as the default search's tree, 243 at 74k trials) and one
//      with 24 (depth trials / 25: 4,001 at 100k), to show the cost that grows with depth.
//   2. Journal replay: folding the largest run's SQLite journal into a tree, and the 1b journal;
//      baseline: reading and JSON-parsing its rows without decoding or folding.
//   3. Memory per node of the folded tree.
//   4. GPU utilisation: 8 simulated GPUs, heavy-tailed trial durations (Pareto 1.5), concurrency 8.
//   5. Reading a big run, as a user does afterwards: runs of 1k, 10k and 50k trials (1k and 5k with
//      --quick; the engine-alone loop, SQLite, 10-point learning curves) read by what `trex status`,
//      `trex report` (Markdown and HTML), `trex resume` (until its first new trial), result reuse
//      (a new run reading the folder) and the live view do; baseline: replaying the same journal
//      (read and fold). Reported as ratios: each command against that replay, and its time per
//      trial at the largest size against at 1k (1.0: linear in trials).
//   6. CLI start: `trex --help` and `trex status <a finished run>` started from the sources in a child
//      process, as a user starts them (with no compile cache, and with the one trex keeps), with the modules each loads; baseline: a
//      bare `node -e ""` started in the same rounds. Reported as the median wall time of each and its
//      ratio to the baseline's.
//   7. Keeping a webhook message (`notify/`, CM): the time per message of the outbox's write (a temporary
//      file fsync'd, renamed, its folder fsync'd), synchronous on the event loop as the notifier makes it,
//      the same write without the fsyncs, and the same with fs/promises (the loop free meanwhile);
//      baseline: one journal commit
//      (the SQLite journal as `trex run` opens it, fsync'd, one event), which the loop makes for each
//      journaled event, measured in the same rounds.
//
// Options: --quick, --json (one JSON object at the end), --cap <seconds> per explorer run,
// --only engine (sections 1 to 3), --only engine-alone (1b, with 2 and 3 for its journal),
// --only utilisation (section 4), --only reading (section 5), --only start (section 6) or --only outbox (section 7).
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { DatabaseSync } from "node:sqlite"
import { HeuristicResearcher, TemplateExecutor } from "@trex/agents"
import { HtmlReport, LiveView, RunDir, Status } from "@trex/cli"
import { Backend, ExperimentTree, Journal, JournalEvent, Researcher, SearchPolicy, SearchSpace, Strategy, type Task } from "@trex/core"
import { Simulator } from "@trex/executors"
import { Control, Explorer, ResultCache, Uct } from "@trex/mcts"
import { Effect, Layer, Random } from "effect"
import * as Outbox from "../packages/cli/src/internal/outbox.ts"

const USAGE = `npm run bench [-- options]: the engine figures, each against a baseline measured in the same run
  --quick            smaller sizes (1k and 5k trials, not up to 100k)
  --json             one JSON object at the end
  --cap <seconds>    stop each explorer run after this long (default 600)
  --only <section>   engine (sections 1 to 3), engine-alone (1b, its replay and memory), utilisation (4), reading (5), start (6) or outbox (7)`
{
  // a mistyped option would otherwise start the full hour-long run
  const args = process.argv.slice(2)
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if (a === "--help" || a === "-h") {
      console.log(USAGE)
      process.exit(0)
    }
    if (a === "--cap" || a === "--only") {
      i++
      continue
    }
    if (a !== "--quick" && a !== "--json") {
      console.error(`unknown option ${JSON.stringify(a)}\n${USAGE}`)
      process.exit(2)
    }
  }
}
const quick = process.argv.includes("--quick")
const asJson = process.argv.includes("--json")
const sizes = quick ? [1_000, 5_000] : [1_000, 10_000, 30_000, 100_000]
const capArg = process.argv.indexOf("--cap")
const capSeconds = capArg >= 0 ? Number(process.argv[capArg + 1]) : 600
if (!(capSeconds > 0)) {
  console.error(`--cap takes a number of seconds above 0, not ${JSON.stringify(process.argv[capArg + 1])}`)
  process.exit(2)
}
const onlyArg = process.argv.indexOf("--only")
const only = onlyArg >= 0 ? process.argv[onlyArg + 1] : undefined
if (only !== undefined && only !== "engine" && only !== "engine-alone" && only !== "utilisation" && only !== "reading" && only !== "start" && only !== "outbox") {
  console.error(`--only takes "engine" (sections 1 to 3), "engine-alone" (1b, its replay and memory), "utilisation" (section 4), "reading" (section 5), "start" (section 6) or "outbox" (section 7), not ${JSON.stringify(only)}`)
  process.exit(2)
}

// 5 parameters x 10 values: 100,000 distinct configurations, enough for 100k trials.
const parameters: ReadonlyArray<SearchSpace.Parameter> = [
  { path: "training.learningRate", kind: "log", values: [1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2] },
  { path: "training.epochs", kind: "ordinal", values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] },
  { path: "training.batchSize", kind: "ordinal", values: [4, 8, 12, 16, 24, 32, 48, 64, 96, 128] },
  { path: "data.numExamples", kind: "ordinal", values: [500, 1000, 2000, 3000, 4000, 6000, 8000, 12000, 16000, 24000] },
  { path: "training.warmupRatio", kind: "ordinal", values: [0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3] }
]

const task = (maxTrials: number): Task.Task => ({
  name: "bench",
  objective: "engine benchmark",
  metric: { name: "score", direction: "maximize" },
  datasets: [],
  evaluation: { splits: [], extra: {} },
  constraints: {},
  budget: { maxTrials },
  searchSpace: { parameters },
  defaultStrategy: Strategy.decodeSync({
    data: { sources: [{ name: "d" }], numExamples: 4000 },
    training: { learningRate: 2e-4, epochs: 5, batchSize: 24, warmupRatio: 0.03 }
  })
})

const recipe: Task.Recipe = { command: ["simulated"], env: {}, resources: { gpus: 1, cpus: 1 } }

const landscape = (options: { seconds: number; heavyTail?: number; curvePoints?: number }) =>
  Simulator.synthetic({
    parameters,
    seed: 1,
    seconds: options.seconds,
    ...(options.heavyTail !== undefined ? { heavyTail: options.heavyTail } : {}),
    ...(options.curvePoints !== undefined ? { curvePoints: options.curvePoints } : {})
  })

const time = async <A>(f: () => Promise<A>): Promise<{ ms: number; value: A }> => {
  const start = performance.now()
  const value = await f()
  return { ms: performance.now() - start, value }
}

/** Time spent inside a policy's and a researcher's effects. */
interface Timers {
  select: number
  propose: number
  distill: number
}
const timed = <A, E, R>(timers: Timers, key: keyof Timers, eff: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const t0 = performance.now()
    return Effect.ensuring(eff, Effect.sync(() => (timers[key] += performance.now() - t0)))
  })

/** Finished trials and when each thousandth finished, to see the cost of the last trials. */
interface Progress {
  finished: number
  readonly marks: Array<{ readonly finished: number; readonly at: number }>
}

interface Agents {
  readonly policy: SearchPolicy.SearchPolicyShape
  readonly researcher: Researcher.ResearcherShape
}
const defaultAgents = (): Agents => ({ policy: Uct.make(), researcher: HeuristicResearcher.make() })

/** The Explorer over a simulator: up to `trials` trials, `concurrency` in flight, stopped after `cap` seconds. */
const explore = (
  trials: number,
  journal: Layer.Layer<Journal.Journal, unknown>,
  land: Simulator.Landscape,
  concurrency: number,
  agents: Agents = defaultAgents(),
  cap = Infinity,
  extra: Partial<Explorer.Options> = {}
) =>
  Effect.gen(function*() {
    const sim = yield* Simulator.Simulator
    // simulated start time of every trial, to measure utilisation while trials are still being started
    const starts = new Map<string, number>()
    // the start times are for the utilisation runs (concurrency 8); reading the simulated clock costs
    // a run of an effect per trial, which the overhead runs (concurrency 1) should not count
    const trackStarts = concurrency > 1
    const progress: Progress = { finished: 0, marks: [{ finished: 0, at: performance.now() }] }
    const onEvent = (entry: { event: { _tag: string; nodeId?: string } }) => {
      if (entry.event._tag === "JobSubmitted" && trackStarts) starts.set(entry.event.nodeId!, Effect.runSync(sim.clock))
      else if (entry.event._tag === "NodeFinished" && ++progress.finished % 1000 === 0) {
        progress.marks.push({ finished: progress.finished, at: performance.now() })
      }
    }
    const control = new Control.Control()
    const timer = Number.isFinite(cap) ? setTimeout(() => control.stop("drain"), cap * 1000) : undefined
    const summary = yield* Explorer.run(task(trials), { runId: "bench", runDir: "/nonexistent", seed: 1, concurrency, distillEvery: 5, onEvent, control, ...extra })
      .pipe(Effect.ensuring(Effect.sync(() => clearTimeout(timer))))
    progress.marks.push({ finished: progress.finished, at: performance.now() })
    return { summary, utilisation: yield* sim.utilisation, clock: yield* sim.clock, starts, progress }
  }).pipe(
    Effect.provide(
      Layer.mergeAll(
        journal,
        Layer.succeed(SearchPolicy.SearchPolicy, agents.policy),
        Layer.succeed(Researcher.Researcher, agents.researcher),
        TemplateExecutor.layer({ taskDir: ".", recipe }).pipe(Layer.provideMerge(Simulator.Simulator.layer(land, { gpus: concurrency })))
      )
    ),
    Effect.scoped
  )

/** The default agents, with the time spent in them counted. */
const timedAgents = (timers: Timers): Agents => {
  const { policy, researcher } = defaultAgents()
  return {
    policy: { ...policy, select: (tree, ctx) => timed(timers, "select", policy.select(tree, ctx)) },
    researcher: {
      ...researcher,
      propose: (ctx, n) => timed(timers, "propose", researcher.propose(ctx, n)),
      distill: (ctx) => timed(timers, "distill", researcher.distill(ctx))
    }
  }
}

/** ms per trial over the last tenth of the trials (at least the last 1,000). */
const lastTenth = (p: Progress): number => {
  const end = p.marks[p.marks.length - 1]!
  const target = end.finished - Math.max(1000, Math.round(end.finished / 10))
  const from = [...p.marks].reverse().find((m) => m.finished <= target) ?? p.marks[0]!
  return (end.at - from.at) / Math.max(1, end.finished - from.finished)
}

/**
 * The engine alone: a spine policy (every `width`th trial extends the spine, the others are leaves
 * on its tip, so the tree is `trials / width` deep) and a researcher that hands out the
 * configurations in order, both O(1) per trial.
 */
const engineAgents = (trials: number, width: number, first = 0): Agents => {
  const base = task(trials).defaultStrategy!
  let next = first
  let tip = "root"
  return {
    policy: {
      name: "spine",
      select: (tree) =>
        Effect.sync(() => {
          const id = tip
          if (tree.size % width === 0) tip = `n${tree.size + 1}`
          return SearchPolicy.expand(id)
        })
    },
    researcher: {
      name: "in-order",
      analyze: () => Effect.succeed({ summary: "", metricNotes: "", dataNotes: "", risks: [], notes: {} }),
      propose: () =>
        Effect.sync(() => {
          let s = base
          let k = next++
          for (const p of parameters) {
            s = SearchSpace.set(s, p.path, p.values[k % p.values.length]!)
            k = Math.floor(k / p.values.length)
          }
          return [{ strategy: s }]
        }),
      distill: () => Effect.succeed([])
    }
  }
}

/** Baseline: the same jobs straight to the simulator, one at a time, no search. */
const baseline = (trials: number, land: Simulator.Landscape) =>
  Effect.gen(function*() {
    const backend = yield* Backend.Backend
    const base = task(trials).defaultStrategy!
    const files = [{ path: "strategy.json", content: JSON.stringify(Strategy.encode(base)) }]
    for (let i = 0; i < trials; i++) {
      yield* Backend.run(backend, { name: `b${i}`, argv: ["x"], env: {}, files, resources: recipe.resources, labels: { run: "base", node: `b${i}` } })
    }
  }).pipe(Effect.provide(Simulator.Simulator.layer(land, { gpus: 1 })), Effect.scoped)

const results: Record<string, unknown> = {}
const print = (line: string) => {
  if (!asJson) console.log(line)
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-bench-"))

if (only === undefined || only === "engine" || only === "engine-alone") {
  const zero = landscape({ seconds: 0 })
  let sqliteFile = ""
  const fmt = (x: number, digits = 4) => x.toFixed(digits)
  if (only !== "engine-alone") {
    // ---- 1. orchestration overhead ----------------------------------------------------------------
    const overhead: Array<Record<string, number | string | boolean>> = []
    print(`1. Orchestration overhead per trial (zero-cost simulator, UCT + heuristic researcher, concurrency 1; each run stopped after ${capSeconds} s)`)
    print("| trials | baseline ms/trial | in-memory ms/trial | ratio | last 10% ms/trial | select / propose / distill / rest ms | SQLite ms/trial | SQLite trials/s | SQLite last 10% ms/trial | max depth |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (const n of sizes) {
      const base = await time(() => Effect.runPromise(baseline(n, zero)))
      const timers: Timers = { select: 0, propose: 0, distill: 0 }
      const mem = await time(() => Effect.runPromise(explore(n, Journal.Journal.layerMemory, zero, 1, timedAgents(timers), capSeconds)))
      sqliteFile = path.join(dir, `journal-${n}.sqlite`)
      const sql = await time(() => Effect.runPromise(explore(n, Journal.Journal.layerSqlite(sqliteFile, { durability: "process" }), zero, 1, defaultAgents(), capSeconds)))
      const memTrials = mem.value.progress.finished
      const sqlTrials = sql.value.progress.finished
      const row = {
        trials: n,
        memoryTrials: memTrials,
        sqliteTrials: sqlTrials,
        capped: memTrials < n || sqlTrials < n,
        baselineMsPerTrial: base.ms / n,
        memoryMsPerTrial: mem.ms / memTrials,
        memoryRatio: mem.ms / memTrials / (base.ms / n),
        memoryLastTenthMsPerTrial: lastTenth(mem.value.progress),
        selectMsPerTrial: timers.select / memTrials,
        proposeMsPerTrial: timers.propose / memTrials,
        distillMsPerTrial: timers.distill / memTrials,
        restMsPerTrial: (mem.ms - timers.select - timers.propose - timers.distill) / memTrials,
        sqliteMsPerTrial: sql.ms / sqlTrials,
        sqliteRatio: sql.ms / sqlTrials / (base.ms / n),
        sqliteTrialsPerSecond: sqlTrials / (sql.ms / 1000),
        sqliteLastTenthMsPerTrial: lastTenth(sql.value.progress),
        treeSize: mem.value.summary.tree.size,
        maxDepth: Math.max(...[...mem.value.summary.tree.nodes()].map((x) => x.depth))
      }
      overhead.push(row)
      const label = row.capped ? `${n} (stopped: ${memTrials} / ${sqlTrials} done)` : `${n}`
      print(`| ${label} | ${fmt(row.baselineMsPerTrial)} | ${fmt(row.memoryMsPerTrial)} | ${row.memoryRatio.toFixed(1)}x | ${fmt(row.memoryLastTenthMsPerTrial)} | ${
        [row.selectMsPerTrial, row.proposeMsPerTrial, row.distillMsPerTrial, row.restMsPerTrial].map((x) => fmt(x, 3)).join(" / ")
      } | ${fmt(row.sqliteMsPerTrial)} | ${row.sqliteTrialsPerSecond.toFixed(0)} | ${fmt(row.sqliteLastTenthMsPerTrial)} | ${row.maxDepth} |`)
    }
    results["overhead"] = overhead
  }

  // ---- 1b. the engine alone ------------------------------------------------------------------------
  const engineTrials = sizes[sizes.length - 1]!
  const engineFile = path.join(dir, `engine-${engineTrials}.sqlite`)
  {
    const rows: Array<Record<string, number>> = []
    print("")
    print(`1b. The engine alone (O(1) spine policy and in-order researcher), ${engineTrials} trials:`)
    // the baseline (the same jobs straight to the simulator) has no tree: one measurement serves both depths
    const base = await time(() => Effect.runPromise(baseline(engineTrials, zero)))
    for (const width of [400, 25]) {
      const file = width === 25 ? engineFile : path.join(dir, `engine-${engineTrials}-${width}.sqlite`)
      const mem = await time(() => Effect.runPromise(explore(engineTrials, Journal.Journal.layerMemory, zero, 1, engineAgents(engineTrials, width))))
      const sql = await time(() =>
        Effect.runPromise(explore(engineTrials, Journal.Journal.layerSqlite(file, { durability: "process" }), zero, 1, engineAgents(engineTrials, width)))
      )
      const row = {
        trials: engineTrials,
        width,
        baselineMsPerTrial: base.ms / engineTrials,
        memoryMsPerTrial: mem.ms / engineTrials,
        memoryLastTenthMsPerTrial: lastTenth(mem.value.progress),
        sqliteMsPerTrial: sql.ms / engineTrials,
        sqliteTrialsPerSecond: engineTrials / (sql.ms / 1000),
        sqliteLastTenthMsPerTrial: lastTenth(sql.value.progress),
        maxDepth: Math.max(...[...mem.value.summary.tree.nodes()].map((x) => x.depth))
      }
      rows.push(row)
      print(`    depth ${row.maxDepth}: baseline ${fmt(row.baselineMsPerTrial)} ms/trial; in-memory ${fmt(row.memoryMsPerTrial)} ms/trial (last 10%: ${
        fmt(row.memoryLastTenthMsPerTrial)
      }); SQLite ${fmt(row.sqliteMsPerTrial)} ms/trial = ${row.sqliteTrialsPerSecond.toFixed(0)} trials/s (last 10%: ${fmt(row.sqliteLastTenthMsPerTrial)})`)
    }
    results["engine"] = rows
  }

  // ---- 2. journal replay and 3. memory per node ----------------------------------------------
  const replayOf = async (file: string) => {
    const db = new DatabaseSync(file, { readOnly: true })
    const raw = await time(async () => {
      let count = 0
      for (const row of db.prepare("SELECT payload FROM events ORDER BY seq").iterate() as Iterable<{ payload: string }>) {
        JSON.parse(row.payload)
        count++
      }
      return count
    })
    db.close()
    if (typeof globalThis.gc === "function") globalThis.gc()
    const heapBefore = process.memoryUsage().heapUsed
    const replay = await time(() =>
      Effect.runPromise(
        Effect.gen(function*() {
          const journal = yield* Journal.Journal
          const entries = yield* journal.read(1)
          return ExperimentTree.fold(entries.map((e) => e.event))!
        }).pipe(Effect.provide(Journal.Journal.layerSqlite(file, { readonly: true })), Effect.scoped)
      )
    )
    if (typeof globalThis.gc === "function") globalThis.gc()
    const heapAfter = process.memoryUsage().heapUsed
    const nodes = replay.value.view.size
    return {
      events: raw.value,
      nodes,
      rawParseMs: raw.ms,
      replayMs: replay.ms,
      ratio: replay.ms / raw.ms,
      bytesPerNode: (heapAfter - heapBefore) / nodes,
      gcExposed: typeof globalThis.gc === "function"
    }
  }
  {
    const largest = sqliteFile === "" ? undefined : await replayOf(sqliteFile)
    const engine = await replayOf(engineFile)
    results["replay"] = largest
    results["replayEngine"] = engine
    print("")
    for (const [what, r] of [["the largest run's journal", largest], ["the engine run's journal (1b, the deeper tree)", engine]] as const) {
      if (r === undefined) continue
      print(`2. Journal replay, ${what}: ${r.events} events, ${r.nodes} nodes: fold ${r.replayMs.toFixed(0)} ms vs JSON.parse of the rows ${r.rawParseMs.toFixed(0)} ms (${r.ratio.toFixed(1)}x)`)
    }
    const folded = largest ?? engine
    print(`3. Memory: ${(folded.bytesPerNode / 1024).toFixed(2)} KiB per node of the folded tree (journal entries included; ${
      largest !== undefined ? "the largest run's" : "the engine run's"
    })${folded.gcExposed ? "" : " (run with --expose-gc for a cleaner figure)"}`)
  }
}


/** Makespan of list scheduling: each duration, in order, starts on the machine that frees first. */
function listMakespan(durations: ReadonlyArray<number>, machines: number): number {
  const free = new Array<number>(machines).fill(0)
  for (const d of durations) {
    let k = 0
    for (let i = 1; i < machines; i++) if (free[i]! < free[k]!) k = i
    free[k] = free[k]! + d
  }
  return Math.max(...free)
}
function shuffle<A>(xs: ReadonlyArray<A>, rng: () => number): Array<A> {
  const out = [...xs]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}
function quantile(xs: ReadonlyArray<number>, q: number): number {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

// ---- 4. GPU utilisation ----------------------------------------------------------------------
if (only === undefined || only === "utilisation") {
  const heavy = landscape({ seconds: 600, heavyTail: 1.5 })
  const random = Effect.runSync(Random.withSeed(Effect.service(Random.Random), 7))
  const rng = () => random.nextDoubleUnsafe()
  const rows: Array<Record<string, number>> = []
  print("")
  print("4. GPU utilisation, 8 simulated GPUs, concurrency 8, trials with Pareto(1.5) durations (truncated at 100x), UCT + heuristic researcher:")
  for (const trials of quick ? [200, 2000] : [1000, 10000]) {
    const run8 = await Effect.runPromise(explore(trials, Journal.Journal.layerMemory, heavy, 8))
    // baseline: the lower bound on makespan for these jobs on 8 GPUs = max(total work / 8, longest job)
    const runs = [...run8.summary.tree.nodes()].map((n) => ({
      start: run8.starts.get(n.id) ?? 0,
      seconds: n.state._tag === "Succeeded" ? n.state.result.cost.wallSeconds : 0
    }))
    const total = runs.reduce((a, r) => a + r.seconds, 0)
    const lowerBound = Math.max(total / 8, Math.max(...runs.map((r) => r.seconds)))
    // while trials are still being started, every idle GPU is the loop's fault; after the last
    // start, the drain of the last long trials is not
    const lastStart = Math.max(...runs.map((r) => r.start))
    const busyBeforeLastStart = runs.reduce((a, r) => a + Math.min(r.seconds, Math.max(0, lastStart - r.start)), 0)
    const steady = lastStart > 0 ? busyBeforeLastStart / (8 * lastStart) : 1
    // baselines: the same trials' durations list-scheduled on 8 GPUs (each trial starts on the GPU that
    // frees first) — in random orders, which is the best any scheduler can expect without knowing the
    // durations in advance, and longest first (LPT), which needs to know them
    const durations = runs.map((r) => r.seconds)
    const busyOf = (order: ReadonlyArray<number>) => total / (8 * listMakespan(order, 8))
    const shuffles = Array.from({ length: 200 }, () => busyOf(shuffle(durations, rng)))
    const randomOrder = shuffles.reduce((a, b) => a + b, 0) / shuffles.length
    const longestFirst = busyOf([...durations].sort((a, b) => b - a))
    rows.push({
      gpus: 8,
      concurrency: 8,
      trials,
      busyFractionWhileStarting: steady,
      busyFractionOverall: run8.utilisation,
      makespan: run8.clock,
      makespanLowerBound: lowerBound,
      ratio: run8.clock / lowerBound,
      listScheduledRandomOrderMean: randomOrder,
      listScheduledRandomOrderP10: quantile(shuffles, 0.1),
      listScheduledRandomOrderP90: quantile(shuffles, 0.9),
      listScheduledLongestFirst: longestFirst
    })
    const pct = (x: number) => `${(x * 100).toFixed(1)}%`
    print(`   ${trials} trials: busy ${pct(steady)} while trials were being started; ${pct(run8.utilisation)} overall including the final drain;`)
    print(`     makespan ${(run8.clock / 3600).toFixed(1)} h vs the lower bound max(work / 8, longest trial) ${(lowerBound / 3600).toFixed(1)} h (${(run8.clock / lowerBound).toFixed(3)}x);`)
    print(`     the same trials list-scheduled on 8 GPUs: in random orders ${pct(randomOrder)} busy on average (10th-90th percentile ${pct(quantile(shuffles, 0.1))}-${pct(quantile(shuffles, 0.9))}),`)
    print(`     longest first (needs the durations in advance) ${pct(longestFirst)}`)
  }
  results["utilisation"] = rows
}

// ---- 5. reading a big run --------------------------------------------------------------------
if (only === undefined || only === "reading") {
  const readingSizes = quick ? [1_000, 5_000] : [1_000, 10_000, 50_000]
  const curved = landscape({ seconds: 0, curvePoints: 10 })
  const ms = async <A>(f: () => Promise<A> | A) => {
    if (typeof globalThis.gc === "function") globalThis.gc()
    return time(async () => f())
  }
  const run = <A, E>(eff: Effect.Effect<A, E>) => Effect.runPromise(eff)
  const rows: Array<Record<string, number>> = []
  print("")
  print("5. Reading a big run (engine-alone runs, SQLite, 10-point curves); each command against replaying its journal (read + fold), and ms per trial:")
  print("| trials | replay ms | status | status --json | report.md | report.html (MB) | resume to 1st trial | reuse (folder read) | live view µs/trial |")
  print("|---|---|---|---|---|---|---|---|---|")
  for (const n of readingSizes) {
    // the run, as trex lays it out: <folder>/<run>/journal.sqlite
    const folder = path.join(dir, `reading-${n}`)
    const runDir = path.join(folder, "run")
    fs.mkdirSync(runDir, { recursive: true })
    const file = RunDir.journalFile(runDir)
    await Effect.runPromise(explore(n, Journal.Journal.layerSqlite(file, { durability: "process" }), curved, 1, engineAgents(n, 400)))
    const replay = await ms(() =>
      run(Effect.gen(function*() {
        const entries = yield* (yield* Journal.Journal).read(1)
        return ExperimentTree.fold(entries.map((e) => e.event))!.view.size
      }).pipe(Effect.provide(Journal.Journal.layerSqlite(file, { readonly: true })), Effect.scoped))
    )
    // trex status: load (read + fold) and print; --json too
    const status = await ms(async () => Status.toText(await run(RunDir.load(runDir)), runDir).length)
    const statusJson = await ms(async () => JSON.stringify(Status.toJson(await run(RunDir.load(runDir))), null, 2).length)
    const info = await run(RunDir.load(runDir))
    const markdown = await ms(async () => Status.toMarkdown(await run(RunDir.load(runDir))).length)
    const html = await ms(async () => HtmlReport.render({ entries: (await run(RunDir.load(runDir))).entries, stopped: true }).length)
    // trex resume: load, then the explorer from those entries until its first new trial has run
    const resume = await ms(async () => {
      const loaded = await run(RunDir.load(runDir))
      const more = { maxTrials: loaded.tree.view.size + 1 }
      return run(explore(n, Journal.Journal.layerSqlite(file, { durability: "process" }), curved, 1, engineAgents(n, 400, loaded.tree.view.size), Infinity, {
        budget: more,
        journaled: loaded.entries
      }))
    })
    // a new run in the same folder: reads the run's results for reuse
    const reuse = await ms(async () => {
      const b = ResultCache.builder()
      await run(RunDir.eachSiblingJournal(folder, path.join(folder, "new"), { tags: ResultCache.EVENTS }, b.add))
      return b
    })
    // the live view on a terminal, fed the run's events as they are folded; baseline: the fold alone
    const feed = (onEvent?: (entry: JournalEvent.Entry, tree: ExperimentTree.TreeView) => void) => {
      const tree = ExperimentTree.fold([info.entries[0]!.event])!
      for (let i = 1; i < info.entries.length; i++) {
        tree.apply(info.entries[i]!.event)
        onEvent?.(info.entries[i]!, tree.view)
      }
    }
    const foldOnly = await ms(() => feed())
    const view = LiveView.make({ tty: true, write: () => {}, intervalMs: 3_600_000 })
    view.onEvent(info.entries[0]!, ExperimentTree.fold([info.entries[0]!.event])!.view)
    const withView = await ms(() => feed(view.onEvent))
    view.close()
    const row = {
      trials: n,
      replayMs: replay.ms,
      statusMs: status.ms,
      statusJsonMs: statusJson.ms,
      markdownMs: markdown.ms,
      htmlMs: html.ms,
      htmlBytes: html.value,
      htmlBytesPerTrial: html.value / n,
      resumeMs: resume.ms,
      reuseMs: reuse.ms,
      liveViewUsPerTrial: (1000 * Math.max(0, withView.ms - foldOnly.ms)) / n
    }
    rows.push(row)
    const r = (x: number) => `${(x / replay.ms).toFixed(2)}x`
    print(`| ${n} | ${replay.ms.toFixed(0)} | ${r(status.ms)} | ${r(statusJson.ms)} | ${r(markdown.ms)} | ${r(html.ms)} (${(html.value / 1e6).toFixed(1)}, ${(html.value / n).toFixed(0)} B/trial) | ${
      r(resume.ms)
    } | ${r(reuse.ms)} | ${row.liveViewUsPerTrial.toFixed(1)} |`)
    fs.rmSync(folder, { recursive: true, force: true })
  }
  // growth: ms per trial at the largest size against at the smallest (1.0 is linear in trials)
  const [small, large] = [rows[0]!, rows[rows.length - 1]!]
  const growth = (key: keyof typeof small) => (large[key]! / large.trials) / (small[key]! / small.trials)
  const keys = ["replayMs", "statusMs", "statusJsonMs", "markdownMs", "htmlMs", "htmlBytes", "resumeMs", "reuseMs"] as const
  const perTrial = Object.fromEntries(keys.map((k) => [k, growth(k)]))
  const view = large.liveViewUsPerTrial / Math.max(small.liveViewUsPerTrial, 1e-3)
  print(`   per trial at ${large.trials} vs at ${small.trials} trials (1.00 = linear): ${keys.map((k) => `${k.replace(/Ms$/, "")} ${perTrial[k]!.toFixed(2)}`).join(", ")}, live view ${view.toFixed(2)}`)
  results["reading"] = { rows, perTrialGrowth: { ...perTrial, liveView: view } }
}

// ---- 6. CLI start ------------------------------------------------------------------------------
if (only === undefined || only === "start") {
  const repo = path.resolve(import.meta.dirname, "..")
  const trex = [`--conditions=@trex/source`, path.join(repo, "packages/cli/src/bin.ts")]
  // as a user starts it: not with the compile cache the tests keep (vitest.config.ts), but once with none (the first
  // start after an install or an upgrade) and once with the cache trex keeps in the user's cache folder (bin.ts), here
  // a folder of this bench's, filled by a start before the rounds
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== "NODE_COMPILE_CACHE" && k !== "NODE_OPTIONS"))
  const cold = { ...base, NODE_DISABLE_COMPILE_CACHE: "1" }
  const warm = { ...base, XDG_CACHE_HOME: path.join(dir, "start-cache") }
  fs.mkdirSync(warm.XDG_CACHE_HOME, { recursive: true, mode: 0o700 })
  const node = (args: ReadonlyArray<string>, env: Record<string, string | undefined> = cold) => {
    const r = spawnSync(process.execPath, args, { cwd: repo, env, encoding: "utf8" })
    if (r.status !== 0) throw new Error(`node ${args.join(" ")} exited ${r.status}: ${r.stderr}`)
    return r.stdout
  }
  // a finished run of the recorded table's task on the simulator, for trex status
  const made = node([...trex, "run", path.join(repo, "examples/recorded-table/task.yaml"), "--max-trials", "5", "--out", path.join(dir, "start")])
  const runDir = /run directory: (.*)/.exec(made)![1]!
  const commands = [
    { name: "node -e \"\"", args: ["-e", ""], env: cold },
    { name: "trex --help, no compile cache", args: [...trex, "--help"], env: cold },
    { name: "trex --help, compile cache", args: [...trex, "--help"], env: warm },
    { name: "trex status <run>, no compile cache", args: [...trex, "status", runDir], env: cold },
    { name: "trex status <run>, compile cache", args: [...trex, "status", runDir], env: warm }
  ]
  for (const c of commands) if (c.env === warm) node(c.args, warm)
  const rounds = quick ? 5 : 15
  // the CPU time of this process's waited-for children (Linux: /proc/self/stat's cutime and cstime, in ticks of 10 ms),
  // which a busy machine stretches less than the wall time
  const childCpuMs = (): number | undefined => {
    try {
      const fields = fs.readFileSync("/proc/self/stat", "utf8").split(") ")[1]!.split(" ")
      return (Number(fields[13]) + Number(fields[14])) * 10
    } catch {
      return undefined
    }
  }
  const times = commands.map(() => [] as Array<number>)
  const cpu = commands.map(() => [] as Array<number>)
  // the commands in turn, round after round, so that a slow moment of the machine weighs on all of them
  for (let round = 0; round < rounds; round++) {
    for (const [i, c] of commands.entries()) {
      const before = childCpuMs()
      times[i]!.push((await time(async () => node(c.args, c.env))).ms)
      const after = childCpuMs()
      if (before !== undefined && after !== undefined) cpu[i]!.push(after - before)
    }
  }
  const median = (xs: ReadonlyArray<number>) => quantile(xs, 0.5)
  const hook = path.join(repo, "packages/cli/test/support/moduleHook.ts")
  const bare = median(times[0]!)
  const rows = commands.map((c, i) => {
    const out = path.join(dir, `modules-${i}.json`)
    const counted = spawnSync(process.execPath, [`--import=${hook}`, ...c.args], { cwd: repo, env: { ...c.env, TREX_MODULE_COUNT: out }, encoding: "utf8" })
    const modules = counted.status === 0 ? JSON.parse(fs.readFileSync(out, "utf8")) as Record<string, number> : {}
    const total = Object.values(modules).reduce((a, b) => a + b, 0)
    const cpuMs = cpu[i]!.length > 0 ? median(cpu[i]!) : undefined
    return {
      command: c.name,
      medianMs: median(times[i]!),
      ratio: median(times[i]!) / bare,
      minMs: Math.min(...times[i]!),
      maxMs: Math.max(...times[i]!),
      ...(cpuMs !== undefined ? { cpuMs } : {}),
      modules: total,
      sdkModules: modules["@anthropic-ai/sdk"] ?? 0
    }
  })
  print("")
  print(`6. CLI start, from the sources, without and with the compile cache: median wall time of ${rounds} starts each (min-max) against a bare node start in the same rounds, median CPU time (user + sys), modules loaded:`)
  print("| command | median ms | ratio | min-max ms | CPU ms | modules | of @anthropic-ai/sdk |")
  print("|---|---|---|---|---|---|---|")
  for (const r of rows) {
    print(`| ${r.command} | ${r.medianMs.toFixed(0)} | ${r.ratio.toFixed(1)}x | ${r.minMs.toFixed(0)}-${r.maxMs.toFixed(0)} | ${r.cpuMs?.toFixed(0) ?? "-"} | ${r.modules} | ${r.sdkModules} |`)
  }
  results["start"] = rows
}

// ---- 7. keeping a webhook message -------------------------------------------------------------
if (only === undefined || only === "outbox") {
  const messages = quick ? 100 : 300
  const root = path.join(dir, "outbox")
  // a best's message as the notifier keeps it (about 1 KB of JSON)
  const entry = (i: number): Outbox.Entry<unknown> => ({
    id: `bench/best-n${i}`,
    at: Date.now(),
    message: { text: `new best n${i}: score 0.5`.padEnd(700, "."), trex: { kind: "best", id: `bench/best-n${i}`, best: { id: `n${i}`, score: 0.5 } } },
    delivered: [],
    maxAgeHours: 72
  })
  // the outbox's own write, without its fsyncs
  const noSync = (runDir: string, e: Outbox.Entry<unknown>) => {
    fs.mkdirSync(Outbox.dirOf(runDir), { recursive: true })
    Outbox.writeDurably(Outbox.fileOf(runDir, e.id), JSON.stringify(e), false)
  }
  const syncPath = async (p: string) => {
    const h = await fsp.open(p, "r")
    await h.sync().finally(() => h.close())
  }
  const promised = async (runDir: string, e: Outbox.Entry<unknown>) => {
    const file = Outbox.fileOf(runDir, e.id)
    await fsp.mkdir(Outbox.dirOf(runDir), { recursive: true })
    const h = await fsp.open(`${file}.tmp`, "w")
    await h.writeFile(JSON.stringify(e)).then(() => h.sync()).finally(() => h.close())
    await fsp.rename(`${file}.tmp`, file)
    await syncPath(Outbox.dirOf(runDir))
  }
  const times = { journal: [] as Array<number>, put: [] as Array<number>, noSync: [] as Array<number>, promised: [] as Array<number> }
  // each round: a journal commit, then the three writes in an order that rotates (a write right after an fsync of
  // another file waits longer for the disk)
  const writes: ReadonlyArray<readonly [keyof typeof times, (i: number) => Promise<void>]> = [
    ["put", async (i) => {
      const failed = Outbox.put(path.join(root, "sync"), entry(i))
      if (failed !== undefined) throw new Error(failed)
    }],
    ["noSync", async (i) => noSync(path.join(root, "nosync"), entry(i))],
    ["promised", (i) => promised(path.join(root, "promises"), entry(i))]
  ]
  await Effect.runPromise(Effect.gen(function*() {
    const journal = yield* Journal.Journal
    for (let i = 0; i < messages; i++) {
      const t = performance.now()
      yield* journal.append([JournalEvent.make("RunResumed", { at: Date.now() })])
      times.journal.push(performance.now() - t)
      for (let k = 0; k < writes.length; k++) {
        const [name, write] = writes[(i + k) % writes.length]!
        const t = performance.now()
        yield* Effect.promise(() => write(i))
        times[name].push(performance.now() - t)
      }
    }
  }).pipe(Effect.provide(Journal.Journal.layerSqlite(path.join(root, "journal.db"))), Effect.scoped))
  const median = (xs: ReadonlyArray<number>) => quantile(xs, 0.5)
  const base = median(times.journal)
  const rows = [
    { write: "journal commit, one event (baseline)", ms: times.journal },
    { write: "outbox, fsync'd, on the loop (as kept)", ms: times.put },
    { write: "outbox, no fsync", ms: times.noSync },
    { write: "outbox, fsync'd, fs/promises", ms: times.promised }
  ].map((r) => ({ write: r.write, medianMs: median(r.ms), p90Ms: quantile(r.ms, 0.9), ratio: median(r.ms) / base }))
  print("")
  print(`7. Keeping a webhook message: ${messages} messages, median and p90 ms per message, against one journal commit (SQLite, fsync'd) in the same rounds; the journal's commit and the outbox's write on the loop hold it for all that time:`)
  print("| write | median ms | p90 ms | ratio |")
  print("|---|---|---|---|")
  for (const r of rows) print(`| ${r.write} | ${r.medianMs.toFixed(2)} | ${r.p90Ms.toFixed(2)} | ${r.ratio.toFixed(1)}x |`)
  results["outbox"] = { messages, rows }
}

fs.rmSync(dir, { recursive: true, force: true })
if (asJson) console.log(JSON.stringify(results, null, 2))
