// Do the heuristic researcher's insights help the search? An ablation of the default method
// (`uct` + the heuristic researcher, as `trex bench` runs it: distillation every 5 results).
//
//   node --conditions=@trex/source bench/insights.ts [--seeds 200] [--first-seed 0] [--trials 10,20,30]
//     [--variants default,never,off,more] [--json FILE] [TASK.yaml ...]
//   node --conditions=@trex/source bench/insights.ts --trace [--grid] [--seeds 5] [TASK.yaml ...]
//
// Variants: `default` (insights followed with probability 0.5 when one applies), `never`
// (`followInsights: 0`: distilled, never followed), `off` (no distillation: the researcher's
// `distill` returns nothing, which is what `distillEvery: 0` gives it — it never sees an insight),
// `more` (`followInsights: 0.8`); and `grid`, `grid-never`: the default and `never` searching the
// table's parameters as a grid instead of its pool of recorded configurations (a configuration not
// in the table runs as its nearest row), as a task with a declared grid is searched: jumps are then
// 64 random configurations, where on a pool of up to 2,048 they are every untried point. Every variant runs on the same seeds, so the differences are
// paired by seed. Without task files, the 11 development tables of docs/benchmarks.md.
//
// The table printed gives, per task and trial count, each variant's mean normalised regret ± its
// standard error, and its paired difference from its reference (`default`; `grid` for `grid-never`)
// ± the standard error of the per-seed differences (negative: lower regret than the reference).
//
// `--trace` runs the default on a few seeds and reports what it distils and what becomes of it:
// the insights per run, whether each is true of the whole table (the same comparison, every pair
// of the table's configurations that differ only in that parameter), how many proposals had an
// insight to follow, how many of the proposals run were an insight followed, and how many would
// have been different had insights never been followed (a twin with `followInsights: 0` asked the
// same question with the same random numbers).
import * as fs from "node:fs"
import { HeuristicResearcher, TemplateExecutor } from "@trex/agents"
import { Bench, Wiring } from "@trex/cli"
import { Fingerprint, type Insight, Journal, Researcher, SearchPolicy, SearchSpace, Task, TaskFile } from "@trex/core"
import { Simulator } from "@trex/executors"
import { Explorer } from "@trex/mcts"
import { Effect, Layer, Random } from "effect"

const DEV_TABLES = [
  "nmthpo-zh-en", "nmthpo-ru-en", "nmthpo-ja-en", "nmthpo-en-ja", "nmthpo-sw-en", "nmthpo-so-en",
  "regmix-1m-pile-cc", "nmtlc-ted-ru-en", "nmtlc-robust19-ja-en", "tinker-llama-3-1-8b", "tinker-qwen3-8b"
].map((t) => `bench/tasks/${t}.yaml`)

/** A researcher that never distils: what `distillEvery: 0` leaves it with. */
const noDistill = (inner: Researcher.ResearcherShape): Researcher.ResearcherShape => ({
  ...inner,
  distill: () => Effect.succeed([])
})

/** The table's parameters as a grid: no pool of recorded configurations (a configuration not in the table runs as its nearest row). */
const gridOf = (task: Task.Task): SearchSpace.SearchSpace => ({ parameters: task.searchSpace!.parameters })

const VARIANTS: Record<string, (task: Task.Task) => Researcher.ResearcherShape> = {
  default: () => HeuristicResearcher.make(),
  never: () => HeuristicResearcher.make({ followInsights: 0 }),
  off: () => noDistill(HeuristicResearcher.make()),
  more: () => HeuristicResearcher.make({ followInsights: 0.8 }),
  // the same on the table's grid (see gridOf): jumps are then 64 random configurations, not the whole pool
  grid: (task) => HeuristicResearcher.make({ space: gridOf(task) }),
  "grid-never": (task) => HeuristicResearcher.make({ space: gridOf(task), followInsights: 0 })
}

/** The variant each is compared with, paired by seed (none for the two references). */
const REFERENCE: Record<string, string | undefined> = { never: "default", off: "default", more: "default", "grid-never": "grid" }

// ---- arguments
const argv = process.argv.slice(2)
const flag = (name: string) => {
  const i = argv.indexOf(name)
  if (i < 0) return undefined
  const v = argv[i + 1]
  argv.splice(i, 2)
  return v
}
const boolFlag = (name: string) => {
  const i = argv.indexOf(name)
  if (i >= 0) argv.splice(i, 1)
  return i >= 0
}
const trace = boolFlag("--trace")
const traceGrid = boolFlag("--grid")
const seeds = Number(flag("--seeds") ?? (trace ? 5 : 200))
const firstSeed = Number(flag("--first-seed") ?? 0)
const trials = (flag("--trials") ?? "10,20,30").split(",").map(Number)
const variants = (flag("--variants") ?? "default,never,off,more").split(",")
const jsonOut = flag("--json")
const unknown = argv.find((a) => a.startsWith("--"))
const bad = unknown !== undefined || !Number.isInteger(seeds) || seeds < 1 || trials.some((n) => !Number.isInteger(n) || n < 1) ||
  variants.some((v) => VARIANTS[v] === undefined || (REFERENCE[v] !== undefined && !variants.includes(REFERENCE[v])))
