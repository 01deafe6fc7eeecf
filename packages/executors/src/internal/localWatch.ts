/**
 * `watch` for the local backend: polls a job directory, turning new lines of the logs and of
 * `metrics.jsonl` into events, until `exit.json` appears. Works the same for a job this backend
 * started and one a previous controller started (everything it needs is on disk).
 */
import type { Backend } from "@trex/core"
import { JobProtocol } from "@trex/core"
import { Effect, Option, Stream } from "effect"
import * as Path from "node:path"
import * as Job from "./localJob.ts"

/** What this backend instance knows about a directory that has no `pid` file yet. */
export type Known = "queued" | "starting" | "unknown"

const POLL_MS = 75
/** Check every this many polls whether a running job's processes are still alive. */
const LIVENESS_EVERY = 13

interface Readers {
  readonly stdout: Job.FileLines
  readonly stderr: Job.FileLines
  readonly metrics: Job.FileLines
}

type Phase =
  | { readonly _tag: "Init" }
  /** In this backend's queue, waiting for a slot or GPUs. */
  | { readonly _tag: "Pending" }
  /** Out of the queue, its process being started (no pid file yet): reported as running. */
  | { readonly _tag: "Starting" }
  /** `behind`: a log was not read to its end (at most a bounded slice is read a step): the next step comes at once. */
  | {
    readonly _tag: "Running"
    readonly readers: Readers
    readonly tick: number
    readonly behind: boolean
    /** The exit found lost by this watch (it may not be on disk: a full one). */
    readonly lost?: Job.ExitFile
  }

const stdoutEvent = (line: string): Backend.JobEvent => JobProtocol.parseLine(line) ?? { _tag: "Log", stream: "stdout", line }

const drain = (readers: Readers, final: boolean): Array<Backend.JobEvent> => {
  const read = (r: Job.FileLines) => (final ? r.end() : r.read())
  const events: Array<Backend.JobEvent> = read(readers.stdout).map(stdoutEvent)
  for (const line of read(readers.stderr)) events.push({ _tag: "Log", stream: "stderr", line })
  for (const line of read(readers.metrics)) {
    const point = JobProtocol.parseMetricsFileLine(line)
    if (point !== undefined) events.push({ _tag: "Metric", point })
  }
  return events
}

const behind = (readers: Readers): boolean => readers.stdout.behind || readers.stderr.behind || readers.metrics.behind

const readers = (dir: string): Readers => ({
  stdout: new Job.FileLines(Path.join(dir, Job.STDOUT_FILE)),
  stderr: new Job.FileLines(Path.join(dir, Job.STDERR_FILE)),
  metrics: new Job.FileLines(Path.join(dir, JobProtocol.METRICS_FILE))
})

/**
 * Record that a job will never report an exit of its own (nobody started it, or its supervisor died),
 * and return its exit. An `exit.json` nobody can read (an older trex's write cut short by a full disk)
 * is replaced; when no exit can be written (the disk is full), the exit is reported all the same, and
 * a later watch finds it so again.
 */
const giveUp = (dir: string, reason: "abandoned" | "lost"): Job.ExitFile => {
  const now = Date.now()
  const exit: Job.ExitFile = { code: null, signal: null, startedAt: Job.readPid(dir)?.startedAt ?? now, endedAt: now, reason }
  try {
    Job.writeExitOnce(dir, exit)
    const written = Job.readExit(dir)
    if (written !== undefined) return written
    Job.writeJsonAtomic(Path.join(dir, Job.EXIT_FILE), exit)
  } catch {
    // no room to record it: reported from memory
  }
  return exit
}

interface Step {
  readonly events: ReadonlyArray<Backend.JobEvent>
  /** The next phase, or `undefined` once the Exit is out. */
  readonly next: Phase | undefined
}

const finished = (events: ReadonlyArray<Backend.JobEvent>): Step => ({ events, next: undefined })

const step = (dir: string, known: () => Known, unrecorded: () => Job.ExitFile | undefined, phase: Phase): Step => {
  const exit = (phase._tag === "Running" ? phase.lost : undefined) ?? Job.readExit(dir) ?? unrecorded()
  if (phase._tag === "Running") {
    // the job has ended: its logs are complete, read to their end a slice a step, then its Exit
    if (exit !== undefined) {
      const events = drain(phase.readers, true)
      return behind(phase.readers) ? { events, next: { ...phase, behind: true } } : finished([...events, Job.toJobExit(dir, exit)])
    }
    const events = drain(phase.readers, false)
    if (phase.tick % LIVENESS_EVERY === LIVENESS_EVERY - 1) {
      const pid = Job.readPid(dir)
      // recorded as lost: the next step (at once) reads the rest of its logs, then reports that exit
      if (pid !== undefined && !Job.isRunning(pid) && Job.readExit(dir) === undefined) {
        return { events, next: { ...phase, tick: phase.tick + 1, behind: true, lost: giveUp(dir, "lost") } }
      }
    }
    return { events, next: { ...phase, tick: phase.tick + 1, behind: behind(phase.readers) } }
  }
  const running: ReadonlyArray<Backend.JobEvent> = phase._tag === "Starting" ? [] : [{ _tag: "State", state: "Running" }]
  // A job that finished before anyone watched still reports what it printed, then its exit (one
  // reported waiting says it ran, if it did, between two polls).
  if (exit !== undefined) {
    const ran = phase._tag === "Pending" && Job.readPid(dir) !== undefined ? running : []
    return { events: ran, next: { _tag: "Running", readers: readers(dir), tick: 0, behind: true } }
  }
  if (Job.readPid(dir) !== undefined) return { events: running, next: { _tag: "Running", readers: readers(dir), tick: 0, behind: false } }
  const k = known()
  if (k === "unknown") return finished([Job.toJobExit(dir, giveUp(dir, "abandoned"))])
  // a job out of the queue runs from the moment its start begins: a drain lets it finish
  if (k === "starting") return { events: running, next: { _tag: "Starting" } }
  if (phase._tag === "Pending") return { events: [], next: phase }
  return { events: [{ _tag: "State", state: "Pending", reason: "no free slot or GPU" }], next: { _tag: "Pending" } }
}

/**
 * Events of the job in `dir`, its output replayed from the start, ending with its Exit. A log is read
 * at most {@link Job.READ_CHUNK} bytes a step, so memory stays bounded however much the job printed.
 * `unrecorded`: the exit the backend could not write to `exit.json` (a full disk), if any.
 */
export const watchDir = (dir: string, known: () => Known, unrecorded: () => Job.ExitFile | undefined = () => undefined): Stream.Stream<Backend.JobEvent> =>
  Stream.paginate<Phase, Backend.JobEvent>({ _tag: "Init" }, (phase) =>
    Effect.sync(() => step(dir, known, unrecorded, phase)).pipe(
      Effect.map(({ events, next }) => [events, Option.fromUndefinedOr(next)] as const),
      Effect.delay(phase._tag === "Init" || (phase._tag === "Running" && phase.behind) ? 0 : POLL_MS)
    ))
