/**
 * Results shared across runs: a strategy whose fingerprint already has a finished result in
 * another run (a sibling run directory, a team cache) is not run again; its result is reused.
 *
 * @since 0.1.0
 */
import type { JournalEvent, Result } from "@trex/core"

/** A reusable result and where it came from (`<run>/<node>`). @since 0.1.0 @category models */
export interface Hit {
  readonly result: Result.Result
  readonly source: string
}

/** @since 0.1.0 @category models */
export interface ResultCache {
  readonly lookup: (fingerprint: string) => Hit | undefined
}

/** A cache that knows nothing. @since 0.1.0 @category constructors */
export const empty: ResultCache = { lookup: () => undefined }

/**
 * A cache over the journals of other runs: every succeeded node's result, by fingerprint.
 * Only results of runs on the same task (by name and metric) are reused.
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
  task?: { readonly name: string; readonly metric: { readonly name: string } }
): ResultCache => {
  const map = new Map<string, Hit>()
  for (const entries of journals) {
    let runId = ""
    const fps = new Map<string, string>()
    let sameTask = true
    for (const { event } of entries) {
      if (event._tag === "RunStarted") {
        runId = event.runId
        sameTask = task === undefined || (event.task.name === task.name && event.task.metric.name === task.metric.name)
      } else if (event._tag === "NodeProposed") fps.set(event.node.id, event.node.fingerprint)
      else if (sameTask && event._tag === "NodeFinished" && event.outcome === "Succeeded" && event.result !== undefined) {
        const fp = fps.get(event.nodeId)
        if (fp !== undefined && !map.has(fp)) {
          map.set(fp, { result: event.result, source: event.result.reusedFrom ?? `${runId}/${event.nodeId}` })
        }
      }
    }
  }
  return { lookup: (fp) => map.get(fp) }
}
