/**
 * Campaign 3, bad input: generated task files (through `TaskFile.parse`, and a sample through
 * the `trex` CLI), strategies (through `Strategy.decode`) and job outputs (result.json,
 * metric and progress lines, log lines, through the real local backend and template
 * executor in a search). Each bad input must give a typed error naming the field (exit 2 and
 * no stack trace from the CLI), or for job outputs an `InvalidOutput` failure on its node,
 * and nothing already recorded may be lost.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Strategy, TaskFile } from "@trex/core"
import type { Researcher } from "@trex/core"
import { Effect, Exit } from "effect"
import fc from "fast-check"
import { stringify as toYaml } from "yaml"
import { loadTask, runEmbedded } from "./embedded.ts"
import { campaign, type CampaignOptions, chaosTask, readJournal, tmpDir, trex } from "./lib.ts"

type Path = ReadonlyArray<string | number>
type Kind = "string" | "literal" | "int" | "positive" | "finite" | "array" | "object" | "json"
interface Field {
  readonly path: Path
  readonly kind: Kind
  readonly required: boolean
}
interface Mutation {
  readonly what: "missing" | "wrongType" | "nonFinite" | "negative" | "huge" | "unknownKey" | "none"
  readonly path: Path
  readonly value?: unknown
}

const dotted = (p: Path) => p.map((k) => (typeof k === "number" ? `[${k}]` : `.${k}`)).join("").replace(/^\./, "")

const TASK_FIELDS: ReadonlyArray<Field> = [
  { path: ["name"], kind: "string", required: true },
  { path: ["objective"], kind: "string", required: true },
  { path: ["metric"], kind: "object", required: true },
  { path: ["metric", "name"], kind: "string", required: true },
  { path: ["metric", "direction"], kind: "literal", required: true },
  { path: ["metric", "target"], kind: "finite", required: false },
  { path: ["budget", "maxTrials"], kind: "int", required: false },
  { path: ["budget", "gpuHours"], kind: "positive", required: false },
  { path: ["budget", "dollars"], kind: "positive", required: false },
  { path: ["recipe", "command"], kind: "array", required: true },
  { path: ["recipe", "resources", "cpus"], kind: "positive", required: false },
  { path: ["recipe", "resources", "timeLimitSeconds"], kind: "positive", required: false },
  { path: ["defaultStrategy", "training", "learningRate"], kind: "positive", required: true },
  { path: ["defaultStrategy", "training", "batchSize"], kind: "int", required: true },
  { path: ["searchSpace", "parameters"], kind: "array", required: true }
]

const STRATEGY_FIELDS: ReadonlyArray<Field> = [
  { path: ["data"], kind: "object", required: true },
  { path: ["data", "sources"], kind: "array", required: true },
  { path: ["data", "sources", 0, "name"], kind: "string", required: true },
  { path: ["data", "sources", 0, "weight"], kind: "finite", required: false },
  { path: ["training"], kind: "object", required: true },
  { path: ["training", "learningRate"], kind: "positive", required: true },
  { path: ["training", "epochs"], kind: "positive", required: true },
  { path: ["training", "batchSize"], kind: "int", required: true },
  { path: ["training", "method"], kind: "literal", required: false },
  { path: ["training", "schedule"], kind: "literal", required: false },
  { path: ["training", "warmupRatio"], kind: "finite", required: false },
  { path: ["training", "lora", "rank"], kind: "int", required: true },
  { path: ["training", "extra", "x"], kind: "json", required: false }
]

const numeric = (k: Kind) => k === "int" || k === "positive" || k === "finite"

/** A wrong-typed value for a field of kind `k`. */
const wrongType = (k: Kind): fc.Arbitrary<unknown> =>
  k === "string" || k === "literal"
    ? fc.oneof(fc.integer(), fc.boolean(), fc.constant([]), fc.constant({ a: 1 }), fc.constant(null))
    : numeric(k)
    ? fc.oneof(fc.string({ minLength: 1 }).map((s) => `n${s}`), fc.boolean(), fc.constant([1]), fc.constant({ v: 1 }), fc.constant(null))
    : k === "array"
    ? fc.oneof(fc.string(), fc.integer(), fc.constant({ a: 1 }), fc.constant(null))
    : fc.oneof(fc.string(), fc.integer(), fc.constant([1, 2]), fc.constant(null))

