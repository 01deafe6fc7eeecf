/**
 * An insight distilled from finished experiments, with the node ids that support it.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { Extra, listOf } from "./internal/schema.ts"

/**
 * @example
 * ```ts
 * import { Insight } from "@trex/core"
 * const i: Insight.Insight = { id: "i1", text: "reversed beats plain", evidence: ["n3", "n4"], createdAt: 0, data: {} }
 * ```
 * @since 0.1.0 @category schemas
 */
export const Insight = Schema.Struct({
  id: Schema.NonEmptyString,
  text: Schema.NonEmptyString,
  evidence: listOf(Schema.String),
  createdAt: Schema.Finite,
  /** Machine-readable payload a researcher may use to bias proposals. */
  data: Extra
})
/** @since 0.1.0 @category models */
export type Insight = typeof Insight.Type
