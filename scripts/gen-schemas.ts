// Generates the published JSON Schemas (`docs/schemas/<Name>.schema.json`, draft 2020-12) and the task-file
// reference (`docs/task-file.md`) from the schemas of @trex/core. Run from the repo root:
//
//   node --conditions=@trex/source scripts/gen-schemas.ts           write the files
//   node --conditions=@trex/source scripts/gen-schemas.ts --check   exit 1 if a committed file is stale
//
// `packages/core/test/Docs.test.ts` runs `generate()` and fails when the committed files differ.
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Budget, Cost, ExperimentNode, Insight, JournalEvent, Result, Strategy, Task, TaskFile } from "@trex/core"
import { Cause, Effect, Exit, JsonSchema, Schema } from "effect"

const root = path.resolve(import.meta.dirname, "..")
const EXAMPLE = "examples/quickstart/task.yaml"

type Node = JsonSchema.JsonSchema

/** The published schemas: name, schema, description, and whether unknown keys are refused. */
const schemas: ReadonlyArray<{ name: string; schema: Schema.Top; description: string; strict: boolean }> = [
  { name: "Task", schema: Task.Task, strict: true, description: "A TREX task file (YAML or JSON). Unknown keys are refused. See docs/task-file.md." },
  { name: "Strategy", schema: Strategy.Strategy, strict: false, description: "A training strategy: data recipe, training configuration, evaluation plan and rationale." },
  { name: "Result", schema: Result.Result, strict: false, description: "The result of one experiment: metrics, primary score, curves, artifacts, cost, failure." },
  { name: "Cost", schema: Cost.Cost, strict: false, description: "What an experiment or a model call cost: GPU seconds, wall seconds, dollars, tokens." },
  { name: "Budget", schema: Budget.Budget, strict: false, description: "Limits for one search; an absent limit is no limit." },
  { name: "Insight", schema: Insight.Insight, strict: false, description: "An insight distilled from finished experiments, with the node ids that support it." },
  { name: "NodeSpec", schema: ExperimentNode.NodeSpec, strict: false, description: "What a proposal fixes about an experiment node: id, parent, strategy, fingerprint." },
  { name: "JournalEvent", schema: JournalEvent.JournalEvent, strict: false, description: `An event of a run's journal (format ${JournalEvent.FORMAT_VERSION}).` }
]

const schemaFile = (name: string): Node => {
  const entry = schemas.find((s) => s.name === name)!
  const doc = Schema.toJsonSchemaDocument(entry.schema, entry.strict ? { onExcessProperty: "error" } : {})
  return {
    $schema: JsonSchema.META_SCHEMA_URI_DRAFT_2020_12,
    title: name,
    description: entry.description,
    ...doc.schema,
    ...(Object.keys(doc.definitions).length > 0 ? { $defs: doc.definitions } : {})
  }
}

