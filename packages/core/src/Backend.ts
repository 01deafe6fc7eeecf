/**
 * The `Backend` contract: where jobs run. A backend submits a {@link JobSpec}, streams its
 * events, cancels it, lists a run's jobs for reconciliation after a crash, and reports
 * capacity. Implementations live in `@trex/executors`; conformance cases in `@trex/core/testing`.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Cost from "./Cost.ts"
import type { BackendError } from "./Errors.ts"
import type { JobRef } from "./ExperimentNode.ts"
import type { FailureKind, MetricPoint } from "./Result.ts"
import type { Resources } from "./Task.ts"

/** Labels that tie a job to its run and node. @since 0.1.0 @category models */
export interface Labels {
  readonly run: string
  readonly node: string
}

/**
 * What to run. `argv` is never a shell string; `env` values may be `Redacted` secrets, revealed
 * only into the job's environment. `files` are written into the job directory before start.
 * @since 0.1.0 @category models
 */
export interface JobSpec {
  readonly name: string
  readonly argv: ReadonlyArray<string>
  readonly image?: string
  readonly env: Readonly<Record<string, string | Redacted.Redacted<string>>>
  readonly files: ReadonlyArray<{ readonly path: string; readonly content: string }>
  readonly resources: Resources
  readonly labels: Labels
}

/** How a job ended. @since 0.1.0 @category models */
export interface JobExit {
  readonly _tag: "Exit"
  readonly outcome: "Succeeded" | "Failed" | "Cancelled"
  /** For a failure: its kind as the backend saw it (the executor may still find InvalidOutput). */
  readonly failureKind?: FailureKind
  /**
   * For an `Infra` failure, `false` when the job would fail the same way again as it is (an image that
   * cannot be pulled, a service account that is not there): the trial is not run again (an `Infra`
   * failure otherwise is, as a lost job may not be lost next time).
   */
  readonly retryable?: boolean
  readonly exitCode?: number
  readonly signal?: string
  readonly message?: string
  /** The parsed `result.json`, when the job wrote one that is valid JSON. */
  readonly result?: unknown
  /** Why `result.json` could not be read, when it could not. */
  readonly resultError?: string
  /** The last lines of the job's output. */
  readonly logTail: ReadonlyArray<string>
  readonly wallSeconds: number
  readonly gpuSeconds: number
  /**
   * What the job cost in money, where the backend knows it: a backend wrapped in {@link priced}, or
   * one that reads a cloud provider's bill. Absent means none known (counted as 0).
   */
  readonly dollars?: number
}

/**
 * A job's events, ending with exactly one {@link JobExit}.
 *
 * `State`: `Pending` while the job waits in the backend's queue (`reason`: what for), `Running`
 * once it runs. A watch that loses touch with its job while it waits for its engine, controller or
 * host to answer again says so with `{ state: "Running", reason }` (`trex status` shows the trial
 * `unreachable (reason)`), or with a `Pending` whose reason says it, for a job still queued; its
 * next `State` without that reason, once the backend answers, ends it.
 * @since 0.1.0 @category models
 */
export type JobEvent =
  | { readonly _tag: "State"; readonly state: "Pending" | "Running"; readonly reason?: string }
  | { readonly _tag: "Log"; readonly stream: "stdout" | "stderr"; readonly line: string }
  | { readonly _tag: "Metric"; readonly point: MetricPoint }
  | { readonly _tag: "Progress"; readonly fraction: number; readonly message?: string }
  | JobExit

/** A job the backend knows, for reconciliation. @since 0.1.0 @category models */
export interface JobInfo {
  readonly ref: JobRef
  readonly labels: Labels
  readonly state: "Pending" | "Running" | "Finished"
  /**
   * When the job was submitted (epoch ms), where the backend knows it (local, Docker, SSH, Grid Engine):
   * of a node's jobs, the latest is the one submitted last. The order listed is no submission order
   * (Kubernetes lists by name, Docker newest first, SSH by host), so a reader orders by it only when
   * every job of the node has it.
   */
  readonly submittedAt?: number
}

/** Slots and GPUs a backend offers, and how many are in use. @since 0.1.0 @category models */
export interface Capacity {
  readonly slots: number
  readonly gpus: number
  readonly inUse: number
}

