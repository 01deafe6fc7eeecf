import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Logger, Result } from "effect"
import { RandomResearcher } from "@trex/agents"
import { type Errors, TaskFile } from "@trex/core"
import { Simulator } from "@trex/executors"
import { Asha, RandomPolicy, Uct } from "@trex/mcts"
import * as Bench from "../src/Bench.ts"
import * as Trex from "../src/Trex.ts"
import * as LrLayersTask from "./support/lrLayersTask.ts"

const root = path.resolve(import.meta.dirname, "../../..")
const bin = path.join(root, "packages/cli/src/bin.ts")

// a 3 x 3 table: score = 20 (lr 3e-4), 10 (lr 1e-4) or 0 (lr 1e-3), plus the layers (1, 2 or 4): best 24, worst 1;
// with `curve`, each run reports its score at three checkpoints (a third, two thirds, all of it)
const table = (dir: string, options: { readonly curve?: boolean } = {}) =>
  LrLayersTask.write(dir, {
    name: "tiny",
    metric: { name: "score", direction: "maximize" },
    columns: `score,updates${options.curve === true ? ",curve" : ""}`,
    row: (i, layers) => {
      const score = 10 * (i === 1 ? 2 : i === 0 ? 1 : 0) + layers
      return `${score},${100 * layers}${options.curve === true ? `,"[${score / 3},${(2 * score) / 3},${score}]"` : ""}`
    },
    metricColumn: "score",
    cost: { column: "updates", scale: 1 },
    ...(options.curve === true ? { curveColumn: "curve" } : {}),
    recipe: true
  })

// the regrets a run can report on this table: (best - found) / (best - worst), best 24, worst 1
const possible = new Set([1, 2, 4, 11, 12, 14, 21, 22, 24].map((s) => (24 - s) / 23))

