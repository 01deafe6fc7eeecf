/**
 * @trex/cli — the `trex` command line, and the wiring for embedding a search in an application.
 *
 * @since 0.1.0
 */
export * as Bench from "./Bench.ts"
export * as Check from "./Check.ts"
export * as Cli from "./Cli.ts"
export * as Follow from "./Follow.ts"
export * as HtmlReport from "./HtmlReport.ts"
export * as LiveView from "./LiveView.ts"
export * as Notify from "./Notify.ts"
export * as RunDir from "./RunDir.ts"
export * as Runs from "./Runs.ts"
export * as Settings from "./Settings.ts"
export * as Status from "./Status.ts"
export * as Trex from "./Trex.ts"
export * as Wiring from "./Wiring.ts"
