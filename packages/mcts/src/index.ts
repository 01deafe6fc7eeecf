/**
 * @trex/mcts — search policies (UCT, PUCT, Greedy, BestFirst, Random), progressive widening,
 * the ASHA early-stopping scheduler, and the exploration loop.
 *
 * @since 0.1.0
 */
export * as Asha from "./Asha.ts"
export * as BestFirst from "./BestFirst.ts"
export * as Control from "./Control.ts"
export * as Explorer from "./Explorer.ts"
export * as Greedy from "./Greedy.ts"
export * as ProgressiveWidening from "./ProgressiveWidening.ts"
export * as Puct from "./Puct.ts"
export * as RandomPolicy from "./RandomPolicy.ts"
export * as ResultCache from "./ResultCache.ts"
export * as Uct from "./Uct.ts"