/** What each task-file field means, by path (`[]` stands for any element of a list). */
const descriptions: Record<string, string> = {
  "name": "Short name of the task; used in run ids and reports.",
  "objective": "What the fine-tune should achieve, in plain words. Researchers read it.",
  "metric": "The metric to optimise.",
  "metric.name": "Name of the metric: the key of `result.json` `metrics` the score is read from when the job writes no `primary`.",
  "metric.direction": "Whether a larger or a smaller value is better.",
  "metric.target": "Stop the search once a trial reaches this value.",
  "baseModel": "The base model to fine-tune.",
  "baseModel.name": "Model name (a Hugging Face id, a local name...).",
  "baseModel.uri": "Where to load it from, when the name is not enough.",
  "baseModel.parameters": "Its size, for the researcher (`7B`, `50k`).",
  "datasets": "The datasets the task may use.",
  "datasets[].name": "Dataset name, as strategies refer to it in `data.sources[].name`.",
  "datasets[].uri": "Where it lives (a Hugging Face id, a path, a URL).",
  "datasets[].description": "What it contains, for the researcher.",
  "datasets[].splits": "Its splits.",
  "datasets[].license": "Its license.",
  "evaluation": "How a trained model is evaluated.",
  "evaluation.splits": "Evaluation splits.",
  "evaluation.metric": "Metric to compute, when it differs from `metric.name`.",
  "evaluation.maxExamples": "Cap on the number of evaluation examples.",
  "evaluation.description": "The evaluation protocol, in words.",
  "evaluation.extra": "Further evaluation settings for the recipe, as free JSON.",
  "constraints": "Constraints researchers must respect (free JSON, e.g. `{ maxSeqLength: 2048 }`).",
  "budget": "Limits of the search; an absent limit is no limit. The search stops at the first one reached.",
  "budget.maxTrials": "Maximum number of trials started (results reused from earlier runs are not trials).",
  "budget.gpuHours": "Maximum GPU-hours, counting each running trial as its estimate (`recipe.estimate`, or the mean of the trials so far if larger) until it ends. Trials that ask for no GPU cost none. The first `--concurrency` trials start before any cost is known: each holds `recipe.estimate.gpuSeconds`, or else its time limit's worth (`recipe.resources.timeLimitSeconds` × its GPUs); with neither, they may together pass it.",
  "budget.wallClockHours": "Maximum wall-clock hours of the run (resumes add up): a trial starts only if it is expected (`recipe.estimate.wallSeconds`, or the mean time trials took if larger) to end within it; trials that take longer run to their end. It is real time, on the simulator too (whose trials take simulated time, so a simulated run's wall clock barely moves: compare budgets there with `trex bench --gpu-hours`).",
  "budget.dollars": "Maximum spend in dollars: model calls, and trials priced by `backend.pricing` (or whose executor or backend reports dollars). The first `--concurrency` trials hold `recipe.estimate.dollars`, or else their time limit's worth at those prices.",
  "budget.tokens": "Maximum LLM tokens (input + output) of the agents' model calls.",
  "budget.strict": "Hold every trial, the whole run long, at the most one job of it can cost — `recipe.resources.timeLimitSeconds` of its GPUs, of `backend.pricing` and of wall clock — instead of its expected cost (`--strict-budget`): trials then never together pass `gpuHours`, `dollars` or `wallClockHours`, but fewer run at once near a limit. Needs a time limit; refused on the simulator, which stops no trial at one. Not bounded by it: a kill's grace period, a retry after an infrastructure failure, a code agent's further attempts, model calls.",
  "searchSpace": "The strategy fields an offline researcher may vary, and their values.",
  "searchSpace.parameters": "The parameters of the space: at least one, each path once.",
  "searchSpace.parameters[].path": "Dotted path into the strategy (`training.learningRate`), or `data.mixture.<source>` for a source's weight (its values from 0 to 1).",
  "searchSpace.parameters[].kind": "`log`: numbers stepped on a log scale; `ordinal`: ordered values, moved to a neighbour; `categorical`: unordered, swapped.",
  "searchSpace.parameters[].values": "The values it may take, each listed once.",
  "searchSpace.parameters[].when": "Only when the parameter matters: while another parameter, declared before it, has one of some values (and matters itself). Otherwise it is held at the default strategy's value, so a change in it alone is never run.",
  "searchSpace.parameters[].when.path": "The path of that other parameter (`training.method`).",
  "searchSpace.parameters[].when.values": "The values of that parameter under which this one matters (`[lora]`).",
  "searchSpace.points": "A finite pool of valid configurations, each a value per parameter in order, from that parameter's values, each listed once (a recorded table's rows), when not every combination exists.",
  "defaultStrategy": "A first strategy to try: the baseline the search must beat. With a `searchSpace`, each value it sets for a parameter of the space must be one of that parameter's values (a mixture weight as the source's share of the sum of the weights), and with `points` the values it sets must be a point's; a parameter it leaves unset is left to the recipe. Otherwise the task is refused, naming the field, its value and the values allowed. On the simulator without it, the row a trial of each parameter's median value replays: the table's median configuration; with a `searchSpace`, of the median of the values it gives, and a trial replays the configuration the table recorded inside the space (with `points`, one of them) nearest it (see `bench/data/README.md`).",
  "defaultStrategy.data": "The data recipe.",
  "defaultStrategy.data.sources": "Data sources and their mixture weights.",
  "defaultStrategy.data.sources[].name": "Dataset name or URI.",
  "defaultStrategy.data.sources[].weight": "Sampling weight in the mixture: only its share of the sum of the weights counts, and the order of the sources means nothing (a strategy's fingerprint reads the mixture as those shares, to 9 decimals, sources at 0 left out, in any order). A trainer must read it so: absolute counts are `numExamples` and a source's `maxExamples`, and an order a trainer needs (a curriculum) goes in a field of its own that names the sources (in `data.extra`, say `order: [web, code]`), all kept as written.",
  "defaultStrategy.data.sources[].split": "Split to draw from.",
  "defaultStrategy.data.sources[].config": "Dataset configuration (Hugging Face `name`).",
  "defaultStrategy.data.sources[].maxExamples": "Cap on examples drawn from this source.",
  "defaultStrategy.data.format": "Prompt format, interpreted by the recipe.",
  "defaultStrategy.data.numExamples": "Total number of training examples.",
  "defaultStrategy.data.filters": "Filter steps, applied in order.",
  "defaultStrategy.data.filters[].kind": "Kind of filter, interpreted by the recipe.",
  "defaultStrategy.data.filters[].params": "Its parameters (free JSON).",
  "defaultStrategy.data.transforms": "Transform steps, applied in order.",
  "defaultStrategy.data.transforms[].kind": "Kind of transform, interpreted by the recipe.",
  "defaultStrategy.data.transforms[].params": "Its parameters (free JSON).",
  "defaultStrategy.data.synthesis": "Synthetic data generation.",
  "defaultStrategy.data.synthesis.method": "Generation method.",
  "defaultStrategy.data.synthesis.count": "How many examples to generate.",
  "defaultStrategy.data.synthesis.params": "Its parameters (free JSON).",
  "defaultStrategy.data.extra": "Further data settings for the recipe (free JSON).",
  "defaultStrategy.training": "The training configuration.",
  "defaultStrategy.training.method": "Fine-tuning method.",
  "defaultStrategy.training.learningRate": "Peak learning rate.",
  "defaultStrategy.training.schedule": "Learning-rate schedule.",
  "defaultStrategy.training.warmupRatio": "Fraction of steps spent warming up.",
  "defaultStrategy.training.epochs": "Number of epochs (may be fractional).",
  "defaultStrategy.training.batchSize": "Batch size.",
  "defaultStrategy.training.seed": "Random seed of the trial.",
  "defaultStrategy.training.lora": "LoRA adapter parameters (for `lora` and `qlora`).",
  "defaultStrategy.training.lora.rank": "Adapter rank.",
  "defaultStrategy.training.lora.alpha": "Scaling alpha.",
  "defaultStrategy.training.lora.dropout": "Adapter dropout.",
  "defaultStrategy.training.lora.targetModules": "Modules to adapt (the recipe's default when absent).",
  "defaultStrategy.training.maxSeqLength": "Maximum sequence length.",
  "defaultStrategy.training.extra": "Further training settings for the recipe (free JSON).",
  "defaultStrategy.evaluation": "How to evaluate this strategy (same fields as `evaluation`).",
  "defaultStrategy.rationale": "Why this strategy; commentary only, it never changes the fingerprint.",
  "recipe": "How the template executor runs a strategy.",
  "recipe.command": "Command as argv, with placeholders `{taskDir}`, `{run}`, `{node}` and `{execPath}` (the Node.js running trex) only (a misspelt one, such as `{taskdir}`, `{taskDri}` or `{runId}`, is refused; any other `{word}`, `{{word}}` and a shell's `${word}` are passed as they are); the job reads the strategy from `$TREX_JOB_DIR/strategy.json`.",
  "recipe.image": "Container image, for container backends.",
  "recipe.env": "Environment variables for the job; values may use the command's placeholders (`{taskDir}/data`, say), substituted per job.",
  "recipe.secretEnv": "Names of variables of trex's own environment that every job gets as secrets (`[HF_TOKEN, WANDB_API_KEY]`): their values are read when a run starts or resumes (a run refuses to start while one is not set), reach jobs as the backend passes secrets (a `0600` file, a Kubernetes Secret), and are never written to the task, the journal or a report; what a job prints of them is shown as `<secret NAME>`. A name may not also be in `env`.",
  "recipe.resources": "Resources one trial needs.",
  "recipe.resources.gpus": "GPUs per trial.",
  "recipe.resources.cpus": "CPUs per trial.",
  "recipe.resources.memoryMb": "Memory per trial, in MB.",
  "recipe.resources.timeLimitSeconds": "A trial running longer is stopped and fails with `Timeout`. Until a trial has reported its cost, a trial holds this long of its GPUs (and of `backend.pricing`) against the budget, where `recipe.estimate` declares none.",
  "recipe.estimate": "Expected cost of one trial, reserved against the budget while it runs (the mean of the trials so far replaces a part of it that is smaller).",
  "recipe.estimate.gpuSeconds": "Expected GPU-seconds: bounds what the first trials, started before any reported its cost, may spend of `budget.gpuHours` (without it, their time limit's worth, if they have a time limit).",
  "recipe.estimate.wallSeconds": "Expected wall-clock seconds, from start to end: under `budget.wallClockHours`, a trial starts only if this much time is left.",
  "recipe.estimate.dollars": "Expected dollars: bounds what the first trials, started before any reported its cost, may spend of `budget.dollars` (without it, their time limit's worth at `backend.pricing`, if they have a time limit).",
  "backend": "Backend settings (free JSON, read by the chosen backend). Its `kind` (`local`, `simulator`, `docker`, `slurm`, `gridengine`, `ssh` or `k8s`) is the backend a run of the task uses when `--backend` (or `backend` in `Trex.start`'s options) names none; without it, `local`. `backend.pricing` (`dollarsPerGpuHour`, `dollarsPerHour`, at least one) prices every trial's compute, whatever the backend, so that `budget.dollars` counts it."
}

