/**
 * Test that a stop landing just as a job's submit returns still cancels the job: a backend whose
 * submit, once the wrapped backend has the job, waits until released, and a helper that stops a
 * fiber right there. Executors and anything else that submits jobs (an `ExecutorAgent`,
 * `Backend.run`) should leave no job running after such a stop.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Backend, type ExecutorAgent } from "@trex/core"
 * import { HeldSubmit } from "@trex/core/testing"
 * declare const backend: Backend.BackendShape
 * declare const makeExecutor: (backend: Backend.BackendShape) => ExecutorAgent.ExecutorAgentShape
 * declare const request: ExecutorAgent.ExecutionRequest
 * const check = Effect.gen(function*() {
 *   const held = yield* HeldSubmit.make(backend)
 *   const running = yield* makeExecutor(held.backend).run(request).pipe(Stream.runDrain, Effect.forkChild)
 *   const job = yield* held.stopDuringSubmit(running)
 *   return yield* Backend.awaitExit(backend, job) // "Cancelled", not a job left running
 * })
 * ```
 *
 * @since 0.1.0
 */
import { Deferred, Effect, Fiber } from "effect"
import type * as Backend from "../Backend.ts"
import type { JobRef } from "../ExperimentNode.ts"

/** @since 0.1.0 @category models */
export interface HeldSubmit {
  /** The wrapped backend, its submit held open after the job exists. */
  readonly backend: Backend.BackendShape
  /**
   * Wait until a submit is held, interrupt `fiber` there, release the submit and wait for the
   * interruption to complete. Returns the job the first held submit created.
   */
  readonly stopDuringSubmit: <A, E>(fiber: Fiber.Fiber<A, E>) => Effect.Effect<JobRef>
}

/**
 * Wrap `backend`: a submit creates its job, then waits until `stopDuringSubmit` releases the submits
 * (the ones after the release go straight through).
 * @since 0.1.0 @category constructors
 */
export const make = (backend: Backend.BackendShape): Effect.Effect<HeldSubmit> =>
  Effect.gen(function*() {
    const submitted = yield* Deferred.make<JobRef>()
    const gate = yield* Deferred.make<void>()
    return {
      backend: {
        ...backend,
        submit: (spec) => Effect.tap(backend.submit(spec), (job) => Effect.andThen(Deferred.succeed(submitted, job), Deferred.await(gate)))
      },
      stopDuringSubmit: (fiber) =>
        Effect.gen(function*() {
          const job = yield* Deferred.await(submitted)
          const stop = yield* Effect.forkChild(Fiber.interrupt(fiber))
          // let the interruption reach the fiber while its submit is still held
          yield* Effect.sleep("50 millis")
          yield* Deferred.succeed(gate, undefined)
          yield* Fiber.join(stop)
          return job
        })
    }
  })
