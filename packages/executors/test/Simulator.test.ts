import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Backend, type Errors, type ExperimentNode, SearchSpace, Strategy, TaskFile } from "@trex/core"
import { Effect, Logger, Stream } from "effect"
import { cell, decode, numberList, numeric, parse, parseRecords } from "../src/internal/simCsv.ts"
import * as Simulator from "../src/Simulator.ts"

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "trex-sim-"))
const writeTable = (name: string, text: string) => {
  fs.writeFileSync(path.join(tmp, name), text)
  return name
}

const metric = { name: "score", direction: "maximize" as const }

const table = (text: string, config: Partial<Simulator.SimulatorConfig> = {}, source?: string) => {
  const file = writeTable(`t${Math.random().toString(36).slice(2)}.csv`, text)
  return Simulator.decodeConfig({
    kind: "simulator",
    table: file,
    parameters: [{ column: "lr", path: "training.learningRate", kind: "log" }, { column: "layers", path: "training.extra.layers" }],
    ...config
  }).pipe(Effect.flatMap((c) => Simulator.loadTable(c, { dir: tmp, metric, ...(source !== undefined ? { source } : {}) })))
}

/** Run an effect and collect what it logs. */
const logged = <A, E>(effect: Effect.Effect<A, E>) => {
  const lines: Array<string> = []
  return effect.pipe(
    Effect.provide(Logger.layer([Logger.make((o) => void lines.push(`${o.logLevel}: ${String(o.message)}`))])),
    Effect.map((a) => ({ value: a, lines }))
  )
}

const spec = (strategy: Strategy.Strategy, node = "n"): Backend.JobSpec => ({
  name: node,
  argv: [],
  env: {},
  files: [{ path: "strategy.json", content: JSON.stringify(Strategy.encode(strategy)) }],
  resources: { gpus: 1, cpus: 1 },
  labels: { run: "run-1", node }
})

const base = Strategy.decodeSync({ data: { sources: [{ name: "d" }] }, training: { learningRate: 1e-3, epochs: 1, batchSize: 1 } })
const withValues = (lr: number, layers: number) =>
  SearchSpace.set(SearchSpace.set(base, "training.learningRate", lr), "training.extra.layers", layers)

const timed = `run_id,lr,layers,score,cost,curve
a,0.001,2,0.5,3,"[0.2, 0.4, 0.5]"
b,0.0001,2,0.7,5,"[0.3, 0.6, 0.5, 0.7]"
c,0.01,4,0.9,2,"[0.9]"
d,0.01,2,,4,"[]"
`

describe("CSV", () => {
  it("parses quoted fields, embedded commas, quotes and newlines, CRLF and a BOM", () => {
    const csv = parse("\uFEFFa,b,c\r\n1,\"x, y\",\"say \"\"hi\"\"\"\r\n\r\n2,\"two\nlines\",\"\"\n")
    assert.deepStrictEqual(csv.header, ["a", "b", "c"])
    assert.deepStrictEqual(csv.rows, [["1", "x, y", "say \"hi\""], ["2", "two\nlines", ""]])
  })

  it("keeps a quoted empty field as a record and drops blank lines", () => {
    assert.deepStrictEqual(parseRecords("a\n\n\"\"\nb"), [["a"], [""], ["b"]])
  })

  it("types cells: numbers, JSON number lists, strings, empty", () => {
    assert.strictEqual(cell("30000.0"), 30000)
    assert.strictEqual(cell("4e-05"), 4e-5)
    assert.deepStrictEqual(cell("[18.19, 21.2, 2e1]"), [18.19, 21.2, 20])
    assert.strictEqual(cell("ja-en"), "ja-en")
    assert.strictEqual(cell("[not json"), "[not json")
    assert.strictEqual(cell("  "), undefined)
    assert.strictEqual(cell("Infinity"), "Infinity")
  })

  it("rejects ragged rows, unterminated quotes and junk after a quote", () => {
    assert.throws(() => parse("a,b\n1\n"), /line 2: the row has 1 field, the header has 2; quote a field that holds a comma/)
    assert.throws(() => parse("a\n\"open\n"), /unterminated quoted field starting on line 2/)
    assert.throws(() => parse("a,b\n\"x\"y,1\n"), /after a closing quote on line 2/)
    assert.throws(() => parse("a,a\n1,2\n"), /duplicate column "a"/)
  })

  it("reports the physical line a record starts on, past quoted newlines and blank lines", () => {
    const csv = parse("a,b\n1,\"two\nlines\"\n\n2,\"x\r\ny\"\r\n3,z\n")
    assert.deepStrictEqual(csv.lines, [2, 5, 7])
    assert.throws(() => parse("a,b\n1,\"x\ny\nz\"\n2\n"), /^line 5: the row has 1 field/)
  })

  it("trims header names and says when the separator is a semicolon or a tab", () => {
    assert.deepStrictEqual(parse("a, lr ,b\n1,2,3\n").header, ["a", "lr", "b"])
    assert.throws(() => parse("run_id;lr;acc\na;0,1;0,5\n"), /the header line has no comma but semicolons .*the table looks semicolon-separated\. Save it as comma-separated CSV/)
    assert.throws(() => parse("run_id\tlr\tacc\na\t0.1\t0.5\n"), /no comma but tabs .*tab-separated/)
  })

  it("reads a metric cell: a number, nothing for empty or NaN, else a fix", () => {
    assert.strictEqual(numeric(" 0.81 "), 0.81)
    assert.strictEqual(numeric(""), undefined)
    assert.strictEqual(numeric("nan"), undefined)
    assert.strictEqual(numeric("NaN"), undefined)
    for (const bad of ["inf", "-Infinity", "n/a", "0.8x", "1e999"]) {
      assert.include((numeric(bad) as { problem: string }).problem, "leave the cell empty, or NaN, for a run that diverged", bad)
    }
    assert.deepStrictEqual(numeric("0,81"), { problem: "write numbers with a decimal point and no thousands separator (0.81, not 0,81)", fixed: 0.81 })
    assert.strictEqual((numeric("1,234,567") as { fixed: number }).fixed, 1234567)
  })

  it("reads a curve cell: a list of finite numbers, nothing for empty or NaN, else a fix", () => {
    assert.deepStrictEqual(numberList(" [18.19, 21.2, 2e1] "), [18.19, 21.2, 20])
    assert.deepStrictEqual(numberList("[]"), [])
    assert.strictEqual(numberList(""), undefined)
    assert.strictEqual(numberList("NaN"), undefined)
    const problem = (raw: string) => (numberList(raw) as { problem: string }).problem
    assert.match(problem("[0.2, 0.4"), /^it is not JSON: write a JSON list of finite numbers, one per checkpoint/)
    assert.match(problem("0.5"), /^it is a number, not a list \(a curve of one point is \[0\.5\]\): write a JSON list/)
    assert.match(problem("{\"a\": 1}"), /^it is an object, not a list: /)
    assert.match(problem("[0.2, null]"), /^element 2 is null, not a finite number: correct it, or end the list before it/)
    assert.match(problem("[1e999]"), /^element 1 is Infinity, not a finite number: /)
    assert.match(problem("[0.2, \"0.4\"]"), /^element 2 is "0\.4", not a finite number: write a JSON list/)
    assert.match(problem("[0.2, NaN]"), /^NaN and Infinity are not JSON, and a curve holds finite values only: /)
  })
})

