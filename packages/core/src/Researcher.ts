/**
 * The `Researcher` contract: analyses the task, proposes strategies as children of a node,
 * and distils insights from finished experiments. Implementations in `@trex/agents`:
 * `HeuristicResearcher` (offline, the default) and `ClaudeResearcher`.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Budget from "./Budget.ts"
import type { ResearcherError } from "./Errors.ts"
import type { TreeView } from "./ExperimentTree.ts"
import type * as Insight from "./Insight.ts"
import { Extra, withDefault } from "./internal/schema.ts"
import { show } from "./OptionSpec.ts"
import type * as Strategy from "./Strategy.ts"
import type * as Task from "./Task.ts"

/**
 * A structured analysis of the task: what the metric rewards, the data at hand and what is
 * missing, risks. `notes` carries anything machine-readable a researcher wants to keep.
 * @since 0.1.0 @category schemas
 */
export const Analysis = Schema.Struct({
  summary: Schema.String,
  metricNotes: Schema.String.pipe(withDefault("")),
  dataNotes: Schema.String.pipe(withDefault("")),
  risks: Schema.Array(Schema.String).pipe(withDefault([])),
  notes: Extra
})
/** @since 0.1.0 @category models */
export type Analysis = typeof Analysis.Type

/** A proposed child: its strategy (with rationale) and an optional prior for PUCT. @since 0.1.0 @category models */
export interface Proposal {
  readonly strategy: Strategy.Strategy
  readonly prior?: number
}

/** What a researcher sees when proposing. @since 0.1.0 @category models */
export interface ProposalContext {
  readonly task: Task.Task
  readonly analysis: Analysis
  readonly tree: TreeView
  /** The node to expand ({@link ExperimentNode.ROOT} for a first-level proposal). */
  readonly parentId: string
  readonly usage: Budget.Usage
  /** Fingerprints already in the tree or in flight: proposing one of them is wasted. */
  readonly tried: (fingerprint: string) => boolean
}

/** What a researcher sees when distilling. @since 0.1.0 @category models */
export interface DistillContext {
  readonly task: Task.Task
  readonly tree: TreeView
  readonly now: number
}

/** The members of a researcher. @since 0.1.0 @category models */
export interface ResearcherShape {
  readonly name: string
  readonly analyze: (task: Task.Task) => Effect.Effect<Analysis, ResearcherError>
  /** Up to `n` proposals for children of `context.parentId`; fewer when the space is exhausted. */
  readonly propose: (context: ProposalContext, n: number) => Effect.Effect<ReadonlyArray<Proposal>, ResearcherError>
  /** New insights (not repeating `context.tree.insights`). */
  readonly distill: (context: DistillContext) => Effect.Effect<ReadonlyArray<Insight.Insight>, ResearcherError>
}

/**
 * @since 0.1.0 @category services
 */
export class Researcher extends Context.Service<Researcher, ResearcherShape>()("@trex/core/Researcher") {}

/**
 * The first wait, in milliseconds, before a researcher that failed retryably is asked again (each wait after twice the
 * one before, at most 60 s or the first), of `wait` as `Explorer.Options.researcherRetryDelay` takes it (a
 * `Duration.Input`: a number is milliseconds), or `undefined` when no wait is that (a negative, NaN or infinite one,
 * or no duration). The one rule of that option, of `Trex.start`'s `researcherRetryDelaySeconds` and of
 * `trex run --researcher-retry-delay`, which give it seconds (`wait * 1000`); {@link retryDelayIssue} says it.
 *
 * @example
 * ```ts
 * import { Researcher } from "@trex/core"
 *
 * Researcher.retryDelayMillis("2 seconds") // 2000
 * Researcher.retryDelayMillis(-1) // undefined
 * ```
 *
 * @since 0.1.0 @category retries
 */
export const retryDelayMillis = (wait: unknown): number | undefined => {
  // (Effect reads a NaN as zero)
  if (wait === undefined || wait === null || (typeof wait === "number" && Number.isNaN(wait))) return undefined
  try {
    const d = Duration.fromInput(wait as Duration.Input)
    const ms = Option.isSome(d) && Duration.isFinite(d.value) ? Duration.toMillis(d.value) : Number.NaN
    return ms >= 0 ? ms : undefined
  } catch {
    return undefined
  }
}

/**
 * What a first wait that {@link retryDelayMillis} refuses is told, for each place that takes one: `name` the option
 * or flag, `got` the value given, `unit` what it is given in (`"seconds"`, or a duration), `example` one it takes.
 *
 * @example
 * ```ts
 * import { Researcher } from "@trex/core"
 *
 * Researcher.retryDelayIssue("--researcher-retry-delay", -1, "seconds", "--researcher-retry-delay 10")
 * // "--researcher-retry-delay: expected a wait of 0 or more seconds (the first wait before a researcher that
 * //  failed retryably is asked again, doubled each time), e.g. --researcher-retry-delay 10, got -1"
 * ```
 *
 * @since 0.1.0 @category retries
 */
export const retryDelayIssue = (name: string, got: unknown, unit: "seconds" | "a duration", example: string): string =>
  `${name}: expected ${unit === "seconds" ? "a wait of 0 or more seconds" : "a duration of 0 or more"} ` +
  `(the first wait before a researcher that failed retryably is asked again, doubled each time), e.g. ${example}, got ${show(got)}`
