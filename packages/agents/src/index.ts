/**
 * @trex/agents — who decides: researchers (heuristic, Claude, baselines) and executor agents
 * (template, code agent), and the model layer they use (Anthropic, OpenAI-compatible).
 *
 * @since 0.1.0
 */
export * as AnthropicModel from "./model/AnthropicModel.ts"
export * as ClaudeResearcher from "./ClaudeResearcher.ts"
export * as CodeAgentExecutor from "./CodeAgentExecutor.ts"
export * as HeuristicResearcher from "./HeuristicResearcher.ts"
export * as Model from "./model/Model.ts"
export * as OpenAiModel from "./model/OpenAiModel.ts"
export * as Pricing from "./model/Pricing.ts"
export * as RandomResearcher from "./RandomResearcher.ts"
export * as StructuredOutput from "./model/StructuredOutput.ts"
export * as TemplateExecutor from "./TemplateExecutor.ts"
export * as TpeResearcher from "./TpeResearcher.ts"
