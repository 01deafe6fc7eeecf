/**
 * A training job's metric and progress reports as the executors pass them on: the reports of one
 * chunk of the job's events (a poll's worth: thousands of lines from a job that reports at every step)
 * become one progress event, holding the metric points the trial's curves keep and the latest fraction;
 * a report of progress alone is passed on at most once a {@link PROGRESS_EVERY_MS}.
 */
import type { Backend, ExecutorAgent } from "@trex/core"
import { Result } from "@trex/core"

/** A report of progress alone (no metric point) is passed on at most this often: the display needs no more. */
export const PROGRESS_EVERY_MS = 1000

type Progress = Extract<ExecutorAgent.ExecutionEvent, { _tag: "Progress" }>

export class ProgressReports {
  readonly curves: Result.Curves
  private metrics: Array<Result.MetricPoint> = []
  private progress: { fraction: number; message?: string } | undefined
  private progressAt = Number.NEGATIVE_INFINITY
  constructor(maxCurvePoints?: number) {
    this.curves = new Result.Curves(maxCurvePoints)
  }
  /** Take a Metric or Progress event in (into the curves, and the next report if it is news). */
  add(ev: Extract<Backend.JobEvent, { _tag: "Metric" | "Progress" }>): void {
    if (ev._tag === "Metric") {
      if (this.curves.add(ev.point)) this.metrics.push(ev.point)
    } else {
      this.progress = ev.message !== undefined ? { fraction: ev.fraction, message: ev.message } : { fraction: ev.fraction }
    }
  }
  /** The report of what was added since the last flush, `now` (ms), if there is one to pass on. */
  flush(now: number): Progress | undefined {
    const { metrics, progress } = this
    this.metrics = []
    this.progress = undefined
    if (metrics.length === 0 && (progress === undefined || now - this.progressAt < PROGRESS_EVERY_MS)) return undefined
    if (progress !== undefined) this.progressAt = now
    return { _tag: "Progress", metrics, ...progress }
  }
}
