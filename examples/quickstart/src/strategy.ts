// Parse and validate a Strategy (strategy.json) into the quickstart's trial configuration.
// Unknown fields are ignored; missing optional fields take defaults; an invalid value throws a StrategyError that
// names the field (train.ts turns it into exit code 2).
import { FORMATS, SOURCES, type Format, type Source } from "./data.ts"
import type { Schedule } from "./train-loop.ts"

export class StrategyError extends Error {
  readonly field: string
  constructor(field: string, message: string) {
    super(`invalid strategy field ${field}: ${message}`)
    this.name = "StrategyError"
    this.field = field
  }
}

export type Method = "full" | "lora" | "qlora"
export type Trainable = "all" | "head"

export interface TrialConfig {
  readonly format: Format
  /** Source weights, normalised to sum 1. */
  readonly weights: Readonly<Record<Source, number>>
  readonly numExamples: number
  readonly method: Method
  readonly trainable: Trainable
  readonly learningRate: number
  readonly schedule: Schedule
  readonly warmupRatio: number
  readonly epochs: number
  readonly batchSize: number
  readonly seed: number
  readonly lora: { readonly rank: number; readonly alpha: number; readonly dropout: number }
  /** Epochs of base pretraining (part of the cache key); undefined = the default. */
  readonly pretrainEpochs: number | undefined
}

type Obj = Readonly<Record<string, unknown>>

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v)

function obj(parent: Obj, key: string, path: string): Obj {
  const v = parent[key]
  if (v === undefined) return {}
  if (!isObj(v)) throw new StrategyError(path, "must be an object")
  return v
}

function num(
  o: Obj,
  key: string,
  path: string,
  dflt: number,
  check: { readonly int?: boolean; readonly min?: number; readonly minExclusive?: number; readonly max?: number; readonly maxExclusive?: number }
): number {
  const v = o[key]
  if (v === undefined) return dflt
  if (typeof v !== "number" || !Number.isFinite(v)) throw new StrategyError(path, `must be a finite number, got ${JSON.stringify(v)}`)
  if (check.int === true && !Number.isInteger(v)) throw new StrategyError(path, `must be an integer, got ${v}`)
  if (check.min !== undefined && v < check.min) throw new StrategyError(path, `must be >= ${check.min}, got ${v}`)
  if (check.minExclusive !== undefined && v <= check.minExclusive) throw new StrategyError(path, `must be > ${check.minExclusive}, got ${v}`)
  if (check.max !== undefined && v > check.max) throw new StrategyError(path, `must be <= ${check.max}, got ${v}`)
  if (check.maxExclusive !== undefined && v >= check.maxExclusive) throw new StrategyError(path, `must be < ${check.maxExclusive}, got ${v}`)
  return v
}

function choice<T extends string>(o: Obj, key: string, path: string, allowed: ReadonlyArray<T>, dflt: T): T {
  const v = o[key]
  if (v === undefined) return dflt
  if (typeof v !== "string" || !(allowed as ReadonlyArray<string>).includes(v)) {
    throw new StrategyError(path, `must be one of ${allowed.join(" | ")}, got ${JSON.stringify(v)}`)
  }
  return v as T
}

function parseSources(data: Obj): Record<Source, number> {
  const raw = data["sources"]
  if (raw === undefined) return parseMixture(data)
  if (!Array.isArray(raw) || raw.length === 0) throw new StrategyError("data.sources", "must be a non-empty array")
  const w: Record<Source, number> = { add3: 0, add2: 0 }
  raw.forEach((s: unknown, i) => {
    const path = `data.sources[${i}]`
    if (!isObj(s)) throw new StrategyError(path, "must be an object {name, weight}")
    const name = choice(s, "name", `${path}.name`, SOURCES, "add3")
    if (s["name"] === undefined) throw new StrategyError(`${path}.name`, "is required")
    w[name] += num(s, "weight", `${path}.weight`, 1, { min: 0 })
  })
  const total = w.add3 + w.add2
  if (!(total > 0)) throw new StrategyError("data.sources", "weights must not all be zero")
  return { add3: w.add3 / total, add2: w.add2 / total }
}

