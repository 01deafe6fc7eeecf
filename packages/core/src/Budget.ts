/**
 * Budgets and their accounting. A {@link Budget} caps trials, GPU-hours, wall clock,
 * dollars and tokens; a {@link Ledger} tracks what was spent and what running trials
 * have reserved, and answers whether another trial may start.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import * as Cost from "./Cost.ts"
import { Positive, PositiveInt } from "./internal/schema.ts"
import type * as JournalEvent from "./JournalEvent.ts"

/**
 * Limits for one search. Every field is optional: an absent limit is no limit.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Budget } from "@trex/core"
 * const b = Schema.decodeUnknownSync(Budget.Budget)({ maxTrials: 20, gpuHours: 4 })
 * ```
 * @since 0.1.0 @category schemas
 */
export const Budget = Schema.Struct({
  maxTrials: Schema.optionalKey(PositiveInt),
  gpuHours: Schema.optionalKey(Positive),
  wallClockHours: Schema.optionalKey(Positive),
  dollars: Schema.optionalKey(Positive),
  tokens: Schema.optionalKey(PositiveInt),
  /**
   * Hold every trial at the most it can cost (its `recipe.resources.timeLimitSeconds` of its GPUs,
   * at the task's `backend.pricing`, and of wall clock) rather than at what it is expected to cost,
   * for the whole run: the trials can then never together pass `gpuHours`, `dollars` or
   * `wallClockHours`, at the price of fewer trials in flight near a limit. Needs a time limit.
   * Model calls are not trials: under `dollars` and `tokens` they may still pass a limit by the
   * call that crosses it.
   */
  strict: Schema.optionalKey(Schema.Boolean)
})
/** @since 0.1.0 @category models */
export type Budget = typeof Budget.Type

/** Which limit stopped the search. @since 0.1.0 @category models */
export type Limit = "maxTrials" | "gpuHours" | "wallClockHours" | "dollars" | "tokens"

/** Spent, reserved and remaining amounts, for status output. @since 0.1.0 @category models */
export interface Usage {
  readonly trials: number
  readonly spent: Cost.Cost
  readonly reserved: Cost.Cost
  readonly elapsedSeconds: number
}

/**
 * Budget accounting with reservations. A running trial holds its estimated cost until
 * it settles — at least what a trial is estimated to cost now ({@link Ledger.holdAtLeast}),
 * when that is more than was known when it was admitted; admission checks spent + reserved +
 * estimate against every limit (and the run's elapsed time + the trial's expected wall time
 * against the wall clock), so concurrent trials can never together overrun a limit that their
 * estimates respect.
 *
 * Plain, synchronous and deterministic: the explorer owns one and journals every charge.
 *
 * @since 0.1.0 @category accounting
 */
export class Ledger {
  private spentCost: Cost.Cost = Cost.zero
  private trialsStarted = 0
  private readonly reservations = new Map<string, Cost.Cost>()
  private floor: Cost.Cost = Cost.zero
  private elapsed = 0

  readonly budget: Budget
  constructor(budget: Budget) {
    this.budget = budget
  }

  /** Total spent so far (settled trials and model calls). */
  get spent(): Cost.Cost {
    return this.spentCost
  }

  /** Trials admitted so far (running or finished). */
  get trials(): number {
    return this.trialsStarted
  }

  /** Sum of the reservations of running trials (each at least the {@link holdAtLeast} estimate). */
  get reserved(): Cost.Cost {
    let total = Cost.zero
    for (const c of this.reservations.values()) total = Cost.add(total, atLeast(c, this.floor))
    return total
  }

  /**
   * From now on, every running trial holds at least `estimate` (field by field): what one trial is
   * now expected to cost. Trials admitted when less was known — before any trial had reported its
   * cost, an estimate of 0 — then hold what a trial is known to cost, so they do not let more
   * trials start than the budget can pay for.
   */
  holdAtLeast(estimate: Cost.Cost): void {
    this.floor = estimate
  }

  /** Record the wall-clock seconds since the run started (resumes add up). */
  setElapsed(seconds: number): void {
    this.elapsed = seconds
  }

  get elapsedSeconds(): number {
    return this.elapsed
  }

  usage(): Usage {
    return { trials: this.trialsStarted, spent: this.spentCost, reserved: this.reserved, elapsedSeconds: this.elapsed }
  }

