/**
 * A task's declared search space for a model-backed researcher: as text for its prompt, and as
 * a check of each proposed strategy, so a value the trainer would refuse goes back to the model
 * for repair instead of costing a trial.
 *
 * What a parameter allows: a `categorical` one, or any with strings or booleans, one of its
 * values; a numeric `log` or `ordinal` one, any number from its smallest to its largest value —
 * the values are the grid the offline researchers step on, and a model may pick between them —
 * unless the space lists its valid combinations (`points`, a recorded table), when only the
 * listed values exist. A parameter whose `when` does not hold, or that the strategy leaves unset
 * (the trainer's default), is not checked.
 */
import { SearchSpace, type Strategy } from "@trex/core"

const mixturePrefix = "data.mixture."

const show = (v: SearchSpace.Value): string => (typeof v === "string" ? v : String(v))

const numericRange = (space: SearchSpace.SearchSpace, p: SearchSpace.Parameter): { lo: number; hi: number } | undefined => {
  if (p.kind === "categorical" || space.points !== undefined) return undefined
  if (!p.values.every((v) => typeof v === "number")) return undefined
  const xs = p.values as ReadonlyArray<number>
  return { lo: Math.min(...xs), hi: Math.max(...xs) }
}

const close = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b))

/** What a parameter allows, as the prompt and the repair messages say it. */
const allowed = (space: SearchSpace.SearchSpace, p: SearchSpace.Parameter): string => {
  const range = numericRange(space, p)
  return range === undefined
    ? `one of ${p.values.map(show).join(" | ")}`
    : `a number from ${range.lo} to ${range.hi}${p.kind === "log" ? " (log scale)" : ""}; values tried first: ${p.values.map(show).join(", ")}`
}

/** The space as a prompt section. */
export const describeSpace = (space: SearchSpace.SearchSpace): string => {
  const lines = space.parameters.map((p) => {
    const what = p.path.startsWith(mixturePrefix)
      ? `the share of source ${p.path.slice(mixturePrefix.length)} in the data mixture (the other sources share the rest): `
      : ""
    const when = p.when === undefined ? "" : `; only when ${p.when.path} is ${p.when.values.map(show).join(" or ")}`
    return `- ${p.path}: ${what}${allowed(space, p)}${when}`
  })
  const points = space.points === undefined ? "" : `\n(${space.points.length} combinations of these values exist; use only the values listed.)`
  return `Search space — the trainer accepts only these values for these parameters; proposals outside it are refused:\n${lines.join("\n")}${points}`
}

/** What is wrong with a strategy in the space, one issue a line as `path: problem`. */
export const spaceIssues = (space: SearchSpace.SearchSpace, strategy: Strategy.Strategy): Array<string> => {
  const issues: Array<string> = []
  for (const p of space.parameters) {
    if (!SearchSpace.isActive(p, strategy)) continue
    const v = SearchSpace.get(strategy, p.path)
    if (v === undefined) continue
    const range = numericRange(space, p)
    const ok = range !== undefined
      ? typeof v === "number" && v >= range.lo - 1e-9 * Math.abs(range.lo) && v <= range.hi + 1e-9 * Math.abs(range.hi)
      : p.values.some((x) => x === v || (typeof x === "number" && typeof v === "number" && close(x, v)))
    if (!ok) issues.push(`${p.path}: must be ${allowed(space, p)}, got ${JSON.stringify(v)}`)
  }
  return issues
}