const mutation = (fields: ReadonlyArray<Field>, unknownKeys: boolean): fc.Arbitrary<Mutation> => {
  const field = fc.constantFrom(...fields)
  const nums = fields.filter((f) => numeric(f.kind))
  // an open JSON record takes any type, but not NaN or Infinity (JSON has none)
  const typed = fc.constantFrom(...fields.filter((f) => f.kind !== "json"))
  return fc.oneof(
    field.filter((f) => f.required).map((f): Mutation => ({ what: "missing", path: f.path })),
    typed.chain((f) => wrongType(f.kind).map((value): Mutation => ({ what: "wrongType", path: f.path, value }))),
    fc.constantFrom(...fields.filter((f) => numeric(f.kind) || f.kind === "json")).chain((f) =>
      fc.constantFrom(Number.NaN, Infinity, -Infinity).map((value): Mutation => ({ what: "nonFinite", path: f.path, value }))
    ),
    fc.constantFrom(...nums.filter((f) => f.kind !== "finite")).chain((f) =>
      fc.oneof(fc.constant(0), fc.double({ min: -1e12, max: -1e-9, noNaN: true })).map((value): Mutation => ({ what: "negative", path: f.path, value }))
    ),
    typed.chain((f) =>
      (numeric(f.kind) ? fc.constantFrom(1e300, Number.MAX_VALUE, 2 ** 60) : fc.integer({ min: 10_000, max: 200_000 }).map((n) => "x".repeat(n)))
        .map((value): Mutation => ({ what: "huge", path: f.path, value }))
    ),
    ...(unknownKeys
      ? [fc.tuple(fc.constantFrom<Path>([], ["budget"], ["metric"], ["recipe"]), fc.stringMatching(/^zz[a-zA-Z0-9_]{1,10}$/))
        .map(([p, key]): Mutation => ({ what: "unknownKey", path: [...p, key], value: 1 }))]
      : []),
    fc.constant<Mutation>({ what: "none", path: [] })
  )
}

const apply = (base: unknown, m: Mutation): unknown => {
  const copy = structuredClone(base) as Record<string | number, unknown>
  if (m.what === "none") return copy
  let cur = copy
  for (const k of m.path.slice(0, -1)) {
    cur[k] ??= {}
    cur = cur[k] as Record<string | number, unknown>
  }
  const last = m.path.at(-1)!
  if (m.what === "missing") delete cur[last]
  else cur[last] = m.value
  return copy
}

/** Whether a refusal's message names the mutated field. */
const names = (message: string, m: Mutation) => message.includes(dotted(m.path)) || (m.what === "unknownKey" && message.includes(String(m.path.at(-1))))

interface Tally {
  cases: number
  refusedNamingField: number
  acceptedBad: number
  refusedWithoutField: number
  untypedErrors: number
  validRefused: number
  hugeAccepted: number
}
const tally = (): Tally => ({ cases: 0, refusedNamingField: 0, acceptedBad: 0, refusedWithoutField: 0, untypedErrors: 0, validRefused: 0, hugeAccepted: 0 })

const judge = (t: Tally, m: Mutation, outcome: { ok: true } | { ok: false; typed: boolean; message: string }, findings: Array<string>, what: string) => {
  t.cases++
  if (m.what === "none") {
    if (!outcome.ok) {
      t.validRefused++
      findings.push(`${what}: a valid input was refused: ${outcome.message.slice(0, 200)}`)
    }
    return
  }
  if (outcome.ok) {
    if (m.what === "huge") return void t.hugeAccepted++
    t.acceptedBad++
    findings.push(`${what}: accepted ${m.what} at ${dotted(m.path)} (${String(m.value).slice(0, 40)})`)
    return
  }
  if (!outcome.typed) {
    t.untypedErrors++
    findings.push(`${what}: ${m.what} at ${dotted(m.path)} gave an untyped error: ${outcome.message.slice(0, 200)}`)
  } else if (names(outcome.message, m)) t.refusedNamingField++
  else {
    t.refusedWithoutField++
    findings.push(`${what}: ${m.what} at ${dotted(m.path)} refused without naming it: ${outcome.message.slice(0, 200)}`)
  }
}

