/**
 * Hand-written checks of canonical form (see `canonical.ts`): the building blocks, with no
 * import of the model's modules, so that a model module (`Strategy.ts`) can build its own.
 */
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"

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