describe("trex bench", () => {
  it.effect("recorded runs that failed alike (diverged: NaN) are their configurations' outcome, not a setup error: neither a bench nor a simulated run stops on them", () =>
    Effect.gen(function*() {
      // 8 of 9 configurations diverged; one scored
      const file = LrLayersTask.write(fs.mkdtempSync(path.join(os.tmpdir(), "trex-bench-")), {
        name: "diverging",
        metric: { name: "score", direction: "maximize" },
        columns: "score,updates",
        row: (i, layers) => (i === 1 && layers === 4 ? "24,400" : "NaN,100"),
        metricColumn: "score",
        cost: { column: "updates", scale: 1 },
        recipe: true
      })
      const task = yield* Bench.prepareTask(file, { methods: ["uct"], gpuHours: [] })
      const result = yield* Bench.benchTask(task, { methods: ["uct"], seeds: 2, trials: [9] })
      assert.deepStrictEqual(result.perSeed["uct"]![9], [0, 0], "every configuration tried, the one that scored found")
      const prepared = yield* Trex.prepare({ taskFile: file, out: fs.mkdtempSync(path.join(os.tmpdir(), "trex-bench-")), maxTrials: 6, logLevel: "None" })
      const summary = yield* Trex.runPrepared(prepared)
      assert.strictEqual(summary.reason, "budget: maxTrials")
    }))

  it.effect("a table whose every configuration failed is refused by what the task has: its searchSpace's rows, or the table's and the fields that choose them", () =>
    Effect.gen(function*() {
      // all nine first runs diverged (NaN); a later row repeats one configuration with a score, which a trial never returns
      // (a table with no scored row at all is refused as it is read)
      const write = () => {
        const file = LrLayersTask.write(fs.mkdtempSync(path.join(os.tmpdir(), "trex-bench-")), {
          name: "failed",
          metric: { name: "score", direction: "maximize" },
          columns: "score,updates",
          row: () => "NaN,100",
          metricColumn: "score",
          cost: { column: "updates", scale: 1 },
          recipe: true
        })
        fs.appendFileSync(path.join(path.dirname(file), "runs.csv"), `${LrLayersTask.lrs[1]},4,24,400\n`)
        return file
      }
      const whole = write()
      const table = yield* Effect.flip(Bench.prepareTask(whole, { methods: ["random"] }))
      assert.strictEqual(table.source, whole)
      assert.include(table.message, "none of the 9 configurations of its table (the rows backend.filter keeps, the first recorded run of each) has a score")
      assert.include(table.message, "Keep one row per configuration, with its score, and check backend.metric.column and backend.filter")
      assert.notInclude(table.message, "searchSpace", "the task declares none")
      const spaced = write()
      fs.appendFileSync(spaced, ["searchSpace:", "  parameters:", "    - { path: training.extra.layers, kind: ordinal, values: [1, 2] }", ""].join("\n"))
      const space = yield* Effect.flip(Bench.prepareTask(spaced, { methods: ["random"] }))
      assert.include(space.message, "none of the 2 configurations its searchSpace's points replay has a score")
      assert.include(space.message, "or leave searchSpace out")
    }))

  it.effect("regret is normalised over the rows the task's declared search space reaches, not the whole table", () =>
    Effect.gen(function*() {
      // the 3 x 3 table (best 24 at lr 3e-4, 4 layers; worst 1), searched over lr [1e-4, 1e-3] x layers [1, 2] only:
      // its rows score 11, 12, 1 and 2, so finding 12 is a regret of 0 (over the whole table it read (24 - 12) / 23)
      const file = table(fs.mkdtempSync(path.join(os.tmpdir(), "trex-bench-")))
      fs.appendFileSync(file, [
        "searchSpace:",
        "  parameters:",
        "    - { path: training.learningRate, kind: log, values: [1e-4, 1e-3] }",
        "    - { path: training.extra.layers, kind: ordinal, values: [1, 2] }",
        ""
      ].join("\n"))
      const task = yield* Bench.prepareTask(file, { methods: ["uct", "random"] })
      assert.deepStrictEqual(Simulator.reachable(task.landscape, task.task).map((p) => p.score), [11, 12, 1, 2])
      // the space is walked once for the task, not again for every seed and method
      assert.strictEqual(Simulator.reachable(task.landscape, task.task), Simulator.reachable(task.landscape, task.task))
      const result = yield* Bench.benchTask(task, { methods: ["uct", "random"], seeds: 2, trials: [1, 9] })
      assert.deepStrictEqual(result.perSeed["uct"]![9], [0, 0], "the space's best found: no regret")
      assert.deepStrictEqual(result.perSeed["random"]![9], [0, 0])
      for (const r of [...result.perSeed["uct"]![1]!, ...result.perSeed["random"]![1]!]) assert.include([0, 1 / 11, 10 / 11, 1], r)
    }))

  it.effect("reports each seed's regret, their mean and its standard error; seeds start at --first-seed", () =>
    Effect.gen(function*() {
      const task = table(fs.mkdtempSync(path.join(os.tmpdir(), "trex-bench-")))
      const all = yield* Bench.benchTask(task, { methods: ["uct", "random"], seeds: 4, trials: [1, 3, 9] })
      assert.strictEqual(all.rows, 9)
      assert.strictEqual(all.firstSeed, 0)
      for (const method of ["uct", "random"]) {
        const runs = all.perSeed[method]!
        for (const n of [1, 3, 9]) {
          assert.strictEqual(runs[n]!.length, 4)
          for (const r of runs[n]!) assert.isTrue([...possible].some((p) => Math.abs(p - r) < 1e-12), `${method} N=${n}: ${r}`)
          const m = runs[n]!.reduce((a, b) => a + b, 0) / 4
          assert.closeTo(all.regret[method]![n]!, m, 1e-12)
          const sd = Math.sqrt(runs[n]!.reduce((a, r) => a + (r - m) ** 2, 0) / 3)
          assert.closeTo(all.stdError[method]![n]!, sd / 2, 1e-12)
        }
        // regret never grows with more trials, and nine trials try all nine rows
        for (let s = 0; s < 4; s++) {
          assert.isAtMost(runs[3]![s]!, runs[1]![s]!)
          assert.isAtMost(runs[9]![s]!, runs[3]![s]!)
          assert.strictEqual(runs[9]![s], 0)
        }
      }
      // seeds differ: four random first draws are not all the same row
      assert.isAbove(new Set(all.perSeed.random![1]).size, 1)
      const later = yield* Bench.benchTask(task, { methods: ["uct", "random"], seeds: 2, firstSeed: 2, trials: [1, 3, 9] })
      assert.strictEqual(later.firstSeed, 2)
      for (const method of ["uct", "random"]) {
        for (const n of [1, 3, 9]) assert.deepStrictEqual(later.perSeed[method]![n], all.perSeed[method]![n]!.slice(2))
      }
    }), 60_000)

  it.effect("a contender of your own runs as a built-in method does; two methods of one name are refused", () =>
    Effect.gen(function*() {
      const task = table(fs.mkdtempSync(path.join(os.tmpdir(), "trex-bench-")))
      const options = { seeds: 3, trials: [2, 4] }
      // UCT with the heuristic researcher, given as a contender, is the built-in "uct"
      const mine = yield* Bench.benchTask(task, { ...options, methods: [{ name: "my-uct", policy: Uct.make() }, "random"] })
      const builtIn = yield* Bench.benchTask(task, { ...options, methods: ["uct"] })
      assert.deepStrictEqual(Object.keys(mine.regret), ["my-uct", "random"])
      assert.deepStrictEqual(mine.perSeed["my-uct"], builtIn.perSeed.uct)
      // with another researcher it is another method
      const randomResearch = yield* Bench.benchTask(task, { ...options, methods: [{ name: "uct+random", policy: Uct.make(), researcher: RandomResearcher.make() }] })
      assert.notDeepEqual(randomResearch.perSeed["uct+random"], builtIn.perSeed.uct)
      const twice = yield* Bench.benchTask(task, { ...options, methods: ["uct", { name: "uct", policy: Uct.make() }] }).pipe(Effect.flip)
      assert.strictEqual(twice._tag, "InvalidInput")
      assert.match(twice.message, /two methods are named uct: give each contender its own name/)
    }), 60_000)

  it.effect("<method>+asha runs the method with ASHA early stopping, as trex run --scheduler asha: pruned trials cost only the checkpoints they ran", () =>
    Effect.gen(function*() {
      const task = table(fs.mkdtempSync(path.join(os.tmpdir(), "trex-bench-")), { curve: true })
      const options = { seeds: 4, trials: [9], gpuHours: [0.1, 1] }
      const r = yield* Bench.benchTask(task, { ...options, methods: ["random", "random+asha"] })
      assert.deepStrictEqual(Object.keys(r.regret), ["random", "random+asha"])
      // random search proposes the same rows whatever their results: the same nine, all run whole without ASHA
      assert.closeTo(r.gpuHours.random![9]!, 2100 / 3600, 1e-9)
      // with it, those that lag at a checkpoint stop there (and the best row, which leads at every one, never does)
      assert.isBelow(r.gpuHours["random+asha"]![9]!, r.gpuHours.random![9]! - 100 / 3600)
      assert.deepStrictEqual(r.perSeed["random+asha"]![9], [0, 0, 0, 0])
      // an ASHA of your own on a contender: the same ASHA, the same runs
      const asha = yield* Asha.make({ metric: { name: "score", split: "dev", direction: "maximize" }, minStep: 1 })
      const mine = yield* Bench.benchTask(task, { ...options, methods: [{ name: "mine", policy: RandomPolicy.make(), researcher: RandomResearcher.make(), scheduler: asha }] })
      assert.deepStrictEqual(mine.perSeed.mine, r.perSeed["random+asha"])
      assert.deepStrictEqual(mine.atHours.perSeed.mine, r.atHours.perSeed["random+asha"])
      // a table without a curve gives ASHA nothing to act on
      const flat = yield* Bench.benchTask(table(fs.mkdtempSync(path.join(os.tmpdir(), "trex-bench-"))), { ...options, methods: ["uct+asha"] }).pipe(Effect.flip)
      assert.strictEqual(flat._tag, "InvalidInput")
      assert.match(flat.message, /^--policies uct\+asha: the table of task tiny has no curve \(backend\.curve\)/)
      assert.deepStrictEqual(yield* Bench.parseMethods("uct, uct+asha,tpe+asha"), ["uct", "uct+asha", "tpe+asha"])
      for (const bad of ["annealing+asha", "uct+ash", "+asha"]) {
        assert.match((yield* Effect.flip(Bench.parseMethods(bad))).message, new RegExp(`unknown method ${bad.replace("+", "\\+")}; .*each also with \\+asha`))
      }
    }), 60_000)

  it.effect("regret against simulated GPU-hours: runs go on until the largest budget is spent", () =>
    Effect.gen(function*() {
      const task = table(fs.mkdtempSync(path.join(os.tmpdir(), "trex-bench-")))
      // the nine rows cost 100, 200 or 400 GPU-seconds each (2,100 in all, 0.583 GPU-hours)
      const r = yield* Bench.benchTask(task, { methods: ["uct", "random"], seeds: 3, trials: [1], gpuHours: [0.01, 0.1, 0.3, 1] })
      for (const method of ["uct", "random"]) {
        const at = r.atHours.perSeed[method]!
        assert.deepStrictEqual(at[0.01], [1, 1, 1], "no trial fits in 36 GPU-seconds")
        assert.deepStrictEqual(at[1], [0, 0, 0], "an hour runs all nine rows")
        for (let s = 0; s < 3; s++) {
          assert.isAtMost(at[0.3]![s]!, at[0.1]![s]!)
          assert.isTrue([...possible].some((p) => Math.abs(p - at[0.1]![s]!) < 1e-12))
        }
        assert.closeTo(r.atHours.regret[method]![0.3]!, at[0.3]!.reduce((a, b) => a + b, 0) / 3, 1e-12)
      }
      // a trace: each trial's cumulative GPU-hours; the regret at H is that of the last trial within H
      const loaded = yield* TaskFile.load(task)
      const { landscape } = yield* Simulator.fromTask(loaded.task, loaded.dir)
      const trace = yield* Bench.runOnce(Simulator.completeTask(loaded.task, landscape), landscape, "random", 7, 1, { gpuHours: 0.3 })
      assert.isAtLeast(trace.gpuHours.at(-1)!, 0.3, "the run went on until 0.3 GPU-hours were spent")
      assert.isBelow(trace.gpuHours.at(-2)!, 0.3, "and stopped there")
      for (let k = 1; k < trace.gpuHours.length; k++) assert.isAbove(trace.gpuHours[k]!, trace.gpuHours[k - 1]!)
      const within = trace.gpuHours.filter((h) => h <= 0.2).length
      assert.strictEqual(Bench.regretAtHours(trace, 0.2), within === 0 ? 1 : trace.regret[within - 1])
    }), 60_000)

  it.effect("trials in parallel: deterministic for a seed, and in less simulated wall time than on one GPU", () =>
    Effect.gen(function*() {
      const task = table(fs.mkdtempSync(path.join(os.tmpdir(), "trex-bench-")))
      const options = { methods: ["uct", "random"] as const, seeds: 3, trials: [3, 9], concurrency: 3 }
      const first = yield* Bench.benchTask(task, options)
      const again = yield* Bench.benchTask(task, options)
      assert.deepStrictEqual(again.perSeed, first.perSeed)
      assert.deepStrictEqual(again.wallHours, first.wallHours)
      assert.strictEqual(first.concurrency, 3)
      for (const method of ["uct", "random"]) {
        assert.deepStrictEqual(first.perSeed[method]![9], [0, 0, 0], "all nine rows ran")
        // the nine rows cost 2,100 GPU-seconds: on 3 GPUs at least 700 s of wall time, and less than on one
        const gpu = first.gpuHours[method]![9]!
        const wall = first.wallHours[method]![9]!
        assert.closeTo(gpu, 2100 / 3600, 1e-9)
        assert.isAtLeast(wall, gpu / 3 - 1e-9)
        assert.isBelow(wall, gpu)
      }
      const sequential = yield* Bench.benchTask(task, { ...options, concurrency: 1 })
      assert.closeTo(sequential.wallHours.random![9]!, 2100 / 3600, 1e-9, "one GPU: wall time is GPU time")
    }), 60_000)

  it.effect("a table whose trials cost nothing is refused for --gpu-hours before any run; one that costs less than the budget, or scores the same everywhere, is run with a warning", () =>
    Effect.gen(function*() {
      const own = (score: (i: number, layers: number) => number, updates: number) =>
        LrLayersTask.write(fs.mkdtempSync(path.join(os.tmpdir(), "trex-bench-")), {
          name: "own",
          metric: { name: "loss", direction: "minimize" },
          columns: "loss,updates",
          row: (i, layers) => `${score(i, layers)},${updates * layers}`,
          metricColumn: "loss",
          cost: { column: "updates", scale: 1 }
        })
      const free = own((i, layers) => i + layers, 0)
      // it ran every configuration of the table for every seed, and reported the table's best at any GPU-hours
      const ran = yield* Effect.result(Bench.benchTask(free, { methods: ["random"], seeds: 1, trials: [1], gpuHours: [1] }))
      assert.isTrue(Result.isFailure(ran), "refused")
      const refused = (ran as Result.Failure<unknown, Errors.InvalidInput>).failure
      assert.strictEqual(refused._tag, "InvalidInput")
      assert.strictEqual(refused.source, "--gpu-hours")
      assert.include(refused.message, `--gpu-hours: every trial of task own (${free}) costs 0 simulated GPU-hours, so no budget of them is ever spent`)
      assert.include(refused.message, "Give the table a cost in the task's backend section, cost: { column: <each run's time>, scale: <seconds per unit> }")
      // and before any run, when the task is read
      assert.strictEqual((yield* Bench.prepareTask(free, { methods: ["random"], gpuHours: [1] }).pipe(Effect.flip)).message, refused.message)
      // without --gpu-hours a table without cost is fine
      assert.deepStrictEqual((yield* Bench.benchTask(free, { methods: ["random"], seeds: 1, trials: [9] })).regret.random, { 9: 0 })
      const lines: Array<string> = []
      const logged = Logger.layer([Logger.make((o) => void lines.push(`${o.logLevel}: ${String(o.message)}`))])
      const flat = own(() => 0.5, 100)
      const r = yield* Bench.benchTask(flat, { methods: ["uct", "random"], seeds: 2, trials: [1, 3] }).pipe(Effect.provide(logged))
      assert.deepStrictEqual(r.regret, { uct: { 1: 0, 3: 0 }, random: { 1: 0, 3: 0 } })
      assert.lengthOf(lines, 1)
      assert.match(lines[0]!, /^Warn: .*task\.yaml: all 9 configurations of its table with a loss score the same \(0\.5\): regret is 0 from a method's first success, so this table cannot tell methods apart/)
      lines.length = 0
      // the nine rows cost 2,100 GPU-seconds in all, under the 1 GPU-hour asked
      yield* Bench.benchTask(own((i, layers) => i + layers, 100), { methods: ["random"], seeds: 1, trials: [1], gpuHours: [0.1, 1] }).pipe(Effect.provide(logged))
      assert.lengthOf(lines, 1)
      assert.match(lines[0]!, /^Warn: .*task\.yaml: all 9 configurations of its table cost 0\.583 simulated GPU-hours, less than --gpu-hours 1: each run tries every configuration$/)
    }), 60_000)

  it("with several --task, a bad one is refused before the others run", () => {
    const good = table(fs.mkdtempSync(path.join(os.tmpdir(), "trex-bench-")))
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-bench-"))
    const bad = LrLayersTask.write(dir, {
      name: "bad",
      metric: { name: "score", direction: "maximize" },
      columns: "score,updates",
      row: (i, layers) => `${i === 2 && layers === 4 ? "inf" : i + layers},100`,
      metricColumn: "score",
      cost: { column: "updates", scale: 1 }
    })
    const r = spawnSync(process.execPath, ["--conditions=@trex/source", bin, "bench", "--task", good, "--task", bad, "--policies", "random", "--seeds", "2", "--trials", "3"], {
      cwd: root,
      encoding: "utf8",
      timeout: 120_000
    })
    assert.strictEqual(r.status, 2, r.stderr)
    assert.include(r.stderr, `invalid simulator table ${path.join(dir, "runs.csv")} (backend.table of ${bad}):\n  line 10, column "score": "inf" is not a number`)
    // nothing of the good task ran first (it used to run in full, then the bad one failed the command and its results were lost)
    assert.notInclude(r.stderr, "done")
    assert.strictEqual(r.stdout, "")
  }, 120_000)

  it("pairedRatio: the ratio of the means with a resampled interval, the same every time", () => {
    const b = [0.1, 0.3, 0.2, 0.4, 0.05, 0.25]
    const twice = Bench.pairedRatio(b.map((x) => 2 * x), b)
    // every resample of a pair-for-pair double is a double
    assert.closeTo(twice.ratio, 2, 1e-12)
    assert.closeTo(twice.low, 2, 1e-12)
    assert.closeTo(twice.high, 2, 1e-12)
    const a = [0.05, 0.3, 0.1, 0.1, 0.05, 0.2]
    const q = Bench.pairedRatio(a, b)
    assert.closeTo(q.ratio, 0.8 / 1.3, 1e-12)
    assert.isBelow(q.low, q.ratio)
    assert.isAbove(q.high, q.ratio)
    assert.deepStrictEqual(Bench.pairedRatio(a, b), q)
    assert.isTrue(Number.isNaN(Bench.pairedRatio(a, [0, 0, 0, 0, 0, 0]).ratio))
  })

  it("regretAtHours reads the last trial within the budget", () => {
    const trace = { regret: [0.5, 0.2, 0.2, 0], gpuHours: [1, 2.5, 4, 6] }
    assert.strictEqual(Bench.regretAtHours(trace, 0.5), 1)
    assert.strictEqual(Bench.regretAtHours(trace, 1), 0.5)
    assert.strictEqual(Bench.regretAtHours(trace, 3), 0.2)
    assert.strictEqual(Bench.regretAtHours(trace, 100), 0)
  })

  it("standard error: zero for one value, the textbook value otherwise", () => {
    assert.strictEqual(Bench.standardError([0.3]), 0)
    // values 1, 2, 3, 4: sample variance 5/3, standard error sqrt(5/3 / 4)
    assert.closeTo(Bench.standardError([1, 2, 3, 4]), Math.sqrt(5 / 12), 1e-12)
  })

  it("the command prints mean ± standard error per method and trial count, and refuses bad flags by name", () => {
    const task = table(fs.mkdtempSync(path.join(os.tmpdir(), "trex-bench-")))
    const bench = (args: ReadonlyArray<string>) =>
      spawnSync(process.execPath, ["--conditions=@trex/source", bin, "bench", ...args], { cwd: root, encoding: "utf8", timeout: 120_000 })
    const run = (args: ReadonlyArray<string>) => bench(["--task", task, ...args])
    const ok = run(["--policies", "random", "--seeds", "3", "--first-seed", "5", "--trials", "2,9"])
    assert.strictEqual(ok.status, 0, ok.stderr)
    assert.match(ok.stdout, /\| task \| method \| N=2 \| N=9 \| GPU-h at N=9 \|/)
    assert.match(ok.stdout, /\| tiny \| random \| \d\.\d{3} ± \d\.\d{3} \| 0\.000 ± 0\.000 \| \d+\.\d \|/)
    assert.match(ok.stderr, /tiny: random done in \d+\.\d s\ntiny: done \(9 configurations, seeds 5\.\.7\)/)
    const json = run(["--policies", "random", "--seeds", "3", "--first-seed", "5", "--trials", "2,9", "--json"])
    assert.strictEqual(json.status, 0, json.stderr)
    // progress goes to stderr, so stdout is the JSON alone
    assert.match(json.stderr, /tiny: random done in/)
    const [result] = JSON.parse(json.stdout)
    assert.strictEqual(result.firstSeed, 5)
    assert.strictEqual(result.perSeed.random["2"].length, 3)
    // the table shows the same runs as the JSON
    const cell = `${result.regret.random["2"].toFixed(3)} ± ${result.stdError.random["2"].toFixed(3)}`
    assert.include(ok.stdout, `| tiny | random | ${cell} |`)
    const hours = run(["--policies", "random", "--seeds", "2", "--trials", "1", "--gpu-hours", "0.01,1"])
    assert.strictEqual(hours.status, 0, hours.stderr)
    assert.match(hours.stdout, /\| task \| method \| 0\.01 GPU-h \| 1 GPU-h \|\n\|---\|---\|---\|---\|\n\| tiny \| random \| 1\.000 ± 0\.000 \| 0\.000 ± 0\.000 \|/)
    const badHours = run(["--gpu-hours", "10,lots"])
    assert.strictEqual(badHours.status, 2)
    assert.match(badHours.stderr, /--gpu-hours: expected positive numbers of GPU-hours separated by commas, got "10,lots"/)
    const parallel = run(["--policies", "random", "--seeds", "2", "--trials", "9", "--concurrency", "3"])
    assert.strictEqual(parallel.status, 0, parallel.stderr)
    assert.match(parallel.stdout, /\| task \| method \| N=9 \| GPU-h at N=9 \| wall-h at N=9 \|/)
    assert.match(parallel.stdout, /\| tiny \| random \| 0\.000 ± 0\.000 \| 0\.6 \| 0\.\d \|/)
    const versus = run(["--policies", "uct,random", "--seeds", "3", "--trials", "2,9", "--versus", "random"])
    assert.strictEqual(versus.status, 0, versus.stderr)
    assert.match(versus.stdout, /\| task \| method \/ random \| N=2 \| N=9 \|\n\|---\|---\|---\|---\|\n\| tiny \| uct \| (\d\.\d\d \(\d\.\d\d-(\d\.\d\d|inf)\)|-) \| - \|/)
    const notCompared = run(["--policies", "uct,random", "--versus", "tpe"])
    assert.strictEqual(notCompared.status, 2)
    assert.match(notCompared.stderr, /--versus: tpe is not one of the methods compared \(--policies uct,random\)/)
    const noGpus = run(["--concurrency", "0"])
    assert.strictEqual(noGpus.status, 2)
    assert.match(noGpus.stderr, /--concurrency must be at least 1, got 0/)
    const negative = run(["--first-seed", "-1"])
    assert.strictEqual(negative.status, 2)
    assert.match(negative.stderr, /--first-seed must be 0 or more, got -1/)
    const noTable = bench(["--task", path.join(root, "examples/quickstart/task.yaml")])
    assert.strictEqual(noTable.status, 2)
    assert.match(noTable.stderr, /examples\/quickstart\/task\.yaml has no backend section: a simulated task names its table there/)
    const huge = run(["--trials", "10,1e9"])
    assert.strictEqual(huge.status, 2)
    assert.match(huge.stderr, /--trials: at most 100000 trials per run, got 1000000000/)
    const withAsha = bench(["--task", table(fs.mkdtempSync(path.join(os.tmpdir(), "trex-bench-")), { curve: true }), "--policies", "random,random+asha", "--seeds", "2", "--trials", "9"])
    assert.strictEqual(withAsha.status, 0, withAsha.stderr)
    assert.match(withAsha.stdout, /\| tiny \| random\+asha \| 0\.000 ± 0\.000 \| 0\.\d \|/)
    assert.match(bench(["--help"]).stdout, /add \+asha to run one with ASHA early stopping as trex run --scheduler asha does \(uct\+asha\)/)
    const unknown = run(["--policies", "uct,annealing"])
    assert.strictEqual(unknown.status, 2)
    assert.match(unknown.stderr, /--policies: unknown method annealing; choose from uct, puct/)
  }, 300_000) // 19 CLI starts one after another: 136 s at load 10 on 2 cores
})
