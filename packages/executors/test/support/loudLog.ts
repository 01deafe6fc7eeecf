/**
 * The backends' "a log of tens of megabytes" test, shared: a job that prints `LOUD_LINES` numbered
 * lines at once and then a `\r` progress bar, watched by a consumer slower than the job.
 */
import { assert } from "@effect/vitest"
import type { Backend } from "@trex/core"
import { Effect, Stream } from "effect"

/** Lines the loud job prints (about 20 MB, more than a slice a watch reads at once). */
export const LOUD_LINES = 200_000

/** The shell commands of the loud job: the lines, then a progress bar rewritten with `\r`. */
export const loudScript = [
  `awk 'BEGIN { for (i = 0; i < ${LOUD_LINES}; i++) printf "line %08d %s\\n", i, sprintf("%86s", "") }'`,
  `printf 'bar  10%%\\rbar 100%%\\n'`
]

/**
 * Watch the loud job with a consumer that sleeps between chunks (an unbounded queue would fill with
 * the log meanwhile) and check every line in order, the bar as shown, the tail, and that no chunk
 * held more than the watch's bound. Returns the events, for the caller's own checks.
 */
export const checkLoudWatch = <E>(watch: Stream.Stream<Backend.JobEvent, E>) =>
  Effect.gen(function*() {
    const chunks = yield* Stream.runCollect(Stream.chunks(watch).pipe(Stream.tap(() => Effect.sleep("10 millis"))))
    const events = chunks.flat()
    const exit = events.at(-1) as Backend.JobExit
    assert.strictEqual(exit._tag, "Exit")
    assert.strictEqual(exit.outcome, "Succeeded", JSON.stringify(exit))
    const logged = events.flatMap((e) => (e._tag === "Log" ? [e.line] : []))
    assert.strictEqual(logged.length, LOUD_LINES + 1)
    assert.isTrue(logged.slice(0, LOUD_LINES).every((l, i) => l.startsWith(`line ${String(i).padStart(8, "0")} `)))
    assert.strictEqual(logged.at(-1), "bar 100%")
    assert.deepStrictEqual(exit.logTail, logged.slice(-40))
    const biggest = chunks.reduce((m, c) => Math.max(m, c.length), 0)
    assert.isAtMost(biggest, 4096, `a chunk of ${biggest} events: the watch's queue is not bounded`)
    return { events, exit }
  })