/** The members every backend implements. @since 0.1.0 @category models */
export interface BackendShape {
  readonly name: string
  readonly submit: (spec: JobSpec) => Effect.Effect<JobRef, BackendError>
  /**
   * Events of a job, ending with its Exit. A backend may replay output the job printed before
   * the watch began (consumers keep one point per step, split and name); a finished job's watch
   * ends at once.
   */
  readonly watch: (ref: JobRef) => Stream.Stream<JobEvent, BackendError>
  readonly cancel: (ref: JobRef) => Effect.Effect<void, BackendError>
  /**
   * Optional: cancel the job only if it has not left the backend's queue, in one step (a job the
   * backend has just started is not touched); `true` when it was withdrawn, `false` when it runs
   * (or ended). Without it, a drain cancels the jobs last reported `Pending`, and one that started
   * since may be cancelled too.
   */
  readonly withdraw?: (ref: JobRef) => Effect.Effect<boolean, BackendError>
  readonly list: (run: string) => Effect.Effect<ReadonlyArray<JobInfo>, BackendError>
  readonly capacity: Effect.Effect<Capacity, BackendError>
  /**
   * Optional: what would stop `spec` from running here, found without running it (a command that is
   * not on the host, an image the engine lacks, a partition, account or resources the scheduler
   * refuses), each a {@link Concern} naming it and the fix; none when nothing was found. It writes
   * nothing a run would see, and starts no job. `trex check` asks it.
   */
  readonly preflight?: (spec: JobSpec) => Effect.Effect<ReadonlyArray<Concern>, BackendError>
}

/**
 * A {@link BackendShape.preflight} finding: `fail`, the job would not start or would fail at once;
 * `warn`, it may (an image a trial will have to pull).
 * @since 0.1.0 @category models
 */
export interface Concern {
  readonly severity: "fail" | "warn"
  readonly message: string
}

/**
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Backend } from "@trex/core"
 * declare const spec: Backend.JobSpec
 * const program = Effect.gen(function*() {
 *   const backend = yield* Backend.Backend
 *   return yield* Backend.run(backend, spec)
 * })
 * ```
 * @since 0.1.0 @category services
 */
export class Backend extends Context.Service<Backend, BackendShape>()("@trex/core/Backend") {}

/**
 * What a nest of {@link withJob}s knows, one for the nest (made by its outermost one), so that a `use`
 * that sees an outer job end inside an inner `withJob` tells the outer one. `ended`: the jobs (by
 * {@link endKey}) whose `Exit` a watch of a {@link make}d backend, a {@link follow} or an {@link awaitExit}
 * delivered inside it, or that a `withJob` of them inside another of them cancelled; a `use` that fails
 * after its job ended (or was cancelled so) cancels nothing. `holders`: how many
 * `withJob`s of each job are going, so that a job's entry lasts as long as the outermost `withJob` of it
 * (one nested in another of the same job, ending first, must not take it away from the outer one).
 */
interface Ends {
  readonly ended: Set<string>
  readonly holders: Map<string, number>
}

const Ended = Context.Reference<Ends | undefined>("@trex/core/Backend/Ended", { defaultValue: () => undefined })

/** A job's key in {@link Ended}: two backends may give their jobs the same id. */
const endKey = (ref: JobRef): string => `${ref.backend}\u0000${ref.id}`

/** `watch`, its jobs' `Exit` noted in {@link Ended} as it passes, chunk by chunk (a consumer's batches stay whole). */
const noting = (watch: BackendShape["watch"]) => (ref: JobRef): Stream.Stream<JobEvent, BackendError> =>
  Stream.unwrap(Effect.map(Effect.service(Ended), (ends) =>
    ends === undefined
      ? watch(ref)
      : Stream.mapArray(watch(ref), (events) => {
        if (events.some((e) => e._tag === "Exit")) ends.ended.add(endKey(ref))
        return events
      })))