if (bad) {
  console.error(
    "usage: node --conditions=@trex/source bench/insights.ts [--seeds N] [--first-seed K] [--trials 10,20,30]\n" +
      "  [--variants default,never,off,more,grid,grid-never] [--json FILE] [--trace [--grid]] [TASK.yaml ...]"
  )
  process.exit(2)
}
const files = argv.length > 0 ? argv : DEV_TABLES

const mean = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0) / xs.length
const f3 = (x: number) => x.toFixed(Math.abs(x) < 0.01 && x !== 0 ? 4 : 3)

// ---- the ablation
const ablation = Effect.gen(function*() {
  const results: Array<Bench.TaskResult> = []
  for (const file of files) {
    const prepared = yield* Bench.prepareTask(file, { methods: ["uct"] })
    const contenders = variants.map((name) => ({ name, policy: Wiring.policy("uct"), researcher: VARIANTS[name]!(prepared.task) }))
    const result = yield* Bench.benchTask(prepared, {
      methods: contenders,
      seeds,
      firstSeed,
      trials,
      onMethod: (task, method, s) => console.error(`${task} ${method}: ${s.toFixed(0)} s`)
    })
    results.push(result)
  }
  const lines: Array<string> = []
  const head = trials.map((n) => `N=${n}`)
  lines.push(`| task | variant | ${head.join(" | ")} |`, `|---|---|${head.map(() => "---").join("|")}|`)
  for (const r of results) {
    for (const v of variants) {
      const cells = trials.map((n) => {
        const own = `${f3(r.regret[v]![n]!)} ± ${f3(r.stdError[v]![n]!)}`
        const ref = REFERENCE[v]
        if (ref === undefined) return own
        const d = r.perSeed[v]![n]!.map((x, i) => x - r.perSeed[ref]![n]![i]!)
        return `${own} (${mean(d) >= 0 ? "+" : ""}${f3(mean(d))} ± ${f3(Bench.standardError(d))})`
      })
      lines.push(`| ${r.task} | ${v} | ${cells.join(" | ")} |`)
    }
  }
  // how many seeds ran exactly the same regret curve at the trial counts asked for
  lines.push("", "Seeds whose regret at every trial count equals the reference's (`never`, `off`, `more`: `default`'s; `grid-never`: `grid`'s):")
  for (const r of results) {
    const same = variants.filter((v) => REFERENCE[v] !== undefined).map((v) => {
      const ref = r.perSeed[REFERENCE[v]!]!
      let k = 0
      for (let i = 0; i < seeds; i++) if (trials.every((n) => r.perSeed[v]![n]![i] === ref[n]![i])) k++
      return `${v} ${k}/${seeds}`
    })
    lines.push(`- ${r.task}: ${same.join(", ")}`)
  }
  console.log(lines.join("\n"))
  if (jsonOut !== undefined) fs.writeFileSync(jsonOut, JSON.stringify(results))
})

// ---- the trace
interface ValueEffect {
  readonly path: string
  readonly value: SearchSpace.Value
  readonly wins: number
  readonly pairs: number
  readonly delta: number
}
const effectOf = (i: Insight.Insight): ValueEffect | undefined => {
  const d = i.data as Partial<ValueEffect>
  return typeof d.path === "string" && d.value !== undefined && typeof d.delta === "number" ? (d as ValueEffect) : undefined
}

/** Over the whole table: the comparisons an insight about `path=value` rests on, every pair of configurations differing only there. */
const tableTruth = (task: Task.Task, landscape: Simulator.Landscape) => {
  const space = task.searchSpace!
  const rows = Simulator.configurations(landscape).filter((p) => p.score !== undefined)
  const strategies = rows.map((p) => Simulator.strategyOf(landscape, p))
  const values = strategies.map((s) => space.parameters.map((p) => JSON.stringify(SearchSpace.get(s, p.path))))
  const utility = rows.map((p) => Task.utility(task, p.score!))
  const memo = new Map<string, { wins: number; pairs: number; delta: number }>()
  return (path: string, value: SearchSpace.Value) => {
    const key = `${path}=${JSON.stringify(value)}`
    let out = memo.get(key)
    if (out !== undefined) return out
    const d = space.parameters.findIndex((p) => p.path === path)
    const v = JSON.stringify(value)
    // rows grouped by every other parameter: the pairs are within a group
    const groups = new Map<string, Array<number>>()
    values.forEach((vs, i) => {
      const k = vs.filter((_, j) => j !== d).join("|")
      const g = groups.get(k)
      if (g === undefined) groups.set(k, [i])
      else g.push(i)
    })
    let wins = 0
    let pairs = 0
    let sum = 0
    for (const g of groups.values()) {
      for (const i of g) {
        if (values[i]![d] !== v) continue
        for (const j of g) {
          if (values[j]![d] === v) continue
          pairs++
          if (utility[i]! > utility[j]!) wins++
          sum += utility[i]! - utility[j]!
        }
      }
    }
    memo.set(key, (out = { wins, pairs, delta: pairs > 0 ? sum / pairs : 0 }))
    return out
  }
}

