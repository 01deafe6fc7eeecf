/**
 * A self-contained HTML report of a search: the tree (interactive, coloured by score, with a
 * details panel per node), score over trials and GPU-hours, the budget, the insights and the
 * best strategy. One file, no network: styles, script and data are inline, and the page's
 * Content-Security-Policy forbids any request.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { type Errors, Journal } from "@trex/core"
import type { JournalEvent } from "@trex/core"
import { build } from "./internal/reportModel.ts"
import { emptyPage, page } from "./internal/reportPage.ts"

/**
 * Last log lines per node id (for example read from `jobs/<node-id>/` logs), shown in the
 * node's details under the failure's own log tail.
 * @since 0.1.0 @category models
 */
export type Logs = Readonly<Record<string, ReadonlyArray<string>>>

/**
 * What a report is made of: a run's journal entries, in order, and optional log tails.
 * @since 0.1.0 @category models
 */
export interface Input {
  readonly entries: ReadonlyArray<JournalEvent.Entry>
  readonly logs?: Logs
  /**
   * No controller writes the run (see `RunDir.RunInfo.writer`): its trials in flight are drawn
   * interrupted (a drain withdrew them, or a kill left them), and an unfinished run is said to be
   * stopped, instead of "in progress".
   */
  readonly stopped?: boolean
  /** The journal's damage (`RunDir.RunInfo.damage`'s message), when `entries` are what precedes it: the page says so. */
  readonly damage?: string
  /** Why `logs` are left out (a secret the lines could hold that could not be taken out): the page says so. */
  readonly logsWithheld?: string
}

/**
 * Render the report as one HTML document. Pure; every string from the journal is escaped.
 * A journal without a `RunStarted` event gives a page saying so.
 *
 * @example
 * ```ts
 * import { writeFileSync } from "node:fs"
 * import { HtmlReport } from "@trex/cli"
 * declare const entries: ReadonlyArray<import("@trex/core").JournalEvent.Entry>
 * writeFileSync("report.html", HtmlReport.render({ entries }))
 * ```
 * @since 0.1.0 @category rendering
 */
export const render = (input: Input): string => {
  const model = build(input.entries, input.logs, input.stopped === true)
  return model === undefined
    ? emptyPage()
    : page(model, {
      stopped: input.stopped === true,
      ...(input.damage !== undefined ? { damage: input.damage } : {}),
      ...(input.logsWithheld !== undefined ? { logsWithheld: input.logsWithheld } : {})
    })
}

/**
 * Read the whole run from the {@link Journal.Journal} service and render its report.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Journal } from "@trex/core"
 * import { HtmlReport } from "@trex/cli"
 * const html = HtmlReport.fromJournal().pipe(Effect.provide(Journal.Journal.layerSqlite("run/journal.sqlite", { readonly: true })))
 * ```
 * @since 0.1.0 @category rendering
 */
export const fromJournal: (logs?: Logs) => Effect.Effect<string, Errors.JournalError, Journal.Journal> = Effect.fn("HtmlReport.fromJournal")(function*(logs?: Logs) {
  const journal = yield* Journal.Journal
  const entries = yield* journal.read()
  return render(logs === undefined ? { entries } : { entries, logs })
})