/**
 * A backend whose `watch` tells {@link withJob} when it delivers a job's `Exit`: a `use` that watched its
 * job to the end, however (`backend.watch` itself, {@link follow}, {@link awaitExit}), and fails after
 * that (recording the result, say) does not cancel the ended job. Every built-in backend is built
 * through it; build yours through it too (the conformance suite checks it). Nothing else tells `withJob`:
 * the `use`'s own watch is not `withJob`'s to see, and the contract has no per-job state to ask (`list`
 * needs the job's run, which a {@link JobRef} does not carry); a backend not built through it gets a
 * cancel of a job its `use` watched to its end through the raw `watch` and then failed (a no-op, as the
 * contract asks of a cancel of an ended job). Its other members are the backend's own, and a watch
 * outside any `withJob` is the backend's as it is.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Backend } from "@trex/core"
 * declare const members: Backend.BackendShape
 * const backend = Backend.make(members)
 * declare const ref: Parameters<typeof backend.watch>[0]
 * // watched to its exit, then a failure: the ended job is not cancelled
 * const program = Backend.withJob(backend, Effect.succeed(ref), (job) =>
 *   Effect.andThen(Stream.runDrain(backend.watch(job)), Effect.fail("recording failed")))
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = <B extends BackendShape>(backend: B): B => ({ ...backend, watch: noting(backend.watch) })

/**
 * Take a job (`job`: a submit, or a job already known) and use it; if `use` does not succeed (it
 * fails, dies or is interrupted) before the job has ended, the job is cancelled: a job left running
 * after its user gave up on it is a GPU nobody frees. The job counts as ended once a watch inside
 * `use` has delivered its `Exit`: a watch of a backend built through {@link make} (every built-in one),
 * or a {@link follow} or {@link awaitExit} of any backend; also inside a `withJob` nested in this one,
 * of another job or of the same one (a `use` that fails after that, in recording the result say, cancels
 * nothing; so does the `use` of a `withJob` of the same job around it, nor does it cancel again a job
 * that a `withJob` of it inside cancelled). Nothing is asked of
 * the backend to know it. Taking the job and registering its cancel are one uninterruptible step, so
 * a stop that lands just as a submit returns cannot leave the job running with nobody to cancel it.
 * The way to submit from code that can be stopped or fail (an executor agent).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Backend } from "@trex/core"
 * declare const backend: Backend.BackendShape
 * declare const spec: Backend.JobSpec
 * declare const record: (exit: Backend.JobExit) => Effect.Effect<void, Error>
 * // a failed `record` after the exit cancels nothing; a failure or stop before it cancels the job
 * const program = Backend.withJob(backend, backend.submit(spec), (ref) =>
 *   Effect.flatMap(Backend.awaitExit(backend, ref), record))
 * ```
 * @since 0.1.0 @category combinators
 */
export const withJob = <A, E, E2, R, R2>(
  backend: BackendShape,
  job: Effect.Effect<JobRef, E, R>,
  use: (ref: JobRef) => Effect.Effect<A, E2, R2>
): Effect.Effect<A, E | E2, R | R2> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(job, (ref) =>
      Effect.flatMap(Effect.service(Ended), (outer) => {
        // the outermost withJob's record, shared by those nested in it
        const ends: Ends = outer ?? { ended: new Set(), holders: new Map() }
        const key = endKey(ref)
        ends.holders.set(key, (ends.holders.get(key) ?? 0) + 1)
        return restore(use(ref)).pipe(
          Effect.provideService(Ended, ends),
          Effect.onExit((exit) => {
            const seen = ends.ended.has(key)
            const left = (ends.holders.get(key) ?? 1) - 1
            // the entry goes with the outermost withJob of this job
            if (left === 0) {
              ends.holders.delete(key)
              ends.ended.delete(key)
            } else ends.holders.set(key, left)
            if (Exit.isSuccess(exit) || seen) return Effect.void
            // cancelled here, it is not cancelled again by a withJob of it around this one
            return Effect.ignore(Effect.tap(backend.cancel(ref), () =>
              Effect.sync(() => {
                if (left > 0) ends.ended.add(key)
              })))
          })
        )
      }))
  )

/**
 * Submit and wait for the exit: `submit` + `watch`, keeping only the final event. Interrupted
 * before the exit, it cancels the job (see {@link withJob}).
 * @since 0.1.0 @category combinators
 */
export const run = (backend: BackendShape, spec: JobSpec): Effect.Effect<JobExit, BackendError> =>
  withJob(backend, backend.submit(spec), (ref) => awaitExit(backend, ref))

/**
 * A job's events (`backend.watch`), its `Exit` noted as it passes: inside {@link withJob}, a `use`
 * that fails after it has seen the exit does not cancel the ended job. The watch of a backend built
 * through {@link make} notes it already; this is for one that is not.
 * @since 0.1.0 @category combinators
 */