describe("landscapes", () => {
  it.effect("maps a strategy to its row exactly, else to the nearest on a log scale", () =>
    Effect.gen(function*() {
      const l = yield* table(timed, { cost: { column: "cost" } })
      const exact = Simulator.match(l, withValues(1e-4, 2))
      assert.strictEqual(exact.point.id, "b")
      assert.strictEqual(exact.distance, 0)
      // 5e-4 is nearer 1e-3 on a log scale (and nearer 1e-4 on a linear one)
      const near = Simulator.match(l, withValues(5e-4, 2))
      assert.strictEqual(near.point.id, "a")
      assert.isAbove(near.distance, 0)
      assert.strictEqual(Simulator.match(l, withValues(0.02, 3)).point.id, "c")
      assert.deepStrictEqual(Simulator.searchSpace(l), {
        parameters: [
          { path: "training.learningRate", kind: "log", values: [1e-4, 1e-3, 1e-2] },
          { path: "training.extra.layers", kind: "ordinal", values: [2, 4] }
        ],
        // the pool: only the recorded rows, in file order
        points: Simulator.configurations(l).map((p) => p.values)
      })
      assert.strictEqual(Simulator.searchSpace(l).points!.length, Simulator.configurations(l).length)
      const def = Simulator.defaultStrategy(l)
      assert.strictEqual(Simulator.match(l, def).distance, 0)
    }))

  it.effect("filters rows and reports a missing column by name", () =>
    Effect.gen(function*() {
      const l = yield* table("lr,layers,score,pair\n0.1,1,1,x\n0.2,1,2,y\n0.3,1,3,x\n", { filter: { pair: "x" } })
      assert.deepStrictEqual(l.points.map((p) => p.score), [1, 3])
      const err = yield* Effect.flip(table("lr,layers,score\n0.1,1,1\n", { metric: { column: "bleu" } }))
      assert.include(err.message, "backend.metric.column (default: the task's metric name): \"bleu\" is not a column of the table (columns: lr, layers, score)")
      const misspelt = yield* Effect.flip(table("lr,layers,score\n0.1,1,1\n", { metric: { column: "scor" } }))
      assert.include(misspelt.message, "backend.metric.column (default: the task's metric name): \"scor\" is not a column of the table; did you mean \"score\"?")
      const none = yield* Effect.flip(table("lr,layers,score,pair\n0.1,1,1,x\n0.1,2,1,y\n", { filter: { pair: "z" } }))
      assert.include(none.message, `no rows match the filter {"pair":"z"}: column "pair" holds "x", "y"`)
      const bad = yield* Effect.flip(Simulator.decodeConfig({ kind: "simulator", table: "t.csv", parameters: [{ column: "x", path: "p", kind: "loud" }] }))
      assert.include(bad.message, "parameters[0].kind")
      const typo = yield* Effect.flip(Simulator.decodeConfig({ kind: "simulator", table: "t.csv", parameters: [{ column: "x", path: "p" }], metirc: { column: "y" } }))
      assert.include(typo.message, `metirc: Expected no excess property; did you mean "metric"?`)
    }))

  it.effect("says a table has no data rows, without a filter it does not have", () =>
    Effect.gen(function*() {
      const err = yield* Effect.flip(table("lr,layers,score\n"))
      assert.include(err.message, "the table has no data rows, only a header line: add one row per finished run")
      assert.notInclude(err.message, "filter")
    }))

  it.effect("suggests the column a name abbreviates, contains or is contained in", () =>
    Effect.gen(function*() {
      const text = "run_id,lr,layers,acc,group\na,0.1,1,0.5,x\n"
      const abbreviated = yield* Effect.flip(table(text, { metric: { column: "acc" }, filter: { grp: "x" } }))
      assert.include(abbreviated.message, `backend.filter.grp: "grp" is not a column of the table; did you mean "group"?`)
      const longer = yield* Effect.flip(table(text, { metric: { column: "accuracy" } }))
      assert.include(longer.message, `"accuracy" is not a column of the table; did you mean "acc"?`)
      const cased = yield* Effect.flip(table(text, { metric: { column: "ACC" } }))
      assert.include(cased.message, `did you mean "acc"?`)
      // names are trimmed like cells: " acc" is the column acc
      const l = yield* table("lr, layers, acc\n0.1, 1, 0.5\n", { metric: { column: "acc" } })
      assert.deepStrictEqual(l.points.map((p) => p.score), [0.5])
    }))

  it.effect("names the task file as well as the table when a column is missing", () =>
    Effect.gen(function*() {
      const err = yield* Effect.flip(table("lr,layers,score\n0.1,1,1\n", { metric: { column: "bleu" } }, "tasks/mine.yaml"))
      assert.match(err.message, /^simulator table \/.*\.csv \(backend\.table of tasks\/mine\.yaml\): backend\.metric\.column/)
    }))

  it.effect("warns once, with the first example, about rows repeating a configuration with another metric", () =>
    Effect.gen(function*() {
      const text = "lr,layers,score\n0.1,1,0.5\n0.2,1,0.6\n0.1,1,0.5\n0.1,1,0.7\n0.2,1,\n"
      const { value, lines } = yield* logged(table(text))
      // the first recorded run stands for its configuration
      assert.strictEqual(Simulator.match(value, withValues(0.1, 1)).point.score, 0.5)
      assert.strictEqual(lines.length, 1)
      assert.match(lines[0]!, /^Warn: simulator table .*\.csv \(backend\.table of the task\): 2 rows repeat the configuration of an earlier row with a different score; the first recorded run stands for a configuration/)
      assert.include(lines[0]!, "(e.g. line 5 repeats line 2 (lr=0.1, layers=1) with score 0.7, line 2 has 0.5)")
      assert.include(lines[0]!, "(repeats: first in the task's backend section says it is known)")
      const same = yield* logged(table("lr,layers,score\n0.1,1,0.5\n0.1,1,0.5\n"))
      assert.deepStrictEqual(same.lines, [])
      // the task says it knows: the same rule, no warning
      const known = yield* logged(table(text, { repeats: "first" }))
      assert.deepStrictEqual(known.lines, [])
      assert.strictEqual(Simulator.match(known.value, withValues(0.1, 1)).point.score, 0.5)
    }))

  it.effect("regret is 0 at the pool's best and 1 at its worst, in either direction", () =>
    Effect.gen(function*() {
      const max = yield* table(timed)
      assert.deepStrictEqual(Simulator.range(max), { best: 0.9, worst: 0.5 })
      assert.strictEqual(Simulator.regret(max, 0.9), 0)
      assert.strictEqual(Simulator.regret(max, 0.5), 1)
      assert.closeTo(Simulator.regret(max, 0.8), 0.25, 1e-12)
      const min = yield* table(timed, { metric: { direction: "minimize" } })
      assert.strictEqual(Simulator.regret(min, 0.5), 0)
      assert.closeTo(Simulator.regret(min, 0.6), 0.25, 1e-12)
    }))
})

