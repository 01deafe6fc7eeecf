// Wait for something the code under test does asynchronously (a process group's SIGKILL reaching a
// grandchild, a slot monitor's next poll, a garbage collector's pass), instead of sleeping a fixed time
// that a loaded CI machine may overrun. Fails with `what` when it does not hold within `seconds` (a function: called
// then, so that a message that looks at the system, such as the scheduler's queue, says how things were at the end).
import { Effect } from "effect"

export function eventually(what: string | (() => string), check: () => boolean, seconds?: number): Effect.Effect<void, Error>
export function eventually<E, R>(what: string | (() => string), check: Effect.Effect<boolean, E, R>, seconds?: number): Effect.Effect<void, E | Error, R>
export function eventually<E, R>(
  what: string | (() => string),
  check: Effect.Effect<boolean, E, R> | (() => boolean),
  seconds = 15
): Effect.Effect<void, E | Error, R> {
  const holds = typeof check === "function" ? Effect.sync(check) : check
  return Effect.gen(function*() {
    const deadline = Date.now() + seconds * 1000
    for (;;) {
      if (yield* holds) return
      if (Date.now() > deadline) return yield* Effect.fail(new Error(`not within ${seconds} s: ${typeof what === "function" ? what() : what}`))
      yield* Effect.sleep("50 millis")
    }
  })
}
