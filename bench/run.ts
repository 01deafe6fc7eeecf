// `npm run bench`: engine figures, each against a baseline measured in the same run.
//
//   1. Orchestration overhead per trial: the Explorer (UCT + heuristic researcher + template
//      executor) over a zero-cost simulator, with the in-memory and the SQLite journal, at 1k,
//      10k and 30k trials (5k with --quick); baseline: the same number of jobs submitted straight
//      to the simulator. The cost of a trial grows with the depth of the tree (see docs/benchmarks.md).
//   2. Journal replay: folding the largest run's SQLite journal into a tree; baseline: reading and
//      JSON-parsing its rows without decoding or folding.
//   3. Memory per node of the folded tree.
//   4. GPU utilisation: 8 simulated GPUs, heavy-tailed trial durations (Pareto 1.5), concurrency 8.
//
// Options: --quick (1k and 10k only), --json (one JSON object at the end).
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { DatabaseSync } from "node:sqlite"
import { HeuristicResearcher, TemplateExecutor } from "@trex/agents"
import { Backend, ExperimentTree, Journal, Researcher, SearchPolicy, type SearchSpace, Strategy, type Task } from "@trex/core"
import { Simulator } from "@trex/executors"
import { Explorer, Uct } from "@trex/mcts"
import { Effect, Layer } from "effect"

const quick = process.argv.includes("--quick")
const asJson = process.argv.includes("--json")
const sizes = quick ? [1_000, 5_000] : [1_000, 10_000, 30_000]

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

const landscape = (options: { seconds: number; heavyTail?: number }) =>
  Simulator.synthetic({ parameters, seed: 1, seconds: options.seconds, ...(options.heavyTail !== undefined ? { heavyTail: options.heavyTail } : {}) })

const time = async <A>(f: () => Promise<A>): Promise<{ ms: number; value: A }> => {
  const start = performance.now()
  const value = await f()
  return { ms: performance.now() - start, value }
}

/** The Explorer over a simulator: `trials` trials, `concurrency` in flight. */
const explore = (trials: number, journal: Layer.Layer<Journal.Journal, unknown>, land: Simulator.Landscape, concurrency: number) =>
  Effect.gen(function*() {
    const sim = yield* Simulator.Simulator
    // simulated start time of every trial, to measure utilisation while trials are still being started
    const starts = new Map<string, number>()
    const onEvent = (entry: { event: { _tag: string; nodeId?: string } }) => {
      if (entry.event._tag === "JobSubmitted") starts.set(entry.event.nodeId!, Effect.runSync(sim.clock))
    }
    const summary = yield* Explorer.run(task(trials), { runId: "bench", runDir: "/nonexistent", seed: 1, concurrency, distillEvery: 5, onEvent })
    return { summary, utilisation: yield* sim.utilisation, clock: yield* sim.clock, starts }
  }).pipe(
    Effect.provide(
      Layer.mergeAll(
        journal,
        Layer.succeed(SearchPolicy.SearchPolicy, Uct.make()),
        Layer.succeed(Researcher.Researcher, HeuristicResearcher.make()),
        TemplateExecutor.layer({ taskDir: ".", recipe }).pipe(Layer.provideMerge(Simulator.Simulator.layer(land, { gpus: concurrency })))
      )
    ),
    Effect.scoped
  )

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

