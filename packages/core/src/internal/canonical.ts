/**
 * Fast paths for the schemas the journal and the job protocol read and write on every trial.
 *
 * A value is *canonical* for a schema when it is exactly what decoding would return for it:
 * a plain object with every required and defaulted key present, no other keys, and every
 * check passing. For a canonical value, decoding and encoding are the identity (the schemas
 * here only fill defaults and check), so a hand-written test of canonical form, about 20 times
 * cheaper than the schema's parser, may stand in for either. Anything else, including every
 * invalid value, goes through the schema, which fills defaults or reports the issue as before.
 *
 * The validators are checked against the schemas' fields when this module loads: a schema
 * that gained, lost or changed the optionality of a field turns its fast path off (every value
 * then takes the schema's path), and a test asserts that none is off.
 */
import { Schema, SchemaAST } from "effect"
import * as Cost from "../Cost.ts"
import * as ExperimentNode from "../ExperimentNode.ts"
import * as Insight from "../Insight.ts"
import * as Researcher from "../Researcher.ts"
import * as Result from "../Result.ts"
import * as Strategy from "../Strategy.ts"

/** Whether a value is canonical for a schema. Never throws; rejects `undefined`. */
export type Check = (u: unknown) => boolean

const proto = Object.prototype

/** A plain object (what JSON.parse and object literals make). */
export const isPlain = (u: unknown): u is Record<string, unknown> => {
  if (typeof u !== "object" || u === null || Array.isArray(u)) return false
  const p = Object.getPrototypeOf(u)
  return p === proto || p === null
}

export const isString: Check = (u) => typeof u === "string"
export const isNonEmptyString: Check = (u) => typeof u === "string" && u.length > 0
export const isBoolean: Check = (u) => typeof u === "boolean"
export const isFinite: Check = (u) => typeof u === "number" && Number.isFinite(u)
export const isNonNegative: Check = (u) => typeof u === "number" && Number.isFinite(u) && u >= 0
export const isPositive: Check = (u) => typeof u === "number" && Number.isFinite(u) && u > 0
export const isInt: Check = (u) => Number.isSafeInteger(u)
export const isPositiveInt: Check = (u) => Number.isSafeInteger(u) && (u as number) > 0
export const isNonNegativeInt: Check = (u) => Number.isSafeInteger(u) && (u as number) >= 0
export const oneOf = (values: ReadonlyArray<string>): Check => (u) => typeof u === "string" && values.includes(u)

/** A JSON value, as `Schema.Json` accepts it (finite numbers, plain objects, dense arrays). */
export const isJson = (u: unknown, depth = 0): boolean => {
  if (u === null || typeof u === "string" || typeof u === "boolean") return true
  if (typeof u === "number") return Number.isFinite(u)
  if (depth > 64) return false
  if (Array.isArray(u)) {
    for (let i = 0; i < u.length; i++) if (!isJson(u[i], depth + 1)) return false
    return true
  }
  if (!isPlain(u)) return false
  for (const k in u) if (!isJson(u[k], depth + 1)) return false
  return true
}

export const arrayOf = (item: Check): Check => (u) => {
  if (!Array.isArray(u)) return false
  for (let i = 0; i < u.length; i++) if (!item(u[i])) return false
  return true
}

export const recordOf = (value: Check): Check => (u) => {
  if (!isPlain(u)) return false
  for (const k in u) if (!value(u[k])) return false
  return true
}

export const isJsonRecord: Check = (u) => isPlain(u) && isJson(u)

const countKeys = (o: Record<string, unknown>): number => {
  let n = 0
  for (const _ in o) n++
  return n
}

/** Schemas whose fields did not match their validator when this module loaded (fast path off). */
export const drifted: Array<string> = []

/**
 * A struct: `required` keys (including the ones decoding fills with a default) must be present,
 * `optional` keys may be, nothing else. `schema` (a `Schema.Struct`) is checked to have exactly
 * these fields, optional where declared so.
 */
export const struct = (
  name: string,
  schema: { readonly fields: Record<string, { readonly ast: SchemaAST.AST }> } | undefined,
  required: Record<string, Check>,
  optional: Record<string, Check> = {}
): Check => {
  if (schema !== undefined) {
    const fields = Object.entries(schema.fields)
    const ok = fields.length === Object.keys(required).length + Object.keys(optional).length &&
      fields.every(([k, f]) => (SchemaAST.isOptional(f.ast) ? k in optional : k in required))
    if (!ok) {
      drifted.push(name)
      return () => false
    }
  }
  const req = Object.entries(required)
  const opt = Object.entries(optional)
  return (u) => {
    if (!isPlain(u)) return false
    let n = req.length
    for (let i = 0; i < req.length; i++) {
      const [k, check] = req[i]!
      if (!check(u[k])) return false
    }
    for (let i = 0; i < opt.length; i++) {
      const [k, check] = opt[i]!
      const v = u[k]
      if (v === undefined) continue
      if (!check(v)) return false
      n++
    }
    return countKeys(u) === n
  }
}

