import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Schema } from "effect"
import fc from "fast-check"
import * as Budget from "../src/Budget.ts"
import * as Cost from "../src/Cost.ts"
import * as Insight from "../src/Insight.ts"
import * as JournalEvent from "../src/JournalEvent.ts"
import * as Result from "../src/Result.ts"
import * as Strategy from "../src/Strategy.ts"
import * as Task from "../src/Task.ts"
import * as TaskFile from "../src/TaskFile.ts"
import { strategyEncoded, taskEncoded } from "./support/arbitraries.ts"

const minimalTask = { name: "t", objective: "do it", metric: { name: "acc", direction: "maximize" } }
const minimalStrategy = { data: { sources: [{ name: "a" }] }, training: { learningRate: 0.001, epochs: 1, batchSize: 8 } }

/** The message of a failed task decode (fails the test when decoding succeeds). */
const taskError = (input: unknown): string => {
  const exit = Effect.runSyncExit(TaskFile.decode(input, "task.yaml"))
  if (Exit.isSuccess(exit)) assert.fail(`expected ${JSON.stringify(input)} to be refused`)
  const error = Effect.runSync(Effect.flip(TaskFile.decode(input, "task.yaml")))
  assert.strictEqual(error._tag, "InvalidInput")
  assert.strictEqual(error.source, "task.yaml")
  return error.message
}

const decodeTask = (input: unknown) => Effect.runSync(TaskFile.decode(input))

