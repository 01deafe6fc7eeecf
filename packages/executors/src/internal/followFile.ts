/**
 * Following a job's files on a shared filesystem as they grow (its logs, `metrics.jsonl`), through a
 * {@link CommandRunner}: the batch backends (Slurm, Grid Engine) read each one a slice at a time.
 */
import { JobProtocol } from "@trex/core"
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
) =>
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