// ---- the model's schemas ------------------------------------------------------------------

export const cost = struct("Cost", Cost.Cost, {
  gpuSeconds: isNonNegative,
  wallSeconds: isNonNegative,
  dollars: isNonNegative,
  inputTokens: isNonNegative,
  outputTokens: isNonNegative
})

export const jobRef = struct("JobRef", ExperimentNode.JobRef, { backend: isNonEmptyString, id: isNonEmptyString, data: isJsonRecord })

export const metricPoint = struct("MetricPoint", Result.MetricPoint, {
  step: isNonNegativeInt,
  split: isNonEmptyString,
  name: isNonEmptyString,
  value: isFinite
})

const artifact = struct("Artifact", Result.Artifact, { name: isNonEmptyString, path: isNonEmptyString })

const failure = struct(
  "Failure",
  Result.Failure,
  { kind: oneOf(Result.FailureKind.literals), message: isString, logTail: arrayOf(isString), retryable: isBoolean },
  { exitCode: isInt }
)

/** A job's `result.json` (the job protocol's output), as `Result.JobResultFile` decodes it. */
export const jobResultFile = struct(
  "JobResultFile",
  Result.JobResultFile,
  { metrics: recordOf(isFinite), artifacts: arrayOf(artifact) },
  { primary: isFinite, summary: isString }
)

export const result = struct(
  "Result",
  Result.Result,
  { metrics: recordOf(isFinite), curves: arrayOf(metricPoint), artifacts: arrayOf(artifact), cost },
  { score: isFinite, summary: isString, failure, reusedFrom: isString }
)

const dataSource = struct(
  "DataSource",
  Strategy.DataSource,
  { name: isNonEmptyString, weight: isNonNegative },
  { split: isString, config: isString, maxExamples: isPositiveInt }
)
const step = struct("Step", Strategy.Step, { kind: isNonEmptyString, params: isJsonRecord })
const synthesis = struct("Synthesis", Strategy.Synthesis, { method: isNonEmptyString, count: isNonNegativeInt, params: isJsonRecord })
const dataRecipe = struct(
  "DataRecipe",
  Strategy.DataRecipe,
  { sources: arrayOf(dataSource), format: isString, filters: arrayOf(step), transforms: arrayOf(step), extra: isJsonRecord },
  { numExamples: isPositiveInt, synthesis }
)
const lora = struct(
  "LoraConfig",
  Strategy.LoraConfig,
  { rank: isPositiveInt, alpha: isPositive, dropout: isNonNegative },
  { targetModules: arrayOf(isString) }
)
const training = struct(
  "TrainingConfig",
  Strategy.TrainingConfig,
  {
    method: oneOf(Strategy.Method.literals),
    learningRate: isPositive,
    schedule: oneOf(Strategy.LrSchedule.literals),
    warmupRatio: isNonNegative,
    epochs: isPositive,
    batchSize: isPositiveInt,
    seed: isInt,
    extra: isJsonRecord
  },
  { lora, maxSeqLength: isPositiveInt }
)
const evaluation = struct(
  "EvaluationPlan",
  Strategy.EvaluationPlan,
  { splits: arrayOf(isString), extra: isJsonRecord },
  { metric: isString, maxExamples: isPositiveInt, description: isString }
)

export const strategy = struct("Strategy", Strategy.Strategy, { data: dataRecipe, training, evaluation, rationale: isString })

export const nodeSpec = struct(
  "NodeSpec",
  ExperimentNode.NodeSpec,
  { id: isNonEmptyString, parent: isNonEmptyString, strategy, fingerprint: isNonEmptyString, proposedAt: isFinite },
  { prior: isFinite }
)

export const insight = struct("Insight", Insight.Insight, {
  id: isNonEmptyString,
  text: isNonEmptyString,
  evidence: arrayOf(isString),
  createdAt: isFinite,
  data: isJsonRecord
})

/** A researcher's analysis of the task (its defaulted keys are required in canonical form). */
export const analysis = struct("Analysis", Researcher.Analysis, {
  summary: isString,
  metricNotes: isString,
  dataNotes: isString,
  risks: arrayOf(isString),
  notes: isJsonRecord
})

/** A literal field (`_tag`). */
export const literal = (value: string): Check => (u) => u === value

/** Decode through `check` when canonical, else through the schema. */
export const decoder = <S extends Schema.Top>(schema: S, check: Check) => {
  const slow = Schema.decodeUnknownSync(schema as any) as (u: unknown) => S["Type"]
  return (u: unknown): S["Type"] => (check(u) ? (u as S["Type"]) : slow(u))
}

/** Encode through `check` when canonical, else through the schema. */
export const encoder = <S extends Schema.Top>(schema: S, check: Check) => {
  const slow = Schema.encodeSync(schema as any) as (a: S["Type"]) => S["Encoded"]
  return (a: S["Type"]): S["Encoded"] => (check(a) ? (a as unknown as S["Encoded"]) : slow(a))
}
