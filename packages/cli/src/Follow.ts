/**
 * Following a run from another process (`trex status <run-dir> --follow`): its journal read as
 * its controller writes it, each new entry handed over with the run's tree as it then stands,
 * until the controller exits. Read-only and without the run's lock, so it never stands in the
 * controller's way, and stopping it does not stop the run.
 *
 * @since 0.1.0
 */
import { Errors, ExperimentTree, Journal, type JournalEvent } from "@trex/core"
import * as Effect from "effect/Effect"
import * as RunDir from "./RunDir.ts"

/**
 * What {@link follow} hands over: `onStart` once, with the run as it stands when the follow begins
 * (its entries so far, and its controller); then `onEntry` for every entry journaled after them, in
 * order, with the tree updated by it.
 * @since 0.1.0 @category models
 */
export interface Sink {
  readonly onStart: (info: RunDir.RunInfo) => void
  readonly onEntry: (entry: JournalEvent.Entry, tree: ExperimentTree.TreeView) => void
}

/**
 * How a follow ended: the run's controller exited (`Exited`: the run finished, was stopped or
 * died; its last entries were handed over), the follower was asked to stop (`Stopped`: the run goes
 * on), or nobody was running the run when the follow began (`NotRunning`: nothing was handed over
 * but `onStart`).
 * @since 0.1.0 @category models
 */
export type Outcome =
  | { readonly _tag: "Exited"; readonly info: RunDir.RunInfo }
  | { readonly _tag: "Stopped"; readonly info: RunDir.RunInfo }
  | { readonly _tag: "NotRunning"; readonly info: RunDir.RunInfo }

/**
 * Follow the run in `runDir`: read its journal every `pollMs` (500 by default) from where the
 * last read stopped, and hand each new entry to `sink` with the run's tree, until its controller
 * has exited (its writer lock released; what it wrote last is read first) or `stopped()` says so.
 * A run nobody runs is `NotRunning` at once. A journal found damaged while it is followed fails
 * with the damage (the entries before it were handed over). Fails as {@link RunDir.load} does for a
 * folder that is no run.
 *
 * @example
 * ```ts
 * import { Follow } from "@trex/cli"
 * import { Effect } from "effect"
 *
 * // print each trial's end as the run goes, until its controller exits
 * const program = Follow.follow("trex-runs/20261205-080000-quickstart", {
 *   onStart: (info) => console.log(`following ${info.started.runId}`),
 *   onEntry: ({ event }) => event._tag === "NodeFinished" && console.log(event.nodeId, event.outcome)
 * })
 * ```
 * @since 0.1.0 @category reading
 */
export const follow = (
  runDir: string,
  sink: Sink,
  options: { readonly pollMs?: number; readonly stopped?: () => boolean } = {}
): Effect.Effect<Outcome, Errors.InvalidInput | Errors.JournalError> =>
  Effect.gen(function*() {
    const file = RunDir.journalFile(runDir)
    const start = yield* RunDir.load(runDir)
    sink.onStart(start)
    if (start.writer === undefined) return { _tag: "NotRunning", info: start } as const
    const tree = start.tree
    const entries = [...start.entries]
    let finished = start.finished
    let last = entries.at(-1)?.seq ?? 0
    const pollMs = options.pollMs ?? 500
    const readNew = Effect.gen(function*() {
      const intact = yield* Journal.readIntact(file, { from: last + 1 })
      for (const entry of intact.entries) {
        tree.apply(entry.event)
        entries.push(entry)
        last = entry.seq
        if (entry.event._tag === "RunFinished") finished = entry.event
        else if (entry.event._tag === "RunResumed") finished = undefined
        sink.onEntry(entry, tree.view)
      }
      if (intact.damage !== undefined) {
        return yield* new Errors.JournalError({
          ...intact.damage,
          message: `${intact.damage.message}; the run was followed up to entry ${last} (\`trex status ${runDir}\` shows it up to its damage)`
        })
      }
    })
    while (true) {
      // the writer looked at before the read: once it is gone, this read has everything it wrote
      const holder = yield* Journal.writer(file)
      // a `trex notify` that took the run's lock once its controller exited is no controller
      const writer = holder?.by === undefined ? holder : undefined
      yield* readNew
      const info = (): RunDir.RunInfo => ({ ...start, finished, tree, entries, writer })
      if (writer === undefined) return { _tag: "Exited", info: info() } as const
      if (options.stopped?.() === true) return { _tag: "Stopped", info: info() } as const
      // a stop asked meanwhile is seen within a tenth of a second, not a whole poll later
      for (let waited = 0; waited < pollMs && options.stopped?.() !== true; waited += 100) yield* Effect.sleep(Math.min(100, pollMs - waited))
    }
  })