const taskFiles = async (n: number, cliSample: number, seed: number, findings: Array<string>) => {
  const base = (await import("yaml")).parse(fs.readFileSync(chaosTask, "utf8")) as Record<string, unknown>
  const t = tally()
  const cli = { cases: 0, exit2NamingField: 0, bad: 0 }
  const dir = tmpDir("badinput-tasks")
  const samples = fc.sample(fc.tuple(mutation(TASK_FIELDS, true), fc.boolean()), { numRuns: n, seed })
  for (const [m, json] of samples) {
    const data = apply(base, m)
    // JSON has no NaN or Infinity: those go through YAML (.nan, .inf)
    const asJson = json && m.what !== "nonFinite"
    const file = asJson ? "task.json" : "task.yaml"
    const text = asJson ? JSON.stringify(data) : toYaml(data)
    const exit = await Effect.runPromiseExit(TaskFile.parse(text, file))
    const outcome = Exit.isSuccess(exit)
      ? { ok: true as const }
      : Exit.findErrorOption(exit)._tag === "Some"
      ? { ok: false as const, typed: (Exit.findErrorOption(exit) as any).value._tag === "InvalidInput", message: String((Exit.findErrorOption(exit) as any).value.message) }
      : { ok: false as const, typed: false, message: String(exit.cause) }
    judge(t, m, outcome, findings, "task file")
    if (cli.cases < cliSample && !outcome.ok && m.what !== "huge" && m.what !== "none") {
      cli.cases++
      const f = path.join(dir, `${cli.cases}-${file}`)
      fs.writeFileSync(f, text)
      const r = trex(["run", f, "--out", path.join(dir, "runs")])
      if (r.status === 2 && names(r.stderr, m) && !/\n\s+at /.test(r.stderr)) cli.exit2NamingField++
      else {
        cli.bad++
        findings.push(`trex run ${f}: exit ${r.status}, stderr ${r.stderr.slice(0, 300)}`)
      }
    }
  }
  return { t, cli }
}

const strategies = async (n: number, seed: number, findings: Array<string>) => {
  const base = {
    data: { sources: [{ name: "toy", weight: 1 }], format: "plain" },
    training: { learningRate: 0.001, epochs: 2, batchSize: 8, method: "lora", schedule: "cosine", warmupRatio: 0.1, lora: { rank: 8 }, extra: { x: 1 } }
  }
  const t = tally()
  for (const m of fc.sample(mutation(STRATEGY_FIELDS, false), { numRuns: n, seed })) {
    const exit = await Effect.runPromiseExit(Strategy.decode(apply(base, m), { errors: "all" }))
    const err = Exit.findErrorOption(exit)
    const outcome = Exit.isSuccess(exit)
      ? { ok: true as const }
      : err._tag === "Some"
      ? { ok: false as const, typed: (err.value as any)._tag === "SchemaError", message: TaskFile.formatIssues(err.value) }
      : { ok: false as const, typed: false, message: String(exit.cause) }
    judge(t, m, outcome, findings, "strategy")
  }
  return t
}

// ---- job outputs -------------------------------------------------------------------------

interface OutputCase {
  readonly valid: boolean
  readonly result: Uint8Array | undefined
  readonly stdout: Uint8Array
  readonly metrics: Uint8Array | undefined
}

