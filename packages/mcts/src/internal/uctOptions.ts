import { OptionSpec } from "@trex/core"

/**
 * What each option of `Uct.make` takes; `Puct.make` takes the same but `usePriors`, with its own
 * default `c` (`c` says what the constant is for, in the message about a bad one).
 */
export const spec = (c: string, usePriors = true): OptionSpec.Spec => ({
  c: OptionSpec.aliased(OptionSpec.number({ min: 0 }, c), ["exploration", "explorationConstant", "exploration_constant", "cUct", "cPuct", "c_puct"]),
  decay: OptionSpec.number({ min: 0 }, "c shrinks by decay x the budget used; 0 keeps it fixed"),
  backup: OptionSpec.literal(["max", "mean"], "how a subtree is valued: its best result or its mean"),
  drafts: OptionSpec.integer(1, "first-level strategies before the root competes with its children"),
  widening: OptionSpec.struct({
    k: OptionSpec.required(OptionSpec.number({ above: 0 }, "children allowed at the first visit")),
    alpha: OptionSpec.required(OptionSpec.number({ min: 0, max: 1 }, "growth exponent: 0 keeps k children, 0.5 about k * sqrt(visits)"))
  }, "progressive widening: { k, alpha }"),
  virtualLoss: OptionSpec.boolean("count running trials as losses"),
  ...(usePriors ? { usePriors: OptionSpec.boolean("weight exploration by the researcher's priors, as Puct does") } : {})
})
