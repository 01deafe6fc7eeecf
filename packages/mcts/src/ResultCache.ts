/**
 * Results shared across runs: a strategy whose fingerprint already has a successful result in
 * another run (a sibling run directory, a team cache) is not run again; its result is reused. A
 * failed one is not: a failure is often the machine's or the environment's, which no fingerprint sees.
 *
 * @since 0.1.0
 */
import { Fingerprint, type JournalEvent, type Result, type Task } from "@trex/core"
import type { Effect } from "effect"

/** A reusable result and where it came from (`<run>/<node>`). @since 0.1.0 @category models */
export interface Hit {
  readonly result: Result.Result
  readonly source: string
}

/** @since 0.1.0 @category models */
export interface ResultCache {
  readonly lookup: (fingerprint: string) => Hit | undefined
  /**
   * Read what its sources added since (the journals of runs still running beside this one): asked
   * before each lookup, so a result another run has just found is reused, not run again.
   */
  readonly refresh?: Effect.Effect<void>
  /**
   * A trial of another run, running now, of this fingerprint (as `<run>/<node>`): the explorer waits
   * for its result rather than run the same strategy beside it.
   */
  readonly running?: (fingerprint: string) => string | undefined
}

/** A cache that knows nothing. @since 0.1.0 @category constructors */
export const empty: ResultCache = { lookup: () => undefined }

/**
 * What decides whether a result carries over from one run to another: the task's name, its
 * metric (name and direction), base model, datasets, evaluation plan, recipe (command, image and
 * environment) and backend section, and `code` — a fingerprint of the trainer's files, when the
 * caller has one (the CLI hashes the source files next to those the recipe command names, and, for
 * a run on the simulator, the recorded table it replays). Not
 * the objective's wording, the budget, the search space, the default strategy, the constraints or
 * the recipe's resources and estimate, which change what is tried or how fast, not what a trial
 * of a given strategy scores.
 *
 * @example
 * ```ts
 * import { ResultCache } from "@trex/mcts"
 * declare const task: import("@trex/core").Task.Task
 * ResultCache.identity(task, "0123456789abcdef") === ResultCache.identity({ ...task, budget: { maxTrials: 3 } }, "0123456789abcdef") // true
 * ```
 * @since 0.1.0 @category utilities
 */
export const identity = (task: Task.Task, code?: string): string =>
  Fingerprint.canonicalJson({
    name: task.name,
    metric: { name: task.metric.name, direction: task.metric.direction },
    baseModel: task.baseModel,
    datasets: task.datasets,
    evaluation: task.evaluation,
    recipe: task.recipe === undefined ? undefined : { command: task.recipe.command, image: task.recipe.image, env: task.recipe.env },
    backend: task.backend,
    code
  })

/** The `code` member of a run's recorded options (see {@link identity}), if it has one. */
const codeOf = (options: unknown): string | undefined => {
  const code = options !== null && typeof options === "object" ? (options as Record<string, unknown>)["code"] : undefined
  return typeof code === "string" ? code : undefined
}

/**
 * Whether the results of the run a `RunStarted` event begins can carry over to a run of `scope`:
 * the same {@link identity} (its task, and the `code` its options recorded). Asked of a journal's
 * first event, it tells which journals are worth reading whole.
 *
 * @example
 * ```ts
 * import { ResultCache } from "@trex/mcts"
 * declare const started: import("@trex/core").JournalEvent.Of<"RunStarted">
 * ResultCache.reusable(started, { task: started.task }) // true when the run recorded no trainer code
 * ```
 * @since 0.1.0 @category utilities
 */
export const reusable = (
  started: JournalEvent.Of<"RunStarted">,
  scope: { readonly task: Task.Task; readonly code?: string | undefined }
): boolean => identity(started.task, codeOf(started.options)) === identity(scope.task, scope.code)

/**
 * The events a cache reads from a journal: which run it is, each node's fingerprint and each
 * result. A journal may be read with only these (`Journal.readIntact(file, { tags })`).
 * @since 0.1.0 @category utilities
 */
export const EVENTS: ReadonlyArray<"RunStarted" | "NodeProposed" | "NodeFinished"> = ["RunStarted", "NodeProposed", "NodeFinished"]