const utf8 = (s: string) => new TextEncoder().encode(s)
const metricLine = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((v) => JSON.stringify({ step: 1, split: "train", name: "loss", value: v })),
  fc.constantFrom("1e999", "-1e999", "\"NaN\"", "null", "\"0.5\"").map((v) => `{"step":2,"split":"train","name":"loss","value":${v}}`),
  fc.constantFrom("{\"step\":\"x\",\"name\":\"loss\",\"value\":1}", "{\"value\":1}", "[1,2]", "{", "not json at all")
)
const stdoutLine = fc.oneof(
  metricLine.map((l) => `TREX_METRIC ${l}`),
  fc.constantFrom("1e999", "-3", "\"x\"", "0.5").map((f) => `TREX_PROGRESS {"fraction":${f}}`),
  fc.string({ maxLength: 200 }),
  fc.constant("TREX_METRIC"),
  fc.constant("TREX_PROGRESS {")
)
const outputCase = (enormous: number): fc.Arbitrary<OutputCase> =>
  fc.record({
    result: fc.oneof(
      fc.double({ min: -1e6, max: 1e6, noNaN: true }).map((v) => ({ valid: true, bytes: utf8(JSON.stringify({ metrics: { score: v }, primary: v })) })),
      fc.constantFrom(
        "{\"metrics\":{\"score\":1e999},\"primary\":1e999}",
        "{\"metrics\":{\"score\":-1e999}}",
        "{\"metrics\":{\"score\":\"high\"},\"primary\":\"high\"}",
        "{\"metrics\":[1,2,3]}",
        "{}",
        "[]",
        "null",
        "{\"metrics\":{\"score\":0.5},\"primary\":0.5,\"artifacts\":\"everything\"}",
        "{\"metrics\":{\"score\":0.5}",
        ""
      ).map((s) => ({ valid: false, bytes: utf8(s) })),
      fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => ({ valid: false, bytes: Uint8Array.from([0xff, 0xfe, ...b]) })),
      fc.constant({ valid: false, bytes: undefined })
    ),
    lines: fc.array(stdoutLine, { maxLength: 12 }),
    nonUtf8: fc.boolean(),
    huge: fc.integer({ min: 0, max: 9 }),
    metrics: fc.option(fc.array(metricLine, { maxLength: 8 }), { nil: undefined })
  }).map((r) => {
    const parts: Array<Uint8Array> = r.lines.map((l) => utf8(`${l}\n`))
    if (r.nonUtf8) parts.push(Uint8Array.from([0xc3, 0x28, 0xa0, 0xa1, 0xff, 0x0a]))
    if (r.huge === 0) parts.push(utf8(`${"y".repeat(enormous)}\n`))
    return {
      valid: r.result.valid,
      result: r.result.bytes,
      stdout: Buffer.concat(parts),
      metrics: r.metrics === undefined ? undefined : utf8(r.metrics.map((l) => `${l}\n`).join(""))
    }
  })

