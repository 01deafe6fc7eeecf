/**
 * The admission queue of the Docker and SSH backends, alone: a queued job starts as soon as its backend says a
 * slot may be free (not at the queue's next poll), and a watch waiting on it follows it as soon as it starts.
 * The poll here is an hour: what happens within the tests' few seconds is what a wake or a start brings.
 */
import { assert, describe, it } from "@effect/vitest"
import type { Backend } from "@trex/core"
import { Deferred, Effect, Fiber } from "effect"
import { AdmissionQueue } from "../src/internal/admissionQueue.ts"

/** A queue of one slot, taken while `busy.now`; started jobs are listed in `started`. */
const oneSlot = () => {
  const busy = { now: true }
  const started: Array<string> = []
  const queue = new AdmissionQueue<string, true, string>({
    room: () => Effect.sync(() => (busy.now ? { wait: "no free slot: 1 of 1 in use" } : { go: true as const })),
    start: (e) => Effect.sync(() => (started.push(e.job), `container-of-${e.job}`)),
    fork: Effect.forkDetach,
    poll: "1 hour"
  })
  return { busy, started, queue }
}
const labels = { run: "r", node: "n1" }

describe("AdmissionQueue", () => {
  it.live("a job queued behind a busy slot starts once the backend wakes the queue (a job of its ended), not at the next poll", () =>
    Effect.gen(function*() {
      const { busy, started, queue } = oneSlot()
      yield* queue.enqueue({ id: "t1", labels, job: "job-1", wait: "no free slot" })
      const outcome = yield* Effect.forkChild(queue.settle("t1"))
      // the pump has looked once and waits (an hour, unless woken)
      yield* Effect.sleep("50 millis")
      assert.deepStrictEqual(started, [])
      busy.now = false
      queue.wake()
      assert.strictEqual(yield* Fiber.join(outcome).pipe(Effect.timeout("5 seconds")), "container-of-job-1")
      assert.deepStrictEqual(started, ["job-1"])
    }))

  it.live("a watch waiting on a queued job says why it waits, and follows it as soon as it starts, not after a poll", () =>
    Effect.gen(function*() {
      const { busy, queue } = oneSlot()
      yield* queue.enqueue({ id: "t1", labels, job: "job-1", wait: "no free slot" })
      const said: Array<Backend.JobEvent> = []
      const told = yield* Deferred.make<void>()
      const watching = yield* Effect.forkChild(queue.settle("t1", (e) => {
        said.push(e)
        Deferred.doneUnsafe(told, Effect.void)
      }))
      yield* Deferred.await(told)
      busy.now = false
      queue.wake()
      assert.strictEqual(yield* Fiber.join(watching).pipe(Effect.timeout("5 seconds")), "container-of-job-1")
      assert.deepStrictEqual(said, [{ _tag: "State", state: "Pending", reason: "no free slot: 1 of 1 in use" }])
    }))

  it.live("a wake while the head is being looked at is not lost", () =>
    Effect.gen(function*() {
      const started: Array<string> = []
      let looks = 0
      // the first look finds no room and, meanwhile, the backend wakes the queue: the slot freed as it was asked
      let queue: AdmissionQueue<string, true, string> | undefined
      queue = new AdmissionQueue<string, true, string>({
        room: () =>
          Effect.sync(() => {
            if (++looks > 1) return { go: true as const }
            queue!.wake()
            return { wait: "no free slot: 1 of 1 in use" }
          }),
        start: (e) => Effect.sync(() => (started.push(e.job), `container-of-${e.job}`)),
        fork: Effect.forkDetach,
        poll: "1 hour"
      })
      yield* queue.enqueue({ id: "t1", labels, job: "job-1", wait: "no free slot" })
      assert.strictEqual(yield* queue.settle("t1").pipe(Effect.timeout("5 seconds")), "container-of-job-1")
      assert.deepStrictEqual([looks, started], [2, ["job-1"]])
    }))
})
