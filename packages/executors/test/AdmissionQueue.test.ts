/**
 * The admission queue of the Docker and SSH backends, alone: a queued job starts as soon as room may have come (a
 * slot given back, however its job ended; a queued job taken out), not at the queue's next poll, and a watch waiting
 * on it follows it as soon as it starts. The poll here is an hour: what happens within the tests' few seconds is
 * what a slot's release or a start brings.
 */
import { assert, describe, it } from "@effect/vitest"
import type { Backend } from "@trex/core"
import { Deferred, Effect, Exit, Fiber } from "effect"
import { AdmissionQueue } from "../src/internal/admissionQueue.ts"

/** A queue of one slot, counted by the queue itself (as SSH's hosts are): a started job takes it. */
const oneSlot = () => {
  const started: Array<string> = []
  /** Done once the pump has looked and found no room: it waits (an hour, unless woken). */
  const looked = Deferred.makeUnsafe<void>()
  const queue: AdmissionQueue<string, true, string, true> = new AdmissionQueue<string, true, string, true>({
    room: () =>
      Effect.sync(() => {
        if (queue.held.size === 0) return { go: true as const }
        Deferred.doneUnsafe(looked, Exit.void)
        return { wait: "no free slot: 1 of 1 in use" }
      }),
    start: (e) => Effect.sync(() => (queue.take(e.id, true), started.push(e.job), `container-of-${e.job}`)),
    fork: Effect.forkDetach,
    poll: "1 hour"
  })
  // a job started before: it holds the slot
  queue.take("running", true)
  return { started, queue, looked }
}
const labels = { run: "r", node: "n1" }

describe("AdmissionQueue", () => {
  it.live("a job queued behind a busy slot starts once the slot is given back, not at the next poll", () =>
    Effect.gen(function*() {
      const { started, queue, looked } = oneSlot()
      yield* queue.enqueue({ id: "t1", labels, job: "job-1", wait: "no free slot" })
      const outcome = yield* Effect.forkChild(queue.settle("t1"))
      yield* Deferred.await(looked)
      assert.deepStrictEqual(started, [])
      queue.release("running")
      assert.strictEqual(yield* Fiber.join(outcome).pipe(Effect.timeout("5 seconds")), "container-of-job-1")
      assert.deepStrictEqual([started, [...queue.held.keys()]], [["job-1"], ["t1"]])
    }))

  it.live("a watch waiting on a queued job says why it waits, and follows it as soon as it starts, not after a poll", () =>
    Effect.gen(function*() {
      const { queue, looked } = oneSlot()
      yield* queue.enqueue({ id: "t1", labels, job: "job-1", wait: "no free slot" })
      const said: Array<Backend.JobEvent> = []
      const told = yield* Deferred.make<void>()
      const watching = yield* Effect.forkChild(queue.settle("t1", (e) => {
        said.push(e)
        Deferred.doneUnsafe(told, Exit.void)
      }))
      yield* Effect.andThen(Deferred.await(told), Deferred.await(looked))
      queue.release("running")
      assert.strictEqual(yield* Fiber.join(watching).pipe(Effect.timeout("5 seconds")), "container-of-job-1")
      assert.deepStrictEqual(said, [{ _tag: "State", state: "Pending", reason: "no free slot: 1 of 1 in use" }])
    }))

  it.live("a slot given back while the head is being looked at is not lost", () =>
    Effect.gen(function*() {
      const started: Array<string> = []
      let looks = 0
      // the first look finds no room and, meanwhile, the job that held the slot ends
      const queue: AdmissionQueue<string, true, string, true> = new AdmissionQueue<string, true, string, true>({
        room: () =>
          Effect.sync(() => {
            if (++looks > 1) return queue.held.size === 0 ? { go: true as const } : { wait: "still busy" }
            queue.release("running")
            return { wait: "no free slot: 1 of 1 in use" }
          }),
        start: (e) => Effect.sync(() => (started.push(e.job), `container-of-${e.job}`)),
        fork: Effect.forkDetach,
        poll: "1 hour"
      })
      queue.take("running", true)
      yield* queue.enqueue({ id: "t1", labels, job: "job-1", wait: "no free slot" })
      assert.strictEqual(yield* queue.settle("t1").pipe(Effect.timeout("5 seconds")), "container-of-job-1")
      assert.deepStrictEqual([looks, started], [2, ["job-1"]])
    }))

  it.live("a look that holds a started job's slot (a Docker watch) frees it however it ends: its end read, a failure, an interrupt", () =>
    Effect.gen(function*() {
      for (const end of ["ends", "fails", "interrupted"] as const) {
        const busy = { now: true }
        const looked = yield* Deferred.make<void>()
        const queue = new AdmissionQueue<string, true, string>({
          room: () => Effect.sync(() => (busy.now ? (Deferred.doneUnsafe(looked, Exit.void), { wait: "no free slot: 1 of 1 in use" }) : { go: true as const })),
          start: (e) => Effect.succeed(`container-of-${e.job}`),
          fork: Effect.forkDetach,
          poll: "1 hour"
        })
        const watched = yield* Deferred.make<void>()
        const look = yield* Effect.forkChild(queue.holding(Effect.andThen(Deferred.await(watched), end === "fails" ? Effect.fail("removal failed") : Effect.void)))
        yield* queue.enqueue({ id: "t1", labels, job: "job-1", wait: "no free slot" })
        const outcome = yield* Effect.forkChild(queue.settle("t1"))
        yield* Deferred.await(looked)
        // the engine no longer counts the job: it stopped
        busy.now = false
        if (end === "interrupted") yield* Fiber.interrupt(look)
        else yield* Deferred.succeed(watched, undefined)
        assert.strictEqual(yield* Fiber.join(outcome).pipe(Effect.timeout("5 seconds")), "container-of-job-1", end)
      }
    }))

  it.live("a queued head taken out (cancelled, withdrawn) lets the job behind it start at once, if it fits where the head did not", () =>
    Effect.gen(function*() {
      const looked = yield* Deferred.make<void>()
      const queue = new AdmissionQueue<number, true, string>({
        // one GPU free: a job needing 2 waits, one needing 1 fits
        room: (e) => Effect.sync(() => (e.job > 1 ? { wait: "no free GPU: 1 of 2 free, 2 needed" } : { go: true as const })),
        start: (e) => Effect.succeed(`started-${e.id}`),
        // told once a look has ended (the head still queued): a job taken out while the backend is asked is seen by the look itself
        exclusive: (look) => Effect.tap(look, () => Deferred.done(looked, Exit.void)),
        fork: Effect.forkDetach,
        poll: "1 hour"
      })
      yield* queue.enqueue({ id: "big", labels, job: 2, wait: "" })
      yield* queue.enqueue({ id: "small", labels, job: 1, wait: "" })
      const big = yield* Effect.forkChild(queue.settle("big"))
      yield* Deferred.await(looked)
      assert.strictEqual(queue.reason("small"), "1 job ahead in the queue")
      assert.isTrue(queue.remove("big", "cancelled before it started"))
      assert.strictEqual(yield* queue.settle("small").pipe(Effect.timeout("5 seconds")), "started-small")
      assert.strictEqual(((yield* Fiber.join(big)) as Backend.JobExit).outcome, "Cancelled")
    }))
})