const traceTask = (file: string) =>
  Effect.gen(function*() {
    const loaded = yield* TaskFile.load(file)
    const { landscape } = yield* Simulator.fromTask(loaded.task, loaded.dir, loaded.file)
    const task = Simulator.completeTask(loaded.task, landscape)
    const truth = tableTruth(task, landscape)
    const horizon = Math.max(...trials)
    const totals = {
      runs: 0, insights: 0, valueInsights: 0, helps: 0, trueOfTable: 0, noEffect: 0,
      proposals: 0, withModel: 0, applicable: 0, ranInsight: 0, differs: 0, differsWithModel: 0
    }
    const examples: Array<string> = []
    for (let seed = firstSeed; seed < firstSeed + seeds; seed++) {
      const space = traceGrid ? { space: gridOf(task) } : {}
      const inner = HeuristicResearcher.make(space)
      const twin = HeuristicResearcher.make({ ...space, followInsights: 0 })
      const researcher: Researcher.ResearcherShape = {
        ...inner,
        propose: (context, n) =>
          Effect.gen(function*() {
            const s = yield* Random.nextIntBetween(0, 2 ** 30)
            const mine = yield* Random.withSeed(inner.propose(context, n), s)
            const theirs = yield* Random.withSeed(twin.propose(context, n), s)
            const parent = context.tree.get(context.parentId)
            const successes = context.tree.latest(context.tree.size).filter((nd) => nd.state._tag === "Succeeded").length
            const withModel = successes >= 4
            totals.proposals++
            if (withModel) totals.withModel++
            const applicable = parent !== undefined && context.tree.insights.some((i) => {
              const e = effectOf(i)
              return e !== undefined && e.delta > 0 && SearchSpace.get(parent.strategy, e.path) !== e.value
            })
            if (applicable) totals.applicable++
            const chosen = mine[0]
            if (chosen?.strategy.rationale?.includes("(insight:") === true) totals.ranInsight++
            const fp = (p: Researcher.Proposal | undefined) => (p === undefined ? "" : Fingerprint.of(p.strategy))
            if (fp(chosen) !== fp(theirs[0])) {
              totals.differs++
              if (withModel) totals.differsWithModel++
            }
            return mine
          }),
        distill: (context) =>
          Effect.map(inner.distill(context), (insights) => {
            for (const i of insights) {
              totals.insights++
              const e = effectOf(i)
              if (e === undefined) {
                totals.noEffect++
                continue
              }
              totals.valueInsights++
              const t = truth(e.path, e.value)
              const helps = e.delta > 0
              if (helps) totals.helps++
              const agrees = t.pairs > 0 && (helps ? t.wins / t.pairs > 0.5 : t.wins / t.pairs < 0.5)
              if (agrees) totals.trueOfTable++
              if (examples.length < 6) {
                examples.push(`    seed ${seed}: "${i.text}" — on the whole table ${e.path}=${JSON.stringify(e.value)} won ${t.wins} of ${t.pairs} (${agrees ? "true" : "not true"})`)
              }
            }
            return insights
          })
      }
      totals.runs++
      yield* Explorer.run({ ...task, budget: { maxTrials: horizon } }, { runId: `trace-${seed}`, runDir: "/nonexistent", seed, distillEvery: 5 }).pipe(
        Effect.provide(Layer.mergeAll(
          Journal.Journal.layerMemory,
          Layer.succeed(SearchPolicy.SearchPolicy, Wiring.policy("uct")),
          Layer.succeed(Researcher.Researcher, researcher),
          TemplateExecutor.layer({ taskDir: ".", recipe: { command: ["simulated"], env: {}, resources: { gpus: 1, cpus: 1 } } })
        )),
        Effect.provide(Simulator.Simulator.layer(landscape, { gpus: 1 }))
      )
    }
    const t = totals
    const pct = (a: number, b: number) => (b === 0 ? "-" : `${Math.round((100 * a) / b)} %`)
    console.log(
      `${task.name}${traceGrid ? " as a grid" : ""} (${Simulator.configurations(landscape).length} configurations, seeds ${firstSeed}-${firstSeed + seeds - 1}, ${horizon} trials):\n` +
        `  insights per run ${(t.insights / t.runs).toFixed(1)}: ${(t.valueInsights / t.runs).toFixed(1)} about a value ` +
        `(${t.helps} "helps", ${t.valueInsights - t.helps} "hurts"; true of the whole table: ${pct(t.trueOfTable, t.valueInsights)}), ` +
        `${(t.noEffect / t.runs).toFixed(1)} "no effect"\n` +
        `  proposals ${t.proposals}: with the model ${pct(t.withModel, t.proposals)}; an insight to follow ${pct(t.applicable, t.proposals)}; ` +
        `run proposal was an insight followed ${pct(t.ranInsight, t.proposals)}; different without insights followed ${t.differs} ` +
        `(${t.differsWithModel} with the model)\n` + examples.join("\n")
    )
  })

const main = trace ? Effect.forEach(files, traceTask, { discard: true }) : ablation
await Effect.runPromise(main as Effect.Effect<void, unknown>)