describe("input validation", () => {
  const fixtures = path.resolve(import.meta.dirname, "fixtures")
  const refused = <A>(effect: Effect.Effect<A, Errors.InvalidInput>) =>
    Effect.flip(effect).pipe(Effect.tap((e) => Effect.sync(() => assert.strictEqual(e._tag, "InvalidInput"))))

  it.effect("refuses a table value the strategy schema refuses: the table, line, column, path and why", () =>
    Effect.gen(function*() {
      const text = "run_id,lr,layers,score\na,0.001,2,0.5\nb,-0.001,2,0.6\nc,0.01,4,0.7\n"
      const err = yield* refused(table(text))
      assert.match(err.message, /trex-sim-[^/]*\/t[a-z0-9]+\.csv/)
      assert.include(err.message, `line 3, column "lr": -0.001 is not a valid training.learningRate (backend.parameters[0]): Expected a value greater than 0`)
      assert.notInclude(err.message, "line 2")
      // a string where a number belongs
      const typed = yield* refused(table("lr,layers,score\n0.001,2,0.5\n0.001,two,0.6\n", {
        parameters: [{ column: "lr", path: "training.learningRate" }, { column: "layers", path: "training.batchSize" }]
      }))
      assert.include(typed.message, `line 3, column "layers": "two" is not a valid training.batchSize (backend.parameters[1]): Expected number`)
    }))

  it.effect("checks only the rows the filter keeps", () =>
    Effect.gen(function*() {
      const l = yield* table("lr,layers,score,pair\n0.001,2,0.5,x\n-1,2,0.6,y\n", { filter: { pair: "x" } })
      assert.strictEqual(l.points.length, 1)
    }))

  it.effect("a task whose table has a refused value fails to load with InvalidInput, not a schema defect", () =>
    Effect.gen(function*() {
      const loaded = yield* TaskFile.load(path.join(fixtures, "sim-bad-value.task.yaml"))
      const err = yield* refused(Simulator.fromTask(loaded.task, loaded.dir, loaded.file))
      assert.strictEqual(err.source, path.join(fixtures, "sim-bad-value.csv"))
      assert.include(err.message, path.join(fixtures, "sim-bad-value.csv"))
      assert.include(err.message, loaded.file)
      assert.include(err.message, `line 5, column "lr": -0.001 is not a valid training.learningRate (backend.parameters[0])`)
      assert.notInclude(err.message, "line 3")
    }))

  it.effect("refuses a parameter path that names no strategy field, saying which keys are allowed", () =>
    Effect.gen(function*() {
      const err = yield* refused(table(timed, {
        parameters: [{ column: "lr", path: "training.learningRate" }, { column: "layers", path: "training.nosuch" }]
      }))
      assert.include(err.message, "backend.parameters[1].path: training.nosuch names no field of a strategy")
      assert.include(err.message, "training.nosuch: Expected no excess property; the keys allowed here: method, learningRate")
      assert.include(err.message, "free-form settings go under data.extra or training.extra")
      const typo = yield* refused(table(timed, {
        parameters: [{ column: "lr", path: "training.learningrate" }, { column: "layers", path: "training.extra.layers" }]
      }))
      assert.include(typo.message, `backend.parameters[0].path: training.learningrate names no field of a strategy`)
      assert.include(typo.message, `did you mean "learningRate"?`)
    }))

  it.effect("refuses two parameters with the same path", () =>
    Effect.gen(function*() {
      const err = yield* refused(table(timed, {
        parameters: [{ column: "lr", path: "training.learningRate" }, { column: "layers", path: "training.learningRate" }]
      }))
      assert.include(err.message, "backend.parameters[1].path: training.learningRate is already backend.parameters[0]'s path")
    }))

  it.effect("refuses a cost column with a non-numeric or negative value in a kept row, naming the column and row", () =>
    Effect.gen(function*() {
      const ids = yield* refused(table(timed, { cost: { column: "run_id" } }))
      assert.include(ids.message, `line 2, column "run_id": backend.cost.column must hold each run's cost, a number of 0 or more; got "a"`)
      const negative = yield* refused(table("lr,layers,score,cost\n0.001,2,0.5,3\n0.01,2,0.6,-4\n", { cost: { column: "cost" } }))
      assert.include(negative.message, `line 3, column "cost": backend.cost.column must hold each run's cost, a number of 0 or more; got -4`)
      // an empty cost (a run that diverged) is no error: it costs the pool's median
      const l = yield* table("lr,layers,score,cost,pair\n0.001,2,0.5,3,x\n0.01,2,,,x\n0.1,2,0.1,oops,y\n", { cost: { column: "cost" }, filter: { pair: "x" } })
      assert.deepStrictEqual(l.points.map((p) => p.seconds), [3, 3])
    }))

  it.effect("a metric cell empty or NaN is a failed run; any other text is refused with the line, column, value and fix", () =>
    Effect.gen(function*() {
      const l = yield* table("lr,layers,score\n0.1,1,0.5\n0.2,1,NaN\n0.3,1,nan\n0.4,1,\n")
      assert.deepStrictEqual(l.points.map((p) => p.failure !== undefined), [false, true, true, true])
      for (const bad of ["inf", "-Infinity", "n/a", "0.8x"]) {
        // the bad cell after a record spanning two lines: its physical line is 5
        const err = yield* refused(table(`lr,layers,score,note\n0.1,1,0.5,"two\nlines"\n0.2,1,0.6,x\n0.3,1,${bad},x\n`))
        assert.match(err.message, /^invalid simulator table .*\.csv \(backend\.table of the task\):/, bad)
        assert.include(err.message, `line 5, column "score": ${JSON.stringify(bad)} is not a number (backend.metric.column): ` +
          "leave the cell empty, or NaN, for a run that diverged or is missing; else correct it to a finite number", bad)
      }
      const comma = yield* refused(table("lr,layers,score\n0.1,1,\"0,81\"\n"))
      assert.include(comma.message, `line 2, column "score": "0,81" is not a number (backend.metric.column): write numbers with a decimal point and no thousands separator (0.81, not 0,81)`)
    }))

  it.effect("a curve cell that is no JSON list of finite numbers is refused with the line, column, value and fix", () =>
    Effect.gen(function*() {
      const quoted = (raw: string) => `"${raw.replaceAll("\"", "\"\"")}"`
      const bad: ReadonlyArray<readonly [string, string]> = [
        ["[0.2, 0.4", "it is not JSON: write a JSON list of finite numbers, one per checkpoint, such as [0.52, 0.61, 0.64]"],
        ["0.2 0.4", "it is not JSON: "],
        ["0.5", "it is a number, not a list (a curve of one point is [0.5]): "],
        ["{\"dev\": [0.5]}", "it is an object, not a list: "],
        ["[0.2, null, 0.5]", "element 2 is null, not a finite number: correct it, or end the list before it " +
          "(a run that diverged stops at its last finite value)"],
        ["[0.2, NaN]", "NaN and Infinity are not JSON, and a curve holds finite values only: "],
        ["[0.2, 1e999]", "element 2 is Infinity, not a finite number: "],
        ["[0.2, \"0.4\"]", "element 2 is \"0.4\", not a finite number: "],
        ["[[0.2]]", "element 1 is [0.2], not a finite number: "]
      ]
      for (const [cellText, problem] of bad) {
        // the bad cell after a record spanning two lines: its physical line is 5
        const err = yield* refused(table(
          `lr,layers,score,note,curve\n0.1,1,0.5,"two\nlines","[0.1, 0.5]"\n0.2,1,0.6,x,\n0.3,1,0.7,x,${quoted(cellText)}\n`,
          { curve: { column: "curve" } }
        ))
        assert.match(err.message, /^invalid simulator table .*\.csv \(backend\.table of the task\):/, cellText)
        assert.include(err.message, `line 5, column "curve": ${JSON.stringify(cellText)} is not a curve (backend.curve.column): ${problem}`, cellText)
      }
      // a long list is quoted shortened; the element named is the one to correct
      const long = `[${Array.from({ length: 40 }, (_, i) => (i + 1) / 100).join(", ")}, null]`
      const err = yield* refused(table(`lr,layers,score,curve\n0.1,1,0.5,${quoted(long)}\n`, { curve: { column: "curve" } }))
      assert.include(err.message, `line 2, column "curve": ${JSON.stringify(`${long.slice(0, 60)}...`)} is not a curve (backend.curve.column): element 41 is null`)
      // only the rows the filter keeps are read
      const kept = yield* table("lr,layers,score,pair,curve\n0.1,1,0.5,x,[0.5]\n0.2,1,0.6,y,oops\n", { filter: { pair: "x" }, curve: { column: "curve" } })
      assert.deepStrictEqual(kept.points.map((p) => p.curve), [[0.5]])
    }))

  it.effect("an empty or NaN curve cell is a run without a curve; a good one replays as recorded", () =>
    Effect.gen(function*() {
      const l = yield* table("lr,layers,score,curve\n0.1,1,0.5,\"[0.2, 0.5]\"\n0.2,1,0.6,\n0.3,1,0.7,NaN\n0.4,1,0.8,[]\n0.5,1,,\n", {
        curve: { column: "curve" }
      })
      assert.deepStrictEqual(l.points.map((p) => p.curve), [[0.2, 0.5], [], [], [], []])
      assert.deepStrictEqual(l.points.map((p) => p.failure !== undefined), [false, false, false, false, true])
      // a run without a curve reports no metric, only its exit
      const sim = yield* Simulator.make(l)
      const events = yield* sim.submit(spec(withValues(0.2, 1))).pipe(Effect.flatMap((ref) => Stream.runCollect(sim.watch(ref))))
      assert.deepStrictEqual(events.filter((e) => e._tag === "Metric"), [])
      assert.strictEqual(events.at(-1)!._tag, "Exit")
    }).pipe(Effect.scoped))

  it.effect("a cost of NaN is a diverged run; a decimal comma in a cost or a number column gets its fix", () =>
    Effect.gen(function*() {
      const l = yield* table("lr,layers,score,cost\n0.1,1,0.5,3\n0.2,1,,NaN\n", { cost: { column: "cost" } })
      assert.deepStrictEqual(l.points.map((p) => p.seconds), [3, 3])
      const cost = yield* refused(table("lr,layers,score,cost\n0.1,1,0.5,\"1,5\"\n", { cost: { column: "cost" } }))
      assert.include(cost.message, `line 2, column "cost": backend.cost.column must hold each run's cost, a number of 0 or more; got "1,5". ` +
        "If it is a cost: write numbers with a decimal point and no thousands separator (1.5, not 1,5)")
      // a free-form path takes any value, so only the table can tell a number gone wrong
      const param = yield* refused(table("lr,layers,score\n0.1,2,0.5\n0.2,\"2,5\",0.6\n"))
      assert.include(param.message, `line 3, column "layers": "2,5" is not a number (backend.parameters[1]): write numbers with a decimal point`)
      const stray = yield* refused(table("lr,layers,score\n0.1,2,0.5\n0.2,inf,0.6\n0.3,4x,0.7\n"))
      assert.include(stray.message, `line 3, column "layers": "inf" is not a number, though the column's other values are (backend.parameters[1]): correct the cell, or delete the row`)
      // text in a column of text is a category
      const categories = yield* table("lr,layers,score\n0.1,1b,0.5\n0.2,8b,0.6\n")
      assert.deepStrictEqual(categories.parameters[1]!.values, ["1b", "8b"])
    }))

  it.effect("says a cost scale must be positive and a constant cost non-negative", () =>
    Effect.gen(function*() {
      const scale = yield* refused(table(timed, { cost: { column: "cost", scale: -1 } }))
      assert.include(scale.message, "backend.cost.scale must be greater than 0, got -1")
      assert.notInclude(scale.message, "excess property")
      const zero = yield* refused(table(timed, { cost: { column: "cost", scale: 0 } }))
      assert.include(zero.message, "backend.cost.scale must be greater than 0, got 0")
      const seconds = yield* refused(table(timed, { cost: { seconds: -1 } }))
      assert.include(seconds.message, "backend.cost.seconds must be 0 or more, got -1")
      assert.notInclude(seconds.message, "excess property")
      const both = yield* refused(Simulator.decodeConfig({ kind: "simulator", table: "t.csv", parameters: [{ column: "x", path: "p" }], cost: { column: "c", seconds: 1 } }))
      assert.include(both.message, "backend.cost: give either column")
      const typo = yield* refused(Simulator.decodeConfig({ kind: "simulator", table: "t.csv", parameters: [{ column: "x", path: "p" }], cost: { colum: "c" } }))
      assert.include(typo.message, `backend.cost.colum: Expected no excess property; did you mean "column"?`)
    }))
})