  /**
   * The first limit that spent + reserved + `extra` would pass, if any. For the wall clock, a
   * trial runs beside the others: the limit is passed when the run's elapsed time + `extra`'s wall
   * seconds (the trial would still be running then) is past it.
   */
  wouldExceed(extra: Cost.Cost = Cost.zero, extraTrials = 0): Limit | undefined {
    const b = this.budget
    const total = Cost.add(Cost.add(this.spentCost, this.reserved), extra)
    if (b.maxTrials !== undefined && this.trialsStarted + extraTrials > b.maxTrials) return "maxTrials"
    if (b.gpuHours !== undefined && total.gpuSeconds > b.gpuHours * 3600 + 1e-9) return "gpuHours"
    if (b.dollars !== undefined && total.dollars > b.dollars + 1e-12) return "dollars"
    if (b.tokens !== undefined && Cost.tokens(total) > b.tokens) return "tokens"
    if (b.wallClockHours !== undefined && this.elapsed + extra.wallSeconds > b.wallClockHours * 3600) return "wallClockHours"
    return undefined
  }

  /**
   * The limit that what was spent (or the trials started, or the time elapsed) has reached, if any:
   * no more work fits, whatever the trials in flight turn out to cost. Their reservations are
   * estimates, and stop admissions ({@link canAdmit}) but not the run: a trial that settles below
   * its reservation gives the difference back.
   */
  exhausted(): Limit | undefined {
    const b = this.budget
    const s = this.spentCost
    if (b.maxTrials !== undefined && this.trialsStarted >= b.maxTrials) return "maxTrials"
    if (b.gpuHours !== undefined && s.gpuSeconds >= b.gpuHours * 3600) return "gpuHours"
    if (b.dollars !== undefined && s.dollars >= b.dollars) return "dollars"
    if (b.tokens !== undefined && Cost.tokens(s) >= b.tokens) return "tokens"
    if (b.wallClockHours !== undefined && this.elapsed > b.wallClockHours * 3600) return "wallClockHours"
    return undefined
  }

  /** Whether a trial with this estimate (at least the {@link holdAtLeast} one) may start now. */
  canAdmit(estimate: Cost.Cost): boolean {
    return this.exhausted() === undefined && this.wouldExceed(atLeast(estimate, this.floor), 1) === undefined
  }

  /** Admit a trial: count it and hold its estimate until {@link settle}. */
  reserve(nodeId: string, estimate: Cost.Cost): void {
    this.trialsStarted += 1
    this.reservations.set(nodeId, estimate)
  }

  /**
   * Account for one journal event (replay, or a view following a live run): an admission
   * reserves, a finish releases, a charge spends. Other events change nothing.
   */
  apply(event: JournalEvent.JournalEvent): void {
    if (event._tag === "NodeAdmitted") this.reserve(event.nodeId, event.estimate)
    else if (event._tag === "NodeFinished") this.release(event.nodeId, event.result?.reusedFrom !== undefined)
    else if (event._tag === "BudgetCharged") this.charge(event.cost)
  }

  /**
   * Release a trial's reservation (its actual cost is charged separately). `reused`: it ended with
   * another run's result and ran no job (it waited for that run's trial of the same strategy), so
   * it is no trial of this run, as a result reused when proposed is not.
   */
  release(nodeId: string, reused = false): void {
    if (this.reservations.delete(nodeId) && reused) this.trialsStarted -= 1
  }

  /** Charge an actual cost. */
  charge(cost: Cost.Cost): void {
    this.spentCost = Cost.add(this.spentCost, cost)
  }

  /** Fraction of the tightest limit used, in [0, 1]; 0 when unlimited. Policies decay exploration with it. */
  fractionUsed(): number {
    const b = this.budget
    const s = this.spentCost
    const parts: Array<number> = []
    if (b.maxTrials !== undefined) parts.push(this.trialsStarted / b.maxTrials)
    if (b.gpuHours !== undefined) parts.push(s.gpuSeconds / (b.gpuHours * 3600))
    if (b.dollars !== undefined) parts.push(s.dollars / b.dollars)
    if (b.tokens !== undefined) parts.push(Cost.tokens(s) / b.tokens)
    if (b.wallClockHours !== undefined) parts.push(this.elapsed / (b.wallClockHours * 3600))
    return parts.length === 0 ? 0 : Math.min(1, Math.max(...parts))
  }
}

/** `c`, raised field by field to `floor`. */
const atLeast = (c: Cost.Cost, floor: Cost.Cost): Cost.Cost =>
  c.gpuSeconds >= floor.gpuSeconds && c.wallSeconds >= floor.wallSeconds && c.dollars >= floor.dollars &&
    c.inputTokens >= floor.inputTokens && c.outputTokens >= floor.outputTokens
    ? c
    : {
      gpuSeconds: Math.max(c.gpuSeconds, floor.gpuSeconds),
      wallSeconds: Math.max(c.wallSeconds, floor.wallSeconds),
      dollars: Math.max(c.dollars, floor.dollars),
      inputTokens: Math.max(c.inputTokens, floor.inputTokens),
      outputTokens: Math.max(c.outputTokens, floor.outputTokens)
    }
