/**
 * A backend's own queue of jobs waiting for room (a slot, GPUs), for backends that start jobs
 * themselves (Docker, SSH): `submit` returns a ticket at once instead of waiting inside the
 * submission (which is uninterruptible), the queue starts its head when there is room, in
 * submission order, and a still-queued job can be withdrawn or cancelled in one synchronous step.
 *
 * The queue looks for room at each poll, and at once whenever room may have come: a slot given back
 * ({@link AdmissionQueue.release}, or the end of {@link AdmissionQueue.holding}) or a queued job
 * taken out. Nothing else wakes it: a backend frees a slot only through the queue, so no way a job
 * ends can forget to.
 */
import type { Backend, Errors } from "@trex/core"
import { Context, Deferred, type Duration, Effect, Exit } from "effect"

/** A queued job: what the backend needs to start it, and why it waits. */
export interface Entry<Job> {
  readonly id: string
  readonly labels: Backend.Labels
  readonly job: Job
  /** Why the head waits, as its backend last said (the others wait for the jobs ahead of them). */
  wait: string
}

/** A job that ended before it started: withdrawn or cancelled while queued (`Cancelled`), or lost with its controller (`Failed/Infra`, run again). */
export const unstarted = (outcome: "Cancelled" | "Lost", message: string): Backend.JobExit => ({
  _tag: "Exit",
  ...(outcome === "Cancelled" ? { outcome } : { outcome: "Failed", failureKind: "Infra" }),
  message,
  logTail: [],
  wallSeconds: 0,
  gpuSeconds: 0
})

/** What a queued job of an earlier controller became when nothing records that it started. */
export const LOST_IN_QUEUE = "it was waiting for a free slot or GPU when its controller stopped, and never started"

/** What `start` gives when the room it was offered went before the job started (a host that stopped answering): the job waits again, at the head. */
export const AGAIN: unique symbol = Symbol.for("@trex/executors/AdmissionQueue/again")

/**
 * The poll of a backend's queue when set (read when the backend is made): tests set an hour, so that only
 * a slot given back (or a queued job taken out) can start a queued job within them.
 */
export const QueuePoll = Context.Reference<Duration.Input | undefined>("@trex/executors/AdmissionQueue/poll", { defaultValue: () => undefined })

/** How a backend starts its queue's jobs. */
export interface Options<Job, Go, Started> {
  /** Whether the head can start now (`{ go }`: what it starts with), or why it must wait (`{ wait }`). */
  readonly room: (entry: Entry<Job>) => Effect.Effect<{ readonly go: Go } | { readonly wait: string }, Errors.BackendError>
  readonly start: (entry: Entry<Job>, go: Go) => Effect.Effect<Started | typeof AGAIN, Errors.BackendError>
  /** Wraps each admission (a backend's own lock, shared with its direct starts). */
  readonly exclusive?: <A>(effect: Effect.Effect<A>) => Effect.Effect<A>
  /** Runs the queue's pump in the background. */
  readonly fork: (effect: Effect.Effect<void>) => Effect.Effect<unknown>
  readonly poll: Duration.Input
}

export class AdmissionQueue<Job, Go, Started, Slot = never> {
  private readonly queue: Array<Entry<Job>> = []
  private readonly slots = new Map<string, Slot>()
  private readonly outcomes = new Map<string, Deferred.Deferred<Started | Backend.JobExit, Errors.BackendError>>()
  private pumping = false
  /** Done by a wake (a slot given back, a queued job gone): the pump's wait between looks ends early. */
  private woken = Deferred.makeUnsafe<void>()
  private readonly options: Options<Job, Go, Started>

  constructor(options: Options<Job, Go, Started>) {
    this.options = options
  }

  get length(): number {
    return this.queue.length
  }

