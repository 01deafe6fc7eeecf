/**
 * Where agents report what their model calls cost. The explorer provides a meter that
 * charges the run's budget and journals a `BudgetCharged` event; the default does nothing.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Cost from "./Cost.ts"

/** @since 0.1.0 @category models */
export interface CostMeterShape {
  readonly record: (cost: Cost.Cost, reason: string) => Effect.Effect<void>
}

/**
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Cost, CostMeter } from "@trex/core"
 * const call = Effect.gen(function*() {
 *   const meter = yield* CostMeter.CostMeter
 *   yield* meter.record(Cost.make({ inputTokens: 1200, outputTokens: 300 }), "propose")
 * })
 * ```
 * @since 0.1.0 @category services
 */
export const CostMeter = Context.Reference<CostMeterShape>("@trex/core/CostMeter", {
  defaultValue: () => ({ record: () => Effect.void })
})