// ---- 1. orchestration overhead ----------------------------------------------------------------
const zero = landscape({ seconds: 0 })
const overhead: Array<Record<string, number | string>> = []
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-bench-"))
let sqliteFile = ""
print("1. Orchestration overhead per trial (zero-cost simulator, UCT + heuristic researcher, concurrency 1)")
print("| trials | baseline ms/trial | in-memory ms/trial | ratio | SQLite ms/trial | ratio | SQLite trials/s | max depth |")
print("|---|---|---|---|---|---|---|---|")
for (const n of sizes) {
  const base = await time(() => Effect.runPromise(baseline(n, zero)))
  const mem = await time(() => Effect.runPromise(explore(n, Journal.Journal.layerMemory, zero, 1)))
  sqliteFile = path.join(dir, `journal-${n}.sqlite`)
  const sql = await time(() => Effect.runPromise(explore(n, Journal.Journal.layerSqlite(sqliteFile, { durability: "process" }), zero, 1)))
  const row = {
    trials: n,
    baselineMsPerTrial: base.ms / n,
    memoryMsPerTrial: mem.ms / n,
    memoryRatio: mem.ms / base.ms,
    sqliteMsPerTrial: sql.ms / n,
    sqliteRatio: sql.ms / base.ms,
    sqliteTrialsPerSecond: n / (sql.ms / 1000),
    treeSize: mem.value.summary.tree.size,
    maxDepth: Math.max(...[...mem.value.summary.tree.nodes()].map((x) => x.depth))
  }
  overhead.push(row)
  print(`| ${n} | ${row.baselineMsPerTrial.toFixed(4)} | ${row.memoryMsPerTrial.toFixed(4)} | ${row.memoryRatio.toFixed(1)}x | ${row.sqliteMsPerTrial.toFixed(4)} | ${row.sqliteRatio.toFixed(1)}x | ${row.sqliteTrialsPerSecond.toFixed(0)} | ${row.maxDepth} |`)
}
results["overhead"] = overhead

// ---- 2. journal replay and 3. memory per node ----------------------------------------------
{
  const db = new DatabaseSync(sqliteFile, { readOnly: true })
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
      }).pipe(Effect.provide(Journal.Journal.layerSqlite(sqliteFile, { readonly: true })), Effect.scoped)
    )
  )
  if (typeof globalThis.gc === "function") globalThis.gc()
  const heapAfter = process.memoryUsage().heapUsed
  const nodes = replay.value.view.size
  results["replay"] = {
    events: raw.value,
    nodes,
    rawParseMs: raw.ms,
    replayMs: replay.ms,
    ratio: replay.ms / raw.ms,
    bytesPerNode: (heapAfter - heapBefore) / nodes,
    gcExposed: typeof globalThis.gc === "function"
  }
  print("")
  print(`2. Journal replay: ${raw.value} events, ${nodes} nodes: fold ${replay.ms.toFixed(0)} ms vs JSON.parse of the rows ${raw.ms.toFixed(0)} ms (${(replay.ms / raw.ms).toFixed(1)}x)`)
  print(`3. Memory: ${((heapAfter - heapBefore) / nodes / 1024).toFixed(2)} KiB per node of the folded tree (journal entries included)${typeof globalThis.gc === "function" ? "" : " (run with --expose-gc for a cleaner figure)"}`)
}

// ---- 4. GPU utilisation ----------------------------------------------------------------------
{
  const heavy = landscape({ seconds: 600, heavyTail: 1.5 })
  const trials = quick ? 200 : 1000
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
  results["utilisation"] = {
    gpus: 8,
    concurrency: 8,
    trials,
    busyFractionWhileStarting: steady,
    busyFractionOverall: run8.utilisation,
    makespan: run8.clock,
    makespanLowerBound: lowerBound,
    ratio: run8.clock / lowerBound
  }
  print("")
  print(`4. GPU utilisation, 8 simulated GPUs, concurrency 8, ${trials} trials with Pareto(1.5) durations (truncated at 100x):`)
  print(`   busy ${(steady * 100).toFixed(1)}% while trials were being started; ${(run8.utilisation * 100).toFixed(1)}% overall including the final drain;`)
  print(`   makespan ${(run8.clock / 3600).toFixed(1)} h vs the lower bound max(work / 8, longest trial) ${(lowerBound / 3600).toFixed(1)} h (${(run8.clock / lowerBound).toFixed(3)}x)`)
}

fs.rmSync(dir, { recursive: true, force: true })
if (asJson) console.log(JSON.stringify(results, null, 2))