describe("a user's own table", () => {
  const refused = <A>(effect: Effect.Effect<A, Errors.InvalidInput>) =>
    Effect.flip(effect).pipe(Effect.tap((e) => Effect.sync(() => assert.strictEqual(e._tag, "InvalidInput"))))
  /** A task file over `csv` in a fresh folder, with `lines` added to it (its `backend` entries); loaded and its table read. */
  const task = (csv: string | Uint8Array, lines: ReadonlyArray<string> = [], top: ReadonlyArray<string> = []) => {
    const dir = fs.mkdtempSync(path.join(tmp, "task-"))
    fs.writeFileSync(path.join(dir, "runs.csv"), csv)
    const file = path.join(dir, "task.yaml")
    fs.writeFileSync(file, [
      "name: mine",
      "objective: pick the learning rate and optimiser",
      "metric: { name: loss, direction: minimize }",
      ...top,
      "backend:",
      "  kind: simulator",
      "  table: runs.csv",
      "  parameters:",
      "    - { column: lr, path: training.learningRate, kind: log }",
      "    - { column: optim, path: training.extra.optim, kind: categorical }",
      ...lines.map((l) => `  ${l}`),
      ""
    ].join("\n"))
    return TaskFile.load(file).pipe(Effect.flatMap((loaded) => Simulator.fromTask(loaded.task, loaded.dir, loaded.file)), Effect.map((r) => ({ ...r, file })))
  }

  it("types a text cell trimmed, as names are", () => {
    assert.strictEqual(cell(" adamw "), "adamw")
    assert.strictEqual(cell("\tja-en"), "ja-en")
  })

  it.effect("a text value written with a space after the comma is the same value: one configuration, two categories", () =>
    Effect.gen(function*() {
      const { landscape } = yield* task("lr, optim, loss\n1e-4, adamw, 1.5\n3e-4,adamw,1.2\n1e-4,sgd,1.9\n1e-4, sgd ,1.9\n3e-4, adamw,1.2\n")
      assert.deepStrictEqual(landscape.parameters[1]!.values, ["adamw", "sgd"])
      assert.deepStrictEqual(Simulator.configurations(landscape).map((p) => p.values), [[1e-4, "adamw"], [3e-4, "adamw"], [1e-4, "sgd"]])
      const strategy = Simulator.strategyOf(landscape, Simulator.configurations(landscape)[0]!)
      assert.strictEqual(SearchSpace.get(strategy, "training.extra.optim"), "adamw")
    }))

  it.effect("a filter keeps the rows that hold its value as YAML types it: True for Python's True, 8 or \"8\" for 8.0", () =>
    Effect.gen(function*() {
      const csv = "lr,optim,rslora,epochs,loss\n1e-4,adamw,True,1.0,1.5\n3e-4,adamw,False,1.0,1.2\n1e-4,sgd,TRUE,2.0,1.9\n3e-4,sgd,false,2.0,1.7\n"
      const kept = (filter: string) => task(csv, [`filter: ${filter}`]).pipe(Effect.map(({ landscape }) => landscape.points.map((p) => p.score)))
      assert.deepStrictEqual(yield* kept("{ rslora: true }"), [1.5, 1.9])
      assert.deepStrictEqual(yield* kept("{ rslora: True }"), [1.5, 1.9])
      assert.deepStrictEqual(yield* kept("{ rslora: false }"), [1.2, 1.7])
      assert.deepStrictEqual(yield* kept("{ rslora: \"True\" }"), [1.5])
      assert.deepStrictEqual(yield* kept("{ epochs: 2 }"), [1.9, 1.7])
      assert.deepStrictEqual(yield* kept("{ epochs: \"1\" }"), [1.5, 1.2])
      assert.deepStrictEqual(yield* kept("{ optim: sgd }"), [1.9, 1.7])
      const none = yield* refused(task(csv, ["filter: { optim: adam }"]))
      assert.include(none.message, `no rows match the filter {"optim":"adam"}: column "optim" holds "adamw", "sgd"`)
    }))

  it.effect("a list of numbers in a parameter column is a category named by its JSON, not a missing value", () =>
    Effect.gen(function*() {
      const { landscape } = yield* task("lr,optim,loss\n1e-4,\"[64, 64]\",1.5\n3e-4,[128],1.2\n1e-3,\"[64,64]\",1.1\n1e-4,\" [64,  64]\",1.5\n")
      assert.deepStrictEqual(landscape.parameters[1]!.values, ["[128]", "[64,64]"])
      assert.deepStrictEqual(Simulator.configurations(landscape).map((p) => p.values), [[1e-4, "[64,64]"], [3e-4, "[128]"], [1e-3, "[64,64]"]])
    }))

  it("reads UTF-8 and UTF-16 (with its byte-order mark); refuses a workbook or binary with what to do", () => {
    const text = "lr,optim,loss\n1e-4,adamw,1.5\n"
    assert.strictEqual(decode(Buffer.from(text, "utf8")), text)
    assert.strictEqual(decode(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, "utf16le")])), text)
    assert.strictEqual(decode(Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(text, "utf16le").swap16()])), text)
    assert.throws(() => decode(Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00])), /the table is a zip archive \(an Excel \.xlsx or OpenDocument workbook\?\), not CSV text: save it as comma-separated CSV in UTF-8/)
    assert.throws(() => decode(Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1])), /the table is an Excel \.xls workbook, not CSV text/)
    assert.throws(() => decode(Buffer.from(text, "utf16le")), /the table holds a NUL byte \(line 1\): it is binary, or UTF-16 without a byte-order mark; save it as/)
  })

  it.effect("a table saved as UTF-16 loads; a workbook named as the table is refused naming the file and what to do", () =>
    Effect.gen(function*() {
      const text = "lr,optim,loss\r\n1e-4,adamw,1.5\r\n3e-4,sgd,1.2\r\n"
      const { landscape } = yield* task(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, "utf16le")]))
      assert.deepStrictEqual(landscape.points.map((p) => p.score), [1.5, 1.2])
      const workbook = yield* refused(task(Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x06, 0x00])))
      assert.match(workbook.message, /^simulator table \/.*\/runs\.csv \(backend\.table of \/.*\/task\.yaml\): the table is a zip archive/)
    }))

  it.effect("a backend direction the task's metric contradicts is refused: the search would head for the table's worst row", () =>
    Effect.gen(function*() {
      const csv = "lr,optim,loss\n1e-4,adamw,1.5\n3e-4,sgd,1.2\n"
      const err = yield* refused(task(csv, ["metric: { column: loss, direction: maximize }"]))
      assert.match(err.message, /^invalid simulated task \/.*\/task\.yaml:\n {2}backend\.metric\.direction: maximize, but the task's metric\.direction is minimize: /)
      assert.include(err.message, "the search would keep the smallest loss while the table's best is its largest, and head for its worst row. " +
        "Say the direction once, in metric.direction, and remove backend.metric.direction")
      // the same direction said twice is no contradiction
      const { landscape } = yield* task(csv, ["metric: { column: loss, direction: minimize }"])
      assert.deepStrictEqual(Simulator.range(landscape), { best: 1.2, worst: 1.5 })
    }))

  it.effect("a declared search space may vary only the table's parameters: another path is refused, naming it and the fix", () =>
    Effect.gen(function*() {
      const csv = "lr,optim,loss\n1e-4,adamw,1.5\n3e-4,sgd,1.2\n"
      const space = (extra: string) => [
        "searchSpace:",
        "  parameters:",
        "    - { path: training.learningRate, kind: log, values: [0.0001, 0.0003] }",
        ...(extra === "" ? [] : [`    - ${extra}`])
      ]
      const err = yield* refused(task(csv, [], space("{ path: training.batchSize, kind: ordinal, values: [8, 16, 32] }")))
      assert.include(err.message, "searchSpace.parameters[1].path: training.batchSize is no parameter of the table (backend.parameters: " +
        "training.learningRate, training.extra.optim): a trial replays the row its table parameters match, so every value of training.batchSize " +
        "replays the same row and its trials are wasted. Add its column to backend.parameters, or remove it from searchSpace")
      // a subset of the table's parameters is a narrower search, and fine
      const { landscape } = yield* task(csv, [], space(""))
      assert.strictEqual(landscape.points.length, 2)
    }))

  it.effect("a declared search space may give a table's parameter only values of its column: another is refused, naming it, the column's values and the fix", () =>
    Effect.gen(function*() {
      const csv = "lr,optim,loss\n1e-4,adamw,1.5\n3e-4,sgd,1.2\n1e-3,adamw,1.1\n"
      const space = (lrs: string, optims = "[adamw, sgd]") => [
        "searchSpace:",
        "  parameters:",
        `    - { path: training.learningRate, kind: log, values: ${lrs} }`,
        `    - { path: training.extra.optim, kind: categorical, values: ${optims} }`
      ]
      // 0 is no learning rate a strategy may hold, 5e-4 a rate the table never ran: each would replay another value's row
      const err = yield* refused(task(csv, [], space("[0, 1e-4, 5e-4]", "[adamw, rmsprop]")))
      assert.include(err.message, "searchSpace.parameters[0].values[0]: 0, 0.0005 are not among the values of column lr (0.0001, 0.0003, 0.001): " +
        "a trial replays the row its values match, nearest first, so a value the table lacks replays a row another value replays too. " +
        "List values of the column, or leave searchSpace out (the table's own is used)")
      assert.include(err.message, "searchSpace.parameters[1].values[1]: \"rmsprop\" is not among the values of column optim (\"adamw\", \"sgd\")")
      // a subset of the column's values, written as the task file pleases (1e-4 is 0.0001), is a narrower search
      const { landscape } = yield* task(csv, [], space("[1e-4, 0.001]", "[sgd]"))
      assert.strictEqual(landscape.points.length, 3)
    }))

  it.effect("with a search space of the task's own, the default the table gives is the median of the values it declares: the table's median value may be one it leaves out", () =>
    Effect.gen(function*() {
      const csv = "lr,optim,loss\n1e-4,adamw,1.5\n3e-4,adamw,1.3\n3e-4,sgd,1.2\n1e-3,adamw,1.1\n"
      const declared = ["searchSpace:", "  parameters:", "    - { path: training.learningRate, kind: log, values: [1e-4, 1e-3] }"]
      const { file, landscape } = yield* task(csv, [], declared)
      const loaded = yield* TaskFile.load(file)
      const complete = Simulator.completeTask(loaded.task, landscape)
      assert.strictEqual(complete.defaultStrategy!.training.learningRate, 1e-4)
      assert.deepStrictEqual(SearchSpace.outside(complete.searchSpace!, complete.defaultStrategy!).values, [])
      // without one, the table's median configuration, as before
      const { searchSpace: _, ...undeclared } = loaded.task
      assert.strictEqual(Simulator.completeTask(undeclared, landscape).defaultStrategy!.training.learningRate, 3e-4)
    }))

  it.effect("with a search space of the task's own, the default the table gives is one of its points, and a configuration it recorded inside the space", () =>
    Effect.gen(function*() {
      const csv = "lr,optim,loss\n1e-4,adamw,1.5\n3e-4,adamw,1.3\n3e-4,sgd,1.2\n1e-3,adamw,1.1\n1e-4,sgd,1.4\n"
      const inside = (lines: ReadonlyArray<string>, rows = csv) =>
        Effect.gen(function*() {
          const { file, landscape } = yield* task(rows, [], ["searchSpace:", "  parameters:", ...lines])
          const complete = Simulator.completeTask((yield* TaskFile.load(file)).task, landscape)
          const held = SearchSpace.outside(complete.searchSpace!, complete.defaultStrategy!)
          assert.deepStrictEqual(held, { values: [], offPool: false })
          // the baseline replays the row its values are: a recorded one
          assert.strictEqual(Simulator.match(landscape, complete.defaultStrategy!).distance, 0)
          return [complete.defaultStrategy!.training.learningRate, complete.defaultStrategy!.training.extra["optim"]]
        })
      const both = [
        "    - { path: training.learningRate, kind: log, values: [1e-4, 3e-4, 1e-3] }",
        "    - { path: training.extra.optim, kind: categorical, values: [adamw, sgd] }"
      ]
      // the median of each (3e-4, adamw) is no point of the pool: the point nearest it
      assert.deepStrictEqual(yield* inside([...both, "  points: [[1e-4, adamw], [1e-3, adamw], [1e-4, sgd]]"]), [1e-4, "adamw"])
      assert.deepStrictEqual(yield* inside([...both, "  points: [[1e-3, adamw], [1e-4, sgd]]"]), [1e-3, "adamw"])
      // a grid whose medians (3e-4, adamw) the table never ran together, the row nearest them (1e-4, adamw) outside it:
      // the recorded configuration inside it nearest them
      assert.deepStrictEqual(
        yield* inside([
          "    - { path: training.learningRate, kind: log, values: [3e-4] }",
          "    - { path: training.extra.optim, kind: categorical, values: [adamw, sgd] }"
        ], "lr,optim,loss\n1e-4,adamw,1.5\n1e-3,adamw,1.1\n3e-4,sgd,1.2\n1e-4,sgd,1.4\n"),
        [3e-4, "sgd"]
      )
      // a pool none of whose points the table ran: its point nearest the medians, replayed by the nearest row as its trials are
      const { file, landscape } = yield* task("lr,optim,loss\n1e-4,adamw,1.5\n3e-4,adamw,1.3\n1e-3,adamw,1.1\n1e-4,sgd,1.4\n", [], [
        "searchSpace:",
        "  parameters:",
        ...both,
        "  points: [[1e-3, sgd], [3e-4, sgd]]"
      ])
      const unrecorded = Simulator.completeTask((yield* TaskFile.load(file)).task, landscape)
      assert.deepStrictEqual(SearchSpace.outside(unrecorded.searchSpace!, unrecorded.defaultStrategy!), { values: [], offPool: false })
      assert.deepStrictEqual([unrecorded.defaultStrategy!.training.learningRate, unrecorded.defaultStrategy!.training.extra["optim"]], [3e-4, "sgd"])
    }))

  it.effect("a default and a trial at the same point replay the same row: one rule of nearest, the table's distance among the configurations recorded inside the task's own space", () =>
    Effect.gen(function*() {
      /** The row a strategy replays as a trial's job, on a simulator over `landscape`. */
      const replayed = (landscape: Simulator.Landscape, strategy: Strategy.Strategy) =>
        Effect.scoped(Effect.gen(function*() {
          const exit = yield* Backend.run(yield* Simulator.make(landscape), spec(strategy))
          return / row (.+?)(?: \(|$)/.exec((exit.result as { summary: string }).summary)![1]
        }))
      const load = (csv: string, space: ReadonlyArray<string>) =>
        Effect.gen(function*() {
          const { file, landscape } = yield* task(csv, [], ["searchSpace:", "  parameters:", ...space])
          const complete = Simulator.completeTask((yield* TaskFile.load(file)).task, landscape)
          return { landscape, space: complete.searchSpace!, baseline: complete.defaultStrategy! }
        })
      const at = (s: Strategy.Strategy, lr: number, optim: string) =>
        SearchSpace.set(SearchSpace.set(s, "training.learningRate", lr), "training.extra.optim", optim)

      // a grid whose medians (3e-4, adamw) the table never ran together: the row nearest them, (1e-4, adamw) on line 2,
      // lies outside it, and the configuration recorded inside it nearest them is (3e-4, sgd) on line 4
      const grid = yield* load("lr,optim,loss\n1e-4,adamw,1.5\n1e-3,adamw,1.1\n3e-4,sgd,1.2\n1e-4,sgd,1.4\n", [
        "    - { path: training.learningRate, kind: log, values: [3e-4] }",
        "    - { path: training.extra.optim, kind: categorical, values: [adamw, sgd] }"
      ])
      const medians = at(grid.baseline, 3e-4, "adamw")
      assert.deepStrictEqual(SearchSpace.outside(grid.space, medians), { values: [], offPool: false }, "a point of the grid")
      assert.strictEqual(yield* replayed(grid.landscape, grid.baseline), "line 4")
      assert.strictEqual(yield* replayed(grid.landscape, medians), "line 4", "a trial at the medians replays the baseline's row")
      assert.strictEqual(Simulator.match(grid.landscape, medians).point.id, "line 4")

      // points of three optimisers: positions among the values (optim adamw | lion | sgd as 0 | 0.5 | 1) would put
      // (3e-4, adamw) and (1e-4, lion) as near the medians (3e-4, lion), and take the earlier row; the table's
      // distance, which every trial replays by, puts (1e-4, lion) nearer (a log step of lr against another optimiser)
      const three = yield* load("lr,optim,loss\n3e-4,adamw,1.3\n1e-4,lion,1.2\n3e-4,lion,1.0\n1e-3,sgd,1.4\n", [
        "    - { path: training.learningRate, kind: log, values: [1e-4, 3e-4, 1e-3] }",
        "    - { path: training.extra.optim, kind: categorical, values: [adamw, lion, sgd] }",
        "  points: [[3e-4, adamw], [1e-4, lion], [1e-3, sgd]]"
      ])
      assert.deepStrictEqual([three.baseline.training.learningRate, three.baseline.training.extra["optim"]], [1e-4, "lion"])
      assert.strictEqual(yield* replayed(three.landscape, three.baseline), "line 3")
      // the medians themselves, recorded on line 4 but outside the space's points, replay the same row
      assert.strictEqual(yield* replayed(three.landscape, at(three.baseline, 3e-4, "lion")), "line 3")

      // without a space of the task's own, every row: the medians replay their own
      const undeclared = (yield* task("lr,optim,loss\n3e-4,adamw,1.3\n1e-4,lion,1.2\n3e-4,lion,1.0\n1e-3,sgd,1.4\n")).landscape
      assert.isUndefined(undeclared.space)
      assert.strictEqual(yield* replayed(undeclared, at(three.baseline, 3e-4, "lion")), "line 4")
    }))

  it.effect("a trial at a point of a declared grid the table never ran names the row it replayed, its values and how far; under unrecorded: fail it fails, naming them", () =>
    Effect.gen(function*() {
      const csv = "lr,optim,loss\n1e-4,adamw,1.5\n1e-3,adamw,1.1\n3e-4,sgd,1.2\n1e-4,sgd,1.4\n"
      const grid = [
        "searchSpace:",
        "  parameters:",
        "    - { path: training.learningRate, kind: log, values: [3e-4, 1e-3] }",
        "    - { path: training.extra.optim, kind: categorical, values: [adamw, sgd] }"
      ]
      const at = (s: Strategy.Strategy, lr: number, optim: string) =>
        SearchSpace.set(SearchSpace.set(s, "training.learningRate", lr), "training.extra.optim", optim)
      const trial = (landscape: Simulator.Landscape, s: Strategy.Strategy) =>
        Effect.scoped(Effect.flatMap(Simulator.make(landscape), (sim) => Backend.run(sim, spec(s))))
      const { value: replays, lines } = yield* logged(task(csv, [], grid))
      // said when the task is read: 2 of the 4 points are no recorded configuration (their trials replay another row)
      assert.deepStrictEqual(lines.filter((l) => l.includes("never ran")).map((l) => l.replace(/^.*task\.yaml: /, "")), [
        `2 of the 4 points of searchSpace are configurations the table never ran (the first: training.learningRate 0.0003, ` +
        `training.extra.optim "adamw"): their trials replay the nearest recorded row, as its summary says. Say unrecorded: fail ` +
        `in the backend section to fail them instead, or unrecorded: nearest to keep this and silence the warning`
      ])
      const baseline = Simulator.completeTask((yield* TaskFile.load(replays.file)).task, replays.landscape).defaultStrategy!
      // (3e-4, adamw), a point of the grid the table never ran: the row of (1e-3, adamw), said as such
      const nearest = yield* trial(replays.landscape, at(baseline, 3e-4, "adamw"))
      assert.strictEqual(nearest.outcome, "Succeeded")
      assert.strictEqual((nearest.result as { summary: string }).summary,
        `mine: nearest row line 3 (distance 0.5229): the table has no run of this configuration (training.learningRate 0.0003, ` +
          `training.extra.optim "adamw"); its outcome is that row's (training.learningRate 0.001, training.extra.optim "adamw")`)
      assert.deepStrictEqual(nearest.logTail, [(nearest.result as { summary: string }).summary])

      const { value: strict, lines: said } = yield* logged(task(csv, ["unrecorded: fail"], grid))
      assert.isFalse(said.some((l) => l.includes("never ran")), "the task said what to do with them")
      assert.strictEqual(strict.landscape.unrecorded, "fail")
      const refusedTrial = yield* trial(strict.landscape, at(baseline, 3e-4, "adamw"))
      assert.strictEqual(refusedTrial.outcome, "Failed")
      assert.strictEqual(refusedTrial.failureKind, "Crash")
      assert.strictEqual(refusedTrial.gpuSeconds, 0)
      assert.strictEqual(refusedTrial.message,
        `mine: the table has no run of this configuration (training.learningRate 0.0003, training.extra.optim "adamw"), and backend.unrecorded is fail: ` +
          `not replayed from the nearest row, line 3 (distance 0.5229: training.learningRate 0.001, training.extra.optim "adamw"). ` +
          `Add its run to the table, or set unrecorded: nearest to replay that row`)
      // a point the table ran replays its row as ever
      const exact = yield* trial(strict.landscape, at(baseline, 1e-3, "adamw"))
      assert.strictEqual((exact.result as { summary: string }).summary, "mine: exact row line 3")
      // the rows its search reaches: the grid's recorded points only, failing the others
      const complete = Simulator.completeTask((yield* TaskFile.load(strict.file)).task, strict.landscape)
      assert.deepStrictEqual(Simulator.reachable(strict.landscape, complete).map((p) => p.id), ["line 3", "line 4"])
      const bad = yield* refused(task(csv, ["unrecorded: skip"], grid))
      assert.include(bad.message, "backend.unrecorded")
    }))

  it.effect("a default strategy of the task's own, where the table gives the search space, must be a configuration the table recorded", () =>
    Effect.gen(function*() {
      const csv = "lr,optim,loss\n1e-4,adamw,1.5\n3e-4,sgd,1.2\n1e-3,adamw,1.1\n"
      const withDefault = (lr: string, optim: string) => [
        "defaultStrategy:",
        "  data: { sources: [{ name: mine }] }",
        `  training: { learningRate: ${lr}, epochs: 1, batchSize: 8, extra: { optim: ${optim} } }`
      ]
      // a rate the table never ran replays the nearest row, as another rate does
      const err = yield* refused(task(csv, [], withDefault("5e-4", "adamw")))
      assert.include(err.message, "defaultStrategy.training.learningRate: 0.0005 is not one of the values of column lr [0.0001, 0.0003, 0.001]: " +
        "the baseline would run it as written, and the trials that start from it keep it until a move changes it. " +
        "Set it to one of them, or leave defaultStrategy out (the table's median configuration is the baseline then)")
      // each value is the column's, but the table never ran them together
      const combined = yield* refused(task(csv, [], withDefault("3e-4", "adamw")))
      assert.include(combined.message, `defaultStrategy: (training.learningRate 0.0003, training.extra.optim "adamw") is not one of the configurations the table recorded`)
      const { landscape } = yield* task(csv, [], withDefault("3e-4", "sgd"))
      assert.strictEqual(landscape.points.length, 3)
    }))
})

