/**
 * Checks of the options a constructor or a run is given in code: each key with the values it
 * takes, so that a mistyped option (`{ c: -1 }`, `{ drafts: 2.5 }`, `{ c: "0.5" }` from a JSON
 * config, `{ backup: "avg" }`, or a misspelt key such as `{ exploration: 0.5 }`, which TypeScript
 * only catches in an object literal and plain JavaScript never) is refused before anything runs,
 * with an `InvalidInput` that names each bad option, the value and what it takes, instead of a
 * search that quietly does something else. `Explorer.run`, the search policies and the offline
 * researchers check their options with it.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { InvalidInput } from "./Errors.ts"
import { closest, formatIssues } from "./TaskFile.ts"

/**
 * What one option takes: the issues of a value that was given (each a line that begins with the
 * option's path), none when it is sound. An option left out (or `undefined`) is not checked,
 * unless it is `required`.
 * @since 0.1.0 @category models
 */
export interface Rule {
  readonly required?: boolean
  /** Other names for the option (other libraries' words: `exploration` for UCT's `c`): an unknown key that is one gets it as the fix. */
  readonly aliases?: ReadonlyArray<string>
  readonly issues: (value: unknown, path: string) => ReadonlyArray<string>
}

/** The options a constructor takes, by key. @since 0.1.0 @category models */
export type Spec = { readonly [key: string]: Rule }

/**
 * A value as a message shows it: numbers as they print (`NaN`, `-1`), strings quoted.
 * @since 0.1.0 @category utilities
 */
export const show = (v: unknown): string => {
  if (typeof v === "number" || typeof v === "boolean" || v === undefined || v === null) return String(v)
  if (typeof v === "string") return JSON.stringify(v)
  if (typeof v === "function") return "a function"
  if (Array.isArray(v)) return "an array"
  return typeof v
}

/** The fix for a number or boolean written as a string (a JSON or YAML config quoted it). */
const unquote = (v: unknown, kind: "number" | "boolean"): string => {
  if (typeof v !== "string") return ""
  const t = v.trim()
  if (kind === "number" && t !== "" && Number.isFinite(Number(t))) return ` (a string: write ${t} without quotes)`
  if (kind === "boolean" && (t === "true" || t === "false")) return ` (a string: write ${t} without quotes)`
  return ""
}

const rule = (expected: string, ok: (v: unknown) => boolean, kind?: "number" | "boolean"): Rule => ({
  issues: (v, path) => (ok(v) ? [] : [`${path}: expected ${expected}, got ${show(v)}${kind === undefined ? "" : unquote(v, kind)}`])
})

const paren = (what: string | undefined): string => (what === undefined || what === "" ? "" : ` (${what})`)

/**
 * A whole number (a safe integer) of at least `least` (any, for `Number.MIN_SAFE_INTEGER`), and
 * at most `most` when given.
 * `what` says what the option is for, or what its values mean.
 * @since 0.1.0 @category rules
 */
export const integer = (least: number, what: string, most?: number): Rule =>
  rule(
    // at least MIN_SAFE_INTEGER: any integer, said so
    most === undefined
      ? least <= Number.MIN_SAFE_INTEGER ? `an integer${paren(what)}` : `an integer of at least ${least}${paren(what)}`
      : `an integer from ${least} to ${most}${paren(what)}`,
    (v) => typeof v === "number" && Number.isSafeInteger(v) && v >= least && (most === undefined || v <= most),
    "number"
  )

/** Bounds of a number: `min`/`max` inclusive, `above`/`below` exclusive. @since 0.1.0 @category models */
export interface Bounds {
  readonly min?: number
  readonly above?: number
  readonly max?: number
  readonly below?: number
}

/**
 * A finite number within bounds: `min`/`max` inclusive, `above`/`below` exclusive.
 * @since 0.1.0 @category rules
 */
