/** Types for the TREX job-protocol reporter (trex_reporter.mjs). See docs/job-protocol.md. */

/** Error raised for any misuse of the protocol (bad input, missing job dir). */
export declare class TrexReporterError extends Error {
  constructor(message: string)
}

/** One metric point. `step` is a non-negative integer, `value` a finite number. */
export interface MetricPoint {
  readonly step: number
  readonly split: string
  readonly name: string
  readonly value: number
}

/** A file produced by the job, path relative to the job dir. */
export interface Artifact {
  readonly name: string
  readonly path: string
}

/** What a job reports at its end. */
export interface JobResult {
  readonly metrics: Readonly<Record<string, number>>
  readonly primary?: number
  readonly artifacts?: ReadonlyArray<Artifact>
  readonly summary?: string
}

/** The contents of job.json. */
export interface JobInfo {
  readonly run: string
  readonly node: string
  readonly task?: unknown
  readonly [key: string]: unknown
}

/** The absolute job directory from $TREX_JOB_DIR. */
export declare function jobDir(): string
/** The parsed strategy.json (unvalidated: the trial validates the fields it uses). */
export declare function readStrategy(): Record<string, unknown>
/** The parsed job.json. */
export declare function readJob(): JobInfo
/** Print `TREX_METRIC {json}` and append the point to metrics.jsonl. */
export declare function metric(point: MetricPoint): void
/** Print `TREX_PROGRESS {json}`; fraction in [0, 1]. */
export declare function progress(fraction: number, message?: string): void
/** Write result.json atomically; returns what was written. */
export declare function writeResult(result: JobResult): JobResult