const simulate = <A, E>(
  text: string,
  gpus: number,
  body: (sim: Simulator.SimulatorShape) => Effect.Effect<A, E>
) =>
  Effect.gen(function*() {
    const l = yield* table(text, { cost: { column: "cost" }, curve: { column: "curve" } })
    const sim = yield* Simulator.make(l, { gpus })
    return yield* body(sim)
  }).pipe(Effect.scoped)

const runTimed = (sim: Simulator.SimulatorShape, s: Strategy.Strategy, node: string) =>
  Effect.gen(function*() {
    const exit = yield* Backend.run(sim, spec(s, node))
    return { exit, at: yield* sim.clock }
  })

describe("Simulator backend", () => {
  it.effect("runs two jobs on two GPUs in simulated time: finish at 3 and 5, utilisation 0.8", () =>
    simulate(timed, 2, (sim) =>
      Effect.gen(function*() {
        const [a, b] = yield* Effect.all([runTimed(sim, withValues(1e-3, 2), "a"), runTimed(sim, withValues(1e-4, 2), "b")], {
          concurrency: "unbounded"
        })
        assert.strictEqual(a.at, 3)
        assert.strictEqual(b.at, 5)
        assert.strictEqual(a.exit.wallSeconds, 3)
        assert.strictEqual(b.exit.gpuSeconds, 5)
        assert.strictEqual(yield* sim.clock, 5)
        assert.closeTo(yield* sim.utilisation, 0.8, 1e-12)
        const result = a.exit.result as { metrics: unknown; primary: number; summary: string }
        assert.deepStrictEqual(result.metrics, { lr: 0.001, layers: 2, score: 0.5, cost: 3 })
        assert.strictEqual(result.primary, 0.5)
        assert.match(result.summary, /exact row a$/)
      })))

  it.effect("queues a third job for the first free GPU; one GPU runs them back to back", () =>
    Effect.gen(function*() {
      const three = (sim: Simulator.SimulatorShape) =>
        Effect.all([
          runTimed(sim, withValues(1e-3, 2), "a"),
          runTimed(sim, withValues(1e-4, 2), "b"),
          runTimed(sim, withValues(1e-2, 4), "c")
        ], { concurrency: "unbounded" }).pipe(
          Effect.flatMap((rs) => Effect.map(sim.utilisation, (u) => ({ at: rs.map((r) => r.at), u })))
        )
      const two = yield* simulate(timed, 2, three)
      assert.deepStrictEqual(two.at, [3, 5, 5])
      assert.closeTo(two.u, 1, 1e-12)
      const one = yield* simulate(timed, 1, three)
      assert.deepStrictEqual(one.at, [3, 8, 10])
      assert.closeTo(one.u, 1, 1e-12)
    }))

  it.effect("emits the curve as metrics at their simulated times, then the exit", () =>
    simulate(timed, 1, (sim) =>
      Effect.gen(function*() {
        const ref = yield* sim.submit(spec(withValues(1e-4, 2)))
        const events = yield* sim.watch(ref).pipe(
          Stream.mapEffect((e) => Effect.map(sim.clock, (t) => ({ e, t }))),
          Stream.runCollect
        )
        const metrics = events.filter((x) => x.e._tag === "Metric")
        assert.deepStrictEqual(metrics.map((x) => x.e._tag === "Metric" ? [x.e.point.step, x.e.point.name, x.e.point.value] : []), [
          [1, "score", 0.3],
          [2, "score", 0.6],
          [3, "score", 0.5],
          [4, "score", 0.7]
        ])
        assert.deepStrictEqual(metrics.map((x) => x.t), [1.25, 2.5, 3.75, 5])
        assert.strictEqual(events[0]!.e._tag, "State")
        assert.strictEqual(events.at(-1)!.e._tag, "Exit")
      })))

  it.effect("reduces a curve to the best so far when asked", () =>
    Effect.gen(function*() {
      const l = yield* table(timed, { curve: { column: "curve", name: "acc", reduce: "best" } })
      const sim = yield* Simulator.make(l)
      const events = yield* sim.submit(spec(withValues(1e-4, 2))).pipe(
        Effect.flatMap((ref) => Stream.runCollect(sim.watch(ref)))
      )
      const values = events.flatMap((e) => (e._tag === "Metric" ? [e.point.value] : []))
      assert.deepStrictEqual(values, [0.3, 0.6, 0.6, 0.7])
    }).pipe(Effect.scoped))

  it.effect("a row without a metric fails as a crash after its cost; cancelling frees the GPU", () =>
    simulate(timed, 1, (sim) =>
      Effect.gen(function*() {
        const failed = yield* Backend.run(sim, spec(withValues(1e-2, 2)))
        assert.strictEqual(failed.outcome, "Failed")
        assert.strictEqual(failed.failureKind, "Crash")
        assert.include(failed.message ?? "", "has no score")
        assert.strictEqual(yield* sim.clock, 4)
        const running = yield* sim.submit(spec(withValues(1e-4, 2), "long"))
        const queued = yield* sim.submit(spec(withValues(1e-3, 2), "next"))
        assert.deepStrictEqual((yield* sim.list("run-1")).map((j) => j.state), ["Finished", "Running", "Pending"])
        // withdraw: only the one still waiting for a GPU
        const third = yield* sim.submit(spec(withValues(3e-4, 2), "third"))
        assert.isFalse(yield* sim.withdraw!(running))
        assert.isTrue(yield* sim.withdraw!(third))
        assert.strictEqual((yield* Backend.awaitExit(sim, third)).outcome, "Cancelled")
        yield* sim.cancel(running)
        const cancelled = yield* Backend.awaitExit(sim, running)
        assert.strictEqual(cancelled.outcome, "Cancelled")
        const next = yield* Backend.awaitExit(sim, queued)
        assert.strictEqual(next.outcome, "Succeeded")
        assert.strictEqual(yield* sim.clock, 7)
        const missing = yield* Effect.flip(sim.submit({ ...spec(base), files: [] }))
        assert.include(missing.message, "strategy.json")
      })))

  it.effect("withJob cancels a job whose use fails or dies before it ends, freeing its GPU; not one whose exit the use saw", () =>
    simulate(timed, 1, (sim) =>
      Effect.gen(function*() {
        const taken: Array<ExperimentNode.JobRef> = []
        let cancels = 0
        const counted: Backend.BackendShape = { ...sim, cancel: (ref) => Effect.andThen(Effect.sync(() => cancels++), sim.cancel(ref)) }
        const take = (node: string, after: Effect.Effect<never, string>) =>
          Effect.exit(Backend.withJob(counted, sim.submit(spec(withValues(1e-4, 2), node)), (ref) => Effect.andThen(Effect.sync(() => taken.push(ref)), after)))
        assert.strictEqual((yield* take("fails", Effect.fail("the caller's own failure")))._tag, "Failure")
        assert.strictEqual((yield* take("dies", Effect.die(new Error("a defect in the caller"))))._tag, "Failure")
        assert.deepStrictEqual((yield* sim.list("run-1")).map((j) => [j.labels.node, j.state]), [["fails", "Finished"], ["dies", "Finished"]])
        for (const ref of taken) assert.strictEqual((yield* Backend.awaitExit(sim, ref)).outcome, "Cancelled")
        assert.strictEqual((yield* sim.capacity).inUse, 0)
        // seen to its exit, then a failure: the job's exit stays as it was
        const seen = yield* Effect.exit(Backend.withJob(counted, sim.submit(spec(withValues(1e-3, 2), "seen")), (ref) =>
          Effect.andThen(Backend.awaitExit(sim, ref), Effect.andThen(Effect.sync(() => taken.push(ref)), Effect.fail("recording failed")))))
        assert.deepStrictEqual([seen._tag, cancels], ["Failure", 2])
        assert.strictEqual((yield* Backend.awaitExit(sim, taken[2]!)).outcome, "Succeeded")
      })))

  it.effect("keeps four GPUs busy across resubmissions: makespan and trace are deterministic", () =>
    Effect.gen(function*() {
      const values = Array.from({ length: 10 }, (_, i) => i + 1)
      const landscape = yield* table(
        "lr,layers,score,cost\n" + values.map((v) => `${v / 1000},1,${v},${v}`).join("\n") + "\n",
        { cost: { column: "cost" } }
      )
      const once = Effect.gen(function*() {
        const sim = yield* Simulator.make(landscape, { gpus: 4 })
        const trace: Array<string> = []
        // four workers, each submitting its next job right after the previous exit (with some
        // scheduler hops in between, as an explorer loop does)
        yield* Effect.forEach([0, 1, 2, 3], (w) =>
          Effect.gen(function*() {
            for (let i = 0; i < 5; i++) {
              const v = ((w * 5 + i) % 10) + 1
              const { at } = yield* runTimed(sim, withValues(v / 1000, 1), `w${w}-${i}`)
              trace.push(`${w}:${v}@${at}`)
              for (let k = 0; k < 5; k++) yield* Effect.yieldNow
            }
          }), { concurrency: "unbounded", discard: true })
        return { trace, clock: yield* sim.clock, utilisation: yield* sim.utilisation }
      }).pipe(Effect.scoped)
      const a = yield* once
      const b = yield* once
      assert.deepStrictEqual(a, b)
      // worker w runs 5 jobs back to back: 1+..+5 = 15, 6+..+10 = 40, 15, 40
      assert.strictEqual(a.clock, 40)
      assert.closeTo(a.utilisation, (15 + 40 + 15 + 40) / (4 * 40), 1e-12)
      assert.include(a.trace, "1:10@40")
    }))

  it.effect("runs 20,000 zero-cost trials, each with its result, without advancing the clock", () =>
    Effect.gen(function*() {
      const values = Array.from({ length: 20 }, (_, i) => i + 1)
      const sim = yield* Simulator.make(Simulator.synthetic({
        parameters: [
          { path: "training.extra.a", kind: "ordinal", values },
          { path: "training.extra.b", kind: "ordinal", values }
        ],
        seed: 1
      }))
      let sum = 0
      for (let i = 0; i < 20_000; i++) {
        const s = SearchSpace.set(SearchSpace.set(base, "training.extra.a", (i % 20) + 1), "training.extra.b", ((i >> 3) % 20) + 1)
        const exit = yield* Backend.run(sim, spec(s))
        sum += typeof exit.result === "object" ? 1 : 0
      }
      assert.strictEqual(sum, 20_000)
      assert.strictEqual(yield* sim.clock, 0)
    }).pipe(Effect.scoped))
})

