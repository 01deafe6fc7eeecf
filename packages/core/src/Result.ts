/**
 * The result of one experiment: metrics, the primary score, learning curves, artifacts,
 * cost and, for a failure, its kind and the last log lines.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import * as Cost from "./Cost.ts"
import { listOf, NonNegativeInt, withDefault } from "./internal/schema.ts"

/** Why a trial failed. @since 0.1.0 @category schemas */
export const FailureKind = Schema.Literals(["OOM", "Timeout", "Crash", "Infra", "InvalidOutput", "Cancelled"])
/** @since 0.1.0 @category models */
export type FailureKind = typeof FailureKind.Type

/** A failure's kind, message and log tail. @since 0.1.0 @category schemas */
export const Failure = Schema.Struct({
  kind: FailureKind,
  message: Schema.String,
  logTail: listOf(Schema.String),
  exitCode: Schema.optionalKey(Schema.Int),
  retryable: Schema.Boolean.pipe(withDefault(false)),
  /**
   * Set when the executor knows the failure is its own settings', refused by the service it calls
   * (an API key, its permissions, a model name), not the strategy's: every trial would fail alike,
   * so the run stops at this one (unless `failFast` is 0), and a resumed run runs its strategy again.
   */
  setup: Schema.optionalKey(Schema.Boolean)
})
/** @since 0.1.0 @category models */
export type Failure = typeof Failure.Type

/** One point of a learning curve. @since 0.1.0 @category schemas */
export const MetricPoint = Schema.Struct({
  step: NonNegativeInt,
  split: Schema.NonEmptyString,
  name: Schema.NonEmptyString,
  value: Schema.Finite
})
/** @since 0.1.0 @category models */
export type MetricPoint = typeof MetricPoint.Type

/** A file a trial produced, relative to its job directory. @since 0.1.0 @category schemas */
export const Artifact = Schema.Struct({ name: Schema.NonEmptyString, path: Schema.NonEmptyString })

/**
 * @example
 * ```ts
 * import { Cost, Result } from "@trex/core"
 * const r: Result.Result = Result.success({ accuracy: 0.9 }, 0.9, Cost.make({ gpuSeconds: 60 }))
 * ```
 * @since 0.1.0 @category schemas
 */
export const Result = Schema.Struct({
  metrics: Schema.Record(Schema.String, Schema.Finite).pipe(withDefault({})),
  score: Schema.optionalKey(Schema.Finite),
  curves: listOf(MetricPoint),
  artifacts: listOf(Artifact),
  summary: Schema.optionalKey(Schema.String),
  cost: Cost.Cost.pipe(withDefault({})),
  failure: Schema.optionalKey(Failure),
  /** Set when this result was reused from an earlier node with the same fingerprint. */
  reusedFrom: Schema.optionalKey(Schema.String)
})
/** @since 0.1.0 @category models */
export type Result = typeof Result.Type

/** A successful result. @since 0.1.0 @category constructors */
export const success = (metrics: Record<string, number>, score: number, cost: Cost.Cost = Cost.zero): Result => ({
  metrics,
  score,
  curves: [],
  artifacts: [],
  cost
})

/**
 * The line of a failure's log that says what went wrong: the last one with something on it, past
 * what a JavaScript runtime prints after its error (the stack's `at ...` frames, the error's
 * `{ code: ... }` fields, the `Node.js v24...` line). A Python traceback ends with its error line
 * already. `undefined` for an empty log; a log of frames alone gives its last line.
 *
 * @example
 * ```ts
 * import { Result } from "@trex/core"
 * const failed = Result.failure("Crash", "exited with code 1", {
 *   logTail: ["Error: ENOENT: no such file or directory, open '/data/train.jsonl'", "    at Object.openSync (node:fs:573:18) {", "  code: 'ENOENT'", "}", "", "Node.js v24.21.0"]
 * })
 * Result.errorLine(failed.failure!) // "Error: ENOENT: no such file or directory, open '/data/train.jsonl'"
 * ```
 * @since 0.1.0 @category getters
 */
export const errorLine = (failure: Failure): string | undefined => {
  const lines = failure.logTail.map((l) => l.trim()).filter((l) => l !== "")
  let i = lines.length - 1
  if (i >= 0 && /^Node\.js v\d/.test(lines[i]!)) i--
  // an error's fields, printed after its last frame as `... {`, `  code: 'ENOENT'`, `}`
  if (i >= 0 && lines[i] === "}") {
    const open = lines.findLastIndex((l, j) => j < i && l.endsWith("{"))
    if (open >= 0) {
      lines[open] = lines[open]!.slice(0, -1).trim()
      i = lines[open] === "" ? open - 1 : open
    }
  }
  while (i >= 0 && /^at\s/.test(lines[i]!)) i--
  return i >= 0 ? lines[i] : lines.at(-1)
}

