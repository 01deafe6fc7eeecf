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
import * as Cost from "../Cost.ts"
import * as ExperimentNode from "../ExperimentNode.ts"
import * as Insight from "../Insight.ts"
import * as Researcher from "../Researcher.ts"
import * as Result from "../Result.ts"
import * as Strategy from "../Strategy.ts"
import {
  arrayOf,
  isBoolean,
  isFinite,
  isInt,
  isJsonRecord,
  isNonEmptyString,
  isNonNegative,
  isNonNegativeInt,
  isString,
  oneOf,
  recordOf,
  struct
} from "./checks.ts"
import { strategyCheck } from "./strategyCheck.ts"

export * from "./checks.ts"

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
  { exitCode: isInt, setup: isBoolean }
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

/** The strategy's: built with `Strategy.ts`'s schemas, as `Strategy.is` builds its own. */
export const strategy = strategyCheck(Strategy)

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