const describe = (p: string, node: Node): string => {
  const fromSchema = node["description"]
  if (typeof fromSchema === "string") return fromSchema
  const text = descriptions[p] ?? descriptions[p.replace(/^defaultStrategy\.evaluation/, "evaluation")]
  if (text === undefined) throw new Error(`task-file field ${p} has no description: add one to scripts/gen-schemas.ts`)
  return text
}

const SAFE_MAX = Number.MAX_SAFE_INTEGER

const typeOf = (n: Node): string => {
  if (Array.isArray(n["enum"])) return (n["enum"] as Array<unknown>).map((v) => `\`${JSON.stringify(v)}\``).join(" \\| ")
  if (Array.isArray(n["anyOf"])) return (n["anyOf"] as Array<Node>).map(typeOf).join(" \\| ")
  const bounds: Array<string> = []
  if (n["exclusiveMinimum"] !== undefined) bounds.push(`> ${n["exclusiveMinimum"]}`)
  if (n["minimum"] !== undefined && n["minimum"] !== -SAFE_MAX) bounds.push(`≥ ${n["minimum"]}`)
  if (n["maximum"] !== undefined && n["maximum"] !== SAFE_MAX) bounds.push(`≤ ${n["maximum"]}`)
  const bounded = (t: string) => (bounds.length > 0 ? `${t} ${bounds.join(", ")}` : t)
  switch (n["type"]) {
    case "string":
      return n["minLength"] === 1 ? "non-empty string" : "string"
    case "number":
      return bounded("number")
    case "integer":
      return bounded("integer")
    case "boolean":
      return "boolean"
    case "array": {
      const min = n["minItems"] as number | undefined
      return `list of ${typeOf(n["items"] as Node)}${min !== undefined ? ` (at least ${min})` : ""}`
    }
    case "object": {
      if (n["properties"] !== undefined) return "object"
      const ap = n["additionalProperties"]
      return typeof ap === "object" ? `map of string to ${typeOf(ap as Node)}` : "object (any JSON)"
    }
    default:
      return "any JSON"
  }
}

