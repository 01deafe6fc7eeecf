import * as fs from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Redacted } from "effect"
import * as TaskFile from "../src/TaskFile.ts"
import * as Task from "../src/Task.ts"

// Checks that need more than one field of a task (a point against the parameters, a path against
// the others, a command against the placeholders): each refused at load, naming the field and the fix.

const minimalTask = { name: "t", objective: "do it", metric: { name: "acc", direction: "maximize" } }
const minimalStrategy = {
  data: { sources: [{ name: "a" }, { name: "b", weight: 0 }] },
  training: { learningRate: 0.001, epochs: 1, batchSize: 8 }
}
const batchSize = { path: "training.batchSize", kind: "ordinal", values: [8, 16] }
const learningRate = { path: "training.learningRate", kind: "log", values: [0.001, 0.01] }

/** A task with a default strategy and this search space. */
const withSpace = (searchSpace: unknown) => ({ ...minimalTask, defaultStrategy: minimalStrategy, searchSpace })

/** The message of a refused task (fails the test when the task loads). */
const taskError = (input: unknown): string => {
  const exit = Effect.runSyncExit(Effect.flip(TaskFile.decode(input, "task.yaml")))
  if (Exit.isFailure(exit)) assert.fail(`expected ${JSON.stringify(input)} to be refused`)
  const error = exit.value
  assert.strictEqual(error._tag, "InvalidInput")
  assert.strictEqual(error.source, "task.yaml")
  assert.include(error.message, "invalid task in task.yaml")
  return error.message
}

/** The issue lines of a refused task. */
const issues = (input: unknown): Array<string> =>
  taskError(input).split("\n").filter((l) => l.startsWith("  ")).map((l) => l.trim())

const loads = (input: unknown) => Effect.runSync(TaskFile.decode(input, "task.yaml"))

describe("TaskFile: search-space points", () => {
  const space = (points: unknown) => withSpace({ parameters: [batchSize], points })

  it("a point with no value for a parameter is refused", () => {
    assert.deepStrictEqual(issues(space([[]])), [
      "searchSpace.points[0]: has 0 values for 1 parameter (training.batchSize): give one value per parameter, in the order of searchSpace.parameters"
    ])
  })

  it("a value that is not among its parameter's values is refused, naming the point", () => {
    assert.deepStrictEqual(issues(space([["x"]])), [`searchSpace.points[0][0]: "x" is not one of training.batchSize's values [8, 16]`])
    assert.deepStrictEqual(issues(space([[8], [32]])), ["searchSpace.points[1][0]: 32 is not one of training.batchSize's values [8, 16]"])
    // a string that looks like a number is not the number
    assert.deepStrictEqual(issues(space([["8"]])), [`searchSpace.points[0][0]: "8" is not one of training.batchSize's values [8, 16]`])
  })

  it("a point longer than the parameter list is refused", () => {
    assert.deepStrictEqual(issues(space([[8, 16]])), [
      "searchSpace.points[0]: has 2 values for 1 parameter (training.batchSize): give one value per parameter, in the order of searchSpace.parameters"
    ])
  })

  it("a duplicate point is refused", () => {
    assert.deepStrictEqual(issues(space([[8], [16], [8]])), ["searchSpace.points[2]: [8] is already points[0]: list each point once"])
  })

  it("an empty points list is refused", () => {
    const [line, ...rest] = issues(space([]))
    assert.deepStrictEqual(rest, [])
    assert.match(line!, /^searchSpace\.points: is empty: list at least one point, or leave points out/)
  })

  it("every bad point is named, in order, and a long list is cut short", () => {
    const two = withSpace({ parameters: [batchSize, learningRate], points: [[8, 0.001], [16], ["x", 0.5], [8, 0.001]] })
    assert.deepStrictEqual(issues(two), [
      "searchSpace.points[1]: has 1 value for 2 parameters (training.batchSize, training.learningRate): give one value per parameter, in the order of searchSpace.parameters",
      `searchSpace.points[2][0]: "x" is not one of training.batchSize's values [8, 16]`,
      "searchSpace.points[2][1]: 0.5 is not one of training.learningRate's values [0.001, 0.01]",
      "searchSpace.points[3]: [8,0.001] is already points[0]: list each point once"
    ])
    const many = issues(space(Array.from({ length: 100 }, (_, i) => [100 + i])))
    assert.isBelow(many.length, 15)
    assert.strictEqual(many.at(-1), "searchSpace.points: 90 more issues like these")
  })

  it("valid points load, and so do points without a default strategy", () => {
    const task = loads(space([[8], [16]]))
    assert.deepStrictEqual(task.searchSpace?.points, [[8], [16]])
    loads({ ...minimalTask, searchSpace: { parameters: [batchSize], points: [[16]] } })
    assert.deepStrictEqual(issues({ ...minimalTask, searchSpace: { parameters: [batchSize], points: [[4]] } }), [
      "searchSpace.points[0][0]: 4 is not one of training.batchSize's values [8, 16]"
    ])
  })
})