/** A failed result. @since 0.1.0 @category constructors */
export const failure = (kind: FailureKind, message: string, options: {
  readonly logTail?: ReadonlyArray<string>
  readonly cost?: Cost.Cost
  readonly exitCode?: number
  readonly retryable?: boolean
  readonly setup?: boolean
} = {}): Result => ({
  metrics: {},
  curves: [],
  artifacts: [],
  cost: options.cost ?? Cost.zero,
  failure: {
    kind,
    message,
    logTail: options.logTail ?? [],
    retryable: options.retryable ?? false,
    ...(options.exitCode !== undefined ? { exitCode: options.exitCode } : {}),
    ...(options.setup === true ? { setup: true } : {})
  }
})

/**
 * What a job writes to `$TREX_JOB_DIR/result.json` (the job protocol).
 * @since 0.1.0 @category schemas
 */
export const JobResultFile = Schema.Struct({
  metrics: Schema.Record(Schema.String, Schema.Finite),
  primary: Schema.optionalKey(Schema.Finite),
  artifacts: listOf(Artifact),
  summary: Schema.optionalKey(Schema.String)
})
/** @since 0.1.0 @category models */
export type JobResultFile = typeof JobResultFile.Type

interface Series {
  points: Array<MetricPoint>
  /** Where each kept step is in `points`. */
  at: Map<number, number>
  /** Every `stride`-th new point is kept (1 until the series is thinned). */
  stride: number
  /** New points seen (repeats of a kept step not counted). */
  seen: number
  /** Whether the last point is one the stride keeps (else the next new point replaces it). */
  tailKept: boolean
}

/**
 * A trial's curves as its job reports them, at most `max` points in all. A point reported again
 * (same step, split and name: stdout and `metrics.jsonl`, or a replay) replaces the earlier one. When
 * the curves outgrow `max`, the longest series keeps every other point and then every other new one
 * (its first and its latest point always kept): a job that reports a metric at every one of 100,000
 * steps still has its whole curve drawn, coarser, and its last value. `thinned` says whether any was.
 *
 * @example
 * ```ts
 * import { Result } from "@trex/core"
 * const curves = new Result.Curves(100)
 * for (let step = 0; step < 10_000; step++) curves.add({ step, split: "train", name: "loss", value: 1 / (step + 1) })
 * curves.points().length // <= 100, the last point (step 9999) among them
 * ```
 * @since 0.1.0 @category models
 */
export class Curves {
  private readonly series = new Map<string, Series>()
  private size = 0
  /** Whether points were left out to stay within `max`. */
  thinned = false
  readonly max: number
  constructor(max = 2000) {
    this.max = Math.max(2, max)
  }
  /**
   * Add a point; `true` when it is kept and news (a new step, or a new value of a kept one), `false` when
   * it repeats a kept point, is left out, or will be replaced by its series' next new point (the points
   * between a thinned series' kept ones).
   */
  add(p: MetricPoint): boolean {
    const key = `${p.split}\u0000${p.name}`
    let s = this.series.get(key)
    if (s === undefined) this.series.set(key, (s = { points: [], at: new Map(), stride: 1, seen: 0, tailKept: true }))
    const i = s.at.get(p.step)
    if (i !== undefined) {
      const changed = s.points[i]!.value !== p.value
      s.points[i] = p
      return changed && (i < s.points.length - 1 || s.tailKept)
    }
    // once thinned, a step at or before the latest is one left out (reported again on the other channel)
    if (s.stride > 1 && p.step <= s.points[s.points.length - 1]!.step) return false
    if (!s.tailKept) {
      s.at.delete(s.points.pop()!.step)
      this.size--
    }
    s.at.set(p.step, s.points.length)
    s.points.push(p)
    this.size++
    s.tailKept = s.seen % s.stride === 0
    s.seen++
    if (this.size > this.max) this.thin()
    return s.tailKept
  }
  /** Every kept point, series by series, in the order each series was reported. */
  points(): Array<MetricPoint> {
    const out: Array<MetricPoint> = []
    for (const s of this.series.values()) for (const p of s.points) out.push(p)
    return out
  }
  private thin(): void {
    let longest: Series | undefined
    for (const s of this.series.values()) if (longest === undefined || s.points.length > longest.points.length) longest = s
    const s = longest!
    const last = s.points.length - 1
    const kept = s.points.filter((_, i) => i % 2 === 0 || i === last)
    this.size -= s.points.length - kept.length
    s.points = kept
    s.at = new Map(kept.map((q, i) => [q.step, i]))
    s.stride *= 2
    s.seen = 1
    s.tailKept = true
    this.thinned = true
  }
}
