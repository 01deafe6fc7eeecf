import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Budget, Cost, CostMeter, ExperimentNode, ExperimentTree, Fingerprint, JournalEvent, type Researcher, Result, Strategy, Task } from "@trex/core"
import { Effect, Layer, Redacted, Schema } from "effect"
import * as ClaudeResearcher from "../src/ClaudeResearcher.ts"
import * as ClaudeContext from "../src/internal/claudeContext.ts"
import * as SpaceCheck from "../src/internal/spaceCheck.ts"
import * as AnthropicModel from "../src/model/AnthropicModel.ts"
import * as Model from "../src/model/Model.ts"
import * as Fake from "./support/FakeAnthropicServer.ts"

const taskInput = {
  name: "sst2",
  objective: "Classify movie-review sentiment",
  metric: { name: "accuracy", direction: "maximize" },
  datasets: [{ name: "stanfordnlp/sst2" }],
  budget: { maxTrials: 50 }
}
const task = Schema.decodeUnknownSync(Task.Task)(taskInput)
const strategy = (lr: number, rationale = "") =>
  Strategy.encode(Strategy.decodeSync({ data: { sources: [{ name: "sst2" }] }, training: { learningRate: lr, epochs: 1, batchSize: 8 }, rationale }))

/** A tree of `n` finished nodes in a chain of `depth`, the rest as children of the root. */
const makeTree = (n: number, depth = 3, because = (i: number) => `node ${i} because of reasons `.repeat(3)) => {
  const tree = ExperimentTree.ExperimentTree.empty(task)
  for (let i = 1; i <= n; i++) {
    const s = Strategy.decodeSync(strategy(i * 1e-5, because(i)))
    const parent = i > 1 && i <= depth ? `n${i - 1}` : ExperimentNode.ROOT
    tree.apply(JournalEvent.make("NodeProposed", { node: { id: `n${i}`, parent, strategy: s, fingerprint: Fingerprint.of(s), proposedAt: i }, at: i }))
    tree.apply(JournalEvent.make("NodeFinished", { nodeId: `n${i}`, outcome: "Succeeded", result: Result.success({ accuracy: 0.5 + (i % 7) / 100 }, 0.5 + (i % 7) / 100), at: i }))
  }
  return tree
}

const proposalContext = (tree: ExperimentTree.ExperimentTree, parentId: string, t: Task.Task = task): Researcher.ProposalContext => ({
  task: t,
  analysis: { summary: "Sentiment; small data.", metricNotes: "", dataNotes: "", risks: [], notes: {} },
  tree: tree.view,
  parentId,
  usage: { trials: tree.view.size, spent: Cost.zero, reserved: Cost.zero, elapsedSeconds: 60 } satisfies Budget.Usage,
  tried: (fp) => tree.view.byFingerprint(fp) !== undefined
})