const hasProperties = (n: Node): boolean => n["type"] === "object" && n["properties"] !== undefined

interface Row {
  readonly path: string
  /** Path through the probe value: keys, and 0 for a list element. */
  readonly at: ReadonlyArray<string | 0>
  readonly node: Node
  readonly required: boolean
}

const rows = (n: Node, prefix: string, at: ReadonlyArray<string | 0>): Array<Row> => {
  const required = new Set((n["required"] as Array<string> | undefined) ?? [])
  return Object.entries((n["properties"] as Record<string, Node> | undefined) ?? {}).flatMap(([key, child]) => {
    const p = prefix === "" ? key : `${prefix}.${key}`
    const row: Row = { path: p, at: [...at, key], node: child, required: required.has(key) }
    if (hasProperties(child)) return [row, ...rows(child, p, [...at, key])]
    const items = child["items"] as Node | undefined
    if (child["type"] === "array" && items !== undefined && hasProperties(items)) return [row, ...rows(items, `${p}[]`, [...at, key, 0])]
    return [row]
  })
}

/** The smallest valid value of a schema that still contains every nested object, so decoding shows every default. */
const probe = (n: Node): unknown => {
  if (Array.isArray(n["enum"])) return (n["enum"] as Array<unknown>)[0]
  if (Array.isArray(n["anyOf"])) return probe((n["anyOf"] as Array<Node>)[0]!)
  switch (n["type"]) {
    case "string":
      return "x"
    case "number":
    case "integer":
      return 1
    case "boolean":
      return false
    case "array": {
      const items = n["items"] as Node
      return n["minItems"] !== undefined || hasProperties(items) ? [probe(items)] : []
    }
    case "object": {
      const required = new Set((n["required"] as Array<string> | undefined) ?? [])
      const out: Record<string, unknown> = {}
      for (const [key, child] of Object.entries((n["properties"] as Record<string, Node> | undefined) ?? {})) {
        const nested = hasProperties(child) || (child["type"] === "array" && hasProperties(child["items"] as Node))
        if (required.has(key) || nested) out[key] = probe(child)
      }
      return out
    }
    default:
      return null
  }
}

