/**
 * Bounds on what a watch holds of a job's output, shared by the backends: a job that prints
 * gigabytes is read a slice at a time, and a watch's events wait in a bounded queue (its producer
 * suspends while the consumer is behind), so the controller's memory does not grow with the output.
 */
import type { Backend } from "@trex/core"
import { Effect, Queue, type Scope, Stream } from "effect"

/** Events a watch's queue holds before its producer waits for the consumer. */
export const WATCH_BUFFER = 4096

/**
 * A job's watch from a `follow` that hands each event to `emit` (which waits while the consumer is
 * behind) or, from a callback that cannot wait, to `emitNow`; the stream ends when `follow` does.
 */
export const boundedWatch = <E, R>(
  follow: (emit: (e: Backend.JobEvent) => Effect.Effect<void>, emitNow: (e: Backend.JobEvent) => void) => Effect.Effect<void, E, R>
): Stream.Stream<Backend.JobEvent, E, Exclude<R, Scope.Scope>> =>
  Stream.callback<Backend.JobEvent, E, R>(
    (queue) =>
      follow((e) => Effect.asVoid(Queue.offer(queue, e)), (e) => void Queue.offerUnsafe(queue, e)).pipe(
        Effect.andThen(Queue.end(queue)),
        Effect.catch((e) => Queue.fail(queue, e))
      ),
    // bounded: while the consumer is behind, the watch waits instead of reading more of the logs
    { bufferSize: WATCH_BUFFER }
  )