describe("Task", () => {
  it("fills defaults for a minimal task", () => {
    const task = decodeTask(minimalTask)
    assert.deepStrictEqual(task.datasets, [])
    assert.deepStrictEqual(task.evaluation, { splits: [], extra: {} })
    assert.deepStrictEqual(task.constraints, {})
    assert.deepStrictEqual(task.budget, {})
    assert.isUndefined(task.defaultStrategy)
    assert.isUndefined(task.recipe)
  })

  it("fills nested defaults of the recipe and the default strategy", () => {
    const task = decodeTask({ ...minimalTask, recipe: { command: ["node", "train.ts"] }, defaultStrategy: minimalStrategy })
    assert.deepStrictEqual(task.recipe?.env, {})
    assert.deepStrictEqual(task.recipe?.resources, { gpus: 0, cpus: 1 })
    assert.strictEqual(task.defaultStrategy?.training.schedule, "cosine")
    assert.strictEqual(task.defaultStrategy?.data.sources[0]?.weight, 1)
  })

  it("errors name the path of every bad field", () => {
    const message = taskError({
      name: "t",
      objective: "",
      metric: { name: "acc", direction: "up" },
      budget: { maxTrials: 0, gpuHours: -1 },
      defaultStrategy: { ...minimalStrategy, training: { ...minimalStrategy.training, batchSize: 1.5 } }
    })
    assert.include(message, "task.yaml")
    for (const path of ["objective", "metric.direction", "budget.maxTrials", "budget.gpuHours", "defaultStrategy.training.batchSize"]) {
      assert.match(message, new RegExp(`^  ${path.replace(/\./g, "\\.")}: `, "m"), `no issue names ${path} in:\n${message}`)
    }
  })

  it("formatIssues turns a schema error into one line per issue, path first", () => {
    const error = Effect.runSync(Effect.flip(Schema.decodeUnknownEffect(Task.Task)(
      { name: "t", objective: "o", metric: { name: "m", direction: "maximize" }, datasets: [{ name: "" }], budget: { tokens: 0.5 } },
      { errors: "all" }
    )))
    const lines = TaskFile.formatIssues(error).split("\n")
    assert.deepStrictEqual(lines.map((l) => l.split(":")[0]), ["  datasets[0].name", "  budget.tokens"])
    assert.strictEqual(TaskFile.formatIssues("plain text\n\nsecond"), "  plain text\n  second")
  })

  it("names array indices in paths", () => {
    const message = taskError({ ...minimalTask, datasets: [{ name: "ok" }, { name: "" }] })
    assert.match(message, /^ {2}datasets\[1\]\.name: /m)
  })

  it("refuses unknown keys, at any depth", () => {
    assert.match(taskError({ ...minimalTask, budgets: { maxTrials: 3 } }), /^ {2}budgets: .*excess/m)
    assert.match(taskError({ ...minimalTask, metric: { ...minimalTask.metric, goal: 1 } }), /^ {2}metric\.goal: .*excess/m)
    assert.match(
      taskError({ ...minimalTask, defaultStrategy: { ...minimalStrategy, training: { ...minimalStrategy.training, lr: 1 } } }),
      /^ {2}defaultStrategy\.training\.lr: .*excess/m
    )
  })

  it("a missing required key is named", () => {
    assert.match(taskError({ name: "t", metric: minimalTask.metric }), /^ {2}objective: /m)
  })

  it("parse reports YAML syntax errors with the file name", () => {
    const error = Effect.runSync(Effect.flip(TaskFile.parse("name: [unclosed", "bad.yaml")))
    assert.include(error.message, "bad.yaml is not valid YAML")
    assert.notInclude(Effect.runSync(Effect.flip(TaskFile.parse("{ name: }", "bad.json"))).message, "read as JSON")
  })

  it("a folder given as the task file is told the YAML files in it to name instead", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-taskdir-"))
    try {
      const load = (given: string) => Effect.runSync(Effect.flip(TaskFile.load(given))).message
      assert.strictEqual(load(dir), `task file ${dir} is a folder: name a task file (YAML or JSON), e.g. examples/quickstart/task.yaml`)
      fs.writeFileSync(path.join(dir, "task.yaml"), "name: t\n")
      fs.writeFileSync(path.join(dir, "package.json"), "{}")
      assert.strictEqual(load(dir), `task file ${dir} is a folder: name the task file in it: ${path.join(dir, "task.yaml")}`)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("a task file named neither .yaml, .yml nor .json is read as JSON, and a YAML one so named is told how to name it", () => {
    const error = Effect.runSync(Effect.flip(TaskFile.parse("name: t\nobjective: o\n", "task.txt")))
    assert.include(error.message, "task.txt is not valid JSON: ")
    assert.include(error.message, "is read as JSON: a task file is YAML named *.yaml (or *.yml) or JSON named *.json")
  })

  it("names the field of a search-space condition that points nowhere, and the parameters it may name", () => {
    const text = fs.readFileSync(new URL("../../../examples/quickstart/task.yaml", import.meta.url), "utf8")
      .replace("when: { path: training.method,", "when: { path: training.methd,")
    const error = Effect.runSync(Effect.flip(TaskFile.parse(text, "task.yaml")))
    assert.match(error.message, /searchSpace\.parameters\[\d+\]\.when\.path: "training\.methd" is not another parameter of the search space; name one of: .*training\.method/)
  })

  it("a search-space path that names no field of a strategy is refused, naming the parameter and the field", () => {
    const text = fs.readFileSync(new URL("../../../examples/quickstart/task.yaml", import.meta.url), "utf8")
      .replace("path: training.epochs,", "path: training.epoch,")
    assert.notInclude(text, "path: training.epochs,", "the quickstart has an epochs parameter")
    const error = Effect.runSync(Effect.flip(TaskFile.parse(text, "task.yaml")))
    assert.match(error.message, /searchSpace\.parameters\[\d+\]\.path: training\.epoch = \d+ does not make a valid strategy/)
    assert.match(error.message, /training\.epoch: Expected no excess property/)
    // free-form settings under extra, and the quickstart as it is, are fine
    const free = { ...minimalTask, defaultStrategy: minimalStrategy, searchSpace: { parameters: [{ path: "training.extra.layers", kind: "ordinal", values: [2, 4] }] } }
    assert.deepStrictEqual(decodeTask(free).searchSpace!.parameters[0]!.path, "training.extra.layers")
  })

  it("an unknown key gets the fix: the key it most likely misspells, else the keys accepted there", () => {
    const message = taskError({
      ...minimalTask,
      colour: "blue",
      budget: { maxTrails: 3 },
      recipe: { command: ["x"], resources: { memoryGb: 4 } },
      defaultStrategy: { ...minimalStrategy, data: { sources: [{ name: "a", wieght: 1 }] } }
    })
    assert.match(message, /^ {2}budget\.maxTrails: Expected no excess property; did you mean "maxTrials"\?$/m)
    assert.match(message, /^ {2}recipe\.resources\.memoryGb: Expected no excess property; did you mean "memoryMb"\?$/m)
    assert.match(message, /^ {2}defaultStrategy\.data\.sources\[0\]\.wieght: Expected no excess property; did you mean "weight"\?$/m)
    assert.match(message, /^ {2}colour: Expected no excess property; the keys allowed here: name, objective, metric, .*budget/m)
  })

  it("loads the quickstart task file", () => {
    const loaded = Effect.runSync(TaskFile.load(new URL("../../../examples/quickstart/task.yaml", import.meta.url).pathname))
    assert.strictEqual(loaded.task.name, "quickstart-addition")
    assert.strictEqual(loaded.task.budget.maxTrials, 16)
  })

  it("round-trips encode -> decode for generated tasks", () => {
    fc.assert(
      fc.property(taskEncoded, (input) => {
        const task = decodeTask(input)
        const encoded = Schema.encodeSync(Task.Task)(task)
        assert.deepStrictEqual(decodeTask(JSON.parse(JSON.stringify(encoded))), task)
      }),
      { numRuns: 200 }
    )
  })

  it("utility flips for minimise and isBetter / reachesTarget follow it", () => {
    const max = { metric: { name: "a", direction: "maximize" as const, target: 0.9 } }
    const min = { metric: { name: "l", direction: "minimize" as const, target: 0.1 } }
    assert.strictEqual(Task.utility(max, 0.5), 0.5)
    assert.strictEqual(Task.utility(min, 0.5), -0.5)
    assert.isTrue(Task.isBetter(max, 0.6, 0.5))
    assert.isTrue(Task.isBetter(min, 0.4, 0.5))
    assert.isTrue(Task.reachesTarget(max, 0.9))
    assert.isFalse(Task.reachesTarget(max, 0.89))
    assert.isTrue(Task.reachesTarget(min, 0.05))
    assert.isFalse(Task.reachesTarget(min, 0.2))
    assert.isFalse(Task.reachesTarget({ metric: { name: "a", direction: "maximize" } }, 1e9))
  })
})

describe("Strategy", () => {
  it("fills defaults", () => {
    const s = Strategy.decodeSync(minimalStrategy)
    assert.deepStrictEqual(s, {
      data: { sources: [{ name: "a", weight: 1 }], format: "default", filters: [], transforms: [], extra: {} },
      training: { method: "full", learningRate: 0.001, schedule: "cosine", warmupRatio: 0, epochs: 1, batchSize: 8, seed: 0, extra: {} },
      evaluation: { splits: [], extra: {} },
      rationale: ""
    })
    const withLora = Strategy.decodeSync({ ...minimalStrategy, training: { ...minimalStrategy.training, method: "lora", lora: { rank: 8 } } })
    assert.deepStrictEqual(withLora.training.lora, { rank: 8, alpha: 16, dropout: 0 })
  })

  it("errors name the path", () => {
    assert.throws(
      () => Strategy.decodeSync({ ...minimalStrategy, data: { sources: [{ name: "a", weight: -1 }] } }),
      /at \["data"\]\["sources"\]\[0\]\["weight"\]/
    )
    assert.throws(() => Strategy.decodeSync({ ...minimalStrategy, training: { ...minimalStrategy.training, method: "dpo" } }), /\["training"\]\["method"\]/)
  })

  it("round-trips encode -> decode for generated strategies", () => {
    fc.assert(
      fc.property(strategyEncoded, (input) => {
        const s = Strategy.decodeSync(input)
        const again = Strategy.decodeSync(JSON.parse(JSON.stringify(Strategy.encode(s))))
        assert.deepStrictEqual(again, s)
        // encoding a decoded value is stable: defaults are written out, so a second trip changes nothing
        assert.deepStrictEqual(Strategy.encode(again), Strategy.encode(s))
      }),
      { numRuns: 300 }
    )
  })

  it("rejects non-finite numbers", () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      assert.throws(() => Strategy.decodeSync({ ...minimalStrategy, training: { ...minimalStrategy.training, learningRate: bad } }))
      assert.throws(() => Strategy.decodeSync({ ...minimalStrategy, training: { ...minimalStrategy.training, epochs: bad } }))
    }
  })
})

