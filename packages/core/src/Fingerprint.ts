/**
 * Canonical hash of a strategy's executable part (`data`, `training`, `evaluation`; never the
 * rationale). Key order, number formatting and defaults that decoding fills in never change
 * it: equal fingerprints share one result, so a strategy is never run twice.
 *
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import type * as Strategy from "./Strategy.ts"

/**
 * Canonical JSON: object keys sorted, `-0` as `0`, integral floats as integers (JSON does that
 * already), `undefined` members dropped. Throws on non-finite numbers, which JSON cannot hold.
 * @since 0.1.0 @category utilities
 */
export const canonicalJson = (value: unknown): string => {
  if (value === null) return "null"
  switch (typeof value) {
    case "number":
      if (!Number.isFinite(value)) throw new RangeError(`non-finite number ${value} in a fingerprinted value`)
      return JSON.stringify(Object.is(value, -0) ? 0 : value)
    case "string":
    case "boolean":
      return JSON.stringify(value)
    case "object": {
      if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? "null" : canonicalJson(v))).join(",")}]`
      const entries = Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`
    }
    default:
      throw new TypeError(`cannot fingerprint a ${typeof value}`)
  }
}

/**
 * The fingerprint of a decoded strategy: 16 hex digits of SHA-256 over the canonical JSON of
 * its encoded executable part.
 *
 * @example
 * ```ts
 * import { Fingerprint, Strategy } from "@trex/core"
 * const s = Strategy.decodeSync({ data: { sources: [{ name: "a" }] }, training: { learningRate: 1e-3, epochs: 1, batchSize: 8 } })
 * Fingerprint.of(s) === Fingerprint.of({ ...s, rationale: "another reason" }) // true
 * ```
 * @since 0.1.0 @category constructors
 */
export const of = (strategy: Strategy.Strategy): string => {
  const known = cache.get(strategy)
  if (known !== undefined) return known
  // A decoded strategy is plain JSON already (its schemas only fill defaults), so it is
  // canonicalised as it is, without another pass through the encoder.
  const executable = { data: strategy.data, training: strategy.training, evaluation: strategy.evaluation }
  const fp = createHash("sha256").update(canonicalJson(executable)).digest("hex").slice(0, 16)
  cache.set(strategy, fp)
  return fp
}

/** Strategies are immutable values: each is hashed once. */
const cache = new WeakMap<Strategy.Strategy, string>()