export const follow = (backend: BackendShape, ref: JobRef): Stream.Stream<JobEvent, BackendError> => noting(backend.watch)(ref)

/** Wait for a submitted job's exit (through {@link follow}). @since 0.1.0 @category combinators */
export const awaitExit = (backend: BackendShape, ref: JobRef): Effect.Effect<JobExit, BackendError> =>
  follow(backend, ref).pipe(
    Stream.runFold(() => undefined as JobExit | undefined, (acc, e) => (e._tag === "Exit" ? e : acc)),
    Effect.flatMap((exit) =>
      exit === undefined
        ? Effect.die(new Error(`backend ${backend.name}: watch(${ref.id}) ended without an Exit event`))
        : Effect.succeed(exit)
    )
  )

/** The environment a job sees, with secrets revealed (only for the process that needs them). @since 0.1.0 @category utilities */
export const revealEnv = (env: JobSpec["env"]): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(env)) out[k] = Redacted.isRedacted(v) ? Redacted.value(v) : v
  return out
}

const Dollars = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))

/**
 * What a backend's compute costs: dollars per GPU-hour a job holds, and dollars per hour a job runs
 * (a machine or instance charged by the hour, whatever its GPUs). At least one of the two. A task
 * file's `backend.pricing`.
 * @since 0.1.0 @category schemas
 */
export const Pricing = Schema.Struct({
  dollarsPerGpuHour: Schema.optionalKey(Dollars),
  dollarsPerHour: Schema.optionalKey(Dollars)
}).check(Schema.makeFilter((p: { readonly dollarsPerGpuHour?: number; readonly dollarsPerHour?: number }) =>
  p.dollarsPerGpuHour !== undefined || p.dollarsPerHour !== undefined
    ? undefined
    : "expected dollarsPerGpuHour (dollars per GPU-hour a trial holds) or dollarsPerHour (dollars per hour a trial runs), or both"
))
/** @since 0.1.0 @category models */
export type Pricing = typeof Pricing.Type

/**
 * The prices of a task's `backend.pricing`, when it has a valid one (a run checks it before it
 * starts; an invalid one reads as none here).
 * @since 0.1.0 @category utilities
 */
export const pricingOf = (backend: Readonly<Record<string, unknown>> | undefined): Pricing | undefined =>
  backend?.["pricing"] === undefined ? undefined : Option.getOrUndefined(decodePricing(backend["pricing"]))

const decodePricing = Schema.decodeUnknownOption(Pricing)

/**
 * What a job's exit says it cost: its GPU and wall time, and its dollars when the backend knows
 * them. The cost an executor charges for a job.
 * @since 0.1.0 @category utilities
 */
export const exitCost = (exit: JobExit): Cost.Cost =>
  Cost.make({ gpuSeconds: exit.gpuSeconds, wallSeconds: exit.wallSeconds, ...(exit.dollars !== undefined ? { dollars: exit.dollars } : {}) })

/** What a job prints when a write found its disk full: Python's `OSError: [Errno 28] No space left on device`, `ENOSPC` (C, Node), a quota's `Disk quota exceeded` (`[Errno 122]`, `EDQUOT`). */
const NO_SPACE = /No space left on device|\bENOSPC\b|Disk quota exceeded|\bEDQUOT\b/i

/**
 * The `State` a watch sends once when its backend stops answering about a job it takes to run on
 * (an engine, controller, host or API server away; see {@link JobEvent}): `state` as last shown,
 * with a reason every shipped backend words the same way, `<who> does not answer since
 * HH:MM:SSZ (<cause>); <what is done meanwhile>`, which `trex status` shows as `unreachable (...)`.
 * Send the job's state again without a reason once the backend answers.
 *
 * @example
 * ```ts
 * import { Backend } from "@trex/core"
 * const told = Backend.unreachable({
 *   state: "Running", who: "the scheduler at login1", since: Date.UTC(2026, 0, 1, 10, 3, 12),
 *   cause: "connection refused", meanwhile: "the job is left be, asked again every 5 s for up to 1800 s"
 * })
 * told.reason // "the scheduler at login1 does not answer since 10:03:12Z (connection refused); the job is left be, ..."
 * ```
 * @since 0.1.0 @category utilities
 */
