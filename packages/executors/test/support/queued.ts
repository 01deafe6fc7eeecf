/**
 * What a backend with its own admission queue (Docker, SSH) must show of two jobs queued behind a
 * running one: both listed `Pending`, the second says one job is ahead of it, and withdrawing it
 * takes it out of the queue at once (and only once), its watch ending `Cancelled`.
 */
import { assert } from "@effect/vitest"
import type { Backend, ExperimentNode } from "@trex/core"
import { Effect, Stream } from "effect"

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
