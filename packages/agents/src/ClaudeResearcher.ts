/**
 * A `Researcher` backed by a language model (Claude by default): `analyze` and `propose`
 * are structured outputs decoded with core's schemas, with research tools the model may call
 * first (Hugging Face Hub, arXiv, and Anthropic's server-side web search when enabled). The
 * model sees the task's search space, and a proposal outside it goes back for repair; proposals
 * whose fingerprints were already tried are dropped, and the model is asked once
 * more if nothing new is left; `distill` returns insights not already known.
 *
 * @since 0.1.0
 */
import { Errors, Fingerprint, type Insight, Researcher, Strategy } from "@trex/core"
import { Context, Effect, Layer, Schema } from "effect"
import * as Prompt from "./internal/claudeContext.ts"
import * as Net from "./internal/claudeResearchTools.ts"
import * as Http from "./internal/modelHttp.ts"
import * as Space from "./internal/spaceCheck.ts"
import * as AnthropicModel from "./model/AnthropicModel.ts"
import * as Model from "./model/Model.ts"
import * as StructuredOutput from "./model/StructuredOutput.ts"

/**
 * Where the research tools go on the network. Tests provide {@link ResearchTools.layer}
 * with local base URLs, or their own implementation.
 * @since 0.1.0 @category services
 */
export class ResearchTools extends Context.Service<ResearchTools, {
  readonly searchDatasets: (query: string, limit: number) => Effect.Effect<string, string>
  readonly searchModels: (query: string, limit: number) => Effect.Effect<string, string>
  readonly searchArxiv: (query: string, limit: number) => Effect.Effect<string, string>
}>()("@trex/agents/ResearchTools") {
  /** The public Hub and arXiv APIs, or others at the given base URLs (a mirror, a local server in tests). @since 0.1.0 */
  static readonly layer = (options: { readonly huggingFace?: string; readonly arxiv?: string; readonly timeoutMs?: number } = {}) => {
    const endpoints: Net.Endpoints = {
      huggingFace: options.huggingFace ?? "https://huggingface.co",
      arxiv: options.arxiv ?? "http://export.arxiv.org",
      timeoutMs: options.timeoutMs ?? 20_000
    }
    return Layer.succeed(ResearchTools, {
      searchDatasets: Net.searchDatasets(endpoints),
      searchModels: Net.searchModels(endpoints),
      searchArxiv: Net.searchArxiv(endpoints)
    })
  }
}

/** @since 0.1.0 @category models */
export interface Options {
  /** Token budget of the tree description in `propose` and `distill` (default 12 000). */
  readonly maxContextTokens?: number
  /** Output tokens per call (default 8192). */
  readonly maxTokens?: number
  readonly thinking?: { readonly budgetTokens: number }
  /** Offer Anthropic's server-side web search (default false). */
  readonly webSearch?: boolean
  /** Offer the Hub and arXiv tools (default true). */
  readonly researchTools?: boolean
  /** Repairs of invalid structured outputs (default 2). */
  readonly maxRepairs?: number
}

const SYSTEM = `You are the research lead of an automated LLM fine-tuning search (TREX). Experiments form a tree: each node
is a strategy (a data recipe, a training configuration and an evaluation plan) run as one fine-tuning job. You analyse
tasks, propose strategies that are likely to improve the metric within budget, and distil insights from results.
Be concrete: use dataset names and hyper-parameters that can run as given. Answer only through the provided answer tools.`

const ProposalsAnswer = Schema.Struct({
  proposals: Schema.Array(Schema.Struct({
    strategy: Strategy.Strategy,
    prior: Schema.optionalKey(Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 })))
  }))
})

const InsightsAnswer = Schema.Struct({
  insights: Schema.Array(Schema.Struct({ text: Schema.NonEmptyString, evidence: Schema.Array(Schema.String) }))
})

/** Text compared for duplicate insights: lower case, letters and digits only. @since 0.1.0 @category utilities */
export const normalizeInsight = (text: string): string => text.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, " ").trim()

const queryInput = Schema.Struct({ query: Schema.String, limit: Schema.optionalKey(Schema.Int) })
const decodeQuery = Schema.decodeUnknownEffect(queryInput)
const queryTool = (name: string, description: string, run: (q: string, limit: number) => Effect.Effect<string, string>): StructuredOutput.ToolHandler => ({
  definition: {
    name,
    description,
    inputSchema: { type: "object", properties: { query: { type: "string" }, limit: { type: "integer", minimum: 1, maximum: 20 } }, required: ["query"] }
  },
  run: (input) =>
    decodeQuery(input).pipe(
      Effect.mapError((e) => `invalid input: ${e.message}`),
      Effect.flatMap(({ query, limit }) => run(query, Math.min(20, Math.max(1, limit ?? 5))))
    )
})

const toResearcherError = (operation: string, maxContext: number) => (e: Model.ModelError | StructuredOutput.StructuredOutputError) =>
  new Errors.ResearcherError({
    operation,
    message: e._tag === "ModelError" && Http.outgrew(e)
      ? `${e.message} (the researcher's prompt, the task and for propose and distill up to maxContextTokens (${maxContext}) of the tree, ` +
        `outgrew the model's context window: lower maxContextTokens, or use a model with a larger window (TREX_MODEL))`
      : e.message,
    retryable: e.retryable
  })

/**
 * Build the researcher from a `Model` and `ResearchTools` in context.
 * @since 0.1.0 @category constructors
 */
