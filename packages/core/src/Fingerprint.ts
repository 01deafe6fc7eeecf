/**
 * Canonical hash of a strategy's executable part (`data`, `training`, `evaluation`; never the
 * rationale). Key order, number formatting and defaults that decoding fills in never change
 * it, nor how a mixture is written (see {@link mixture}): equal fingerprints share one result, so
 * a strategy is never run twice.
 *
 * What a mixture means, which a trainer must honour for that to hold: a source's `weight` is a
 * sampling weight, and only its share of the sum of the weights counts (as `data.mixture.<source>`
 * of a search space reads it); the order of `data.sources` means nothing, and a source at 0 is no
 * source. Absolute counts have fields of their own, kept as written: `data.numExamples` (the total)
 * and a source's `maxExamples` (its cap); so does anything else of a source (`split`, `config`). A
 * trainer that needs an order (a curriculum) takes it from a field that names the sources, such as
 * `data.extra.order: [web, code]`, kept as written too; never from the list's order or the weights' scale.
 *
 * @since 0.1.0
 */
import * as crypto from "node:crypto"
import { billionths } from "./internal/shares.ts"
import type * as Strategy from "./Strategy.ts"

/**
 * Canonical JSON: object keys sorted, `-0` as `0`, integral floats as integers (JSON does that
 * already), `undefined` members dropped. Throws on non-finite numbers, which JSON cannot hold.
 * @since 0.1.0 @category utilities
 */
export const canonicalJson = (value: unknown): string => {
  return canonical(value)
}

/** A member's key as written, `"key":` (first member) or `,"key":`: a strategy's keys are few and repeat in every strategy. */
const firstKeys = new Map<string, string>()
const nextKeys = new Map<string, string>()
const keyText = (key: string, first: boolean): string => {
  const cache = first ? firstKeys : nextKeys
  let q = cache.get(key)
  if (q === undefined) {
    q = (first ? "" : ",") + JSON.stringify(key) + ":"
    if (cache.size < 4096) cache.set(key, q)
  }
  return q
}

/**
 * Sort keys in place, in code-unit order. A few (the members of a strategy's objects) by insertion:
 * `Array.prototype.sort` allocates a work copy on every call.
 */
const sortKeys = (keys: Array<string>): Array<string> => {
  if (keys.length > 16) return keys.sort()
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i]!
    let j = i - 1
    while (j >= 0 && keys[j]! > k) {
      keys[j + 1] = keys[j]!
      j--
    }
    keys[j + 1] = k
  }
  return keys
}

/**
 * The canonical JSON of a value, as one flat string: the pieces are collected and joined once.
 * (Built with `+=`, the text would be a rope of every piece, and a cached text kept them all alive:
 * about 1.5 KB per strategy in a long run instead of its ~250 characters.)
 */
const canonical = (value: unknown): string => {
  const out: Array<string> = []
  write(value, out)
  return out.join("")
}

/** Keys in code-unit order (as `<` compares strings), without the entries arrays of `Object.entries`. */
const write = (value: unknown, out: Array<string>): void => {
  if (value === null) {
    out.push("null")
    return
  }
  switch (typeof value) {
    case "number":
      if (!Number.isFinite(value)) throw new RangeError(`non-finite number ${value} in a fingerprinted value`)
      out.push(Object.is(value, -0) ? "0" : JSON.stringify(value))
      return
    case "string":
    case "boolean":
      out.push(JSON.stringify(value))
      return
    case "object": {
      if (Array.isArray(value)) {
        out.push("[")
        for (let i = 0; i < value.length; i++) {
          const v: unknown = value[i]
          if (i > 0) out.push(",")
          if (v === undefined) out.push("null")
          else write(v, out)
        }
        out.push("]")
      } else {
        const record = value as Record<string, unknown>
        const keys = Object.keys(record)
        if (keys.length > 1) sortKeys(keys)
        out.push("{")
        let first = true
        for (const k of keys) {
          const v = record[k]
          if (v === undefined) continue
          out.push(keyText(k, first))
          write(v, out)
          first = false
        }
        out.push("}")
      }
      return
    }
    default:
      throw new TypeError(`cannot fingerprint a ${typeof value}`)
  }
}

type Source = Strategy.DataSource

