/**
 * The canonical-form check of a strategy (see `canonical.ts`), built from the strategy's schemas
 * given to it: `Strategy.ts` builds one for `Strategy.is`, `canonical.ts` one for the journal
 * and the job protocol, and neither module imports the other's.
 */
import type * as Strategy from "../Strategy.ts"
import {
  arrayOf,
  type Check,
  isInt,
  isJsonRecord,
  isNonEmptyString,
  isNonNegative,
  isNonNegativeInt,
  isPositive,
  isPositiveInt,
  isString,
  oneOf,
  struct
} from "./checks.ts"

/** The schemas a strategy is made of. */
export type Schemas = Pick<
  typeof Strategy,
  "DataSource" | "Step" | "Synthesis" | "DataRecipe" | "LoraConfig" | "Method" | "LrSchedule" | "TrainingConfig" | "EvaluationPlan" | "Strategy"
>

/** Whether a value is a strategy in canonical form (what decoding returns). */
export const strategyCheck = (S: Schemas): Check => {
  const dataSource = struct(
    "DataSource",
    S.DataSource,
    { name: isNonEmptyString, weight: isNonNegative },
    { split: isString, config: isString, maxExamples: isPositiveInt }
  )
  const step = struct("Step", S.Step, { kind: isNonEmptyString, params: isJsonRecord })
  const synthesis = struct("Synthesis", S.Synthesis, { method: isNonEmptyString, count: isNonNegativeInt, params: isJsonRecord })
  const dataRecipe = struct(
    "DataRecipe",
    S.DataRecipe,
    { sources: arrayOf(dataSource), format: isString, filters: arrayOf(step), transforms: arrayOf(step), extra: isJsonRecord },
    { numExamples: isPositiveInt, synthesis }
  )
  const lora = struct(
    "LoraConfig",
    S.LoraConfig,
    { rank: isPositiveInt, alpha: isPositive, dropout: isNonNegative },
    { targetModules: arrayOf(isString) }
  )
  const training = struct(
    "TrainingConfig",
    S.TrainingConfig,
    {
      method: oneOf(S.Method.literals),
      learningRate: isPositive,
      schedule: oneOf(S.LrSchedule.literals),
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
    S.EvaluationPlan,
    { splits: arrayOf(isString), extra: isJsonRecord },
    { metric: isString, maxExamples: isPositiveInt, description: isString }
  )

  return struct("Strategy", S.Strategy, { data: dataRecipe, training, evaluation, rationale: isString })
}