export const make = Effect.fn("ClaudeResearcher.make")(function*(options: Options = {}) {
  const model = yield* Model.Model
  const net = yield* ResearchTools
  const maxContext = options.maxContextTokens ?? 12_000
  const tools = options.researchTools === false ? [] : [
    queryTool("search_hf_datasets", "Search Hugging Face Hub datasets by keywords; returns ids, downloads and tags.", net.searchDatasets),
    queryTool("search_hf_models", "Search Hugging Face Hub models by keywords; returns ids, downloads and tags.", net.searchModels),
    queryTool("search_arxiv", "Search arXiv papers by keywords; returns titles, ids and abstracts.", net.searchArxiv)
  ]
  const ask = <S extends Schema.Top>(
    schema: S,
    name: string,
    description: string,
    messages: ReadonlyArray<Model.Message>,
    check?: (value: S["Type"]) => ReadonlyArray<string>
  ) =>
    StructuredOutput.generateObject({
      schema,
      name,
      description,
      system: SYSTEM,
      messages,
      tools,
      ...(check !== undefined ? { check } : {}),
      maxTokens: options.maxTokens ?? 8192,
      maxRepairs: options.maxRepairs ?? 2,
      reason: name,
      ...(options.webSearch === true ? { webSearch: { maxUses: 3 } } : {}),
      ...(options.thinking !== undefined ? { thinking: options.thinking } : {})
    }).pipe(Effect.provideService(Model.Model, model))

  const analyze = Effect.fn("ClaudeResearcher.analyze")(function*(task: Parameters<Researcher.ResearcherShape["analyze"]>[0]) {
    return yield* ask(Researcher.Analysis, "submit_analysis", "Submit your analysis of the task.", [
      Model.user(`${Prompt.describeTask(task)}\n\nAnalyse this task: what the metric rewards, the data at hand and what is missing, the risks.`)
    ]).pipe(Effect.mapError(toResearcherError("analyze", maxContext)))
  })

  const propose = Effect.fn("ClaudeResearcher.propose")(function*(context: Researcher.ProposalContext, n: number) {
    const first = Model.user(Prompt.describeTask(context.task))
    const prompt = Prompt.describeProposal(context, n, maxContext)
    const seen = new Set<string>()
    const fresh = (answer: typeof ProposalsAnswer.Type) =>
      answer.proposals.flatMap((p): Array<Researcher.Proposal> => {
        const fp = Fingerprint.of(p.strategy)
        if (context.tried(fp) || seen.has(fp)) return []
        seen.add(fp)
        return [p.prior !== undefined ? { strategy: p.strategy, prior: p.prior } : { strategy: p.strategy }]
      })
    const description = `Submit exactly ${n} proposed strategies.`
    // a value outside the declared space would be refused by the trainer: send it back for repair instead
    const space = context.task.searchSpace
    const check = space === undefined ? undefined : (answer: typeof ProposalsAnswer.Type) =>
      answer.proposals.flatMap((p, i) => Space.spaceIssues(space, p.strategy).map((issue) => `proposals[${i}].strategy.${issue}`))
    const answer = yield* ask(ProposalsAnswer, "submit_proposals", description, [first, Model.user(prompt)], check)
    let out = fresh(answer)
    if (out.length === 0 && answer.proposals.length > 0) {
      const again = yield* ask(ProposalsAnswer, "submit_proposals", description, [
        first,
        Model.user(`${prompt}\n\nYour previous proposals were all duplicates of experiments already run:\n` +
          answer.proposals.map((p) => `- ${JSON.stringify({ data: Strategy.encode(p.strategy).data, training: Strategy.encode(p.strategy).training })}`).join("\n") +
          `\nPropose ${n} strategies that differ from them and from every experiment above.`)
      ], check)
      out = fresh(again)
    }
    return out.slice(0, n)
  }, (effect) => Effect.mapError(effect, toResearcherError("propose", maxContext)))

  const distill = Effect.fn("ClaudeResearcher.distill")(function*(context: Researcher.DistillContext) {
    const answer = yield* ask(InsightsAnswer, "submit_insights", "Submit new insights (an empty list if there are none).", [
      Model.user(Prompt.describeTask(context.task)),
      Model.user(Prompt.describeDistill(context, maxContext))
    ])
    const known = new Set(context.tree.insights.map((i) => normalizeInsight(i.text)))
    const out: Array<Insight.Insight> = []
    for (const [i, candidate] of answer.insights.entries()) {
      const key = normalizeInsight(candidate.text)
      if (key.length === 0 || known.has(key)) continue
      known.add(key)
      out.push({
        id: `insight-${context.now}-${i}`,
        text: candidate.text,
        evidence: candidate.evidence.filter((id) => context.tree.get(id) !== undefined),
        createdAt: context.now,
        data: {}
      })
    }
    return out
  }, (effect) => Effect.mapError(effect, toResearcherError("distill", maxContext)))

  return { name: `claude(${model.model})`, analyze, propose, distill } satisfies Researcher.ResearcherShape
})

/**
 * The researcher as a layer over the `Model` and `ResearchTools` you provide.
 * @since 0.1.0 @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Researcher.Researcher, never, Model.Model | ResearchTools> =>
  Layer.effect(Researcher.Researcher, make(options))

/**
 * Ready to run from the environment: Claude via {@link AnthropicModel.layerConfig}
 * (`ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`, `TREX_MODEL`) and the public research APIs.
 *
 * @example
 * ```ts
 * import { ClaudeResearcher } from "@trex/agents"
 * const researcher = ClaudeResearcher.layerConfig({ webSearch: true })
 * ```
 * @since 0.1.0 @category layers
 */
export const layerConfig = (options: Options = {}) =>
  layer(options).pipe(Layer.provide([AnthropicModel.layerConfig(), ResearchTools.layer()]))