  /** Queue a job (behind the others); it starts when its turn comes and there is room. */
  enqueue(entry: Entry<Job>): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.queue.push(entry)
      this.outcomes.set(entry.id, Deferred.makeUnsafe())
      if (this.pumping) return Effect.void
      this.pumping = true
      return Effect.asVoid(this.options.fork(this.pump))
    })
  }

  /** Whether this queue gave out the ticket `id`. */
  knows(id: string): boolean {
    return this.outcomes.has(id)
  }

  /** The jobs still queued, in order. */
  entries(): ReadonlyArray<Entry<Job>> {
    return this.queue
  }

  /** Why a queued job waits: the head, for room; the others, for the jobs ahead of them. `undefined` once it left the queue. */
  reason(id: string): string | undefined {
    const i = this.queue.findIndex((e) => e.id === id)
    if (i < 0) return undefined
    return i === 0 ? this.queue[0]!.wait : `${i} job${i === 1 ? "" : "s"} ahead in the queue`
  }

  /**
   * Take a still-queued job out of the queue, in one step, ending it `Cancelled`; `false` when it is
   * not queued (any more: it has started, or is starting). The queue looks again at once: the job
   * behind it may fit where it did not.
   */
  remove(id: string, message: string): boolean {
    const i = this.queue.findIndex((e) => e.id === id)
    if (i < 0) return false
    this.queue.splice(i, 1)
    Deferred.doneUnsafe(this.outcomes.get(id)!, Exit.succeed(unstarted("Cancelled", message)))
    this.wake()
    return true
  }

  /** The slots started jobs hold, by job id, for a backend that counts its slots itself (SSH's hosts). */
  get held(): ReadonlyMap<string, Slot> {
    return this.slots
  }

  /** A started job takes a slot (kept until {@link release}). */
  take(id: string, slot: Slot): void {
    this.slots.set(id, slot)
  }

  /**
   * A job gives back its slot (it ended, was lost, or never started): the queue looks for room at
   * once, not at its next poll. Again for the same job, or for a slot never taken, it only looks.
   */
  release(id: string): void {
    this.slots.delete(id)
    this.wake()
  }

  /**
   * `effect` (a watch's look at a started job) holds the job's slot, for a backend whose engine counts
   * its slots (Docker): however it ends (the job's end read, a failure after it, an interrupt), the
   * queue looks for room at once.
   */
  holding<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.ensuring(effect, Effect.sync(() => this.wake()))
  }

  /**
   * What became of a ticket of this queue: what its start gave, or its exit when it never started.
   * While it waits, `emit` hears a `Pending` state each time the reason changes.
   */
  settle(id: string, emit?: (e: Backend.JobEvent) => void): Effect.Effect<Started | Backend.JobExit, Errors.BackendError> {
    const outcome = this.outcomes.get(id)
    if (outcome === undefined) return Effect.die(new Error(`no ticket ${id} in this queue`))
    return Effect.gen({ self: this }, function*() {
      let said: string | undefined
      while (emit !== undefined && !Deferred.isDoneUnsafe(outcome)) {
        const why = this.reason(id)
        if (why !== undefined && why !== said) emit({ _tag: "State", state: "Pending", reason: (said = why) })
        // the reason is looked at again after a poll; the outcome is taken as soon as it is there
        yield* Effect.timeoutOption(Effect.exit(Deferred.await(outcome)), this.options.poll)
      }
      return yield* Deferred.await(outcome)
    })
  }

  /**
   * Look for room again now rather than at the next poll: a slot was given back, or a queued job left.
   * A wake while the head is being looked at is not lost: the next wait ends at once.
   */
  private wake(): void {
    Deferred.doneUnsafe(this.woken, Exit.void)
  }

  /** The pump's wait between two looks: a poll, or until {@link wake}. */
  private readonly nap: Effect.Effect<void> = Effect.suspend(() =>
    Effect.timeoutOption(Deferred.await(this.woken), this.options.poll).pipe(
      Effect.andThen(Effect.sync(() => {
        if (Deferred.isDoneUnsafe(this.woken)) this.woken = Deferred.makeUnsafe()
      }))
    )
  )

  /** Start the head if there is room; `true` when the queue moved. */
  private readonly admitHead: Effect.Effect<boolean> = Effect.suspend(() => {
    const head = this.queue[0]
    if (head === undefined) return Effect.succeed(true)
    return Effect.flatMap(Effect.result(this.options.room(head)), (fit) => {
      // withdrawn or cancelled while the backend was asked: the next one's turn
      if (this.queue[0] !== head) return Effect.succeed(true)
      const fitted = fit._tag === "Success" ? fit.success : undefined
      if (fitted !== undefined && "wait" in fitted) {
        head.wait = fitted.wait
        return Effect.succeed(false)
      }
      // from here on it starts: a withdraw finds it gone from the queue and lets it run
      this.queue.shift()
      const started = fit._tag === "Failure" ? Effect.fail(fit.failure) : this.options.start(head, fitted!.go)
      return Effect.flatMap(Effect.exit(started), (exit) => {
        if (exit._tag === "Success" && exit.value === AGAIN) {
          this.queue.unshift(head)
          return Effect.succeed(false)
        }
        return Effect.as(Deferred.done(this.outcomes.get(head.id)!, exit as Exit.Exit<Started, Errors.BackendError>), true)
      })
    })
  })

  /** Start queued jobs in turn as room frees; ends when the queue is empty. */
  private readonly pump: Effect.Effect<void> = Effect.suspend(() => {
    const admit = this.options.exclusive !== undefined ? this.options.exclusive(this.admitHead) : this.admitHead
    const loop: Effect.Effect<void> = Effect.suspend(() =>
      this.queue.length === 0
        ? Effect.void
        : Effect.flatMap(admit, (moved) => (moved ? loop : Effect.andThen(this.nap, loop)))
    )
    return loop
  }).pipe(Effect.ensuring(Effect.sync(() => (this.pumping = false))))
}