const jobOutputs = async (n: number, seed: number, quick: boolean, findings: Array<string>) => {
  const cases = fc.sample(outputCase(quick ? 200_000 : 2_000_000), { numRuns: n, seed })
  const outputs = tmpDir("badinput-outputs")
  cases.forEach((c, i) => {
    fs.writeFileSync(path.join(outputs, `${i}.stdout`), c.stdout)
    if (c.result !== undefined) fs.writeFileSync(path.join(outputs, `${i}.result`), c.result)
    if (c.metrics !== undefined) fs.writeFileSync(path.join(outputs, `${i}.metrics`), c.metrics)
  })
  // a researcher that proposes case k as the k-th node
  let next = 0
  const researcher: Researcher.ResearcherShape = {
    name: "chaos-cases",
    analyze: () => Effect.succeed({ summary: "bad outputs", metricNotes: "", dataNotes: "", risks: [], notes: {} }),
    propose: () =>
      Effect.sync(() => {
        const k = next++
        return k >= n ? [] : [{
          strategy: Strategy.decodeSync({
            data: { sources: [{ name: "toy" }] },
            training: { learningRate: 0.001, epochs: 1, batchSize: 8, extra: { case: k } },
            rationale: `case ${k}`
          })
        }]
      }),
    distill: () => Effect.succeed([])
  }
  const base = await loadTask("chaos.task.yaml")
  const runDir = path.join(tmpDir("badinput-run"), "run")
  let runError: string | undefined
  try {
    const task = { ...base, budget: { maxTrials: n } }
    await runEmbedded({ task, runDir, researcher, concurrency: 2, distillEvery: 0, env: { TREX_CHAOS_OUTPUTS: outputs } })
  } catch (e) {
    runError = String(e).slice(0, 500)
    findings.push(`job outputs: the run failed: ${runError}`)
  }
  const figures = { cases: n, finished: 0, wrongOutcome: 0, nonFiniteRecorded: 0, journalUnreadable: 0 }
  let entries: Awaited<ReturnType<typeof readJournal>> = []
  try {
    entries = await readJournal(runDir)
  } catch (e) {
    figures.journalUnreadable = 1
    findings.push(`job outputs: the journal does not read: ${String(e).slice(0, 300)}`)
  }
  const caseOf = new Map<string, number>()
  for (const { event } of entries) {
    if (event._tag === "NodeProposed") caseOf.set(event.node.id, Number(event.node.strategy.training.extra["case"]))
    if (event._tag === "JobProgress") {
      if (event.metrics.some((p) => !Number.isFinite(p.value)) || (event.fraction !== undefined && !Number.isFinite(event.fraction))) {
        figures.nonFiniteRecorded++
      }
    }
    if (event._tag === "NodeFinished") {
      figures.finished++
      const c = cases[caseOf.get(event.nodeId)!]!
      const kind = event.result?.failure?.kind
      const right = c.valid ? event.outcome === "Succeeded" && Number.isFinite(event.result?.score) : event.outcome === "Failed" && kind === "InvalidOutput"
      if (!right) {
        figures.wrongOutcome++
        findings.push(`job outputs: case ${caseOf.get(event.nodeId)} (${event.nodeId}, valid=${c.valid}) recorded ${event.outcome} ${kind ?? ""}: ${event.result?.failure?.message?.slice(0, 120) ?? ""}`)
      }
    }
  }
  return { ...figures, lost: n - figures.finished, runError }
}

/** Run the campaign. */
export const run = (options: CampaignOptions) =>
  campaign("badinput", options, async (findings) => {
    const seed = options.seed ?? 1
    const n = options.quick ? 150 : 1200
    const tasks = await taskFiles(n, options.quick ? 3 : 25, seed, findings)
    const strats = await strategies(n, seed, findings)
    const outputs = await jobOutputs(options.quick ? 24 : 1000, seed, options.quick, findings)
    return {
      figures: {
        "task files generated": tasks.t.cases,
        "task files refused naming the field": tasks.t.refusedNamingField,
        "task files: huge values accepted": tasks.t.hugeAccepted,
        "task files: bad input accepted": tasks.t.acceptedBad,
        "task files: refused without naming the field": tasks.t.refusedWithoutField,
        "task files: untyped errors": tasks.t.untypedErrors,
        "task files: valid ones refused": tasks.t.validRefused,
        "task files through the CLI": tasks.cli.cases,
        "CLI: not exit 2 naming the field without a stack trace": tasks.cli.bad,
        "strategies generated": strats.cases,
        "strategies refused naming the field": strats.refusedNamingField,
        "strategies: bad input accepted": strats.acceptedBad,
        "strategies: refused without naming the field": strats.refusedWithoutField,
        "strategies: untyped errors": strats.untypedErrors,
        "strategies: valid ones refused": strats.validRefused,
        "job outputs generated (one job each)": outputs.cases,
        "job outputs: trials lost": outputs.lost,
        "job outputs: wrong outcome recorded": outputs.wrongOutcome,
        "job outputs: non-finite values recorded": outputs.nonFiniteRecorded,
        "job outputs: journal unreadable": outputs.journalUnreadable
      },
      mustBeZero: [
        "task files: bad input accepted",
        "task files: refused without naming the field",
        "task files: untyped errors",
        "task files: valid ones refused",
        "CLI: not exit 2 naming the field without a stack trace",
        "strategies: bad input accepted",
        "strategies: refused without naming the field",
        "strategies: untyped errors",
        "strategies: valid ones refused",
        "job outputs: trials lost",
        "job outputs: wrong outcome recorded",
        "job outputs: non-finite values recorded",
        "job outputs: journal unreadable"
      ],
      mustBePositive: ["task files refused naming the field", "strategies refused naming the field", "job outputs generated (one job each)"]
    }
  })