describe("Result", () => {
  const decode = Schema.decodeUnknownSync(Result.Result)

  it("fills defaults", () => {
    assert.deepStrictEqual(decode({}), { metrics: {}, curves: [], artifacts: [], cost: Cost.zero })
    const failed = decode({ failure: { kind: "OOM", message: "out of memory" } })
    assert.deepStrictEqual(failed.failure, { kind: "OOM", message: "out of memory", logTail: [], retryable: false })
  })

  it("rejects NaN and Infinity in metrics, score and curves, naming the path", () => {
    assert.throws(() => decode({ metrics: { acc: NaN } }), /\["metrics"\]\["acc"\]/)
    assert.throws(() => decode({ metrics: { acc: Infinity } }), /\["metrics"\]\["acc"\]/)
    assert.throws(() => decode({ score: -Infinity }), /\["score"\]/)
    assert.throws(() => decode({ curves: [{ step: 1, split: "train", name: "loss", value: NaN }] }), /\["curves"\]\[0\]\["value"\]/)
    assert.throws(() => Schema.decodeUnknownSync(Result.JobResultFile)({ metrics: { a: 1 }, primary: NaN }), /\["primary"\]/)
  })

  it("rejects an unknown failure kind and a fractional step", () => {
    assert.throws(() => decode({ failure: { kind: "Meltdown", message: "" } }), /\["failure"\]\["kind"\]/)
    assert.throws(() => decode({ curves: [{ step: 1.5, split: "train", name: "loss", value: 1 }] }), /\["step"\]/)
  })

  it("constructors build valid results that round-trip", () => {
    const ok = Result.success({ accuracy: 0.9 }, 0.9, Cost.make({ gpuSeconds: 60 }))
    const bad = Result.failure("Crash", "exit 1", { logTail: ["boom"], exitCode: 1, retryable: true })
    for (const r of [ok, bad]) {
      assert.deepStrictEqual(decode(JSON.parse(JSON.stringify(Schema.encodeSync(Result.Result)(r)))), r)
    }
    assert.strictEqual(bad.failure?.exitCode, 1)
  })
})

