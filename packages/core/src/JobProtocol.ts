/**
 * The job protocol shared by every backend: a job reads `$TREX_JOB_DIR/strategy.json`,
 * reports `TREX_METRIC {json}` / `TREX_PROGRESS {json}` lines on stdout or appends metric
 * objects to `$TREX_JOB_DIR/metrics.jsonl`, and writes `$TREX_JOB_DIR/result.json`.
 * See `docs/job-protocol.md`.
 *
 * @since 0.1.0
 */
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { JobEvent } from "./Backend.ts"
import * as C from "./internal/canonical.ts"
import { JobResultFile, MetricPoint } from "./Result.ts"
import * as Strategy from "./Strategy.ts"

/** Environment variable holding the job directory. @since 0.1.0 @category constants */
export const JOB_DIR_ENV = "TREX_JOB_DIR"
/** @since 0.1.0 @category constants */
export const STRATEGY_FILE = "strategy.json"
/** @since 0.1.0 @category constants */
export const JOB_FILE = "job.json"
/** @since 0.1.0 @category constants */
export const METRICS_FILE = "metrics.jsonl"
/** @since 0.1.0 @category constants */
export const RESULT_FILE = "result.json"
/** Lines longer than this are cut before parsing or logging (a job can print anything). @since 0.1.0 @category constants */
export const MAX_LINE = 16_384

const encodeStrategy = C.encoder(Strategy.Strategy, C.strategy)
const decodeStrategy = C.decoder(Strategy.Strategy, C.strategy)

/**
 * The content of a job's `strategy.json`: the encoded strategy, indented. A decoded strategy is
 * written without another pass through the schema.
 *
 * @example
 * ```ts
 * import { JobProtocol, Strategy } from "@trex/core"
 * const s = Strategy.decodeSync({ data: { sources: [{ name: "a" }] }, training: { learningRate: 1e-3, epochs: 1, batchSize: 8 } })
 * JobProtocol.strategyFile(s)
 * ```
 * @since 0.1.0 @category encoding
 */
export const strategyFile = (strategy: Strategy.Strategy): string => JSON.stringify(encodeStrategy(strategy), null, 2)

/**
 * Read the content of a `strategy.json`; throws a `SyntaxError` (not JSON) or a `SchemaError`
 * (not a strategy), as `Strategy.decodeSync(JSON.parse(text))` does.
 *
 * @example
 * ```ts
 * import { JobProtocol } from "@trex/core"
 * JobProtocol.readStrategyFile('{"data":{"sources":[{"name":"a"}]},"training":{"learningRate":0.001,"epochs":1,"batchSize":8}}')
 * ```
 * @since 0.1.0 @category parsing
 */
export const readStrategyFile = (text: string): Strategy.Strategy => decodeStrategy(JSON.parse(text))

const slowResultFile = Schema.decodeUnknownExit(JobResultFile)

/**
 * The largest `result.json` a backend reads (64 MiB): a bigger one fails the trial as `InvalidOutput`
 * saying so, rather than holding the file (and its parse, several times its size) in the controller.
 * @since 0.1.0 @category constants
 */
export const MAX_RESULT_BYTES = 64 << 20
/**
 * A job's `result.json` as a backend read it, parsed, or what is wrong with it in the words every
 * backend uses: `undefined` when the job wrote none; too big when the file is over
 * {@link MAX_RESULT_BYTES} (`size`, its size when the backend knows it; a backend that does not reads
 * `MAX_RESULT_BYTES + 1` bytes, and getting them all means too big); otherwise its JSON.
 *
 * @example
 * ```ts
 * import { JobProtocol } from "@trex/core"
 * JobProtocol.parseResultBytes('{"metrics":{"accuracy":0.9}}') // { result: { metrics: { accuracy: 0.9 } } }
 * JobProtocol.parseResultBytes(undefined) // { resultError: "the job wrote no result.json" }
 * ```
 * @since 0.1.0 @category parsing
 */
export const parseResultBytes = (
  bytes: Uint8Array | string | undefined,
  size?: number
): { readonly result: unknown } | { readonly resultError: string } => {
  if (bytes === undefined) return { resultError: `the job wrote no ${RESULT_FILE}` }
  if ((size ?? bytes.length) > MAX_RESULT_BYTES) {
    const mb = (n: number) => `${(n / 2 ** 20).toFixed(0)} MB`
    return {
      resultError: `${RESULT_FILE} is ${size !== undefined ? `${mb(size)}, ` : ""}more than the ${mb(MAX_RESULT_BYTES)} the controller reads ` +
        "(keep its metrics and a short summary in it; put bulk data in an artifact)"
    }
  }
  try {
    return { result: JSON.parse(typeof bytes === "string" ? bytes : new TextDecoder().decode(bytes)) }
  } catch (e) {
    return { resultError: `${RESULT_FILE} is not valid JSON: ${e instanceof Error ? e.message : String(e)}` }
  }
}