export const unreachable = (o: {
  readonly state: "Pending" | "Running"
  readonly who: string
  readonly since: number
  readonly cause: string
  readonly meanwhile: string
}): { readonly _tag: "State"; readonly state: "Pending" | "Running"; readonly reason: string } => ({
  _tag: "State",
  state: o.state,
  reason: `${o.who} does not answer since ${new Date(o.since).toISOString().slice(11, 19)}Z (${o.cause}); ${o.meanwhile}`
})

/**
 * A job that failed because its disk was full failed for the machine, not for its strategy: an exit
 * that failed as `Crash` (a non-zero exit) whose log tail says so (`OSError: [Errno 28] No space left
 * on device`, `ENOSPC`, `Disk quota exceeded`), or whose backend found the disk full itself (`full`,
 * saying which: a job's log cannot be written to a full disk either), is `Infra` (retried as the
 * explorer retries Infra), its message naming the disk and the fix. A strategy that failed as `Crash`
 * is never tried again, and the researcher learns it crashes. Every built-in backend passes its exits
 * through this; a backend of your own should too.
 *
 * @example
 * ```ts
 * import { Backend } from "@trex/core"
 * const exit = Backend.noSpaceExit({
 *   _tag: "Exit", outcome: "Failed", failureKind: "Crash", exitCode: 1, wallSeconds: 60, gpuSeconds: 60,
 *   logTail: ["Traceback (most recent call last):", "OSError: [Errno 28] No space left on device"]
 * })
 * exit.failureKind // "Infra"
 * ```
 * @since 0.1.0 @category utilities
 */
export const noSpaceExit = (exit: JobExit, full?: string): JobExit => {
  if (exit.outcome !== "Failed" || exit.failureKind !== "Crash") return exit
  const line = exit.logTail.findLast((l) => NO_SPACE.test(l))
  if (line === undefined && full === undefined) return exit
  const how = exit.message ?? (exit.exitCode !== undefined ? `exit code ${exit.exitCode}` : "failed")
  const why = line !== undefined
    ? `the job ran out of disk space (${how}): ${line.trim().slice(0, 300)}`
    : `the job failed (${how}) while ${full}`
  return {
    ...exit,
    failureKind: "Infra",
    message: `${why}. The machine's failure, not the strategy's: free space where the job writes (checkpoints, outputs, logs)`
  }
}

/**
 * The dollars a job of this GPU and wall time costs at these prices.
 * @since 0.1.0 @category utilities
 */
export const price = (pricing: Pricing, usage: { readonly gpuSeconds: number; readonly wallSeconds: number }): number =>
  (usage.gpuSeconds * (pricing.dollarsPerGpuHour ?? 0) + usage.wallSeconds * (pricing.dollarsPerHour ?? 0)) / 3600

/**
 * A backend whose jobs report what they cost in dollars, at the given prices: each job's exit adds
 * {@link price} of its GPU and wall time to any dollars the backend reported itself. A budget's
 * `dollars` limit then counts the compute of trials as well as model calls. Everything else is the
 * backend's own.
 *
 * @example
 * ```ts
 * import { Backend } from "@trex/core"
 * declare const backend: Backend.BackendShape
 * // $2.50 per GPU-hour
 * const billed = Backend.priced(backend, { dollarsPerGpuHour: 2.5 })
 * ```
 * @since 0.1.0 @category combinators
 */
export const priced = (backend: BackendShape, pricing: Pricing): BackendShape => ({
  ...backend,
  watch: (ref) =>
    backend.watch(ref).pipe(
      Stream.map((event): JobEvent =>
        event._tag === "Exit" ? { ...event, dollars: (event.dollars ?? 0) + price(pricing, event) } : event
      )
    )
})

/**
 * A backend layer whose jobs report dollars at the given prices (see {@link priced}).
 *
 * @example
 * ```ts
 * import type { Layer } from "effect"
 * import { Backend } from "@trex/core"
 * declare const engine: Layer.Layer<Backend.Backend> // e.g. LocalBackend.layer(...) of @trex/executors
 * // an instance billed at $1.20 an hour per job
 * const layer = Backend.layerPriced(engine, { dollarsPerHour: 1.2 })
 * ```
 * @since 0.1.0 @category layers
 */
export const layerPriced = <E, R>(inner: Layer.Layer<Backend, E, R>, pricing: Pricing): Layer.Layer<Backend, E, R> =>
  Layer.effect(Backend, Effect.map(Effect.service(Backend), (b) => priced(b, pricing))).pipe(Layer.provide(inner))