/** A cache filled one journal at a time: see {@link builder}. @since 0.1.0 @category models */
export interface Builder {
  /** Add a journal's results (its entries, or those of {@link EVENTS}); the entries are not kept. */
  readonly add: (entries: ReadonlyArray<JournalEvent.Entry>) => void
  /**
   * Add the entries of a journal still being written, `key` naming it: each call goes on from where
   * the last left off (the entries after those), and the trials it has proposed and not yet finished
   * are the cache's `running` until {@link Builder.unfollow}.
   */
  readonly follow: (key: string, entries: ReadonlyArray<JournalEvent.Entry>) => void
  /** The journal `key` is no longer written (its run ended, or its controller died): none of its trials runs any more. */
  readonly unfollow: (key: string) => void
  /** The cache of the journals added so far (and of those added later). */
  readonly cache: ResultCache
}

interface Followed {
  runId: string
  sameTask: boolean
  /** Fingerprints of each node proposed: the one recorded, and its strategy's now when they differ. */
  readonly fps: Map<string, ReadonlyArray<string>>
  /** Node of each fingerprint proposed and not finished. */
  readonly running: Map<string, string>
}

/**
 * A cache filled one journal at a time, so that a caller reading many (a folder of big runs)
 * holds one journal at a time, not all of them; a journal still being written can be followed as
 * it grows. With `scope`, as {@link fromJournals}.
 *
 * @example
 * ```ts
 * import { ResultCache } from "@trex/mcts"
 * const b = ResultCache.builder()
 * b.add([])
 * b.cache.lookup("0123456789abcdef") // undefined
 * ```
 * @since 0.1.0 @category constructors
 */
export const builder = (scope?: { readonly task: Task.Task; readonly code?: string | undefined }): Builder => {
  const map = new Map<string, Hit>()
  const wanted = scope === undefined ? undefined : identity(scope.task, scope.code)
  const followed = new Map<string, Followed>()
  const fold = (state: Followed, entries: ReadonlyArray<JournalEvent.Entry>) => {
    for (const { event } of entries) {
      if (event._tag === "RunStarted") {
        state.runId = event.runId
        state.sameTask = wanted === undefined || identity(event.task, codeOf(event.options)) === wanted
      } else if (!state.sameTask) continue
      else if (event._tag === "NodeProposed") {
        const fps = fingerprints(event.node)
        state.fps.set(event.node.id, fps)
        for (const fp of fps) state.running.set(fp, event.node.id)
      } else if (event._tag === "NodeFinished") {
        const fps = state.fps.get(event.nodeId)
        if (fps === undefined) continue
        for (const fp of fps) {
          if (state.running.get(fp) === event.nodeId) state.running.delete(fp)
          if (event.outcome === "Succeeded" && event.result !== undefined && !map.has(fp)) {
            map.set(fp, { result: event.result, source: event.result.reusedFrom ?? `${state.runId}/${event.nodeId}` })
          }
        }
      }
    }
  }
  const fresh = (): Followed => ({ runId: "", sameTask: true, fps: new Map(), running: new Map() })
  return {
    add: (entries) => fold(fresh(), entries),
    follow: (key, entries) => {
      let state = followed.get(key)
      if (state === undefined) followed.set(key, state = fresh())
      fold(state, entries)
    },
    unfollow: (key) => void followed.delete(key),
    cache: {
      lookup: (fp) => map.get(fp),
      running: (fp) => {
        for (const state of followed.values()) {
          const node = state.sameTask ? state.running.get(fp) : undefined
          if (node !== undefined) return `${state.runId}/${node}`
        }
        return undefined
      }
    }
  }
}

/**
 * A node's fingerprints: the one its journal recorded and, for a mixture not in canonical form (a
 * journal written before mixtures were fingerprinted so recorded it as written), its strategy's now.
 */
const fingerprints = (node: JournalEvent.Of<"NodeProposed">["node"]): ReadonlyArray<string> => {
  const now = Fingerprint.changed(node.strategy, node.fingerprint)
  return now === undefined ? [node.fingerprint] : [node.fingerprint, now]
}

/**
 * A cache over the journals of other runs: every succeeded node's result, by fingerprint. With
 * `scope`, only results of runs whose {@link identity} is the scope's are reused (the run's task,
 * and the `code` its `RunStarted` options recorded); without it, every run's.
 *
 * @example
 * ```ts
 * import { ResultCache } from "@trex/mcts"
 * const cache = ResultCache.fromJournals([])
 * cache.lookup("0123456789abcdef") // undefined
 * ```
 * @since 0.1.0 @category constructors
 */
export const fromJournals = (
  journals: ReadonlyArray<ReadonlyArray<JournalEvent.Entry>>,
  scope?: { readonly task: Task.Task; readonly code?: string | undefined }
): ResultCache => {
  const b = builder(scope)
  for (const entries of journals) b.add(entries)
  return b.cache
}