export const number = (bounds: Bounds, what: string): Rule => {
  const low = bounds.min !== undefined ? `of at least ${bounds.min}` : bounds.above !== undefined ? `above ${bounds.above}` : undefined
  const high = bounds.max !== undefined ? `at most ${bounds.max}` : bounds.below !== undefined ? `below ${bounds.below}` : undefined
  const range = bounds.min !== undefined && bounds.max !== undefined
    ? `from ${bounds.min} to ${bounds.max}`
    : [low, high].filter((s) => s !== undefined).join(" and ")
  return rule(
    `a number${range === "" ? "" : ` ${range}`}${paren(what)}`,
    (v) =>
      typeof v === "number" && Number.isFinite(v) &&
      (bounds.min === undefined || v >= bounds.min) && (bounds.above === undefined || v > bounds.above) &&
      (bounds.max === undefined || v <= bounds.max) && (bounds.below === undefined || v < bounds.below),
    "number"
  )
}

/** A probability: a number from 0 to 1. @since 0.1.0 @category rules */
export const probability = (what: string): Rule => number({ min: 0, max: 1 }, what)

/** `true` or `false`. @since 0.1.0 @category rules */
export const boolean = (what: string): Rule => rule(`true or false${paren(what)}`, (v) => typeof v === "boolean", "boolean")

/** One of a few strings; a near miss gets the one it likely misspells. @since 0.1.0 @category rules */
export const literal = (values: ReadonlyArray<string>, what: string): Rule => ({
  issues: (v, path) => {
    if (typeof v === "string" && values.includes(v)) return []
    const meant = typeof v === "string" ? closest(v, values) : undefined
    const quoted = values.map((s) => JSON.stringify(s))
    const choices = quoted.length <= 2 ? quoted.join(" or ") : `one of ${quoted.join(", ")}`
    return [`${path}: expected ${choices}${paren(what)}, got ${show(v)}${meant !== undefined ? `; did you mean "${meant}"?` : ""}`]
  }
})

/** A string that is not empty. @since 0.1.0 @category rules */
export const nonEmptyString = (what?: string): Rule => rule(`a non-empty string${paren(what)}`, (v) => typeof v === "string" && v !== "")

/** A function, or (with `member`) an object with that method. @since 0.1.0 @category rules */
export const fn = (member?: string): Rule =>
  rule(
    member === undefined ? "a function" : `an object with ${member}()`,
    (v) =>
      member === undefined
        ? typeof v === "function"
        : typeof v === "object" && v !== null && typeof (v as Record<string, unknown>)[member] === "function"
  )

/** Anything: a known option that is not checked here. @since 0.1.0 @category rules */
export const unchecked: Rule = { issues: () => [] }

/**
 * What a schema decodes (a budget, a search space), its issues as the schema words them, one per
 * line. A key the schema does not know is an issue too (with the key it likely misspells): dropped
 * in silence, `budget: { maxTrails: 3 }` would be a budget without a limit.
 * @since 0.1.0 @category rules
 */
export const schema = (codec: Schema.Top): Rule => {
  const decode = Schema.decodeUnknownExit(codec as Schema.Codec<unknown, unknown>)
  return {
    issues: (v, path) => {
      const decoded = decode(v, { errors: "all", onExcessProperty: "error" })
      if (decoded._tag === "Success") return []
      return formatIssues(Cause.squash(decoded.cause), codec.ast).split("\n").filter((l) => l.trim() !== "").map((l) => `${path}: ${l.trim()}`)
    }
  }
}

/** Options of their own under one key (`widening: { k, alpha }`), each checked as the top level is. @since 0.1.0 @category rules */
export const struct = (spec: Spec, what: string): Rule => ({
  issues: (v, path) => issues(spec, v, path, what)
})

/** The rule, with the option required. @since 0.1.0 @category rules */
export const required = (r: Rule): Rule => ({ ...r, required: true })

