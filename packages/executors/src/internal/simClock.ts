/**
 * The simulator's engine: jobs on `gpus` slots in simulated time, and the driver that moves
 * the clock.
 *
 * Time is virtual and moves only when nothing else can happen: every unfinished job is being
 * watched and no submit, watch, cancel or event delivery happened for `settleTurns` scheduler
 * rounds (each `Effect.yieldNow` is one `setImmediate` round). The driver then jumps to the
 * next scheduled event (a curve point or an exit) and delivers every event due at that time.
 * A zero-cost job finishes inside its `submit`, so zero-cost trials never wait for the driver.
 * Deterministic as long as what runs between a job's exit and the next submit is CPU-bound
 * (no real timers or I/O): a slower reaction could let the clock pass it.
 */
import type { Backend, ExperimentNode } from "@trex/core"
import { type Cause, Effect, Latch, Queue } from "effect"
import { describe, type Landscape, type Match } from "./simLandscape.ts"

type JobEvent = Backend.JobEvent
type Watcher = Queue.Queue<JobEvent, Cause.Done>

/**
 * What a job runs: a matched point (with the strategy's own values), or a strategy that could not be
 * read or is not replayed (a configuration the table never ran, under `unrecorded: fail`).
 */
export type Work =
  | { readonly _tag: "Point"; readonly match: Match; readonly values: ReadonlyArray<unknown> }
  | { readonly _tag: "Invalid"; readonly message: string }

/** A simulated job. */
export interface SimJob {
  readonly ref: ExperimentNode.JobRef
  readonly labels: Backend.Labels
  readonly work: Work
  readonly seconds: number
  state: "Pending" | "Running" | "Finished"
  startedAt: number
  /** What it will emit and when (released once it has finished). */
  timeline: ReadonlyArray<{ readonly at: number; readonly event: JobEvent }>
  next: number
  exit: Backend.JobExit | undefined
  /** Its watchers (rarely more than one; an array costs less than a set per job). */
  readonly watchers: Array<Watcher>
  /** Its index in its run's list. */
  readonly slot: number
  /** Events emitted while nobody watched, for the first watcher (a job's stdout pipe). */
  readonly buffer: Array<JobEvent>
}

const NOTHING: ReadonlyArray<never> = []

const timelineOf = (landscape: Landscape, job: SimJob, start: number): Array<{ at: number; event: JobEvent }> => {
  const seconds = job.seconds
  if (job.work._tag === "Invalid") {
    return [{
      at: start,
      event: {
        _tag: "Exit",
        outcome: "Failed",
        failureKind: "Crash",
        exitCode: 1,
        message: job.work.message,
        logTail: [job.work.message],
        wallSeconds: 0,
        gpuSeconds: 0
      }
    }]
  }
  const { point, distance } = job.work.match
  const out: Array<{ at: number; event: JobEvent }> = []
  const curve = landscape.curve
  if (curve !== undefined) {
    const sign = landscape.metric.direction === "maximize" ? 1 : -1
    let best = -Infinity
    point.curve.forEach((raw, i) => {
      best = Math.max(best, sign * raw)
      const value = curve.reduce === "best" ? sign * best : raw
      out.push({
        at: start + (seconds * (i + 1)) / point.curve.length,
        event: { _tag: "Metric", point: { step: i + 1, split: curve.split, name: curve.name, value } }
      })
    })
  }
  // a configuration the table never ran is said to be one, with the row whose outcome it takes
  const summary = distance === 0
    ? `${landscape.name}: exact row ${point.id}`
    : `${landscape.name}: nearest row ${point.id} (distance ${distance.toFixed(4)}): the table has no run of this configuration ` +
      `(${describe(landscape, job.work.values)}); its outcome is that row's (${describe(landscape, point.values)})`
  const exit: Backend.JobExit = point.score === undefined
    ? {
      _tag: "Exit",
      outcome: "Failed",
      failureKind: "Crash",
      exitCode: 1,
      message: point.failure ?? "the recorded run failed",
      logTail: [summary, point.failure ?? "the recorded run failed"],
      wallSeconds: seconds,
      gpuSeconds: seconds
    }
    : {
      _tag: "Exit",
      outcome: "Succeeded",
      exitCode: 0,
      result: {
        metrics: { ...point.metrics, [landscape.metric.column]: point.score },
        primary: point.score,
        artifacts: [],
        summary
      },
      logTail: [summary],
      wallSeconds: seconds,
      gpuSeconds: seconds
    }
  out.push({ at: start + seconds, event: exit })
  return out
}

/** The mutable state of one simulator. All methods are synchronous (one JS turn). */
export class Engine {
  now = 0
  /** Changes on every submit, watch, cancel and delivered event; the driver waits for it to stay put. */
  activity = 0
  busySeconds = 0
  readonly jobs = new Map<string, SimJob>()
  private readonly pending: Array<SimJob> = []
  private readonly running = new Set<SimJob>()
  private counter = 0
  /** Each run's jobs as `list` reports them, kept current so a list is one copy. */
  private readonly byRun = new Map<string, Array<Backend.JobInfo>>()
  readonly wake = Latch.makeUnsafe(false)
  /** Whether the driver waits on `wake`. */
  sleeping = false

  readonly landscape: Landscape
  readonly gpus: number
  constructor(landscape: Landscape, gpus: number) {
    this.landscape = landscape
    this.gpus = gpus
  }

  get inUse(): number {
    return this.running.size
  }

  /**
   * Call after a change, never before: opening the latch may resume the driver synchronously.
   * The driver sleeps on the latch only while time cannot move, so it is woken only once it can
   * (a zero-cost job, which finishes inside its submit, wakes nobody); while it is awake it
   * watches `activity` instead, and a change costs no check.
   */
  touch(): void {
    this.activity++
    if (this.sleeping && this.canAdvance()) this.wake.openUnsafe()
  }