/**
 * Fallback when `data.sources` is absent: `data.mixture` = {"add2": 0.2} gives the listed sources their weight and
 * the target source add3 the rest (the search space's `data.mixture.<source>` paths). Default: 10% replay.
 */
function parseMixture(data: Obj): Record<Source, number> {
  const mix = obj(data, "mixture", "data.mixture")
  for (const key of Object.keys(mix)) {
    if (!(SOURCES as ReadonlyArray<string>).includes(key)) throw new StrategyError(`data.mixture.${key}`, `unknown source (known: ${SOURCES.join(", ")})`)
  }
  const add2 = num(mix, "add2", "data.mixture.add2", mix["add3"] === undefined ? 0.1 : 0, { min: 0, max: 1 })
  const add3 = num(mix, "add3", "data.mixture.add3", 1 - add2, { min: 0, max: 1 })
  if (!(add2 + add3 > 0)) throw new StrategyError("data.mixture", "weights must not all be zero")
  return { add3: add3 / (add2 + add3), add2: add2 / (add2 + add3) }
}

/** Validate a parsed strategy.json. Throws StrategyError naming the first invalid field. */
export function parseStrategy(s: unknown, env: Readonly<Record<string, string | undefined>> = {}): TrialConfig {
  if (!isObj(s)) throw new StrategyError("(root)", "strategy must be a JSON object")
  const data = obj(s, "data", "data")
  const training = obj(s, "training", "training")
  const evaluation = obj(s, "evaluation", "evaluation")
  const lora = obj(training, "lora", "training.lora")
  const extra = obj(training, "extra", "training.extra")
  const splits = evaluation["splits"]
  if (splits !== undefined) {
    if (!Array.isArray(splits) || !splits.every((x) => x === "target" || x === "base")) {
      throw new StrategyError("evaluation.splits", 'must be an array of "target" | "base"')
    }
  }
  const fromEnv = env["TREX_QUICKSTART_PRETRAIN_EPOCHS"]
  let pretrainEpochs = extra["pretrainEpochs"] === undefined ? undefined : num(extra, "pretrainEpochs", "training.extra.pretrainEpochs", 0, { int: true, min: 0, max: 100 })
  if (pretrainEpochs === undefined && fromEnv !== undefined && fromEnv !== "") {
    const n = Number(fromEnv)
    if (!Number.isInteger(n) || n < 0 || n > 100) throw new StrategyError("TREX_QUICKSTART_PRETRAIN_EPOCHS", `must be an integer in 0..100, got ${fromEnv}`)
    pretrainEpochs = n
  }
  return {
    format: choice(data, "format", "data.format", FORMATS, "reversed"),
    weights: parseSources(data),
    numExamples: num(data, "numExamples", "data.numExamples", 8000, { int: true, min: 1, max: 200_000 }),
    method: choice(training, "method", "training.method", ["full", "lora", "qlora"] as const, "full"),
    trainable: choice(extra, "trainable", "training.extra.trainable", ["all", "head"] as const, "all"),
    learningRate: num(training, "learningRate", "training.learningRate", 3e-3, { minExclusive: 0, max: 1 }),
    schedule: choice(training, "schedule", "training.schedule", ["constant", "linear", "cosine"] as const, "cosine"),
    warmupRatio: num(training, "warmupRatio", "training.warmupRatio", 0, { min: 0, maxExclusive: 1 }),
    epochs: num(training, "epochs", "training.epochs", 5, { int: true, min: 1, max: 100 }),
    batchSize: num(training, "batchSize", "training.batchSize", 32, { int: true, min: 1, max: 4096 }),
    seed: num(training, "seed", "training.seed", 0, { int: true, min: 0, max: 2 ** 32 - 1 }),
    lora: {
      rank: num(lora, "rank", "training.lora.rank", 8, { int: true, min: 1, max: 128 }),
      alpha: num(lora, "alpha", "training.lora.alpha", 16, { minExclusive: 0 }),
      dropout: num(lora, "dropout", "training.lora.dropout", 0, { min: 0, maxExclusive: 1 })
    },
    pretrainEpochs
  }
}