describe("bench tasks", () => {
  const dir = path.resolve(import.meta.dirname, "../../../bench/tasks")
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".yaml"))

  it("has one task per NMTHPO pair, NMT curve set, RegMix and Tinker model", () => {
    assert.strictEqual(files.filter((f) => f.startsWith("nmthpo-")).length, 6)
    assert.strictEqual(files.filter((f) => f.startsWith("nmtlc-")).length, 4)
    assert.strictEqual(files.filter((f) => f.startsWith("regmix-")).length, 1)
    assert.isAtLeast(files.filter((f) => f.startsWith("tinker-")).length, 30)
  })

  it.effect("every task decodes, its table loads with rows, and its default strategy maps exactly", () =>
    Effect.gen(function*() {
      for (const f of files) {
        const loaded = yield* TaskFile.load(path.join(dir, f))
        const { landscape } = yield* Simulator.fromTask(loaded.task, loaded.dir)
        assert.isAbove(landscape.points.length, 0, f)
        assert.strictEqual(landscape.metric.direction, loaded.task.metric.direction, f)
        const def = Simulator.defaultStrategy(landscape)
        assert.strictEqual(Simulator.match(landscape, def).distance, 0, f)
        const { best, worst } = Simulator.range(landscape)
        assert.notStrictEqual(best, worst, f)
        // the recorded curves replay whole: one value per checkpoint the run logged
        if (landscape.curve !== undefined) {
          for (const p of landscape.points) assert.strictEqual(p.curve.length, p.metrics["n_checkpoints"], `${f} ${p.id}`)
        }
      }
    }))

  it.effect("NMTHPO ja-en: 150 configurations, BLEU maximised, every row reachable exactly", () =>
    Effect.gen(function*() {
      const loaded = yield* TaskFile.load(path.join(dir, "nmthpo-ja-en.yaml"))
      const { landscape } = yield* Simulator.fromTask(loaded.task, loaded.dir)
      const configs = Simulator.configurations(landscape)
      assert.strictEqual(configs.length, 150)
      for (const p of configs) {
        const m = Simulator.match(landscape, Simulator.strategyOf(landscape, p))
        assert.strictEqual(m.point.id, p.id)
        assert.strictEqual(m.distance, 0)
      }
    }))

  it.effect("RegMix: a row's own mixture snaps back to it", () =>
    Effect.gen(function*() {
      const loaded = yield* TaskFile.load(path.join(dir, "regmix-1m-pile-cc.yaml"))
      const { landscape } = yield* Simulator.fromTask(loaded.task, loaded.dir)
      assert.strictEqual(landscape.points.length, 512)
      for (const p of landscape.points.slice(0, 50)) {
        assert.strictEqual(Simulator.match(landscape, Simulator.strategyOf(landscape, p)).point.id, p.id)
      }
      assert.closeTo(Simulator.range(landscape).best, 5.08, 0.01)
    }))
})