/** A local stand-in for the Hugging Face Hub and arXiv APIs. */
const researchApis = Effect.acquireRelease(
  Effect.callback<http.Server>((resume) => {
    const server = http.createServer((req, res) => {
      const url = new URL(req.url!, "http://x")
      if (url.pathname === "/api/datasets") {
        res.writeHead(200, { "content-type": "application/json" })
        res.end(JSON.stringify([{ id: `fake/${url.searchParams.get("search")}-reviews`, downloads: 1234, likes: 5, tags: ["sentiment"] }]))
      } else if (url.pathname === "/api/query") {
        res.writeHead(200, { "content-type": "application/atom+xml" })
        res.end(`<feed><entry><id>http://arxiv.org/abs/2401.00001v1</id><published>2024-01-01T00:00:00Z</published><title>LoRA for
 sentiment</title><summary>We fine-tune with LoRA.</summary></entry></feed>`)
      } else {
        res.writeHead(404)
        res.end()
      }
    })
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) =>
    Effect.callback<void>((resume) => {
      server.close(() => resume(Effect.void))
    })
).pipe(Effect.map((server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`))

const researcher = (script: ReadonlyArray<Fake.Reply> | Fake.Handler, options: ClaudeResearcher.Options = {}, model: Fake.Options = {}) =>
  Effect.gen(function*() {
    const apis = yield* researchApis
    const server = yield* Fake.make(script, model)
    const records: Array<Cost.Cost> = []
    const shape = yield* ClaudeResearcher.make(options).pipe(
      Effect.provide(Layer.mergeAll(
        Layer.succeed(Model.Model, AnthropicModel.make({ apiKey: Redacted.make("sk-test"), baseURL: server.url, model: "claude-sonnet-5-5" })),
        ClaudeResearcher.ResearchTools.layer({ huggingFace: apis, arxiv: apis })
      ))
    )
    const meter = Layer.succeed(CostMeter.CostMeter, { record: (c: Cost.Cost) => Effect.sync(() => void records.push(c)) })
    return { researcher: shape, server, records, meter }
  })

const lastToolResults = (r: Fake.Recorded): Array<{ is_error?: boolean; content: string }> =>
  (r.body.messages.at(-1).content as Array<any>).filter((b) => b.type === "tool_result")

describe("ClaudeResearcher", () => {
  it.live("propose: research tool call, strategies decoded, tried and repeated fingerprints dropped, cost recorded", () =>
    Effect.gen(function*() {
      const tree = makeTree(4)
      const { meter, records, researcher: r, server } = yield* researcher((req, i) => {
        if (i === 0) return Fake.message([Fake.toolUse("search_hf_datasets", { query: "imdb", limit: 3 })], { input_tokens: 2000, output_tokens: 100 })
        assert.include(lastToolResults(req)[0]!.content, "fake/imdb-reviews")
        return Fake.message([Fake.toolUse("submit_proposals", {
          proposals: [
            { strategy: strategy(1e-5, "same as n1"), prior: 0.1 },
            { strategy: strategy(3e-4, "new"), prior: 0.6 },
            { strategy: { ...strategy(3e-4), rationale: "new again, same executable part" }, prior: 0.5 },
            { strategy: { ...strategy(1e-4), data: { sources: [{ name: "fake/imdb-reviews", weight: 0.3 }, { name: "sst2" }] } }, prior: 0.4 }
          ]
        })], { input_tokens: 3000, output_tokens: 400, cache_read_input_tokens: 2000 })
      })
      const proposals = yield* r.propose(proposalContext(tree, "n3"), 3).pipe(Effect.provide(meter))
      assert.deepStrictEqual(proposals.map((p) => p.prior), [0.6, 0.4])
      assert.deepStrictEqual(proposals.map((p) => p.strategy.training.learningRate), [3e-4, 1e-4])
      assert.strictEqual(proposals[1]!.strategy.data.sources[0]!.name, "fake/imdb-reviews")
      const first = server.requests[0]!.body
      assert.deepStrictEqual(first.tool_choice, { type: "any" })
      assert.deepStrictEqual(first.tools.map((t: any) => t.name), ["search_hf_datasets", "search_hf_models", "search_arxiv", "submit_proposals"])
      const prompt = first.messages.map((m: any) => m.content.map((b: any) => b.text).join("")).join("\n")
      for (const id of ["n1", "n2", "n3"]) assert.include(prompt, `- ${id} (`)
      assert.include(prompt, "trials run 4 of 50")
      assert.strictEqual(records.length, 2)
      assert.strictEqual(Cost.tokens(records[0]!) + Cost.tokens(records[1]!), 2100 + 5400)
      assert.closeTo(records[1]!.dollars, (3000 * 3 + 400 * 15 + 2000 * 0.3) / 1e6, 1e-12)
    }))

  it.live("propose: asks once more when every proposal was already tried", () =>
    Effect.gen(function*() {
      const tree = makeTree(2)
      const { researcher: r, server } = yield* researcher([
        Fake.message([Fake.toolUse("submit_proposals", { proposals: [{ strategy: strategy(1e-5) }, { strategy: strategy(2e-5) }] })]),
        Fake.message([Fake.toolUse("submit_proposals", { proposals: [{ strategy: strategy(5e-4) }] })])
      ], { researchTools: false })
      const proposals = yield* r.propose(proposalContext(tree, ExperimentNode.ROOT), 2)
      assert.deepStrictEqual(proposals.map((p) => p.strategy.training.learningRate), [5e-4])
      assert.strictEqual(server.requests.length, 2)
      assert.include(JSON.stringify(server.requests[1]!.body.messages), "all duplicates")
    }))

  it.live("propose: a mixture already run, written another way (weights scaled, sources in another order, one at 0), is a duplicate", () =>
    Effect.gen(function*() {
      const mixed = (sources: ReadonlyArray<{ readonly name: string; readonly weight: number }>) => ({ ...strategy(1e-4), data: { sources } })
      const tree = makeTree(1)
      const ran = Strategy.decodeSync(mixed([{ name: "sst2", weight: 0.5 }, { name: "imdb", weight: 0.5 }]))
      tree.apply(JournalEvent.make("NodeProposed", { node: { id: "n2", parent: ExperimentNode.ROOT, strategy: ran, fingerprint: Fingerprint.of(ran), proposedAt: 2 }, at: 2 }))
      const { researcher: r, server } = yield* researcher([
        Fake.message([Fake.toolUse("submit_proposals", {
          proposals: [
            { strategy: mixed([{ name: "imdb", weight: 1 }, { name: "sst2", weight: 1 }]) },
            { strategy: mixed([{ name: "sst2", weight: 0.5 }, { name: "wiki", weight: 0 }, { name: "imdb", weight: 0.5 }]) },
            { strategy: mixed([{ name: "sst2", weight: 0.7 }, { name: "imdb", weight: 0.3 }]) }
          ]
        })])
      ], { researchTools: false })
      const proposals = yield* r.propose(proposalContext(tree, ExperimentNode.ROOT), 3)
      assert.deepStrictEqual(proposals.map((p) => p.strategy.data.sources.map((src) => src.weight)), [[0.7, 0.3]])
      assert.strictEqual(server.requests.length, 1)
    }))

  it.live("analyze: an invalid answer is sent back with is_error and repaired", () =>
    Effect.gen(function*() {
      const { researcher: r, server } = yield* researcher([
        Fake.message([Fake.toolUse("submit_analysis", { metricNotes: "accuracy", risks: "overfitting" })]),
        Fake.message([Fake.toolUse("submit_analysis", { summary: "Binary sentiment.", risks: ["overfitting"] })])
      ], { researchTools: false })
      const analysis = yield* r.analyze(task)
      assert.strictEqual(analysis.summary, "Binary sentiment.")
      assert.deepStrictEqual(analysis.risks, ["overfitting"])
      const [repair] = lastToolResults(server.requests[1]!)
      assert.isTrue(repair!.is_error)
      assert.include(repair!.content, "summary")
      assert.deepStrictEqual(server.requests[1]!.body.tool_choice, { type: "tool", name: "submit_analysis" })
    }))

  it.live("analyze: fails with a ResearcherError after the repairs run out", () =>
    Effect.gen(function*() {
      const { researcher: r, server } = yield* researcher(() => Fake.message([Fake.toolUse("submit_analysis", { wrong: true })]), {
        researchTools: false,
        maxRepairs: 1
      })
      const error = yield* Effect.flip(r.analyze(task))
      assert.strictEqual(error._tag, "ResearcherError")
      assert.strictEqual(error.operation, "analyze")
      assert.include(error.message, "no valid submit_analysis after 1 repairs")
      assert.strictEqual(server.requests.length, 2)
    }))

  it.live("a prompt longer than the model's context window: the error says which option bounds it", () =>
    Effect.gen(function*() {
      const { researcher: r, server } = yield* researcher(() => Fake.message([Fake.text("unreached")]), { researchTools: false }, { contextTokens: 300 })
      const error = yield* Effect.flip(r.propose(proposalContext(makeTree(3), ExperimentNode.ROOT), 2))
      assert.isFalse(error.retryable)
      assert.match(error.message, /^HTTP 400 invalid_request_error: prompt is too long: \d+ tokens > 300 maximum \(the researcher's prompt/)
      assert.include(error.message, "up to maxContextTokens (12000) of the tree, outgrew the model's context window: lower maxContextTokens, or use a model with a larger window (TREX_MODEL))")
      assert.strictEqual(server.requests.length, 1)
    }))

  it.live("distill: new insights only, evidence restricted to known nodes", () =>
    Effect.gen(function*() {
      const tree = makeTree(3)
      tree.apply(JournalEvent.make("InsightsDistilled", {
        insights: [{ id: "i0", text: "Lower learning rates help.", evidence: ["n1"], createdAt: 0, data: {} }],
        at: 10
      }))
      const { researcher: r } = yield* researcher([
        Fake.message([Fake.toolUse("submit_insights", {
          insights: [
            { text: "lower learning-rates HELP", evidence: ["n2"] },
            { text: "One epoch is enough on sst2", evidence: ["n2", "n99"] },
            { text: "One epoch is enough on SST2!", evidence: ["n3"] }
          ]
        })])
      ], { researchTools: false })
      const insights = yield* r.distill({ task, tree: tree.view, now: 42 })
      assert.deepStrictEqual(insights.map((i) => [i.text, i.evidence, i.createdAt]), [["One epoch is enough on sst2", ["n2"], 42]])
    }))

  it.live("research tools: the arXiv Atom feed becomes text for the model", () =>
    Effect.gen(function*() {
      const apis = yield* researchApis
      const tools = yield* Effect.provide(ClaudeResearcher.ResearchTools, ClaudeResearcher.ResearchTools.layer({ huggingFace: apis, arxiv: apis }))
      const text = yield* tools.searchArxiv("lora sentiment", 2)
      assert.include(text, "LoRA for sentiment (http://arxiv.org/abs/2401.00001v1, 2024-01-01)")
      assert.include(text, "We fine-tune with LoRA.")
      const broken = yield* Effect.provide(ClaudeResearcher.ResearchTools, ClaudeResearcher.ResearchTools.layer({ huggingFace: `${apis}/nope`, arxiv: apis }))
      const error = yield* Effect.flip(broken.searchModels("bert", 2))
      assert.include(error, "HTTP 404")
    }))

  it("context compaction keeps a tree of 600 nodes within the token budget", () => {
    const tree = makeTree(600, 40)
    const text = ClaudeContext.describeProposal(proposalContext(tree, "n40"), 3, 4000)
    assert.isAtMost(Model.estimatedTokens(text), 4200)
    // The nearest ancestors stay in full, older ones condensed, the best results are present.
    assert.include(text, "- n40 (parent n39")
    assert.include(text, "- n10 (succeeded")
    assert.include(text, "more nodes omitted")
    const full = ClaudeContext.describeProposal(proposalContext(tree, "n40"), 3, 1_000_000)
    assert.isAbove(Model.estimatedTokens(full), 10_000)
  })

  it("context compaction counts a Chinese rationale's characters as the tokens they make, not 4 to a token", () => {
    // 300 characters of rationale a node (what a full node shows), about a token each: at 4 characters a token the
    // packing let in about four times the budget
    const tree = makeTree(200, 40, (i) => `第${i}个实验：学习率较低时验证集上的准确率更高，因此沿这个方向继续搜索。`.repeat(10))
    const text = ClaudeContext.describeProposal(proposalContext(tree, "n40"), 3, 4000)
    assert.include(text, "学习率较低")
    assert.include(text, "more nodes omitted")
    assert.isAtMost(Model.estimatedTokens(text), 4200)
  })

  const spaced = Schema.decodeUnknownSync(Task.Task)({
    ...taskInput,
    searchSpace: {
      parameters: [
        { path: "training.learningRate", kind: "log", values: [0.0003, 0.001, 0.003, 0.01, 0.03] },
        { path: "data.format", kind: "categorical", values: ["plain", "reversed", "scratchpad"] },
        { path: "training.method", kind: "categorical", values: ["full", "lora"] },
        { path: "training.lora.rank", kind: "ordinal", values: [2, 4, 8, 16], when: { path: "training.method", values: ["lora"] } },
        { path: "data.mixture.add2", kind: "ordinal", values: [0, 0.1, 0.2, 0.3] }
      ]
    }
  })
  const inSpace = (lr: number, format: string, extra: Record<string, unknown> = {}) => {
    const s = strategy(lr, "try it") as any
    return { ...s, data: { ...s.data, format }, training: { ...s.training, ...extra } }
  }

  it.live("propose: the model sees the search space, and a proposal outside it goes back for repair naming the allowed values", () =>
    Effect.gen(function*() {
      const tree = ExperimentTree.ExperimentTree.empty(spaced)
      const { researcher: r, server } = yield* researcher([
        Fake.message([Fake.toolUse("submit_proposals", { proposals: [{ strategy: inSpace(7.5, "klingon") }, { strategy: inSpace(0.001, "plain") }] })]),
        // off the grid yet within the range is fine; the LoRA rank does not matter under full training
        Fake.message([Fake.toolUse("submit_proposals", {
          proposals: [{ strategy: inSpace(0.002, "scratchpad", { method: "full", lora: { rank: 64, alpha: 16, dropout: 0 } }) }, { strategy: inSpace(0.001, "plain") }]
        })])
      ], { researchTools: false })
      const proposals = yield* r.propose(proposalContext(tree, ExperimentNode.ROOT, spaced), 2)
      assert.deepStrictEqual(proposals.map((p) => [p.strategy.training.learningRate, p.strategy.data.format]), [[0.002, "scratchpad"], [0.001, "plain"]])
      const prompt = JSON.stringify(server.requests[0]!.body.messages[0])
      assert.include(prompt, "- data.format: one of plain | reversed | scratchpad")
      assert.include(prompt, "- training.learningRate: a number from 0.0003 to 0.03 (log scale)")
      assert.include(prompt, "- training.lora.rank: a number from 2 to 16")
      assert.include(prompt, "only when training.method is lora")
      assert.include(prompt, "data.mixture.add2: the share of source add2 in the data mixture")
      const [repair] = lastToolResults(server.requests[1]!)
      assert.isTrue(repair!.is_error)
      assert.include(repair!.content, 'proposals[0].strategy.data.format: must be one of plain | reversed | scratchpad, got "klingon"')
      assert.include(repair!.content, "proposals[0].strategy.training.learningRate: must be a number from 0.0003 to 0.03 (log scale)")
      assert.notInclude(repair!.content, "proposals[1]")
    }))

  it("spaceIssues: listed values only when the space lists its combinations; mixture shares and conditions", () => {
    const space = spaced.searchSpace!
    const s = (lr: number, format: string, extra: Record<string, unknown> = {}) => Strategy.decodeSync(inSpace(lr, format, extra))
    assert.deepStrictEqual(SpaceCheck.spaceIssues(space, s(0.002, "plain")), [])
    assert.deepStrictEqual(SpaceCheck.spaceIssues(space, s(0.002, "plain", { method: "lora", lora: { rank: 64, alpha: 16, dropout: 0 } })), [
      "training.lora.rank: must be a number from 2 to 16; values tried first: 2, 4, 8, 16, got 64"
    ])
    const withReplay = Strategy.decodeSync({ ...inSpace(0.001, "plain"), data: { sources: [{ name: "sst2", weight: 0.5 }, { name: "add2", weight: 0.5 }], format: "plain" } })
    assert.match(SpaceCheck.spaceIssues(space, withReplay)[0]!, /^data\.mixture\.add2: must be a number from 0 to 0\.3.*got 0\.5$/)
    const pooled = { ...space, points: [[0.001, "plain", "full", 2, 0], [0.01, "reversed", "lora", 8, 0.1]] }
    assert.deepStrictEqual(SpaceCheck.spaceIssues(pooled, s(0.002, "plain")), ["training.learningRate: must be one of 0.0003 | 0.001 | 0.003 | 0.01 | 0.03, got 0.002"])
    assert.include(SpaceCheck.describeSpace(pooled), "2 combinations of these values exist")
  })
})