describe("TaskFile: search-space parameters", () => {
  it("a value listed twice in one parameter is refused (it would weigh twice in every random draw)", () => {
    assert.deepStrictEqual(issues(withSpace({ parameters: [{ ...batchSize, values: [8, 16, 8] }] })), [
      "searchSpace.parameters[0].values[2]: 8 is already values[0]: list each value once"
    ])
  })

  it("two parameters with the same path are refused", () => {
    assert.deepStrictEqual(issues(withSpace({ parameters: [learningRate, batchSize, { ...learningRate, values: [0.1] }] })), [
      "searchSpace.parameters[2].path: training.learningRate is already parameters[0]'s path: list each path once, with all its values"
    ])
  })

  it("an empty parameter list is refused: list one, or leave searchSpace out", () => {
    const [line, ...rest] = issues(withSpace({ parameters: [] }))
    assert.deepStrictEqual(rest, [])
    assert.strictEqual(line, "searchSpace.parameters: is empty: list at least one parameter to vary, or leave searchSpace out")
    assert.deepStrictEqual(issues(withSpace({ parameters: [], points: [[]] })), [line])
    // without searchSpace the task loads
    loads({ ...minimalTask, defaultStrategy: minimalStrategy })
  })

  it("a negative mixture weight is refused, naming the parameter's path", () => {
    const mixture = (values: ReadonlyArray<unknown>) => withSpace({ parameters: [batchSize, { path: "data.mixture.b", kind: "ordinal", values }] })
    assert.deepStrictEqual(issues(mixture([-1, 0])), [
      "searchSpace.parameters[1].values[0]: -1 is a negative weight for data.mixture.b: a mixture weight is the source's share of the data, from 0 to 1"
    ])
    // clamped as silently as a negative one: more than 1, and no number at all
    assert.deepStrictEqual(issues(mixture([0, 1.5, "half"])), [
      "searchSpace.parameters[1].values[1]: 1.5 is more than 1 for data.mixture.b: a mixture weight is the source's share of the data, from 0 to 1",
      `searchSpace.parameters[1].values[2]: "half" is not a number for data.mixture.b: a mixture weight is the source's share of the data, from 0 to 1`
    ])
    assert.deepStrictEqual(loads(mixture([0, 0.25, 1])).searchSpace?.parameters[1]?.values, [0, 0.25, 1])
  })

  it("the quickstart's search space still loads", () => {
    const text = fs.readFileSync(new URL("../../../examples/quickstart/task.yaml", import.meta.url), "utf8")
    const task = Effect.runSync(TaskFile.parse(text, "task.yaml"))
    assert.isAbove(task.searchSpace!.parameters.length, 1)
  })
})

