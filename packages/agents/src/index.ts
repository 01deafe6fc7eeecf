/**
 * @trex/agents — who decides: researchers (heuristic, Claude, baselines) and executor agents
 * (template, code agent).
 *
 * @since 0.1.0
 */
export * as HeuristicResearcher from "./HeuristicResearcher.ts"
export * as TemplateExecutor from "./TemplateExecutor.ts"
