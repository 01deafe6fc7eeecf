import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

/** A struct key that may be absent in JSON and decodes to `value` then. */
export const withDefault = <S extends Schema.Constraint>(value: S["Encoded"]) =>
  Schema.withDecodingDefaultKey<S>(Effect.succeed(value))

export const NonNegative = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
export const Positive = Schema.Finite.check(Schema.isGreaterThan(0))
export const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))
export const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
export const JsonRecord = Schema.Record(Schema.String, Schema.Json)
export const Extra = JsonRecord.pipe(withDefault<typeof JsonRecord>({}))
export const listOf = <S extends Schema.Constraint>(item: S) => {
  const list = Schema.Array(item)
  return list.pipe(withDefault<typeof list>([]))
}
