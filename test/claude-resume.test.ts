// The Claude researcher in a real run, through the real `@anthropic-ai/sdk`, against a local Messages
// API (packages/agents/test/support/FakeAnthropicServer.ts): a run interrupted and resumed by a fresh
// controller makes its analysis request once, is charged for it once, and grows the uninterrupted
// run's tree, although the model would answer a second analysis request differently.
import { assert, describe, it } from "@effect/vitest"
import { AnthropicModel, ClaudeResearcher } from "@trex/agents"
import { ExecutorAgent, Journal } from "@trex/core"
import { Explorer, Uct } from "@trex/mcts"
import { Effect, Fiber, Layer, Redacted } from "effect"
import * as Fake from "../packages/agents/test/support/FakeAnthropicServer.ts"
import { EPOCHS, type ExecLog, functionExecutor, LRS, makeTask, treeShape } from "../packages/mcts/test/support/toy.ts"

const TRIALS = 8

const prompt = (request: Fake.Recorded): string =>
  request.body.messages.map((m: any) => (typeof m.content === "string" ? m.content : m.content.map((b: any) => b.text ?? "").join(""))).join("\n")

const asks = (request: Fake.Recorded, tool: string): boolean => request.body.tools.some((t: any) => t.name === tool)

/**
 * The model: the k-th analysis says "Analysis #k"; a proposal is a function of the prompt alone
 * (the trials run so far, and the analysis it was given), so a controller that sees the journal
 * of the uninterrupted run proposes what that run proposed — unless its analysis differs.
 */
const model = (): Fake.Handler => {
  let analyses = 0
  return (request) => {
    if (asks(request, "submit_analysis")) {
      analyses++
      return Fake.message([Fake.toolUse("submit_analysis", { summary: `Analysis #${analyses}: a toy landscape.`, risks: ["few trials"] })], {
        input_tokens: 1200,
        output_tokens: 300
      })
    }
    if (asks(request, "submit_insights")) return Fake.message([Fake.toolUse("submit_insights", { insights: [] })])
    const text = prompt(request)
    const k = Number(/trials run (\d+)/.exec(text)?.[1] ?? 0)
    const shift = /Analysis #1:/.test(text) ? 0 : 3
    return Fake.message([Fake.toolUse("submit_proposals", {
      proposals: [{
        strategy: {
          data: { sources: [{ name: "toy" }] },
          training: { learningRate: LRS[(k + shift) % LRS.length], epochs: EPOCHS[Math.floor(k / LRS.length) % EPOCHS.length], batchSize: 8 },
          rationale: `step ${k}`
        }
      }]
    })])
  }
}

/** One controller: a fresh researcher and executor over the given journal and model server. */
const controller = (url: string, journal: Journal.Journal["Service"], log: ExecLog, onFinished: () => void = () => {}) =>
  Explorer.run(makeTask({ maxTrials: TRIALS }), {
    runId: "claude",
    runDir: "/nonexistent",
    seed: 11,
    distillEvery: 3,
    onEvent: (e) => {
      if (e.event._tag === "NodeFinished") onFinished()
    }
  }).pipe(
    Effect.provide(
      Layer.mergeAll(
        Layer.succeed(Journal.Journal, journal),
        Uct.layer(),
        Layer.succeed(ExecutorAgent.ExecutorAgent, functionExecutor(log)),
        ClaudeResearcher.layer({ researchTools: false }).pipe(
          Layer.provide([
            AnthropicModel.layer({ apiKey: Redacted.make("sk-test"), baseURL: url, model: "claude-sonnet-5-5" }),
            ClaudeResearcher.ResearchTools.layer()
          ])
        )
      )
    )
  )

const analysisRequests = (server: Fake.FakeAnthropic) => server.requests.filter((r) => asks(r, "submit_analysis")).length

describe("ClaudeResearcher, resumed", () => {
  it.live("a run interrupted after its analysis or after k results makes one analysis request, is charged once, and grows the same tree", () =>
    Effect.gen(function*() {
      const referenceServer = yield* Fake.make(model())
      const reference = yield* controller(referenceServer.url, Journal.makeMemory(), { runs: [] })
      assert.strictEqual(reference.tree.size, TRIALS)
      assert.strictEqual(analysisRequests(referenceServer), 1)
      assert.strictEqual(reference.tree.analysis?.summary, "Analysis #1: a toy landscape.")
      for (const stop of ["analysis", 1, 4] as const) {
        const where = stop === "analysis" ? "interrupted after the analysis" : `interrupted after ${stop} results`
        // one model server for both controllers: it would answer a second analysis request with "Analysis #2"
        const server = yield* Fake.make(model())
        const journal = Journal.makeMemory()
        const log: ExecLog = { runs: [] }
        let finished = 0
        const fiber = yield* controller(server.url, journal, log, () => void finished++).pipe(Effect.forkChild)
        if (stop === "analysis") {
          while (!(yield* journal.read()).some((e) => e.event._tag === "AnalysisCompleted")) yield* Effect.sleep("1 millis")
        } else {
          while (finished < stop) yield* Effect.sleep("1 millis")
        }
        yield* Fiber.interrupt(fiber)
        assert.strictEqual(analysisRequests(server), 1, where)
        const resumed = yield* controller(server.url, journal, log)
        assert.strictEqual(analysisRequests(server), 1, `a second analysis request (${where})`)
        assert.deepStrictEqual(treeShape(resumed.tree), treeShape(reference.tree), where)
        assert.deepStrictEqual(resumed.tree.analysis, reference.tree.analysis, where)
        const entries = yield* journal.read()
        assert.strictEqual(entries.filter((e) => e.event._tag === "RunResumed").length, 1, where)
        const charges = entries.flatMap((e) => (e.event._tag === "BudgetCharged" && e.event.reason.endsWith("submit_analysis") ? [e.event.cost] : []))
        assert.strictEqual(charges.length, 1, `${charges.length} analysis charges (${where})`)
        assert.strictEqual(charges[0]!.inputTokens, 1200, where)
        assert.strictEqual(charges[0]!.outputTokens, 300, where)
      }
    }), { timeout: 60_000 })
})