describe("Budget and Cost", () => {
  it("Budget: every limit is optional and must be positive", () => {
    const decode = Schema.decodeUnknownSync(Budget.Budget)
    assert.deepStrictEqual(decode({}), {})
    assert.deepStrictEqual(decode({ maxTrials: 3, gpuHours: 0.5 }), { maxTrials: 3, gpuHours: 0.5 })
    assert.throws(() => decode({ maxTrials: 2.5 }), /\["maxTrials"\]/)
    assert.throws(() => decode({ dollars: 0 }), /\["dollars"\]/)
    assert.throws(() => decode({ tokens: -1 }), /\["tokens"\]/)
    assert.throws(() => decode({ gpuHours: Infinity }), /\["gpuHours"\]/)
  })

  it("Cost: fields default to 0, negatives and NaN are refused", () => {
    const decode = Schema.decodeUnknownSync(Cost.Cost)
    assert.deepStrictEqual(decode({}), Cost.zero)
    assert.deepStrictEqual(decode({ dollars: 1.5 }), Cost.make({ dollars: 1.5 }))
    assert.throws(() => decode({ gpuSeconds: -1 }), /\["gpuSeconds"\]/)
    assert.throws(() => decode({ inputTokens: NaN }), /\["inputTokens"\]/)
  })

  it("Cost arithmetic: add, subtract clamps at 0, tokens", () => {
    const a = Cost.make({ gpuSeconds: 10, inputTokens: 5, outputTokens: 7 })
    const b = Cost.make({ gpuSeconds: 15, dollars: 2 })
    assert.deepStrictEqual(Cost.add(a, b), { gpuSeconds: 25, wallSeconds: 0, dollars: 2, inputTokens: 5, outputTokens: 7 })
    assert.deepStrictEqual(Cost.subtract(a, b), { gpuSeconds: 0, wallSeconds: 0, dollars: 0, inputTokens: 5, outputTokens: 7 })
    assert.strictEqual(Cost.tokens(a), 12)
  })
})