/**
 * A mixture in its canonical form, as the fingerprint reads it: each source's weight as its share
 * of the sum of the weights, to 9 decimals (as `SearchSpace.get` reads a share; rounded as in exact
 * arithmetic, a half up, so the order the weights are written in never changes it), sources whose
 * share is 0 left out, and the rest in the order of their names (then of their other fields). The
 * sources themselves when they are in that form already (a single source of weight 1, a mixture
 * written in shares in that order), and when their weights sum to 0. So `[web 1, code 1]`,
 * `[code 0.5, web 0.5]` and `[code 0.5, toy 0, web 0.5]` are one mixture, with one fingerprint,
 * whichever researcher proposed it; a trial runs its strategy as proposed. Each source keeps its
 * other fields (`maxExamples`, `split`, `config`) as written: `[web 1 (at most 100), code 1]` is
 * `[code 2, web 2 (at most 100)]`, and not `[web 1, code 1 (at most 100)]`.
 *
 * @example
 * ```ts
 * import { Fingerprint } from "@trex/core"
 * Fingerprint.mixture([{ name: "web", weight: 1 }, { name: "toy", weight: 0 }, { name: "code", weight: 3 }])
 * // [{ name: "code", weight: 0.75 }, { name: "web", weight: 0.25 }]
 * ```
 * @since 0.1.0 @category utilities
 */
export const mixture = (sources: ReadonlyArray<Source>): ReadonlyArray<Source> => {
  const shares = billionths(sources.map((s) => s.weight))
  if (shares === undefined) return sources
  const out: Array<Source> = []
  let same = true
  for (let i = 0; i < sources.length; i++) {
    const s = sources[i]!
    const share = shares[i]! / 1e9
    if (share === 0) {
      same = false
      continue
    }
    if (share !== s.weight) same = false
    out.push(share === s.weight ? s : { ...s, weight: share })
  }
  for (let i = 1; i < out.length && same; i++) if (order(out[i - 1]!, out[i]!) > 0) same = false
  return same ? sources : out.sort(order)
}

/** Sources by name, then by their other fields (a source named twice, with another split, is two). */
const order = (a: Source, b: Source): number =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : compareText(canonical({ ...a, name: "" }), canonical({ ...b, name: "" }))
const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/**
 * The fingerprint of a decoded strategy: 16 hex digits of SHA-256 over the canonical JSON of
 * its encoded executable part, its mixture in {@link mixture}'s form. (Before 2026-12-05 the mixture
 * was hashed as written: a journal of then holds those fingerprints, and `ExperimentTree` and
 * `ResultCache` find its nodes by both.)
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
  // Its parts are immutable too, and a mutation copies only the objects on the changed path:
  // the canonical JSON of each part is kept, so a child strategy re-serialises only the part that changed.
  // (The keys of `{ data, training, evaluation }`, in canonical order.)
  const data = dataText(strategy.data)
  const evaluation = partText(strategy.evaluation)
  const training = partText(strategy.training)
  let json = "{"
  if (data !== undefined) json += "\"data\":" + data
  if (evaluation !== undefined) json += (json.length > 1 ? ",\"evaluation\":" : "\"evaluation\":") + evaluation
  if (training !== undefined) json += (json.length > 1 ? ",\"training\":" : "\"training\":") + training
  const fp = crypto.hash("sha256", json + "}", "hex").slice(0, 16)
  cache.set(strategy, fp)
  return fp
}

/** The canonical JSON of a part of a strategy, kept for as long as the part lives. */
const partText = (part: object | undefined): string | undefined => {
  if (part === undefined) return undefined
  let text = parts.get(part)
  if (text === undefined) parts.set(part, (text = canonical(part)))
  return text
}

/**
 * The fingerprint a strategy journaled under `recorded` has now, when it is another: only one whose
 * mixture is not in {@link mixture}'s form can have one (a journal written before 2026-12-05 hashed the
 * mixture as written). `ExperimentTree` and `ResultCache` find such a node by both.
 *
 * @example
 * ```ts
 * import { Fingerprint, Strategy } from "@trex/core"
 * const s = Strategy.decodeSync({ data: { sources: [{ name: "a" }] }, training: { learningRate: 1e-3, epochs: 1, batchSize: 8 } })
 * Fingerprint.changed(s, Fingerprint.of(s)) // undefined
 * ```
 * @since 0.1.0 @category utilities
 */
export const changed = (strategy: Strategy.Strategy, recorded: string): string | undefined => {
  const sources = strategy.data.sources
  if (mixture(sources) === sources) return undefined
  const now = of(strategy)
  return now === recorded ? undefined : now
}

/** The canonical JSON of a data recipe, its mixture in canonical form, kept for as long as the recipe lives. */
const dataText = (data: Strategy.DataRecipe | undefined): string | undefined => {
  if (data === undefined) return undefined
  let text = parts.get(data)
  if (text === undefined) {
    const sources = Array.isArray(data.sources) ? mixture(data.sources) : data.sources
    parts.set(data, (text = canonical(sources === data.sources ? data : { ...data, sources })))
  }
  return text
}

/** Strategies are immutable values: each is hashed once. */
const cache = new WeakMap<Strategy.Strategy, string>()
/** Canonical JSON of the parts (`data`, `training`, `evaluation`) of strategies. */
const parts = new WeakMap<object, string>()
