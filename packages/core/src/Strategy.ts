/**
 * A training strategy: what data to train on (a {@link DataRecipe}), how to train
 * (a {@link TrainingConfig}), how to evaluate, and why (the rationale).
 *
 * Typed fields cover what every fine-tune has; the `extra` records hold the rest.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

import { Extra, listOf as emptyList, NonNegative, Positive, PositiveInt, withDefault } from "./internal/schema.ts"
import { strategyCheck } from "./internal/strategyCheck.ts"

/**
 * One data source in the mixture: a dataset name or URI and its sampling weight.
 * @since 0.1.0 @category schemas
 */
export const DataSource = Schema.Struct({
  name: Schema.NonEmptyString,
  weight: NonNegative.pipe(withDefault(1)),
  split: Schema.optionalKey(Schema.String),
  config: Schema.optionalKey(Schema.String),
  maxExamples: Schema.optionalKey(PositiveInt)
})
/** @since 0.1.0 @category models */
export type DataSource = typeof DataSource.Type

/**
 * A filter or transform step: a kind and its parameters, interpreted by the recipe.
 * @since 0.1.0 @category schemas
 */
export const Step = Schema.Struct({
  kind: Schema.NonEmptyString,
  params: Extra
})
/** @since 0.1.0 @category models */
export type Step = typeof Step.Type

/**
 * Synthetic data generation: method, how many examples, parameters.
 * @since 0.1.0 @category schemas
 */
export const Synthesis = Schema.Struct({
  method: Schema.NonEmptyString,
  count: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  params: Extra
})

/**
 * The data recipe: sources and mixture weights, filters, transforms, the prompt format,
 * how many examples and optional synthesis.
 * @since 0.1.0 @category schemas
 */
export const DataRecipe = Schema.Struct({
  sources: Schema.Array(DataSource),
  format: Schema.String.pipe(withDefault("default")),
  numExamples: Schema.optionalKey(PositiveInt),
  filters: emptyList(Step),
  transforms: emptyList(Step),
  synthesis: Schema.optionalKey(Synthesis),
  extra: Extra
})
/** @since 0.1.0 @category models */
export type DataRecipe = typeof DataRecipe.Type

/** Fine-tuning method. @since 0.1.0 @category schemas */
export const Method = Schema.Literals(["full", "lora", "qlora"])
/** @since 0.1.0 @category models */
export type Method = typeof Method.Type

/** LoRA adapter parameters. @since 0.1.0 @category schemas */
export const LoraConfig = Schema.Struct({
  rank: PositiveInt,
  alpha: Positive.pipe(withDefault(16)),
  dropout: NonNegative.pipe(withDefault(0)),
  targetModules: Schema.optionalKey(Schema.Array(Schema.String))
})

/** Learning-rate schedule. @since 0.1.0 @category schemas */
export const LrSchedule = Schema.Literals(["constant", "linear", "cosine"])

/**
 * The training configuration: method, LoRA parameters, optimiser settings and seed.
 * @since 0.1.0 @category schemas
 */
export const TrainingConfig = Schema.Struct({
  method: Method.pipe(withDefault("full")),
  learningRate: Positive,
  schedule: LrSchedule.pipe(withDefault("cosine")),
  warmupRatio: NonNegative.pipe(withDefault(0)),
  epochs: Positive,
  batchSize: PositiveInt,
  seed: Schema.Int.pipe(withDefault(0)),
  lora: Schema.optionalKey(LoraConfig),
  maxSeqLength: Schema.optionalKey(PositiveInt),
  extra: Extra
})
/** @since 0.1.0 @category models */
export type TrainingConfig = typeof TrainingConfig.Type

/**
 * How to evaluate a trained model: splits, metric override, sample cap.
 * @since 0.1.0 @category schemas
 */
export const EvaluationPlan = Schema.Struct({
  splits: emptyList(Schema.String),
  metric: Schema.optionalKey(Schema.String),
  maxExamples: Schema.optionalKey(PositiveInt),
  description: Schema.optionalKey(Schema.String),
  extra: Extra
})
/** @since 0.1.0 @category models */
export type EvaluationPlan = typeof EvaluationPlan.Type

/**
 * A complete strategy. Only `data`, `training` and `evaluation` are executable; the
 * `rationale` is commentary and never changes the {@link Fingerprint}.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Strategy } from "@trex/core"
 * const s = Schema.decodeUnknownSync(Strategy.Strategy)({
 *   data: { sources: [{ name: "add3" }], format: "reversed" },
 *   training: { learningRate: 0.003, epochs: 5, batchSize: 32 }
 * })
 * ```
 * @since 0.1.0 @category schemas
 */
export const Strategy = Schema.Struct({
  data: DataRecipe,
  training: TrainingConfig,
  evaluation: EvaluationPlan.pipe(withDefault({})),
  rationale: Schema.String.pipe(withDefault(""))
})
/** @since 0.1.0 @category models */
export type Strategy = typeof Strategy.Type
/** The JSON form of a strategy. @since 0.1.0 @category models */
export type StrategyEncoded = typeof Strategy.Encoded

/** Decode unknown input (e.g. a model's tool call) into a strategy. @since 0.1.0 @category decoding */
export const decode = Schema.decodeUnknownEffect(Strategy)
/** Decode synchronously; throws a `SchemaError` naming the bad path. @since 0.1.0 @category decoding */
export const decodeSync = Schema.decodeUnknownSync(Strategy)
const canonical = strategyCheck({ DataSource, Step, Synthesis, DataRecipe, LoraConfig, Method, LrSchedule, TrainingConfig, EvaluationPlan, Strategy })
const schemaIs = Schema.is(Strategy)

/**
 * Whether a value is a valid strategy (what `decode` returns, or any value it would accept as
 * it is). A strategy in canonical form, as decoding and the search space's mutations make
 * them, is checked by hand, many times faster than the schema; anything else by the schema.
 * Use `decode` to learn what is wrong with one that is not.
 *
 * @example
 * ```ts
 * import { Strategy } from "@trex/core"
 * const s = Strategy.decodeSync({ data: { sources: [{ name: "a" }] }, training: { learningRate: 1e-3, epochs: 1, batchSize: 8 } })
 * Strategy.is(s) // true
 * Strategy.is({ ...s, training: { ...s.training, learningRate: -1 } }) // false
 * ```
 * @since 0.1.0 @category guards
 */
export const is = (u: unknown): u is Strategy => canonical(u) || schemaIs(u)

/** Encode a strategy to plain JSON. @since 0.1.0 @category encoding */
export const encode = (s: Strategy): StrategyEncoded => Schema.encodeSync(Strategy)(s)