describe("TaskFile: a default strategy outside its search space", () => {
  const epochs = { path: "training.epochs", kind: "ordinal", values: [1, 2, 3] }
  const withDefault = (training: Record<string, unknown>, searchSpace: unknown, sources?: unknown) => ({
    ...minimalTask,
    defaultStrategy: { data: { sources: sources ?? minimalStrategy.data.sources }, training: { ...minimalStrategy.training, ...training } },
    searchSpace
  })
  const why = "the baseline would run it as written, and the trials that start from it keep it until a move changes it"

  it("a value its parameter lacks is refused, naming the field, the value, the values allowed and the fix", () => {
    assert.deepStrictEqual(issues(withDefault({ epochs: 7 }, { parameters: [batchSize, epochs] })), [
      `defaultStrategy.training.epochs: 7 is not one of searchSpace.parameters[1].values [1, 2, 3]: ${why}. Set it to one of them, or add 7 to them`
    ])
    // every such parameter, a long list of values cut short
    const rates = { path: "training.learningRate", kind: "log", values: Array.from({ length: 20 }, (_, i) => (i + 2) / 1000) }
    assert.deepStrictEqual(issues(withDefault({ epochs: 0.5, batchSize: 12 }, { parameters: [rates, batchSize, epochs] })), [
      `defaultStrategy.training.learningRate: 0.001 is not one of searchSpace.parameters[0].values [0.002, 0.003, 0.004, 0.005, 0.006, ..., 0.02, 0.021] (20 values): ${why}. Set it to one of them, or add 0.001 to them`,
      `defaultStrategy.training.batchSize: 12 is not one of searchSpace.parameters[1].values [8, 16]: ${why}. Set it to one of them, or add 12 to them`,
      `defaultStrategy.training.epochs: 0.5 is not one of searchSpace.parameters[2].values [1, 2, 3]: ${why}. Set it to one of them, or add 0.5 to them`
    ])
  })

  it("a mixture weight is judged as the source's share, to the 9 decimals shares are read to", () => {
    const web = (values: ReadonlyArray<number>) => ({ parameters: [{ path: "data.mixture.web", kind: "ordinal", values }] })
    const sources = [{ name: "toy", weight: 2 }, { name: "web", weight: 1 }]
    assert.deepStrictEqual(issues(withDefault({}, web([0, 0.25, 0.5]), sources)), [
      `defaultStrategy.data.sources: web's share of the mixture (data.mixture.web: its weight over the sum of the weights) is 0.333333333, ` +
      `not one of searchSpace.parameters[0].values [0, 0.25, 0.5]: ${why}. Set the weights so that it is one of them, or add 0.333333333 to them`
    ])
    loads(withDefault({}, web([0, 1 / 3, 2 / 3]), sources))
    // a source the default leaves out has a share of 0
    loads(withDefault({}, web([0, 0.5]), [{ name: "toy" }]))
  })

  it("in a pool, the values it sets must be one of the points", () => {
    const pooled = (training: Record<string, unknown>) => withDefault(training, { parameters: [batchSize, epochs], points: [[8, 1], [16, 2]] })
    assert.deepStrictEqual(issues(pooled({ batchSize: 8, epochs: 2 })), [
      "defaultStrategy: (training.batchSize 8, training.epochs 2) is not one of searchSpace.points, the configurations the search runs: " +
      "the baseline would run outside them. Set it to one of them, or add it to them"
    ])
    loads(pooled({ batchSize: 16, epochs: 2 }))
  })

  it("a parameter it leaves unset is not judged (the recipe's default runs), nor, in a pool, one whose condition does not hold", () => {
    const extra = { path: "training.extra.warmup", kind: "ordinal", values: [0, 100] }
    loads(withDefault({}, { parameters: [batchSize, extra] }))
    loads(withDefault({}, { parameters: [batchSize, extra], points: [[8, 0], [16, 100]] }))
    // the LoRA rank matters only under LoRA: the default's full fine-tune matches the point whatever its rank
    const method = { path: "training.method", kind: "categorical", values: ["full", "lora"] }
    const rank = { path: "training.lora.rank", kind: "ordinal", values: [4, 8], when: { path: "training.method", values: ["lora"] } }
    loads(withDefault({ method: "full", lora: { rank: 8 } }, { parameters: [method, rank], points: [["full", 4], ["lora", 8]] }))
    // but its value must still be one of the rank's: a switch to LoRA would keep it
    assert.deepStrictEqual(issues(withDefault({ method: "full", lora: { rank: 64 } }, { parameters: [method, rank] })), [
      `defaultStrategy.training.lora.rank: 64 is not one of searchSpace.parameters[1].values [4, 8]: ${why}. Set it to one of them, or add 64 to them`
    ])
  })
})

