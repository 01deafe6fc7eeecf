/**
 * What an experiment or a model call cost: GPU time, wall time, money and LLM tokens.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

import { NonNegative, withDefault } from "./internal/schema.ts"

const field = NonNegative.pipe(withDefault(0))

/**
 * A cost record. Every field defaults to 0 when absent.
 *
 * @example
 * ```ts
 * import { Cost } from "@trex/core"
 * const c = Cost.add(Cost.zero, { ...Cost.zero, gpuSeconds: 30 })
 * ```
 * @since 0.1.0
 * @category schemas
 */
export const Cost = Schema.Struct({
  gpuSeconds: field,
  wallSeconds: field,
  dollars: field,
  inputTokens: field,
  outputTokens: field
})
/** @since 0.1.0 @category models */
export type Cost = typeof Cost.Type

/** The cost of nothing. @since 0.1.0 @category constructors */
export const zero: Cost = { gpuSeconds: 0, wallSeconds: 0, dollars: 0, inputTokens: 0, outputTokens: 0 }

/** Build a cost from the fields you know; the rest are 0. @since 0.1.0 @category constructors */
export const make = (fields: Partial<Cost>): Cost => ({ ...zero, ...fields })

/** Sum of two costs. @since 0.1.0 @category combinators */
export const add = (a: Cost, b: Cost): Cost => ({
  gpuSeconds: a.gpuSeconds + b.gpuSeconds,
  wallSeconds: a.wallSeconds + b.wallSeconds,
  dollars: a.dollars + b.dollars,
  inputTokens: a.inputTokens + b.inputTokens,
  outputTokens: a.outputTokens + b.outputTokens
})

/** `a - b`, clamped at 0 per field. @since 0.1.0 @category combinators */
export const subtract = (a: Cost, b: Cost): Cost => ({
  gpuSeconds: Math.max(0, a.gpuSeconds - b.gpuSeconds),
  wallSeconds: Math.max(0, a.wallSeconds - b.wallSeconds),
  dollars: Math.max(0, a.dollars - b.dollars),
  inputTokens: Math.max(0, a.inputTokens - b.inputTokens),
  outputTokens: Math.max(0, a.outputTokens - b.outputTokens)
})

/** Total tokens (input + output). @since 0.1.0 @category getters */
export const tokens = (c: Cost): number => c.inputTokens + c.outputTokens