  submit(labels: Backend.Labels, work: Work): SimJob {
    const id = `sim-${++this.counter}`
    const seconds = work._tag === "Point" ? work.match.point.seconds : 0
    let infos = this.byRun.get(labels.run)
    if (infos === undefined) this.byRun.set(labels.run, infos = [])
    const job: SimJob = {
      ref: { backend: "simulator", id, data: {} },
      labels,
      work,
      seconds,
      state: "Pending",
      startedAt: this.now,
      timeline: [],
      next: 0,
      exit: undefined,
      watchers: [],
      slot: infos.length,
      buffer: []
    }
    this.jobs.set(id, job)
    infos.push({ ref: job.ref, labels, state: "Pending" })
    this.pending.push(job)
    this.startQueued()
    this.touch()
    return job
  }

  private startQueued(): void {
    while (this.running.size < this.gpus && this.pending.length > 0) {
      const job = this.pending.shift()!
      this.setState(job, "Running")
      job.startedAt = this.now
      job.timeline = timelineOf(this.landscape, job, this.now)
      this.running.add(job)
      this.emitDue(job)
    }
  }

  private setState(job: SimJob, state: SimJob["state"]): void {
    job.state = state
    this.byRun.get(job.labels.run)![job.slot] = { ref: job.ref, labels: job.labels, state }
  }

  /** The jobs of a run, for reconciliation. */
  list(run: string): ReadonlyArray<Backend.JobInfo> {
    return this.byRun.get(run)?.slice() ?? []
  }

  private emit(job: SimJob, event: JobEvent): void {
    if (job.watchers.length === 0) {
      if (event._tag !== "Exit") job.buffer.push(event)
    } else {
      for (const w of job.watchers) Queue.offerUnsafe(w, event)
    }
    if (event._tag === "Exit") {
      job.exit = event
      for (const w of job.watchers) Queue.endUnsafe(w)
      job.watchers.length = 0
    }
  }

  private finish(job: SimJob, exit: Backend.JobExit): void {
    job.timeline = NOTHING
    job.next = 0
    if (job.state === "Running") {
      this.running.delete(job)
      this.busySeconds += this.now - job.startedAt
    }
    this.setState(job, "Finished")
    this.emit(job, exit)
  }

  /** Deliver the job's events due by now; finish it when its exit is due. */
  private emitDue(job: SimJob): void {
    while (job.next < job.timeline.length && job.timeline[job.next]!.at <= this.now) {
      const { event } = job.timeline[job.next++]!
      if (event._tag === "Exit") return this.finish(job, event)
      this.emit(job, event)
    }
  }

  watch(job: SimJob, watcher: Watcher): void {
    if (job.exit === undefined) Queue.offerUnsafe(watcher, { _tag: "State", state: job.state === "Pending" ? "Pending" : "Running" })
    for (const e of job.buffer) Queue.offerUnsafe(watcher, e)
    job.buffer.length = 0
    if (job.exit !== undefined) {
      Queue.offerUnsafe(watcher, job.exit)
      Queue.endUnsafe(watcher)
    } else {
      job.watchers.push(watcher)
    }
    this.touch()
  }

  unwatch(job: SimJob, watcher: Watcher): void {
    const i = job.watchers.indexOf(watcher)
    if (i >= 0) job.watchers.splice(i, 1)
    this.touch()
  }

  cancel(job: SimJob): void {
    if (job.state === "Finished") return
    if (job.state === "Pending") this.pending.splice(this.pending.indexOf(job), 1)
    const ran = job.state === "Running" ? this.now - job.startedAt : 0
    this.finish(job, {
      _tag: "Exit",
      outcome: "Cancelled",
      failureKind: "Cancelled",
      message: "cancelled",
      logTail: [],
      wallSeconds: ran,
      gpuSeconds: ran
    })
    this.startQueued()
    this.touch()
  }

  /** Whether time may move: something is scheduled and every unfinished job is watched. */
  canAdvance(): boolean {
    if (this.running.size === 0) return false
    for (const job of this.running) if (job.watchers.length === 0) return false
    for (const job of this.pending) if (job.watchers.length === 0) return false
    return true
  }

  /** Jump to the next scheduled event and deliver everything due then (in submission order). */
  advance(): void {
    let next = Infinity
    for (const job of this.running) {
      const e = job.timeline[job.next]
      if (e !== undefined && e.at < next) next = e.at
    }
    if (next === Infinity) return
    this.now = Math.max(this.now, next)
    const due = [...this.running].sort((a, b) => Number(a.ref.id.slice(4)) - Number(b.ref.id.slice(4)))
    for (const job of due) this.emitDue(job)
    this.startQueued()
    this.touch()
  }

  /** Busy GPU-seconds so far, running jobs included. */
  busy(): number {
    let b = this.busySeconds
    for (const job of this.running) b += this.now - job.startedAt
    return b
  }
}

/**
 * The clock driver: sleeps while time cannot move, otherwise waits `settleTurns` quiet
 * scheduler rounds and advances. Runs until interrupted (the layer's scope closes).
 */
export const drive = (engine: Engine, settleTurns: number): Effect.Effect<void> =>
  Effect.gen(function*() {
    for (;;) {
      engine.wake.closeUnsafe()
      if (!engine.canAdvance()) {
        engine.sleeping = true
        yield* engine.wake.await
        engine.sleeping = false
        continue
      }
      const seen = engine.activity
      let quiet = true
      for (let i = 0; i < settleTurns && quiet; i++) {
        yield* Effect.yieldNow
        quiet = engine.activity === seen
      }
      if (quiet && engine.canAdvance()) engine.advance()
    }
  })