/** Metrics of a `result.json` kept on a result (the task's metric always among them). @since 0.1.0 @category constants */
export const MAX_RESULT_METRICS = 1_000
/** Characters of a `result.json`'s `summary` kept on a result. @since 0.1.0 @category constants */
export const MAX_SUMMARY = 4_000

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * A `result.json` within bounds, before it is decoded: every metric after the first
 * {@link MAX_RESULT_METRICS} (but `keep`, the task's metric) and a summary's text past
 * {@link MAX_SUMMARY} characters are left out, and the summary says so.
 */
const bounded = (input: unknown, keep: string | undefined): unknown => {
  if (!isRecord(input)) return input
  const notes: Array<string> = []
  let out = input
  const metrics = input["metrics"]
  if (isRecord(metrics)) {
    const names = Object.keys(metrics)
    if (names.length > MAX_RESULT_METRICS) {
      const kept: Record<string, unknown> = {}
      for (const name of names.slice(0, MAX_RESULT_METRICS)) kept[name] = metrics[name]
      if (keep !== undefined && keep in metrics) kept[keep] = metrics[keep]
      notes.push(`${names.length - Object.keys(kept).length} of its ${names.length} metrics left out (the first ${MAX_RESULT_METRICS} kept)`)
      out = { ...out, metrics: kept }
    }
  }
  const summary = input["summary"]
  if (typeof summary === "string" && summary.length > MAX_SUMMARY) {
    notes.push(`its summary cut from ${summary.length} characters`)
    out = { ...out, summary: `${summary.slice(0, MAX_SUMMARY)}…` }
  }
  if (notes.length === 0) return out
  const said = typeof out["summary"] === "string" ? `${out["summary"]} ` : ""
  return { ...out, summary: `${said}[trex: result.json too big: ${notes.join("; ")}; the job directory's result.json has it all]` }
}

/**
 * Decode the parsed content of a job's `result.json`. A file in canonical form (every key of the
 * schema present, nothing else) is only checked, without the schema's parser; anything else
 * goes through the schema, which fills defaults (`artifacts`) or reports every issue. A file over
 * the bounds ({@link MAX_RESULT_METRICS} metrics, a summary of {@link MAX_SUMMARY} characters) is
 * cut to them first, its summary saying what was left out; `keep` names a metric never left out
 * (the task's).
 *
 * @example
 * ```ts
 * import { JobProtocol } from "@trex/core"
 * JobProtocol.decodeResultFile({ metrics: { accuracy: 0.9 }, primary: 0.9 })
 * ```
 * @since 0.1.0 @category parsing
 */
export const decodeResultFile = (input: unknown, keep?: string): Exit.Exit<JobResultFile, Schema.SchemaError> => {
  const within = bounded(input, keep)
  return C.jobResultFile(within) ? Exit.succeed(within as JobResultFile) : slowResultFile(within, { errors: "all" })
}

const slowMetric = Schema.decodeUnknownOption(MetricPoint)
const decodeMetric = (u: unknown): Option.Option<MetricPoint> => (C.metricPoint(u) ? Option.some(u as MetricPoint) : slowMetric(u))
const Progress = Schema.Struct({ fraction: Schema.Finite, message: Schema.optionalKey(Schema.String) })
const decodeProgress = Schema.decodeUnknownOption(Progress)

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/**
 * Parse one line of a job's stdout: a metric, a progress report, or `undefined` for a plain log line.
 * Malformed protocol lines are treated as log lines (a job's bad output never stops the run).
 *
 * @example
 * ```ts
 * import { JobProtocol } from "@trex/core"
 * JobProtocol.parseLine('TREX_METRIC {"step":1,"split":"train","name":"loss","value":0.5}')
 * ```
 * @since 0.1.0 @category parsing
 */
export const parseLine = (line: string): Extract<JobEvent, { _tag: "Metric" | "Progress" }> | undefined => {
  if (line.startsWith("TREX_METRIC ")) {
    const m = decodeMetric(parseJson(line.slice(12)))
    return m._tag === "Some" ? { _tag: "Metric", point: m.value } : undefined
  }
  if (line.startsWith("TREX_PROGRESS ")) {
    const p = decodeProgress(parseJson(line.slice(14)))
    if (p._tag === "None") return undefined
    const fraction = Math.min(1, Math.max(0, p.value.fraction))
    return p.value.message !== undefined
      ? { _tag: "Progress", fraction, message: p.value.message }
      : { _tag: "Progress", fraction }
  }
  return undefined
}

/** Parse a `metrics.jsonl` line; `undefined` if it is not a valid metric. @since 0.1.0 @category parsing */
export const parseMetricsFileLine = (line: string) => {
  const m = decodeMetric(parseJson(line))
  return m._tag === "Some" ? m.value : undefined
}

/**
 * What a terminal shows of a line: the text after its last carriage return that is not blank (a
 * progress bar rewritten in place with `\r`, as tqdm does, shows its latest state), the line itself
 * when it has none.
 *
 * @example
 * ```ts
 * import { JobProtocol } from "@trex/core"
 * JobProtocol.shownLine("\r 10%|#   |\r 20%|##  |") // " 20%|##  |"
 * ```
 * @since 0.1.0 @category parsing
 */
export const shownLine = (line: string): string => {
  let end = line.length
  for (let r = line.lastIndexOf("\r"); r >= 0; r = line.lastIndexOf("\r", r - 1)) {
    if (line.slice(r + 1, end).trim() !== "") return line.slice(r + 1, end)
    end = r
    if (r === 0) break
  }
  return line.slice(0, end)
}

const cut = (l: string) => (l.length > MAX_LINE ? l.slice(0, MAX_LINE) + "…" : l)

/**
 * Split a growing byte stream into lines, as a terminal shows them ({@link shownLine}: a line
 * rewritten with `\r` is its last state), cutting enormous lines at {@link MAX_LINE} and decoding
 * invalid UTF-8 with replacement characters. A progress bar rewritten for hours without a newline
 * holds only its current state, not every state it printed.
 *
 * `whole` names a prefix of lines kept whole, as written (up to `wholeMax` characters, default
 * 96 MiB: a base64 `result.json` of {@link MAX_RESULT_BYTES}), for a backend that reads a job's
 * result from its log.
 *
 * @example
 * ```ts
 * import { JobProtocol } from "@trex/core"
 * const s = new JobProtocol.LineSplitter()
 * s.push("epoch 1\n 10%\r 20%") // ["epoch 1"]
 * s.end() // [" 20%"]
 * ```
 * @since 0.1.0 @category parsing
 */
export class LineSplitter {
  private buf = ""
  private readonly decoder = new TextDecoder("utf-8", { fatal: false })
  /** Whether `buf` may hold a carriage return (checked on the raw chunks, faster than on the text). */
  private carriage = false
  private readonly whole: string | undefined
  private readonly wholeMax: number
  constructor(options?: { readonly whole?: string | undefined; readonly wholeMax?: number | undefined }) {
    this.whole = options?.whole
    this.wholeMax = options?.wholeMax ?? 96 << 20
  }
  private shown(l: string): string {
    return this.whole !== undefined && l.startsWith(this.whole) ? l : cut(shownLine(l))
  }
  push(chunk: Uint8Array | string): Array<string> {
    if (!this.carriage) this.carriage = typeof chunk === "string" ? chunk.includes("\r") : chunk.includes(13)
    const text = typeof chunk === "string" ? chunk : this.decoder.decode(chunk, { stream: true })
    let out: Array<string> = []
    if (text.includes("\n")) {
      const lines = (this.buf + text).split("\n")
      this.buf = lines.pop() ?? ""
      out = lines.map((l) => this.shown(l))
    } else {
      // no line ends here: the text is only appended (a long line is not scanned again at each chunk)
      this.buf += text
    }
    if (this.buf.length > MAX_LINE * 4 && !(this.whole !== undefined && this.buf.startsWith(this.whole) && this.buf.length <= this.wholeMax)) {
      // states overwritten by a carriage return are gone from the screen: keep the one being written
      const r = this.carriage ? this.buf.lastIndexOf("\r") : -1
      if (r >= 0) this.buf = this.buf.slice(r)
      if (this.buf.length > MAX_LINE * 4) {
        // one enormous line (it has no carriage return past its first character)
        out.push(cut(this.buf.slice(r >= 0 ? 1 : 0)))
        this.buf = ""
        this.carriage = false
      }
    }
    return out
  }
  end(): Array<string> {
    const rest = this.buf + this.decoder.decode()
    this.buf = ""
    this.carriage = false
    return rest.length > 0 ? [this.shown(rest)] : []
  }
}

/** Keep the last `n` lines. @since 0.1.0 @category utilities */
export class Tail {
  private readonly lines: Array<string> = []
  private readonly n: number
  constructor(n = 40) {
    this.n = n
  }
  push(line: string): void {
    this.lines.push(line)
    if (this.lines.length > this.n) this.lines.shift()
  }
  get(): ReadonlyArray<string> {
    return [...this.lines]
  }
}
