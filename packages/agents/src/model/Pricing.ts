/**
 * Prices of model tokens, in dollars per million, and the conversion of a call's usage into
 * core's `Cost`. Cache writes (5-minute ephemeral) cost 1.25x input and cache reads 0.1x
 * input on Anthropic, and each server-side web search $0.01; local models cost nothing.
 *
 * @since 0.1.0
 */
import { Cost } from "@trex/core"
import type { Usage } from "./Model.ts"

/** Dollars per million tokens, and per server-side web search. @since 0.1.0 @category models */
export interface Prices {
  readonly input: number
  readonly output: number
  readonly cacheWrite: number
  readonly cacheRead: number
  /** Dollars per web search (none: searches are free). */
  readonly webSearch?: number
}

/** Anthropic's price of a web search: $10 per 1,000. @since 0.1.0 @category constants */
export const ANTHROPIC_WEB_SEARCH = 0.01

/** Prices for `input`/`output` with Anthropic's cache multipliers and web search price. @since 0.1.0 @category constructors */
export const anthropic = (input: number, output: number): Prices => ({
  input,
  output,
  cacheWrite: input * 1.25,
  cacheRead: input * 0.1,
  webSearch: ANTHROPIC_WEB_SEARCH
})

/** Free (a local model, or one you do not want to charge). @since 0.1.0 @category constants */
export const free: Prices = { input: 0, output: 0, cacheWrite: 0, cacheRead: 0 }

/**
 * Claude prices by model-id prefix, longest match first; ids with a date suffix match their
 * family. Edit or extend with {@link forModel}'s `overrides` when prices change.
 * @since 0.1.0 @category constants
 */
export const claude: Readonly<Record<string, Prices>> = {
  "claude-opus-4-0": anthropic(15, 75),
  "claude-opus-4-1": anthropic(15, 75),
  "claude-opus-4-5": anthropic(5, 25),
  "claude-opus-4-6": anthropic(5, 25),
  "claude-opus-4-7": anthropic(5, 25),
  "claude-opus-4-8": anthropic(5, 25),
  "claude-opus-5": anthropic(5, 25),
  "claude-sonnet-4": anthropic(3, 15),
  "claude-sonnet-5": anthropic(3, 15),
  "claude-haiku-4-5": anthropic(1, 5),
  "claude-haiku-5": anthropic(1, 5),
  "claude-3-5-haiku": anthropic(0.8, 4)
}

/**
 * The prices for a model id: an exact or longest-prefix match in `overrides` then
 * {@link claude}; a Claude id that matches nothing is priced as its family (opus, sonnet,
 * haiku) at the newest rates; anything else is {@link free}.
 * @since 0.1.0 @category constructors
 */
export const forModel = (model: string, overrides: Readonly<Record<string, Prices>> = {}): Prices => {
  const table = { ...claude, ...overrides }
  const key = Object.keys(table)
    .filter((k) => model.startsWith(k))
    .sort((a, b) => b.length - a.length)[0]
  if (key !== undefined) return table[key]!
  if (model.includes("opus")) return anthropic(5, 25)
  if (model.includes("sonnet")) return anthropic(3, 15)
  if (model.includes("haiku")) return anthropic(1, 5)
  return free
}

/**
 * A call's cost: input tokens include cache reads and writes; dollars apply each price, web
 * searches included.
 * @since 0.1.0 @category conversions
 */
export const toCost = (prices: Prices, usage: Usage): Cost.Cost =>
  Cost.make({
    inputTokens: usage.inputTokens + usage.cacheReadTokens + usage.cacheWriteTokens,
    outputTokens: usage.outputTokens,
    dollars: (usage.inputTokens * prices.input +
      usage.outputTokens * prices.output +
      usage.cacheWriteTokens * prices.cacheWrite +
      usage.cacheReadTokens * prices.cacheRead) / 1_000_000 +
      (usage.webSearches ?? 0) * (prices.webSearch ?? 0)
  })