const lookup = (value: unknown, at: ReadonlyArray<string | 0>): { readonly found: boolean; readonly value?: unknown } => {
  let cur = value
  for (const k of at) {
    if (cur === null || typeof cur !== "object" || !(k in cur)) return { found: false }
    cur = (cur as Record<string | number, unknown>)[k]
  }
  return { found: true, value: cur }
}

const without = (value: unknown, at: ReadonlyArray<string | 0>): unknown => {
  const copy = structuredClone(value)
  const parent = lookup(copy, at.slice(0, -1)).value as Record<string | number, unknown>
  delete parent[at.at(-1)!]
  return copy
}

/** `searchSpace.parameters[0].when.path` as a path through the probe value. */
const parsePath = (text: string): Array<string | 0> =>
  text.split(".").flatMap((part) => {
    const m = /^([^[]+)((?:\[\d+\])*)$/.exec(part)
    return m === null ? [part] : [m[1]!, ...(m[2]!.match(/\[\d+\]/g) ?? []).map(() => 0 as const)]
  })

/**
 * The probe, less any optional field whose generated value is invalid where it stands (a
 * search-space condition must name another parameter, which a generated value cannot): decoding
 * names the bad path, and the nearest optional field on it is left out, until the task decodes.
 */
const validProbe = (taskSchema: Node): unknown => {
  const optional = new Set(rows(taskSchema, "", []).filter((r) => !r.required).map((r) => JSON.stringify(r.at)))
  let value = probe(taskSchema)
  for (;;) {
    const exit = Effect.runSyncExit(TaskFile.decode(value))
    if (Exit.isSuccess(exit)) return value
    const message = String(Cause.squash(exit.cause))
    let removed = false
    for (const line of message.split("\n")) {
      const m = /^\s+(\S+): /.exec(line)
      if (m === null) continue
      const at = parsePath(m[1]!)
      for (let k = at.length; k > 0 && !removed; k--) {
        const prefix = at.slice(0, k)
        if (optional.has(JSON.stringify(prefix)) && lookup(value, prefix).found) {
          value = without(value, prefix)
          removed = true
        }
      }
    }
    if (!removed) throw new Error(`the probe task does not decode, and no optional field is to blame: ${message}`)
  }
}

/** The default decoding fills in for an absent optional field, if any. */
const defaultOf = (taskSchema: Node, row: Row): { readonly found: boolean; readonly value?: unknown } => {
  const input = validProbe(taskSchema)
  const absent = lookup(input, row.at).found ? without(input, row.at) : input
  const decoded = Schema.encodeSync(Task.Task)(Effect.runSync(TaskFile.decode(absent)))
  return lookup(decoded, row.at)
}

const cell = (text: string) => text.replace(/\|/g, "\\|").replace(/\n/g, " ")

const taskFileDoc = (): string => {
  const taskSchema = schemaFile("Task")
  const example = fs.readFileSync(path.join(root, EXAMPLE), "utf8")
  // the example must be a valid task: a broken example fails generation (and the docs test)
  Effect.runSync(TaskFile.parse(example, EXAMPLE))
  const table = rows(taskSchema, "", []).map((row) => {
    let presence = "**required**"
    if (!row.required) {
      const d = defaultOf(taskSchema, row)
      const shown = !d.found ? undefined
        : d.value !== null && typeof d.value === "object" && !Array.isArray(d.value) ? "{}"
        : JSON.stringify(d.value)
      presence = shown === undefined ? "optional" : `default \`${shown}\``
    }
    return `| \`${row.path}\` | ${typeOf(row.node)} | ${presence} | ${cell(describe(row.path, row.node))} |`
  })
  return [
    "# Task file reference",
    "",
    "<!-- Generated by scripts/gen-schemas.ts from the Task schema of @trex/core: do not edit by hand.",
    "     Regenerate with `node --conditions=@trex/source scripts/gen-schemas.ts`. -->",
    "",
    "A task file tells TREX what to fine-tune, how to judge it and how much it may spend. It is YAML (`.yaml`,",
    "`.yml`) or JSON. Only `name`, `objective` and `metric` are required; every other field is optional, and",
    "absent fields take the defaults below. Unknown keys are refused, at any depth, so a typo is an error rather",
    "than a silently ignored setting — also in a search-space parameter's `path`: each of its values, set on the",
    "default strategy, must make a valid strategy (free-form settings go under `data.extra` or `training.extra`);",
    "every error names the path of the bad field",
    "(`budget.maxTrials: Expected a value greater than 0`).",
    "",
    "All numbers must be finite. Paths use `[]` for any element of a list; \"required\" means required in its",
    "parent object (a `baseModel` may be absent, but when present it needs a `name`).",
    "",
    "The same rules as a JSON Schema (draft 2020-12): [`schemas/Task.schema.json`](schemas/Task.schema.json). Editors",
    "with the YAML language server validate and complete task files with a first line",
    "`# yaml-language-server: $schema=<path to docs/schemas/Task.schema.json>`.",
    "",
    "## Fields",
    "",
    "| Path | Type | Required / default | Description |",
    "| --- | --- | --- | --- |",
    ...table,
    "",
    "## A complete example",
    "",
    `The quickstart task (\`${EXAMPLE}\`), which \`npm run quickstart\` runs on CPU:`,
    "",
    "```yaml",
    example.trimEnd(),
    "```",
    "",
    "## Other schemas",
    "",
    "JSON Schemas of the other documents TREX reads and writes, generated from the same source:",
    "",
    ...schemas.map((s) => `- [\`${s.name}\`](schemas/${s.name}.schema.json): ${s.description}`),
    ""
  ].join("\n")
}

/** Every generated file, by path relative to the repository root. */
export const generate = (): Record<string, string> => {
  const files: Record<string, string> = {}
  for (const s of schemas) files[`docs/schemas/${s.name}.schema.json`] = `${JSON.stringify(schemaFile(s.name), null, 2)}\n`
  files["docs/task-file.md"] = taskFileDoc()
  return files
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes("--check")
  const stale: Array<string> = []
  for (const [file, contents] of Object.entries(generate())) {
    const abs = path.join(root, file)
    const current = fs.existsSync(abs) ? fs.readFileSync(abs, "utf8") : undefined
    if (current === contents) continue
    if (check) {
      stale.push(file)
    } else {
      fs.mkdirSync(path.dirname(abs), { recursive: true })
      fs.writeFileSync(abs, contents)
      console.log(`wrote ${file}`)
    }
  }
  if (stale.length > 0) {
    console.error(`stale: ${stale.join(", ")}; run node --conditions=@trex/source scripts/gen-schemas.ts`)
    process.exit(1)
  }
}