/** The rule, with other names an unknown key is matched against (see {@link Rule}). @since 0.1.0 @category rules */
export const aliased = (r: Rule, aliases: ReadonlyArray<string>): Rule => ({ ...r, aliases })

/** A rule with a check of its own after the rule's: `extra` answers the issue, without the path. @since 0.1.0 @category rules */
export const refine = (r: Rule, extra: (value: unknown) => string | undefined): Rule => ({
  ...r,
  issues: (v, path) => {
    const first = r.issues(v, path)
    if (first.length > 0) return first
    const more = extra(v)
    return more === undefined ? [] : [`${path}: ${more}`]
  }
})

const isPlainObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * The issues of `options` against `spec`, each a line that begins with the option's path (under
 * `path` when nested): an unknown key gets the key it likely misspells, or the keys there are.
 * @since 0.1.0 @category checking
 */
export const issues = (spec: Spec, options: unknown, path = "", what = "options"): Array<string> => {
  const at = (key: string) => (path === "" ? key : `${path}.${key}`)
  if (!isPlainObject(options)) return [`${path === "" ? "options" : path}: expected an object${paren(what === "options" ? undefined : what)}, got ${show(options)}`]
  const keys = Object.keys(spec)
  const out: Array<string> = []
  for (const key of Object.keys(options)) {
    // an unknown key set to undefined is left out too (a spread of a config that lacks it)
    if (Object.hasOwn(spec, key) || options[key] === undefined) continue
    const meant = keys.find((k) => spec[k]!.aliases?.some((a) => a.toLowerCase() === key.toLowerCase())) ?? closest(key, keys)
    out.push(`${at(key)}: not an option${meant !== undefined ? `; did you mean "${meant}"?` : keys.length === 0 ? "; there are none here" : `; the options: ${keys.join(", ")}`}`)
  }
  for (const key of keys) {
    const r = spec[key]!
    const v = options[key]
    // left out: fine unless required (then its rule words what it takes, "got undefined")
    if (v !== undefined || r.required === true) out.push(...r.issues(v, at(key)))
  }
  return out
}

/**
 * Check the options `name` was given against `spec`: `undefined` when they are sound, else an
 * `InvalidInput` (source `"<name> options"`) listing every issue, one per line.
 *
 * @example
 * ```ts
 * import { OptionSpec } from "@trex/core"
 * const spec = { rate: OptionSpec.probability("how often"), tries: OptionSpec.integer(1, "tries per step") }
 * const wrong = OptionSpec.check("MyThing.make", spec, { rate: 2, trys: 3 })
 * // wrong?.message:
 * // invalid MyThing.make options:
 * //   trys: not an option; did you mean "tries"?
 * //   rate: expected a number from 0 to 1 (how often), got 2
 * ```
 * @since 0.1.0 @category checking
 */
export const check = (name: string, spec: Spec, options: unknown): InvalidInput | undefined => {
  const found = issues(spec, options)
  return found.length === 0
    ? undefined
    : new InvalidInput({ source: `${name} options`, message: `invalid ${name} options:\n${found.map((l) => `  ${l}`).join("\n")}` })
}

/**
 * {@link check} for a constructor that returns a value, not an effect (`Uct.make`): throws the
 * `InvalidInput`, so a mistyped option fails where it is written, before anything runs.
 * @since 0.1.0 @category checking
 */
export const orThrow = (name: string, spec: Spec, options: unknown): void => {
  const wrong = check(name, spec, options)
  if (wrong !== undefined) throw wrong
}

/**
 * {@link check} as an effect, for a layer: fails with the `InvalidInput`, else succeeds with
 * `build()` (called only then).
 * @since 0.1.0 @category checking
 */
export const checked = <A>(name: string, spec: Spec, options: unknown, build: () => A): Effect.Effect<A, InvalidInput> =>
  Effect.suspend(() => {
    const wrong = check(name, spec, options)
    return wrong !== undefined ? Effect.fail(wrong) : Effect.sync(build)
  })