describe("TaskFile: recipe.secretEnv", () => {
  const recipe = (secretEnv: ReadonlyArray<unknown>, env: Record<string, string> = {}) => ({ ...minimalTask, recipe: { command: ["train"], env, secretEnv } })

  it("names a variable each; one also in env, named twice, or trex's own is refused, naming the entry and the fix", () => {
    assert.deepStrictEqual(loads(recipe(["HF_TOKEN", "WANDB_API_KEY"])).recipe?.secretEnv, ["HF_TOKEN", "WANDB_API_KEY"])
    assert.deepStrictEqual(issues(recipe(["HF_TOKEN", "HF_TOKEN", "WANDB_API_KEY", "TREX_JOB_DIR"], { WANDB_API_KEY: "abc" })), [
      "recipe.secretEnv[1]: HF_TOKEN is named twice: name it once",
      "recipe.secretEnv[2]: WANDB_API_KEY is in recipe.env too: a secret's value comes from trex's environment, not the task file; take it out of recipe.env",
      "recipe.secretEnv[3]: TREX_JOB_DIR: TREX_* variables are trex's own (TREX_JOB_DIR, ...): give the secret another name"
    ])
    const bad = issues(recipe(["HF TOKEN", "1PASS"]))
    assert.strictEqual(bad.length, 2, bad.join("\n"))
    assert.include(bad[0], `recipe.secretEnv[0]: expected an environment variable's name (letters, digits and _, not beginning with a digit, e.g. HF_TOKEN), got "HF TOKEN"`)
    assert.include(bad[1], `recipe.secretEnv[1]:`)
  })

  it("secretValues: each set name's value, Redacted; the names unset or empty", () => {
    const { missing, values } = Task.secretValues({ secretEnv: ["A_TOKEN", "B_TOKEN", "C_TOKEN"] }, { A_TOKEN: "s3cr3t-value", C_TOKEN: "" })
    assert.deepStrictEqual(missing, ["B_TOKEN", "C_TOKEN"])
    assert.deepStrictEqual(Object.keys(values), ["A_TOKEN"])
    assert.strictEqual(Redacted.value(values["A_TOKEN"]!), "s3cr3t-value")
    assert.notInclude(String(values["A_TOKEN"]), "s3cr3t")
    assert.deepStrictEqual(Task.secretValues(undefined, {}), { values: {}, missing: [] })
  })
})

