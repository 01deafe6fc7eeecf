/**
 * What a backend with its own admission queue (Docker, SSH) must show of two jobs queued behind a
 * running one: both listed `Pending`, the second says one job is ahead of it, and withdrawing it
 * takes it out of the queue at once (and only once), its watch ending `Cancelled`.
 */
import { assert } from "@effect/vitest"
import type { Backend, ExperimentNode } from "@trex/core"
import { Deferred, Effect, Fiber, Stream } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"

/** Check the queue as above; returns the first queued job's watch, forked (it runs once the slot frees). */
export const checkQueued = (backend: Backend.BackendShape, run: string, first: ExperimentNode.JobRef, second: ExperimentNode.JobRef) =>
  Effect.gen(function*() {
    assert.deepStrictEqual([first.data["queued"], second.data["queued"]], [true, true], JSON.stringify([first, second]))
    const listed = yield* backend.list(run)
    assert.deepStrictEqual([first.id, second.id].map((id) => listed.find((j) => j.ref.id === id)?.state), ["Pending", "Pending"])
    const watching = yield* Stream.runCollect(backend.watch(first)).pipe(Effect.forkChild)
    // behind another queued job, it says so
    const waits = yield* backend.watch(second).pipe(Stream.take(1), Stream.runCollect)
    assert.deepStrictEqual(waits, [{ _tag: "State", state: "Pending", reason: "1 job ahead in the queue" }])
    // withdrawn while queued: it never starts, and its watch ends at once
    assert.isTrue(yield* backend.withdraw!(second))
    assert.isFalse(yield* backend.withdraw!(second))
    const ended = yield* Stream.runCollect(backend.watch(second))
    assert.deepStrictEqual(ended.map((e) => (e._tag === "Exit" ? e.outcome : e._tag)), ["Cancelled"])
    return watching
  })

/** Watch a job until it reports Running: the watch's fiber, collecting its events to the end. */
export const untilRunning = (backend: Backend.BackendShape, ref: ExperimentNode.JobRef, seen: Array<Backend.JobEvent> = []) =>
  Effect.gen(function*() {
    const running = yield* Deferred.make<void>()
    const watching = yield* Stream.runCollect(backend.watch(ref).pipe(
      Stream.tap((e) => Effect.sync(() => void seen.push(e))),
      Stream.tap((e) => e._tag === "State" && e.state === "Running" ? Deferred.succeed(running, undefined) : Effect.void)
    )).pipe(Effect.forkChild)
    yield* Deferred.await(running)
    return watching
  })

/** A job that runs until a file `go` appears in its directory (at most a minute), then exits with `code`. */
const heldScript = (code: number) => `i=0; while [ ! -f go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; exit ${code}`

/**
 * What a backend with its own admission queue owes a job queued behind its one slot, however the job
 * holding the slot ends (it succeeds, fails, is cancelled): the queued job starts on the slot's release.
 * Make `backend` with its queue's poll an hour (`QueuePoll`): a job that waits for the poll fails the test.
 * `spec` makes a job of a shell script; `dirOf` is a job's directory as the controller sees it.
 */
export const checkSlotReleases = (
  backend: Backend.BackendShape,
  spec: (script: string) => Backend.JobSpec,
  dirOf: (ref: ExperimentNode.JobRef) => string
) =>
  Effect.gen(function*() {
    const refs = yield* Effect.forEach([heldScript(0), heldScript(3), heldScript(0), "echo last"], (s) => backend.submit(spec(s)))
    assert.deepStrictEqual(refs.map((r) => r.data["queued"] === true), [false, true, true, true])
    const go = (ref: ExperimentNode.JobRef) => Effect.sync(() => Fs.writeFileSync(Path.join(dirOf(ref), "go"), ""))
    const ends = [["Succeeded", go], ["Failed", go], ["Cancelled", backend.cancel]] as const
    for (const [i, [outcome, end]] of ends.entries()) {
      // the job that holds the slot runs (a queued one: it started on the last one's release)
      const watching = yield* untilRunning(backend, refs[i]!)
      yield* end(refs[i]!)
      const events = yield* Fiber.join(watching)
      assert.strictEqual((events.at(-1) as Backend.JobExit).outcome, outcome)
    }
    const last = yield* Stream.runCollect(backend.watch(refs[3]!))
    assert.deepStrictEqual([(last.at(-1) as Backend.JobExit).outcome, (last.at(-1) as Backend.JobExit).logTail], ["Succeeded", ["last"]])
  })
