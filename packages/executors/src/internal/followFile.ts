/**
 * Following a job's files on a shared filesystem as they grow (its logs, `metrics.jsonl`), through a
 * {@link CommandRunner}: the batch backends (Slurm, Grid Engine) read each one a slice at a time.
 */
import { type Backend, type Errors, JobProtocol } from "@trex/core"
import { Effect } from "effect"
import * as os from "node:os"
import type { CommandRunner } from "./commandRunner.ts"

/** What one read takes of a file: a log of gigabytes is never held whole. */
export const READ_CHUNK = 1024 * 1024

/** A file read as it grows. */
export interface Follower {
  readonly file: string
  offset: number
  splitter: JobProtocol.LineSplitter
}

/** A follower of `file` from its start. */
export const follower = (file: string): Follower => ({ file, offset: 0, splitter: new JobProtocol.LineSplitter() })

/** The name of signal number `n` (`SIGKILL`), or `signal n`. */
export const signalName = (n: number): string =>
  Object.entries(os.constants.signals).find(([, v]) => v === n)?.[0] ?? `signal ${n}`

/**
 * Reads what `f` gained since the last call a slice ({@link READ_CHUNK}) at a time, handing each
 * slice's lines to `onLines` before reading the next: a log of gigabytes is never held whole. A
 * file now shorter than what was read (rewritten, as by a requeued job) is read again from its start.
 */
export const readNew = <E>(
  runner: CommandRunner,
  f: Follower,
  final: boolean,
  onLines: (lines: ReadonlyArray<string>) => Effect.Effect<void, E>
): Effect.Effect<void, E | Errors.BackendError> =>
  Effect.gen(function*() {
    while (true) {
      const bytes = yield* runner.readFrom(f.file, f.offset, READ_CHUNK)
      if (bytes === "truncated") {
        f.offset = 0
        f.splitter = new JobProtocol.LineSplitter()
        continue
      }
      if (bytes === undefined || bytes.length === 0) break
      f.offset += bytes.length
      yield* onLines(f.splitter.push(bytes))
      if (bytes.length < READ_CHUNK) break
    }
    if (final) yield* onLines(f.splitter.end())
  })

/**
 * The reader of a batch job's output in its directory: its stdout (job protocol lines become
 * `Metric`/`Progress` events, others `Log`), its stderr (`Log`), both into `tail`, and its
 * `metrics.jsonl` (`Metric`), each from where the last call stopped. `final`: the job has ended,
 * so a last line without a newline counts too.
 */
export const jobOutput = (
  runner: CommandRunner,
  files: { readonly stdout: string; readonly stderr: string; readonly metrics: string },
  tail: JobProtocol.Tail,
  emit: (e: Backend.JobEvent) => Effect.Effect<unknown>
): (final: boolean) => Effect.Effect<void, Errors.BackendError> => {
  const stdout = follower(files.stdout)
  const stderr = follower(files.stderr)
  const metrics = follower(files.metrics)
  return (final: boolean) =>
    Effect.gen(function*() {
      yield* readNew(runner, stdout, final, (lines) =>
        Effect.forEach(lines, (line) => {
          tail.push(line)
          return emit(JobProtocol.parseLine(line) ?? { _tag: "Log", stream: "stdout", line })
        }, { discard: true }))
      yield* readNew(runner, stderr, final, (lines) =>
        Effect.forEach(lines, (line) => {
          tail.push(line)
          return emit({ _tag: "Log", stream: "stderr", line })
        }, { discard: true }))
      yield* readNew(runner, metrics, final, (lines) =>
        Effect.forEach(lines, (line) => {
          const point = JobProtocol.parseMetricsFileLine(line)
          return point !== undefined ? emit({ _tag: "Metric", point }) : Effect.void
        }, { discard: true }))
    })
}