describe("TaskFile: recipe placeholders", () => {
  const recipe = (command: ReadonlyArray<string>) => ({ ...minimalTask, recipe: { command } })

  it("a misspelt placeholder is refused, naming the argument and the one it most likely means", () => {
    assert.deepStrictEqual(issues(recipe(["{execPath}", "{taskdir}/train.ts", "--run={RUN}", "--at={Node}", "{taskDri}/x", "{exec_path}"])), [
      "recipe.command[1]: {taskdir} is not a placeholder; did you mean {taskDir}? (the placeholders: {taskDir}, {run}, {node} or {execPath})",
      "recipe.command[2]: {RUN} is not a placeholder; did you mean {run}? (the placeholders: {taskDir}, {run}, {node} or {execPath})",
      "recipe.command[3]: {Node} is not a placeholder; did you mean {node}? (the placeholders: {taskDir}, {run}, {node} or {execPath})",
      "recipe.command[4]: {taskDri} is not a placeholder; did you mean {taskDir}? (the placeholders: {taskDir}, {run}, {node} or {execPath})",
      "recipe.command[5]: {exec_path} is not a placeholder; did you mean {execPath}? (the placeholders: {taskDir}, {run}, {node} or {execPath})"
    ])
  })

  it("a placeholder's name in camelCase with Id, Dir or Directory added ({runId}, {taskDirectory}) is refused too", () => {
    const all = "(the placeholders: {taskDir}, {run}, {node} or {execPath})"
    assert.deepStrictEqual(issues(recipe(["train", "--run={runId}", "--node={nodeId}", "{taskDirectory}/x", "{runDir}"])), [
      `recipe.command[1]: {runId} is not a placeholder; did you mean {run}? ${all}`,
      `recipe.command[2]: {nodeId} is not a placeholder; did you mean {node}? ${all}`,
      `recipe.command[3]: {taskDirectory} is not a placeholder; did you mean {taskDir}? ${all}`,
      `recipe.command[4]: {runDir} is not a placeholder; did you mean {run}? ${all}`
    ])
  })

  it("substitution fills the four placeholders and leaves a shell's ${node} and other braces alone", () => {
    const values = { taskDir: "/t", run: "r1", node: "n3", execPath: "/bin/node" }
    assert.strictEqual(Task.substitute("{execPath} {taskDir}/x --at={run}/{node}", values), "/bin/node /t/x --at=r1/n3")
    assert.strictEqual(Task.substitute("node=5; echo ${node} ${run} {mode} {{run}}", values), "node=5; echo ${node} ${run} {mode} {{run}}")
    assert.deepStrictEqual(Task.substituteEnv({ OUT: "{taskDir}/out-{node}", SH: "${run}" }, values), { OUT: "/t/out-n3", SH: "${run}" })
  })

  it("words of Python f-strings pass: a letter from {run} or {node}, snake-case names, plurals, escaped braces", () => {
    const script = "print(f'{mode} {code} {note} {nodes} {runs} {fun} {run_name} {run_id} {node_id} {task_name} {runner} {{runId}} {{taskdir}}')"
    assert.deepStrictEqual(loads(recipe(["python", "-c", script])).recipe?.command, ["python", "-c", script])
    assert.deepStrictEqual(loads({ ...minimalTask, recipe: { command: ["train"], env: { TAG: "{mode}-{run}" } } }).recipe?.env, { TAG: "{mode}-{run}" })
  })

  it("a placeholder written with spaces inside its braces is refused, with the fix; other spaced braces pass", () => {
    const task = { ...minimalTask, recipe: { command: ["python", "{ taskDir }/train.py", "{node }"], env: { A: "{ run}", B: "{ x }" } } }
    assert.deepStrictEqual(issues(task), [
      "recipe.command[1]: { taskDir } is not substituted: write {taskDir}, without spaces",
      "recipe.command[2]: {node } is not substituted: write {node}, without spaces",
      "recipe.env.A: { run} is not substituted: write {run}, without spaces"
    ])
  })

  it("a misspelt placeholder in an env value is refused too, naming the variable", () => {
    const task = { ...minimalTask, recipe: { command: ["train"], env: { DATA: "{taskdir}/data", TAG: "{run}-{node}", FMT: "{x:.3f}" } } }
    assert.deepStrictEqual(issues(task), [
      "recipe.env.DATA: {taskdir} is not a placeholder; did you mean {taskDir}? (the placeholders: {taskDir}, {run}, {node} or {execPath})"
    ])
  })

  it("the four placeholders, shell variables and other braces (an f-string's {x}) are fine", () => {
    const command = ["{execPath}", "{taskDir}/train.ts", "--out={run}/{node}", "sh", "-c", "echo ${HOME} {a,b} { x } '{\"k\": 1}'", "python", "-c", "x = 1; print(f'{x} {value}')"]
    assert.deepStrictEqual(loads(recipe(command)).recipe?.command, command)
  })
})

describe("TaskFile: a strict budget", () => {
  it("needs a time limit, which bounds what each trial holds", () => {
    assert.deepStrictEqual(issues({ ...minimalTask, budget: { gpuHours: 2, strict: true }, recipe: { command: ["train"] } }), [
      "budget.strict: holds each trial at the most it can cost, which its time limit bounds: set recipe.resources.timeLimitSeconds, or leave strict out"
    ])
    const task = loads({ ...minimalTask, budget: { gpuHours: 2, strict: true }, recipe: { command: ["train"], resources: { timeLimitSeconds: 600 } } })
    assert.isTrue(task.budget.strict)
    assert.match(taskError({ ...minimalTask, budget: { strict: "yes" } }), /budget\.strict: Expected boolean/)
  })
})