describe("Insight", () => {
  const decode = Schema.decodeUnknownSync(Insight.Insight)
  it("fills evidence and data, requires non-empty text", () => {
    assert.deepStrictEqual(decode({ id: "i1", text: "lower lr helps", createdAt: 5 }), {
      id: "i1",
      text: "lower lr helps",
      evidence: [],
      createdAt: 5,
      data: {}
    })
    assert.throws(() => decode({ id: "i1", text: "", createdAt: 5 }), /\["text"\]/)
    assert.throws(() => decode({ id: "i1", text: "x", createdAt: NaN }), /\["createdAt"\]/)
  })
})

describe("JournalEvent", () => {
  it("round-trips every tag through JSON", () => {
    const task = decodeTask(minimalTask)
    const strategy = Strategy.decodeSync(minimalStrategy)
    const events: Array<JournalEvent.JournalEvent> = [
      JournalEvent.make("RunStarted", { runId: "r", task, seed: 1, options: { concurrency: 2 }, at: 1 }),
      JournalEvent.make("RunResumed", { at: 2 }),
      JournalEvent.make("AnalysisCompleted", { analysis: { summary: "s", metricNotes: "", dataNotes: "", risks: ["r"], notes: { a: 1 } }, at: 2 }),
      JournalEvent.make("NodeProposed", { node: { id: "n1", parent: "root", strategy, fingerprint: "f", prior: 0.5, proposedAt: 3 }, at: 3 }),
      JournalEvent.make("NodeAdmitted", { nodeId: "n1", estimate: Cost.make({ gpuSeconds: 1 }), at: 4 }),
      JournalEvent.make("JobSubmitted", { nodeId: "n1", job: { backend: "local", id: "123", data: { pid: 123 } }, at: 5 }),
      JournalEvent.make("JobProgress", { nodeId: "n1", fraction: 0.5, metrics: [{ step: 1, split: "train", name: "loss", value: 0.3 }], at: 6 }),
      JournalEvent.make("NodeFinished", { nodeId: "n1", outcome: "Succeeded", result: Result.success({ acc: 0.8 }, 0.8), at: 7 }),
      JournalEvent.make("InsightsDistilled", { insights: [{ id: "i", text: "t", evidence: ["n1"], createdAt: 8, data: {} }], at: 8 }),
      JournalEvent.make("BudgetCharged", { cost: Cost.make({ inputTokens: 3 }), reason: "propose", at: 9 }),
      JournalEvent.make("RunFinished", { reason: "budget", bestNode: "n1", at: 10 })
    ]
    for (const e of events) {
      assert.deepStrictEqual(JournalEvent.decodeSync(JSON.parse(JSON.stringify(JournalEvent.encode(e)))), e)
    }
  })

  it("fills defaults of nested schemas and names bad paths", () => {
    const e = JournalEvent.decodeSync({ _tag: "JobSubmitted", nodeId: "n", job: { backend: "local", id: "1" }, at: 0 })
    assert.deepStrictEqual(e._tag === "JobSubmitted" && e.job.data, {})
    assert.throws(() => JournalEvent.decodeSync({ _tag: "NodeFinished", nodeId: "n", outcome: "Exploded", at: 0 }), /\["outcome"\]/)
    assert.throws(() => JournalEvent.decodeSync({ _tag: "Unknown", at: 0 }), /_tag/)
    assert.throws(
      () => JournalEvent.decodeSync({ _tag: "NodeFinished", nodeId: "n", outcome: "Succeeded", result: { metrics: { a: NaN } }, at: 0 }),
      /\["result"\]\["metrics"\]\["a"\]/
    )
  })
})
