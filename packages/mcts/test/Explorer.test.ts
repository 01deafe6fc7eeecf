import * as crypto from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { Cost, CostMeter, Errors, type ExecutorAgent, ExperimentNode, ExperimentTree, Fingerprint, Journal, JournalEvent, type Researcher, Result, type Scheduler, SearchPolicy, SearchSpace, type Strategy, type Task } from "@trex/core"
import { Clock, Deferred, Effect, Exit, Fiber, Layer, Logger, Option, Queue, Random, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as Asha from "../src/Asha.ts"
import { Control } from "../src/Control.ts"
import * as Explorer from "../src/Explorer.ts"
import * as ResultCache from "../src/ResultCache.ts"
import * as RandomPolicy from "../src/RandomPolicy.ts"
import * as Uct from "../src/Uct.ts"
import { defaultStrategy, EPOCHS, type ExecLog, functionExecutor, gridResearcher, layers, LRS, makeTask, score, space, treeShape } from "./support/toy.ts"

const runWith = (
  journal: Journal.Journal["Service"],
  options: Partial<Explorer.Options> & {
    maxTrials?: number
    log?: ExecLog
    researcher?: Researcher.ResearcherShape
    executor?: ExecutorAgent.ExecutorAgentShape
  } = {}
) => {
  const { log = { runs: [] }, maxTrials = 12, researcher = gridResearcher, executor = functionExecutor(log), ...rest } = options
  const task = makeTask({ maxTrials })
  return Explorer.run(task, { runId: "r1", runDir: "/tmp/unused", seed: 7, concurrency: 1, ...rest }).pipe(
    Effect.provide(
      Layer.mergeAll(
        Layer.succeed(Journal.Journal, journal),
        Uct.layer(),
        layers(researcher, executor)
      )
    )
  )
}

/** Run `self` on the test clock, moving it on half a second at a time (40 s in all: more than any wait here). */
const onTestClock = <A, E>(self: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(self)
    for (let i = 0; i < 80; i++) yield* TestClock.adjust("500 millis")
    return yield* Fiber.join(fiber)
  })

/** What one analysis costs (a model call, as a model-backed researcher reports it). */
const ANALYSIS_COST = Cost.make({ inputTokens: 1500, outputTokens: 300, dollars: 0.009 })

/**
 * The grid researcher behind a paid analysis that differs on every call (as a model's answer may):
 * `calls` counts the calls, each is charged to the run's meter, and every proposal carries the
 * analysis it was made from in its executable part, so proposals made from a second analysis
 * have other fingerprints and the tree leaves the uninterrupted run's path.
 */
const analysing = (calls: { n: number }, options: { readonly fail?: boolean } = {}): Researcher.ResearcherShape => ({
  ...gridResearcher,
  analyze: () =>
    Effect.gen(function*() {
      const call = ++calls.n
      yield* (yield* CostMeter.CostMeter).record(ANALYSIS_COST, "analyze")
      if (options.fail === true) {
        return yield* new Errors.ResearcherError({ operation: "analyze", message: `model overloaded (call ${call})`, retryable: true })
      }
      return { summary: `analysis ${call}`, metricNotes: "", dataNotes: "", risks: [], notes: { call } }
    }),
  propose: (ctx, n) =>
    Effect.map(gridResearcher.propose(ctx, n), (proposals) =>
      proposals.map((p) => ({
        ...p,
        strategy: { ...p.strategy, training: { ...p.strategy.training, extra: { analysis: ctx.analysis.summary } } }
      })))
})

describe("Explorer", () => {
  it.live("runs exactly the trial budget and finishes the journal", () =>
    Effect.gen(function*() {
      const journal = Journal.makeMemory()
      const log: ExecLog = { runs: [] }
      const summary = yield* runWith(journal, { maxTrials: 10, log })
      assert.strictEqual(summary.reason, "budget: maxTrials")
      assert.strictEqual(log.runs.length, 10)
      assert.strictEqual(summary.tree.size, 10)
      const entries = yield* journal.read()
      assert.strictEqual(entries[0]!.event._tag, "RunStarted")
      assert.strictEqual(entries.at(-1)!.event._tag, "RunFinished")
      // the best node is the best score in the tree
      const scores = [...summary.tree.nodes()].map((n) => ExperimentNode.score(n) ?? -1)
      assert.strictEqual(ExperimentNode.score(summary.best!), Math.max(...scores))
      // no fingerprint ran twice
      const fps = [...summary.tree.nodes()].map((n) => n.fingerprint)
      assert.strictEqual(new Set(fps).size, fps.length)
    }))

  it.live("is deterministic for a seed, and a different seed gives a different tree", () =>
    Effect.gen(function*() {
      const a = yield* runWith(Journal.makeMemory(), { maxTrials: 12 })
      const b = yield* runWith(Journal.makeMemory(), { maxTrials: 12 })
      const c = yield* runWith(Journal.makeMemory(), { maxTrials: 12, seed: 8 })
      assert.deepStrictEqual(treeShape(a.tree), treeShape(b.tree))
      assert.notDeepEqual(treeShape(a.tree), treeShape(c.tree))
    }))

  it.live("a run killed mid-flight resumes to the same tree, with no trial run twice", () =>
    Effect.gen(function*() {
      const reference = yield* runWith(Journal.makeMemory(), { maxTrials: 12 })
      for (const killAt of [3, 9, 17, 30, 41]) {
        const journal = Journal.makeMemory()
        const log: ExecLog = { runs: [] }
        let seen = 0
        const fiber = yield* runWith(journal, {
          maxTrials: 12,
          log,
          onEvent: () => {
            seen++
          }
        }).pipe(Effect.forkChild)
        // interrupt as soon as the journal holds `killAt` events: a crash, as far as the journal knows
        yield* Effect.gen(function*() {
          while (seen < killAt) yield* Effect.sleep("1 millis")
        })
        yield* Fiber.interrupt(fiber)
        const before = (yield* journal.read()).length
        assert.isAtLeast(before, killAt)
        const resumed = yield* runWith(journal, { maxTrials: 12, log })
        assert.deepStrictEqual(treeShape(resumed.tree), treeShape(reference.tree), `kill at event ${killAt}`)
        // every node was started at most once, except a reattachment of the one in flight
        const fresh = log.runs.filter((r) => !r.reattached).map((r) => r.node)
        assert.strictEqual(new Set(fresh).size, fresh.length, `a node was submitted twice (kill at ${killAt})`)
        const entries = yield* journal.read()
        assert.strictEqual(entries.filter((e) => e.event._tag === "RunResumed").length, 1)
        // replaying the final journal gives the same tree as the live one
        const folded = ExperimentTree.fold(entries.map((e) => e.event))!
        assert.deepStrictEqual(treeShape(folded.view), treeShape(resumed.tree))
      }
    }))

  it.live("the analysis is asked for once and journaled: a resumed run reuses it, charged once, to the same tree", () =>
    Effect.gen(function*() {
      const calls = { n: 0 }
      const reference = yield* runWith(Journal.makeMemory(), { maxTrials: 12, researcher: analysing(calls) })
      assert.strictEqual(calls.n, 1)
      assert.strictEqual(reference.tree.analysis?.summary, "analysis 1")
      // interrupted right after the analysis was journaled (before any trial), and after k results
      const stops: ReadonlyArray<{ readonly results: number } | "analysis"> = ["analysis", { results: 1 }, { results: 4 }, { results: 9 }]
      for (const stop of stops) {
        const where = stop === "analysis" ? "after the analysis" : `after ${stop.results} results`
        const journal = Journal.makeMemory()
        // one counter for both controllers: a second call would be answered differently ("analysis 2")
        const calls = { n: 0 }
        let finished = 0
        const fiber = yield* runWith(journal, {
          maxTrials: 12,
          researcher: analysing(calls),
          onEvent: (e) => {
            if (e.event._tag === "NodeFinished") finished++
          }
        }).pipe(Effect.forkChild)
        if (stop === "analysis") {
          while (!(yield* journal.read()).some((e) => e.event._tag === "AnalysisCompleted")) yield* Effect.sleep("1 millis")
        } else {
          while (finished < stop.results) yield* Effect.sleep("1 millis")
        }
        yield* Fiber.interrupt(fiber)
        assert.strictEqual(calls.n, 1, where)
        const resumed = yield* runWith(journal, { maxTrials: 12, researcher: analysing(calls) })
        assert.strictEqual(calls.n, 1, `analyze called again on resume (${where})`)
        assert.deepStrictEqual(treeShape(resumed.tree), treeShape(reference.tree), where)
        assert.deepStrictEqual(resumed.tree.analysis, reference.tree.analysis, where)
        const entries = yield* journal.read()
        assert.strictEqual(entries.filter((e) => e.event._tag === "RunResumed").length, 1, where)
        assert.strictEqual(entries.filter((e) => e.event._tag === "AnalysisCompleted").length, 1, where)
        const charges = entries.flatMap((e) => (e.event._tag === "BudgetCharged" && e.event.reason === "analyze" ? [e.event.cost] : []))
        assert.strictEqual(charges.length, 1, `analysis charged ${charges.length} times (${where})`)
        assert.strictEqual(resumed.usage.spent.inputTokens, ANALYSIS_COST.inputTokens, where)
        assert.strictEqual(resumed.usage.spent.dollars, ANALYSIS_COST.dollars, where)
        // the analysis comes before the first proposal, so every proposal saw it
        const tags = entries.map((e) => e.event._tag)
        assert.isBelow(tags.indexOf("AnalysisCompleted"), tags.indexOf("NodeProposed"), where)
      }
    }))

  it.live("a failed analysis is journaled as its placeholder: the resumed run proposes from it and does not ask again", () =>
    Effect.gen(function*() {
      const reference = yield* runWith(Journal.makeMemory(), { maxTrials: 8, researcher: analysing({ n: 0 }, { fail: true }) })
      assert.strictEqual(reference.tree.analysis?.summary, "analysis failed: model overloaded (call 1)")
      const journal = Journal.makeMemory()
      const calls = { n: 0 }
      let finished = 0
      const fiber = yield* runWith(journal, {
        maxTrials: 8,
        researcher: analysing(calls, { fail: true }),
        onEvent: (e) => {
          if (e.event._tag === "NodeFinished") finished++
        }
      }).pipe(Effect.forkChild)
      while (finished < 3) yield* Effect.sleep("1 millis")
      yield* Fiber.interrupt(fiber)
      // a second call would succeed: the resumed run must not make it
      const resumed = yield* runWith(journal, { maxTrials: 8, researcher: analysing(calls) })
      assert.strictEqual(calls.n, 1)
      assert.deepStrictEqual(resumed.tree.analysis, reference.tree.analysis)
      assert.deepStrictEqual(treeShape(resumed.tree), treeShape(reference.tree))
      const entries = yield* journal.read()
      assert.strictEqual(entries.filter((e) => e.event._tag === "BudgetCharged" && e.event.reason === "analyze").length, 1)
    }))

  it.live("a finished run resumed with a larger budget goes on to it; the budget is journaled, so a later resume keeps it", () =>
    Effect.gen(function*() {
      const journal = Journal.makeMemory()
      const log: ExecLog = { runs: [] }
      const first = yield* runWith(journal, { maxTrials: 4, log })
      assert.match(first.reason, /budget/)
      assert.strictEqual(log.runs.length, 4)
      const extended = yield* runWith(journal, { maxTrials: 4, log, budget: { maxTrials: 7 } })
      assert.match(extended.reason, /budget/)
      assert.strictEqual(log.runs.length, 7, "three more trials, none run twice")
      assert.strictEqual(new Set(log.runs.map((r) => r.node)).size, 7)
      assert.strictEqual(extended.tree.task.budget.maxTrials, 7)
      const entries = yield* journal.read()
      const resumes = entries.flatMap((e) => (e.event._tag === "RunResumed" ? [e.event] : []))
      assert.deepStrictEqual(resumes.map((r) => r.budget), [{ maxTrials: 7 }])
      assert.strictEqual(ExperimentTree.fold(entries.map((e) => e.event))!.task.budget.maxTrials, 7, "the fold applies it")
      // resumed again without a budget: the journaled one holds, and nothing is left to run
      const again = yield* runWith(journal, { maxTrials: 4, log })
      assert.match(again.reason, /budget/)
      assert.strictEqual(log.runs.length, 7)
    }))

  it.live("a resume given the entries its caller read replays from them and reads only those journaled since", () =>
    Effect.gen(function*() {
      const journal = Journal.makeMemory()
      const log: ExecLog = { runs: [] }
      yield* runWith(journal, { maxTrials: 4, log })
      const read = yield* journal.read()
      // one more event journaled after the caller read the journal (another session's, say)
      yield* journal.append([JournalEvent.make("InsightsDistilled", { insights: [], at: Date.now() })])
      const froms: Array<number | undefined> = []
      const counting: Journal.Journal["Service"] = { ...journal, read: (from) => (froms.push(from), journal.read(from)) }
      const resumed = yield* runWith(counting, { maxTrials: 4, log, budget: { maxTrials: 7 }, journaled: read })
      // one read, of what followed the entries given: not the whole journal again
      assert.deepStrictEqual(froms, [read.length + 1])
      assert.strictEqual(log.runs.length, 7, "three more trials, none run twice")
      assert.strictEqual(new Set(log.runs.map((r) => r.node)).size, 7)
      const all = yield* journal.read()
      assert.deepStrictEqual(treeShape(resumed.tree), treeShape(ExperimentTree.fold(all.map((e) => e.event))!.view))
      // entries that are not the journal's first ones (a slice from the middle) are not trusted: it reads the whole journal
      froms.length = 0
      yield* runWith(counting, { maxTrials: 4, log, journaled: all.slice(3) })
      assert.deepStrictEqual(froms, [1])
    }))

  it.live("with a stagnation rule, a resumed run stops where the uninterrupted one stops", () =>
    Effect.gen(function*() {
      const options = { maxTrials: 40, stagnation: 5 }
      const reference = yield* runWith(Journal.makeMemory(), options)
      assert.match(reference.reason, /no improvement in 5 trials/)
      assert.isBelow(reference.tree.size, 40)
      for (const killAt of [10, 20, 30, 40, 50]) {
        const journal = Journal.makeMemory()
        let seen = 0
        const fiber = yield* runWith(journal, { ...options, onEvent: () => void seen++ }).pipe(Effect.forkChild)
        while (seen < killAt) yield* Effect.sleep("1 millis")
        yield* Fiber.interrupt(fiber)
        const resumed = yield* runWith(journal, options)
        assert.strictEqual(resumed.reason, reference.reason, `kill at event ${killAt}`)
        assert.deepStrictEqual(treeShape(resumed.tree), treeShape(reference.tree), `kill at event ${killAt}`)
      }
    }))

  it.live("under a GPU-hour budget, a resumed run estimates trials as the uninterrupted one did: the same tree", () =>
    Effect.gen(function*() {
      // trials cost 5 to 400 GPU-seconds by their strategy; no declared estimate, so admission
      // estimates a trial by the mean cost of the finished ones. The budget leaves 220 s before the
      // 18th admission: the mean of the 17 before (191 s) admits it, an estimate from the trials of a
      // resumed session alone (a kill after 75 events: about 300 s) did not.
      const task = makeTask({ gpuHours: 0.9633 })
      const cost = (s: Parameters<typeof score>[0]) => 5 + Math.round(395 * score(s) ** 3)
      const run = (journal: Journal.Journal["Service"], onEvent: () => void = () => {}) =>
        Explorer.run(task, { runId: "g", runDir: "/tmp/unused", seed: 3, concurrency: 1, onEvent }).pipe(
          Effect.provide(
            Layer.mergeAll(Layer.succeed(Journal.Journal, journal), Uct.layer(), layers(gridResearcher, functionExecutor({ runs: [] }, { gpuSeconds: cost })))
          )
        )
      const reference = yield* run(Journal.makeMemory())
      assert.match(reference.reason, /budget/)
      assert.strictEqual(reference.tree.size, 18)
      for (const killAt of [15, 30, 45, 60, 70, 75, 80]) {
        const journal = Journal.makeMemory()
        let seen = 0
        const fiber = yield* run(journal, () => void seen++).pipe(Effect.forkChild)
        while (seen < killAt) yield* Effect.sleep("1 millis")
        yield* Fiber.interrupt(fiber)
        const resumed = yield* run(journal)
        assert.deepStrictEqual(treeShape(resumed.tree), treeShape(reference.tree), `kill at event ${killAt}`)
      }
    }))

  it.live("never admits past a GPU-hour budget with declared estimates", () =>
    Effect.gen(function*() {
      const task = makeTask(
        { gpuHours: 0.25 },
        { recipe: { command: ["x"], env: {}, resources: { gpus: 1, cpus: 1 }, estimate: { gpuSeconds: 60 } } }
      )
      const log: ExecLog = { runs: [] }
      const summary = yield* Explorer.run(task, { runId: "b", runDir: "/tmp/unused", seed: 1, concurrency: 4 }).pipe(
        Effect.provide(Layer.mergeAll(Journal.Journal.layerMemory, Uct.layer(), layers(gridResearcher, functionExecutor(log, { gpuSeconds: 60 }))))
      )
      assert.isAtMost(summary.usage.spent.gpuSeconds, 0.25 * 3600, summary.reason)
      assert.strictEqual(summary.usage.spent.gpuSeconds, 15 * 60, summary.reason)
      assert.match(summary.reason, /budget/)
    }))

  /** A run, then a second run ("r2", the same seed) with the first's results as its cache: the second's summary, log and reused nodes. */
  const rerunWithCache = (maxTrials: number, second: Partial<Explorer.Options> = {}) =>
    Effect.gen(function*() {
      const first = Journal.makeMemory()
      yield* runWith(first, { maxTrials })
      const cache = ResultCache.fromJournals([yield* first.read()])
      const log: ExecLog = { runs: [] }
      const summary = yield* runWith(Journal.makeMemory(), { maxTrials, cache, log, runId: "r2", ...second })
      const reused = [...summary.tree.nodes()].filter((n) => n.state._tag === "Succeeded" && n.state.result.reusedFrom !== undefined)
      return { summary, log, reused }
    })

  it.live("reuses a cached result instead of running its strategy again", () =>
    Effect.gen(function*() {
      const { log, reused, summary } = yield* rerunWithCache(4)
      assert.isAtLeast(reused.length, 1)
      assert.strictEqual(log.runs.length + reused.length, summary.tree.size)
      for (const n of reused) assert.match((n.state as { result: { reusedFrom: string } }).result.reusedFrom, /^r1\/n\d+$/)
    }))

  it.live("one mixture written in other forms is not run again, and a journal that recorded it as written (before 2026-12-05) still counts it run", () =>
    Effect.gen(function*() {
      const withSources = (sources: ReadonlyArray<{ readonly name: string; readonly weight: number }>): Strategy.Strategy =>
        ({ ...defaultStrategy, data: { ...defaultStrategy.data, sources } })
      const written = withSources([{ name: "web", weight: 1 }, { name: "code", weight: 1 }])
      // the fingerprint a journal of before recorded: the mixture hashed as written
      const before = crypto.hash("sha256", Fingerprint.canonicalJson({ data: written.data, evaluation: written.evaluation, training: written.training }), "hex").slice(0, 16)
      assert.notStrictEqual(before, Fingerprint.of(written))
      // the same mixture three more ways (in shares, the other order, a source at 0), then another mixture
      const forms = [
        withSources([{ name: "code", weight: 0.5 }, { name: "web", weight: 0.5 }]),
        withSources([{ name: "web", weight: 0.5 }, { name: "code", weight: 0.5 }, { name: "toy", weight: 0 }]),
        withSources([{ name: "web", weight: 3 }, { name: "code", weight: 3 }])
      ]
      const other = withSources([{ name: "web", weight: 0.25 }, { name: "code", weight: 0.75 }])
      const ran: Array<Strategy.Strategy> = []
      const log: ExecLog = { runs: [] }
      const base = functionExecutor(log)
      const executor: ExecutorAgent.ExecutorAgentShape = { ...base, run: (req) => (ran.push(req.node.strategy), base.run(req)) }
      const researcher: Researcher.ResearcherShape = {
        ...gridResearcher,
        propose: (ctx) => Effect.succeed([...forms, other].filter((st) => !ctx.tried(Fingerprint.of(st))).slice(0, 1).map((strategy) => ({ strategy })))
      }
      const explorer = (journal: Journal.Journal["Service"], runId: string, cache?: ResultCache.ResultCache) =>
        Explorer.run(makeTask({ maxTrials: 2 }), { runId, runDir: "/tmp/unused", seed: 4, ...(cache !== undefined ? { cache } : {}) }).pipe(
          Effect.provide(Layer.mergeAll(Layer.succeed(Journal.Journal, journal), Uct.layer(), layers(researcher, executor)))
        )
      const old = Journal.makeMemory()
      yield* old.append([
        JournalEvent.make("RunStarted", { runId: "old", task: makeTask({ maxTrials: 2 }), seed: 4, options: {}, at: 0 }),
        JournalEvent.make("NodeProposed", { node: { id: "n1", parent: ExperimentNode.ROOT, strategy: written, fingerprint: before, proposedAt: 1 }, at: 1 }),
        JournalEvent.make("NodeFinished", { nodeId: "n1", outcome: "Succeeded", result: Result.success({ score: 0.5 }, 0.5, Cost.make({ gpuSeconds: 60 })), at: 2 })
      ])
      const recorded = yield* old.read()
      // resumed: none of the forms runs (each is the mixture n1 ran); the other mixture does
      const resumed = yield* explorer(old, "old")
      assert.deepStrictEqual(ran.map((st) => st.data.sources), [other.data.sources])
      assert.strictEqual(resumed.tree.byFingerprint(Fingerprint.of(forms[0]!))?.id, "n1")
      // another run with that journal (as it was) as its cache reuses n1's result for the first form, and runs the other mixture
      ran.length = 0
      const fresh = yield* explorer(Journal.makeMemory(), "new", ResultCache.fromJournals([recorded]))
      const n1 = fresh.tree.get("n1")!
      assert.strictEqual(n1.state._tag === "Succeeded" ? n1.state.result.reusedFrom : undefined, "old/n1")
      assert.deepStrictEqual(n1.strategy.data.sources, forms[0]!.data.sources)
      assert.deepStrictEqual(ran.map((st) => st.data.sources), [other.data.sources])
    }))

  /**
   * Two runs at once (the same task and seed, so the same proposals): `first` runs with its own
   * executor, and the second's cache follows `first`'s journal as it grows.
   */
  const besideAnother = (options: { readonly first: ExecutorAgent.ExecutorAgentShape; readonly control?: Control; readonly maxTrials?: number; readonly journal?: Journal.Journal["Service"] }) =>
    Effect.gen(function*() {
      const firstJournal = Journal.makeMemory()
      let firstDone = false
      const first = yield* runWith(firstJournal, { maxTrials: options.maxTrials ?? 3, executor: options.first }).pipe(
        Effect.ensuring(Effect.sync(() => (firstDone = true))),
        Effect.forkChild
      )
      const b = ResultCache.builder()
      let next = 1
      const refresh = Effect.gen(function*() {
        const alive = !firstDone
        const entries = yield* Effect.orDie(firstJournal.read(next))
        if (entries.length > 0) {
          next = entries.at(-1)!.seq + 1
          b.follow("r1", entries)
        }
        if (!alive) b.unfollow("r1")
      })
      // the second run starts once the first has admitted its first trial
      for (let i = 0; i < 5000 && !(yield* firstJournal.read()).some((e) => e.event._tag === "NodeAdmitted"); i++) yield* Effect.sleep("1 millis")
      const log: ExecLog = { runs: [] }
      const journal = options.journal ?? Journal.makeMemory()
      const summary = yield* runWith(journal, {
        maxTrials: options.maxTrials ?? 3,
        runId: "r2",
        log,
        cache: { ...b.cache, refresh },
        ...(options.control !== undefined ? { control: options.control } : {})
      })
      return { summary, log, journal, first }
    })

  it.live("a strategy another run is running now is waited for and its result reused, not run beside it", () =>
    Effect.gen(function*() {
      const { first, journal, log, summary } = yield* besideAnother({ first: functionExecutor({ runs: [] }, { stepMillis: 150 }) })
      const other = yield* Fiber.join(first)
      const ranThere = new Set([...other.tree.nodes()].map((n) => n.fingerprint))
      const nodes = [...summary.tree.nodes()]
      assert.deepStrictEqual(nodes.slice(0, 3).map((n) => (n.state._tag === "Succeeded" ? n.state.result.reusedFrom : n.state._tag)), ["r1/n1", "r1/n2", "r1/n3"])
      // (a result reused is no trial of this run's budget: it then runs one strategy of its own)
      const ranHere = log.runs.map((r) => summary.tree.get(r.node)!.fingerprint)
      assert.deepStrictEqual(ranHere.filter((fp) => ranThere.has(fp)), [], "nothing the first run ran or was running was run again")
      // a result waited for (its trial admitted) and reused is no trial of this run either: it runs three of its own
      const admitted = new Set((yield* journal.read()).flatMap((e) => (e.event._tag === "NodeAdmitted" ? [e.event.nodeId] : [])))
      assert.isTrue(nodes.slice(0, 3).some((n) => admitted.has(n.id)), "a result was waited for")
      assert.strictEqual(log.runs.length, 3)
      assert.strictEqual(summary.usage.trials, 3)
    }))

  it.live("a strategy whose trial in the other run ends without a result is run here once that trial has ended", () =>
    Effect.gen(function*() {
      // the other run's trial fails after a while
      const failing: ExecutorAgent.ExecutorAgentShape = {
        name: "failing",
        run: (req) =>
          Stream.concat(
            Stream.make({ _tag: "Submitted", job: { backend: "b", id: req.node.id, data: {} } } as const),
            Stream.fromEffect(Effect.as(Effect.sleep("1500 millis"), { _tag: "Finished", result: Result.failure("Crash", "exit 3") } as const))
          )
      }
      const { first, journal, log, summary } = yield* besideAnother({ first: failing, maxTrials: 1 })
      const other = yield* Fiber.join(first)
      assert.strictEqual(other.tree.get("n1")?.state._tag, "Failed")
      assert.deepStrictEqual(log.runs.map((r) => r.node), ["n1"], "run here after the other run's trial failed")
      const submitted = (yield* journal.read()).find((e) => e.event._tag === "JobSubmitted")!.event.at
      const failedThere = (other.tree.get("n1")!.state as { finishedAt: number }).finishedAt
      assert.isAtLeast(submitted, failedThere, "not run here while it ran there")
      assert.strictEqual(summary.tree.get("n1")?.state._tag, "Succeeded")
      assert.isUndefined((summary.tree.get("n1")?.state as { result: Result.Result }).result.reusedFrom)
    }))

  it.live("a drain stops a trial waiting for another run's result at once: it started nothing, and stays admitted for a resumed run", () =>
    Effect.gen(function*() {
      const control = new Control()
      // the other run's trial does not end while this one waits
      const hanging: ExecutorAgent.ExecutorAgentShape = { name: "hanging", run: () => Stream.never }
      const second = Journal.makeMemory()
      const fiber = yield* Effect.forkChild(besideAnother({ first: hanging, control, maxTrials: 1, journal: second }))
      // once this run waits for the other's trial (admitted here, not started), where it slept 1.5 s
      for (let i = 0; i < 5000 && !(yield* second.read()).some((e) => e.event._tag === "NodeAdmitted"); i++) yield* Effect.sleep("1 millis")
      control.stop("drain")
      const ended = yield* Fiber.join(fiber).pipe(Effect.timeoutOption("5 seconds"))
      assert.isTrue(Option.isSome(ended), "the drain waited for the other run")
      const { first, journal } = Option.getOrThrow(ended)
      yield* Fiber.interrupt(first)
      const events = (yield* journal.read()).map((e) => e.event._tag)
      assert.include(events, "NodeAdmitted")
      assert.notInclude(events, "NodeFinished")
    }))

  it.live("results reused from another run are not trials of the stagnation rule: the run still runs its own", () =>
    Effect.gen(function*() {
      // the same seed proposes what the first run ran: its twelve results come back reused first
      const { log, reused, summary } = yield* rerunWithCache(12, { stagnation: 3 })
      assert.isAtLeast(reused.length, 4, "more reused results than the stagnation rule's 3")
      assert.isAtLeast(log.runs.length, 3, `stopped (${summary.reason}) after ${log.runs.length} trials of its own`)
      assert.match(summary.reason, /no improvement in 3 trials|budget/)
    }))

  it.live("reuses results only of runs of the same task and trainer code", () =>
    Effect.gen(function*() {
      const first = Journal.makeMemory()
      yield* runWith(first, { maxTrials: 4 })
      const entries = yield* first.read()
      const started = entries[0]!.event
      assert.strictEqual(started._tag, "RunStarted")
      if (started._tag !== "RunStarted") return
      const fp = [...ExperimentTree.fold(entries.map((e) => e.event))!.view.nodes()].find((n) => n.state._tag === "Succeeded")!.fingerprint
      const hit = (scope: Parameters<typeof ResultCache.fromJournals>[1]) => ResultCache.fromJournals([entries], scope).lookup(fp) !== undefined
      const base = started.task
      // what is tried or how fast changes nothing a trial scores
      assert.isTrue(hit({ task: { ...base, budget: { maxTrials: 99 }, objective: "reworded" } }))
      assert.isTrue(hit(undefined))
      // what a trial runs does
      assert.isFalse(hit({ task: { ...base, recipe: { command: ["python", "train.py"], env: {}, resources: { gpus: 1, cpus: 1 } } } }), "another recipe")
      assert.isFalse(hit({ task: { ...base, metric: { ...base.metric, name: "other" } } }), "another metric")
      assert.isFalse(hit({ task: base, code: "0123456789abcdef" }), "the run recorded no trainer code, this one has some")
      assert.strictEqual(ResultCache.identity(base, "a"), ResultCache.identity({ ...base, budget: { maxTrials: 1 } }, "a"))
      assert.notStrictEqual(ResultCache.identity(base, "a"), ResultCache.identity(base, "b"))
    }))

  it.live("holds parameters whose condition fails at the default, so a change only in them is never run", () =>
    Effect.gen(function*() {
      const conditional = {
        parameters: [
          ...space.parameters,
          { path: "training.method", kind: "categorical" as const, values: ["full", "lora"] },
          { path: "training.lora.rank", kind: "ordinal" as const, values: [2, 4, 8], when: { path: "training.method", values: ["lora"] } }
        ]
      }
      const defaults = SearchSpace.set(SearchSpace.set(defaultStrategy, "training.method", "full"), "training.lora.rank", 8)
      const task = makeTask({ maxTrials: 4 }, { searchSpace: conditional, defaultStrategy: defaults })
      const with_ = (changes: Record<string, SearchSpace.Value>) =>
        Object.entries(changes).reduce((st, [path, v]) => SearchSpace.set(st, path, v), defaults)
      // a researcher that keeps offering the same list: two full fine-tunes that differ only in the
      // (inactive) rank, then a learning rate, then two LoRA ranks
      const queue = [
        with_({ "training.lora.rank": 2 }),
        with_({ "training.lora.rank": 4 }),
        with_({ "training.learningRate": 0.001 }),
        with_({ "training.method": "lora", "training.lora.rank": 2 }),
        with_({ "training.method": "lora", "training.lora.rank": 4 })
      ]
      const researcher: Researcher.ResearcherShape = {
        ...gridResearcher,
        propose: () => Effect.succeed(queue.map((strategy) => ({ strategy })))
      }
      const log: ExecLog = { runs: [] }
      const summary = yield* Explorer.run(task, { runId: "cond", runDir: "/tmp/unused", seed: 1, concurrency: 1 }).pipe(
        Effect.provide(Layer.mergeAll(Journal.Journal.layerMemory, Uct.layer(), layers(researcher, functionExecutor(log))))
      )
      const ran = [...summary.tree.nodes()].map((n) =>
        `${n.strategy.training.method}/${n.strategy.training.lora?.rank}/${n.strategy.training.learningRate}`
      )
      assert.deepStrictEqual(ran, ["full/8/0.0001", "full/8/0.001", "lora/2/0.0001", "lora/4/0.0001"])
      assert.strictEqual(log.runs.length, 4)
    }))

  // (on the test clock: the retry's backoff, 2 s, was most of its time)
  it.effect("records infrastructure failures on their node after bounded retries, and carries on", () =>
    Effect.gen(function*() {
      const log: ExecLog = { runs: [] }
      const summary = yield* onTestClock(Explorer.run(makeTask({ maxTrials: 5 }), { runId: "f", runDir: "/tmp/unused", seed: 3, retries: 1 }).pipe(
        Effect.provide(
          Layer.mergeAll(
            Journal.Journal.layerMemory,
            Uct.layer(),
            layers(gridResearcher, functionExecutor(log, { failFor: (n) => (n === "n2" ? { retryable: true } : n === "n3" ? { retryable: false } : undefined) }))
          )
        )
      ))
      const n2 = summary.tree.get("n2")!
      const n3 = summary.tree.get("n3")!
      assert.strictEqual(n2.state._tag, "Failed")
      assert.strictEqual(n3.state._tag, "Failed")
      assert.strictEqual(log.runs.filter((r) => r.node === "n2").length, 2, "one retry")
      assert.strictEqual(log.runs.filter((r) => r.node === "n3").length, 1, "no retry")
      assert.strictEqual(summary.tree.size, 5)
    }))

  it.live("stops when the target is reached", () =>
    Effect.gen(function*() {
      const task = makeTask({ maxTrials: 200 }, { metric: { name: "score", direction: "maximize", target: 0.8 } })
      const summary = yield* Explorer.run(task, { runId: "t", runDir: "/tmp/unused", seed: 2 }).pipe(
        Effect.provide(Layer.mergeAll(Journal.Journal.layerMemory, Uct.layer(), layers(gridResearcher, functionExecutor({ runs: [] }))))
      )
      assert.strictEqual(summary.reason, "target reached")
      assert.isAtLeast(ExperimentNode.score(summary.best!)!, 0.8)
    }))

  const ashaOptions: Asha.Options = { metric: { name: "score", split: "eval", direction: "maximize" }, minStep: 1, eta: 2, minTrialsPerRung: 2 }
  for (const given of ["in the options", "as the Scheduler service (Asha.layer)"] as const) {
    it.live(`the ASHA scheduler prunes trials whose curve lags, given ${given}`, () =>
      Effect.gen(function*() {
        const summary = yield* Explorer.run(makeTask({ maxTrials: 12 }), {
          runId: "a",
          runDir: "/tmp/unused",
          seed: 5,
          ...(given === "in the options" ? { scheduler: yield* Asha.make(ashaOptions) } : {})
        }).pipe(
          Effect.provide(
            // random expansion gives trials of mixed quality, so some lag behind at the first rung
            Layer.mergeAll(
              Journal.Journal.layerMemory,
              RandomPolicy.layer,
              layers(gridResearcher, functionExecutor({ runs: [] }, { stepMillis: 5 })),
              given === "in the options" ? Layer.empty : Asha.layer(ashaOptions)
            )
          )
        )
        const pruned = [...summary.tree.nodes()].filter((n) => n.state._tag === "Pruned")
        assert.isAtLeast(pruned.length, 1, [...summary.tree.nodes()].map((n) => `${n.id}:${n.state._tag}:${ExperimentNode.score(n)}:${n.curve.length}`).join(" "))
        // nothing pruned was better at its first rung than the best trial that was kept
        const atStep1 = (n: { curve: ReadonlyArray<{ step: number; value: number }> }) => n.curve.find((p) => p.step === 1)?.value ?? -Infinity
        const keptBest = Math.max(...[...summary.tree.nodes()].filter((n) => n.state._tag === "Succeeded").map(atStep1))
        for (const n of pruned) assert.isAtMost(atStep1(n), keptBest)
        // a pruned trial's job was stopped before it reported its last step
        for (const n of pruned) assert.isBelow(Math.max(...n.curve.map((p) => p.step)), 4)
      }))
  }

  /**
   * A backend of cancellable jobs, shared by a run and its resume (as a real backend outlives its
   * controller): a job reports steps 1-4; a cancelled one (now, or before a restart) ends `Cancelled`
   * with the GPU time it ran up (10 s a step).
   */
  const cancellableBackend = () => {
    const cancelled = new Set<string>()
    const cancels: Array<string> = []
    const executor = (log: ExecLog): ExecutorAgent.ExecutorAgentShape => ({
      name: "cancellable",
      cancel: (job) => Effect.sync(() => {
        cancels.push(job.id)
        cancelled.add(job.id)
      }),
      run: (req) =>
        Stream.unwrap(Effect.sync(() => {
          log.runs.push({ node: req.node.id, reattached: req.job !== undefined })
          const job = req.job ?? { backend: "cancellable", id: `job-${req.node.id}-${log.runs.length}`, data: {} }
          const s = score(req.node.strategy)
          const ended = (step: number): ExecutorAgent.ExecutionEvent => ({
            _tag: "Finished",
            result: cancelled.has(job.id)
              ? Result.failure("Cancelled", "cancelled", { cost: Cost.make({ gpuSeconds: 10 * step }) })
              : { metrics: { score: s }, score: s, curves: [], artifacts: [], cost: Cost.make({ gpuSeconds: 40, wallSeconds: 1 }) }
          })
          const steps = Stream.fromIterable([1, 2, 3, 4]).pipe(
            Stream.takeWhile(() => !cancelled.has(job.id)),
            Stream.mapEffect((step) => Effect.as(Effect.sleep("20 millis"), { _tag: "Progress", fraction: step / 4, metrics: [{ step, split: "eval", name: "score", value: (s * step) / 4 }] } as const))
          )
          return Stream.concat(
            req.job === undefined ? Stream.make({ _tag: "Submitted", job } as const) : Stream.empty,
            Stream.concat(steps, Stream.suspend(() => Stream.make(ended(cancelled.has(job.id) ? 2 : 4))))
          )
        }))
    })
    return { executor, cancels, cancelled }
  }
  /** Prunes node `n2` at its step 2, and nothing else. */
  const pruneN2: Scheduler.SchedulerShape = {
    name: "prune-n2",
    decide: (_tree, nodeId, reported) => nodeId === "n2" && (reported ?? []).some((p) => p.step >= 2) ? "prune" : "continue"
  }

  for (const reached of ["before the kill", "only after the restart"] as const) {
    it.live(`a run killed between a prune and the pruned trial's end does not run it again: its job is cancelled (${reached}) and it ends pruned, its cost charged`, () =>
      Effect.gen(function*() {
        const backend = cancellableBackend()
        const log: ExecLog = { runs: [] }
        // the journal a killed controller leaves: nothing after the prune's JobState gets written
        const journal = Journal.makeMemory()
        let dead = false
        const dying: Journal.Journal["Service"] = {
          ...journal,
          append: (events) => {
            // (dropped, not refused: a finaliser's last commit must not hang or fail the interrupt)
            if (dead) return Effect.map(journal.read(), (entries) => entries.length)
            const pruning = events.some((e) => e._tag === "JobState" && e.state === "Pruning")
            return Effect.tap(journal.append(events), () => Effect.sync(() => void (dead ||= pruning)))
          }
        }
        const executor = backend.executor(log)
        const first = yield* runWith(dying, {
          maxTrials: 4,
          log,
          scheduler: pruneN2,
          // "only after the restart": the kill came before the cancel reached the backend
          executor: reached === "before the kill" ? executor : { ...executor, cancel: () => Effect.void }
        }).pipe(Effect.forkChild)
        while (!dead) yield* Effect.sleep("5 millis")
        yield* Effect.sleep("50 millis")
        yield* Fiber.interrupt(first)
        const journaled = yield* journal.read()
        assert.strictEqual(journaled.at(-1)!.event._tag, "JobState", "the journal ends at the prune")
        assert.isFalse(journaled.some((e) => e.event._tag === "NodeFinished" && e.event.nodeId === "n2"))
        assert.strictEqual(backend.cancelled.has("job-n2-2"), reached === "before the kill")

        // resumed without the scheduler, which therefore cannot prune it again: the journaled prune stands
        const resumed = yield* runWith(journal, { maxTrials: 4, log, executor })
        const n2 = resumed.tree.get("n2")!
        assert.strictEqual(n2.state._tag, "Pruned")
        assert.deepStrictEqual(log.runs.filter((r) => r.node === "n2"), [{ node: "n2", reattached: false }, { node: "n2", reattached: true }], "submitted once, reattached once")
        assert.include(backend.cancels, "job-n2-2")
        const charged = (yield* journal.read()).filter((e) => e.event._tag === "BudgetCharged" && e.event.nodeId === "n2")
        assert.deepStrictEqual(charged.map((e) => e.event._tag === "BudgetCharged" ? [e.event.reason, e.event.cost.gpuSeconds] : []), [["pruned trial", 20]])
        assert.strictEqual(resumed.reason, "budget: maxTrials")
      }))
  }

  it.live("a scheduler that throws fails the run with a PolicyError naming it; the trial it judged goes on to its end, and no new one starts", () =>
    Effect.gen(function*() {
      const journal = Journal.makeMemory()
      const log: ExecLog = { runs: [] }
      const throwing: Scheduler.SchedulerShape = {
        name: "broken",
        decide: (_tree, nodeId) => {
          if (nodeId === "n3") throw new TypeError("cannot read properties of undefined (reading 'step')")
          return "continue"
        }
      }
      const error = yield* Effect.flip(runWith(journal, { maxTrials: 10, log, scheduler: throwing }))
      assert.instanceOf(error, Errors.PolicyError)
      assert.strictEqual(error.policy, "broken")
      assert.match(error.message, /scheduler broken failed unexpectedly \(a bug in it\): cannot read properties of undefined/)
      const tree = ExperimentTree.fold((yield* journal.read()).map((e) => e.event))!.view
      assert.strictEqual(tree.get("n3")!.state._tag, "Succeeded", "the trial is not blamed")
      assert.strictEqual(tree.size, 3, "no trial started after the scheduler failed")
      assert.notInclude((yield* journal.read()).map((e) => e.event._tag), "RunFinished")
      // the journal is intact: once the scheduler is mended, the run resumes to its budget
      const resumed = yield* runWith(journal, { maxTrials: 10, log })
      assert.strictEqual(resumed.reason, "budget: maxTrials")
      assert.strictEqual(resumed.tree.size, 10)
    }))

  it.live("pause holds new trials back; stop('cancel') interrupts without finishing the run", () =>
    Effect.gen(function*() {
      const control = new Control()
      const journal = Journal.makeMemory()
      let events = 0
      const fiber = yield* runWith(journal, { maxTrials: 50, control, onEvent: () => void events++ }).pipe(Effect.forkChild)
      while (events < 5) yield* Effect.sleep("1 millis")
      control.pause()
      const proposed = Effect.map(journal.read(), (es) => es.filter((e) => e.event._tag === "NodeProposed").length)
      // a trial being proposed when the pause came may still land: wait until the count settles
      let paused = yield* proposed
      for (let settled = false, i = 0; !settled && i < 5; i++) {
        yield* Effect.sleep("200 millis")
        const now = yield* proposed
        settled = now === paused
        paused = now
      }
      yield* Effect.sleep("300 millis")
      assert.strictEqual(yield* proposed, paused, "no trial is proposed while paused")
      assert.isBelow(paused, 50, "held back before the budget ran out")
      control.resume()
      while ((yield* proposed) < paused + 3) yield* Effect.sleep("1 millis")
      control.stop("cancel")
      const summary = yield* Fiber.join(fiber)
      assert.isTrue(summary.interrupted)
      const tags = (yield* journal.read()).map((e: JournalEvent.Entry) => e.event._tag)
      assert.notInclude(tags, "RunFinished")
    }))

  it.live("a drain requested while the researcher proposes starts nothing new: the proposal is dropped, the run stops", () =>
    Effect.gen(function*() {
      const control = new Control()
      let calls = 0
      let proposed = 0
      let proposedAtStop = -1
      const stopping: Researcher.ResearcherShape = {
        ...gridResearcher,
        propose: (ctx, n) => {
          if (++calls === 3) {
            control.stop("drain")
            proposedAtStop = proposed
          }
          return gridResearcher.propose(ctx, n)
        }
      }
      const journal = Journal.makeMemory()
      const summary = yield* runWith(journal, {
        maxTrials: 10,
        control,
        researcher: stopping,
        onEvent: (e) => void (e.event._tag === "NodeProposed" && proposed++)
      })
      assert.strictEqual(summary.reason, "stopped by request")
      assert.isAbove(proposedAtStop, 0)
      const tags = (yield* journal.read()).map((e) => e.event._tag)
      assert.strictEqual(tags.filter((t) => t === "NodeProposed").length, proposedAtStop, tags.join(","))
      assert.strictEqual(tags.filter((t) => t === "NodeFinished").length, proposedAtStop, "the trials already running finished")
      assert.notInclude(tags, "InsightsDistilled", "no distillation off its schedule (a resumed run distils on it)")
    }))

  it.live("a drain does not wait for a researcher that does not answer: its call is dropped, the trials in flight finish", () =>
    Effect.gen(function*() {
      const control = new Control()
      let calls = 0
      const asked = yield* Deferred.make<void>()
      const hanging: Researcher.ResearcherShape = {
        ...gridResearcher,
        // the third call hangs, as a model that never answers
        propose: (ctx, n) => (++calls === 3 ? Effect.andThen(Deferred.succeed(asked, undefined), Effect.never) : gridResearcher.propose(ctx, n))
      }
      const journal = Journal.makeMemory()
      const fiber = yield* runWith(journal, { maxTrials: 10, control, researcher: hanging }).pipe(Effect.forkChild)
      yield* Deferred.await(asked)
      control.stop("drain")
      const summary = yield* Fiber.join(fiber).pipe(Effect.timeout("10 seconds"))
      assert.strictEqual(summary.reason, "stopped by request")
      const tags = (yield* journal.read()).map((e) => e.event._tag)
      const proposed = tags.filter((t) => t === "NodeProposed").length
      assert.isAbove(proposed, 0)
      assert.strictEqual(tags.filter((t) => t === "NodeFinished").length, proposed, "each trial started finished")
      assert.strictEqual(calls, 3, "the researcher was not asked again")
    }))

  it.live("a stop asked for once the budget's last trial has started is still carried out: cancel stops it, drain withdraws one still queued", () =>
    Effect.gen(function*() {
      // one trial, reported waiting in its backend's queue, that never ends unless stopped
      const waiting = (log: Array<string>): ExecutorAgent.ExecutorAgentShape => ({
        name: "queued",
        run: (req) =>
          Stream.concat(
            Stream.make<Array<ExecutorAgent.ExecutionEvent>>(
              { _tag: "Submitted", job: { backend: "queue", id: `job-${req.node.id}`, data: {} } },
              { _tag: "State", state: "Pending", reason: "no free GPU" }
            ),
            Stream.never
          ).pipe(Stream.onEnd(Effect.sync(() => log.push(`ended ${req.node.id}`))), Stream.ensuring(Effect.sync(() => log.push(`stopped ${req.node.id}`)))),
        withdraw: () => Effect.succeed(true)
      })
      for (const mode of ["cancel", "drain"] as const) {
        const control = new Control()
        const log: Array<string> = []
        const journal = Journal.makeMemory()
        const fiber = yield* Explorer.run(makeTask({ maxTrials: 1 }), { runId: "b", runDir: "/tmp/unused", seed: 2, control }).pipe(
          Effect.provide(Layer.mergeAll(Layer.succeed(Journal.Journal, journal), Uct.layer(), layers(gridResearcher, waiting(log)))),
          Effect.forkChild
        )
        // the budget's one trial is in flight, and waits
        for (let i = 0; i < 200 && !(yield* journal.read()).some((e) => e.event._tag === "JobState"); i++) yield* Effect.sleep("5 millis")
        control.stop(mode)
        const summary = yield* Fiber.join(fiber).pipe(Effect.timeout("5 seconds"))
        assert.strictEqual(summary.reason, "stopped by request", mode)
        assert.strictEqual(summary.interrupted, mode === "cancel", mode)
        assert.deepStrictEqual(log, ["stopped n1"], mode)
        const tags = (yield* journal.read()).map((e) => e.event._tag === "JobState" ? `JobState:${e.event.state}` : e.event._tag)
        if (mode === "drain") assert.include(tags, "JobState:Withdrawn")
      }
    }))

  /** A trial's result for a strategy of the toy landscape. */
  const scored = (strategy: Strategy.Strategy) => {
    const s = score(strategy)
    return { metrics: { score: s }, score: s, curves: [], artifacts: [], cost: Cost.make({ gpuSeconds: 60 }) }
  }
  /** A trial's events: submitted, then `state`, then `finish`'s event (none: it never ends). */
  const trialEvents = (id: string, backend: string, state: ExecutorAgent.ExecutionEvent, finish: Effect.Effect<ExecutorAgent.ExecutionEvent> | undefined) =>
    Stream.concat(
      Stream.make<Array<ExecutorAgent.ExecutionEvent>>({ _tag: "Submitted", job: { backend, id: `job-${id}`, data: {} } }, state),
      finish === undefined ? Stream.never : Stream.fromEffect(finish)
    )
  /** The toy search with two trials in flight and `control`, forked; `submitted` fills as the executor is asked. */
  const runTwoInFlight = (executor: ExecutorAgent.ExecutorAgentShape, control: Control, extra: Partial<Explorer.Options> = {}) =>
    Effect.gen(function*() {
      const journal = Journal.makeMemory()
      const fiber = yield* Explorer.run(makeTask({ maxTrials: 10 }), { runId: "r1", runDir: "/tmp/unused", seed: 7, concurrency: 2, control, ...extra }).pipe(
        Effect.provide(Layer.mergeAll(Layer.succeed(Journal.Journal, journal), Uct.layer(), layers(gridResearcher, executor))),
        Effect.forkChild
      )
      return { fiber, journal }
    })

  it.live("a drain lets a running trial finish and withdraws those waiting in the backend's queue, cancelling their jobs", () =>
    Effect.gen(function*() {
      const control = new Control()
      const release = yield* Deferred.make<void>()
      const submitted: Array<string> = []
      const withdrawn: Array<string> = []
      // one slot: the first trial runs until released; the others wait in the queue for it
      const queueing: ExecutorAgent.ExecutorAgentShape = {
        name: "one-slot",
        run: (req) =>
          Stream.unwrap(Effect.sync(() => {
            submitted.push(req.node.id)
            return submitted.length === 1
              ? trialEvents(req.node.id, "one-slot", { _tag: "State", state: "Running" }, Effect.as(Deferred.await(release), { _tag: "Finished", result: scored(req.node.strategy) } as const))
              : trialEvents(req.node.id, "one-slot", { _tag: "State", state: "Pending", reason: "waiting for a GPU" }, undefined).pipe(
                Stream.ensuring(Effect.sync(() => void withdrawn.push(req.node.id)))
              )
          }))
      }
      const { fiber, journal } = yield* runTwoInFlight(queueing, control)
      while (submitted.length < 2) yield* Effect.sleep("1 millis")
      control.stop("drain")
      // the queued trials are withdrawn at once, while the running one still runs
      for (let i = 0; i < 5000 && withdrawn.length < 1; i++) yield* Effect.sleep("1 millis")
      assert.deepStrictEqual(withdrawn, [submitted[1]], "the queued trial is withdrawn before the running one ends")
      yield* Deferred.succeed(release, undefined)
      const summary = yield* Fiber.join(fiber)
      assert.strictEqual(summary.reason, "stopped by request")
      assert.isFalse(summary.interrupted)
      assert.deepStrictEqual(withdrawn, submitted.slice(1))
      const events = (yield* journal.read()).map((e) => e.event)
      // a wait is journaled (a job that never waited, none), so `trex status` of a live run shows it; so is the withdrawal
      const states = events.flatMap((e) => (e._tag === "JobState" ? [`${e.nodeId} ${e.state} ${e.reason ?? ""}`.trim()] : []))
      assert.deepStrictEqual(states, [`${submitted[1]} Pending waiting for a GPU`, `${submitted[1]} Withdrawn`])
      assert.isTrue(ExperimentTree.fold(events)!.view.get(submitted[1]!)?.withdrawn)
      const finished = events.flatMap((e) => (e._tag === "NodeFinished" ? [e.nodeId] : []))
      assert.deepStrictEqual(finished, [submitted[0]], "the running trial finished; the withdrawn ones are left to run on resume")
      assert.strictEqual(events.filter((e) => e._tag === "JobSubmitted").length, 2)
    }))

  it.live("a wait journaled before a crash ends when the resumed run finds the job running", () =>
    Effect.gen(function*() {
      const journal = Journal.makeMemory()
      const submitted: Array<string> = []
      // first controller: one trial runs, the other waits for a GPU; then it dies
      const first: ExecutorAgent.ExecutorAgentShape = {
        name: "one-slot",
        run: (req) =>
          Stream.unwrap(Effect.sync(() => {
            submitted.push(req.node.id)
            return trialEvents(req.node.id, "one-slot", submitted.length === 1 ? { _tag: "State", state: "Running" } : { _tag: "State", state: "Pending", reason: "waiting for a GPU" }, undefined)
          }))
      }
      const run = (executor: ExecutorAgent.ExecutorAgentShape, maxTrials: number) =>
        Explorer.run(makeTask({ maxTrials }), { runId: "r1", runDir: "/tmp/unused", seed: 7, concurrency: 2 }).pipe(
          Effect.provide(Layer.mergeAll(Layer.succeed(Journal.Journal, journal), Uct.layer(), layers(gridResearcher, executor)))
        )
      const fiber = yield* Effect.forkChild(run(first, 2))
      const waitingOf = Effect.map(journal.read(), (entries) => ExperimentTree.fold(entries.map((e) => e.event))?.view.get(submitted[1] ?? "")?.waiting)
      for (let i = 0; i < 5000 && (yield* waitingOf) === undefined; i++) yield* Effect.sleep("1 millis")
      assert.strictEqual(yield* waitingOf, "waiting for a GPU")
      yield* Fiber.interrupt(fiber)
      // the resumed controller reattaches: the job started meanwhile, and both finish
      const resumed: ExecutorAgent.ExecutorAgentShape = {
        name: "one-slot",
        run: (req) => {
          const done = { _tag: "Finished", result: scored(req.node.strategy) } as const
          // reattached to its job (no new submission), or submitted afresh
          return req.job !== undefined
            ? Stream.make<Array<ExecutorAgent.ExecutionEvent>>({ _tag: "State", state: "Running" }, done)
            : trialEvents(req.node.id, "one-slot", { _tag: "State", state: "Running" }, Effect.succeed(done))
        }
      }
      yield* run(resumed, 2)
      const events = (yield* journal.read()).map((e) => e.event)
      const after = events.slice(events.findIndex((e) => e._tag === "RunResumed"))
      assert.isTrue(after.some((e) => e._tag === "JobState" && e.nodeId === submitted[1] && e.state === "Running"), "the end of the wait is journaled")
      assert.isUndefined(ExperimentTree.fold(events)!.view.get(submitted[1]!)?.waiting)
    }))

  it.live("a running job its backend cannot be asked about (an outage) is journaled, once per reason, and ends when the backend answers or the trial finishes", () =>
    Effect.gen(function*() {
      const journal = Journal.makeMemory()
      const outage = "the Docker engine at unix:///var/run/docker.sock does not answer since 10:03:12Z"
      // a watch that loses touch twice with the same reason (told once), answers again, loses touch, then ends
      const executor: ExecutorAgent.ExecutorAgentShape = {
        name: "flaky-engine",
        run: (req) =>
          Stream.make<Array<ExecutorAgent.ExecutionEvent>>(
            { _tag: "Submitted", job: { backend: "flaky-engine", id: `job-${req.node.id}`, data: {} } },
            { _tag: "State", state: "Running" },
            { _tag: "State", state: "Running", reason: outage },
            { _tag: "State", state: "Running", reason: outage },
            { _tag: "State", state: "Running" },
            { _tag: "State", state: "Running" },
            { _tag: "State", state: "Running", reason: "host gpu1 does not answer" },
            { _tag: "Finished", result: scored(req.node.strategy) }
          )
      }
      yield* Explorer.run(makeTask({ maxTrials: 1 }), { runId: "r1", runDir: "/tmp/unused", seed: 7 }).pipe(
        Effect.provide(Layer.mergeAll(Layer.succeed(Journal.Journal, journal), Uct.layer(), layers(gridResearcher, executor)))
      )
      const events = (yield* journal.read()).map((e) => e.event)
      const states = events.flatMap((e) => (e._tag === "JobState" ? [`${e.state} ${e.reason ?? ""}`.trim()] : []))
      assert.deepStrictEqual(states, [`Running ${outage}`, "Running", "Running host gpu1 does not answer"])
      // replayed: out of touch after the outage's JobState, in touch after the next, and nothing once it finished
      const cut = events.findIndex((e) => e._tag === "JobState")
      const node = events.find((e) => e._tag === "JobSubmitted")!.nodeId
      assert.strictEqual(ExperimentTree.fold(events.slice(0, cut + 1))!.view.get(node)?.unreachable, outage)
      assert.isUndefined(ExperimentTree.fold(events.slice(0, cut + 2))!.view.get(node)?.unreachable)
      assert.isUndefined(ExperimentTree.fold(events)!.view.get(node)?.unreachable)
      assert.strictEqual(ExperimentTree.fold(events)!.view.get(node)?.state._tag, "Succeeded")
    }))

  it.live("a trial admitted before a crash with no submission on record is reconciled on every attempt until one submits: a retry after a failed look does not submit a second copy", () =>
    Effect.gen(function*() {
      const journal = Journal.makeMemory()
      const run = (executor: ExecutorAgent.ExecutorAgentShape) =>
        Explorer.run(makeTask({ maxTrials: 1 }), { runId: "r1", runDir: "/tmp/unused", seed: 7 }).pipe(
          Effect.provide(Layer.mergeAll(Layer.succeed(Journal.Journal, journal), Uct.layer(), layers(gridResearcher, executor)))
        )
      // first controller: the trial is admitted, its job submitted, and the controller dies before the submission is journaled
      const first = yield* Effect.forkChild(run({ name: "backend", run: () => Stream.never }))
      for (let i = 0; i < 5000 && !(yield* journal.read()).some((e) => e.event._tag === "NodeAdmitted"); i++) yield* Effect.sleep("1 millis")
      yield* Fiber.interrupt(first)
      // second controller: the first look fails (the backend cannot list its jobs: a host is unreachable), the next finds the job
      const requests: Array<[number | undefined, boolean | undefined]> = []
      yield* run({
        name: "backend",
        run: (req) => {
          requests.push([req.attempt, req.reconcile])
          if (req.reconcile !== true) return Stream.make({ _tag: "Submitted", job: { backend: "b", id: "second-copy", data: {} } }, { _tag: "Finished", result: scored(req.node.strategy) })
          if (requests.length === 1) return Stream.fail(new Errors.ExecutorError({ nodeId: req.node.id, message: "ssh list: host-b is unreachable", retryable: true }))
          return Stream.make({ _tag: "Submitted", job: { backend: "b", id: "found", data: {} } }, { _tag: "Finished", result: scored(req.node.strategy) })
        }
      })
      assert.deepStrictEqual(requests, [[0, true], [1, true]])
      const jobs = (yield* journal.read()).flatMap((e) => (e.event._tag === "JobSubmitted" ? [e.event.job.id] : []))
      assert.deepStrictEqual(jobs, ["found"], "the job found is adopted; no second copy is submitted")
    }))

  it.live("a reattached job that failed retryably is retried looking for the node's unrecorded job (a retry the crashed controller submitted), told the jobs on record", () =>
    Effect.gen(function*() {
      const journal = Journal.makeMemory()
      const run = (executor: ExecutorAgent.ExecutorAgentShape) =>
        Explorer.run(makeTask({ maxTrials: 1 }), { runId: "r1", runDir: "/tmp/unused", seed: 7 }).pipe(
          Effect.provide(Layer.mergeAll(Layer.succeed(Journal.Journal, journal), Uct.layer(), layers(gridResearcher, executor)))
        )
      // first controller: the trial's job is submitted and journaled, and the controller dies
      const first = yield* Effect.forkChild(run({
        name: "backend",
        run: () => Stream.concat(Stream.make<Array<ExecutorAgent.ExecutionEvent>>({ _tag: "Submitted", job: { backend: "b", id: "lost", data: {} } }), Stream.never)
      }))
      for (let i = 0; i < 5000 && !(yield* journal.read()).some((e) => e.event._tag === "JobSubmitted"); i++) yield* Effect.sleep("1 millis")
      yield* Fiber.interrupt(first)
      // second controller: the reattached job is lost; the retry looks (and finds the job the first controller's retry submitted)
      const requests: Array<ExecutorAgent.ExecutionRequest> = []
      yield* run({
        name: "backend",
        run: (req) => {
          requests.push(req)
          if (req.job !== undefined) return Stream.make({ _tag: "Finished", result: Result.failure("Infra", "the container was removed", { retryable: true }) })
          return Stream.make({ _tag: "Submitted", job: { backend: "b", id: req.reconcile === true ? "found" : "second-copy", data: {} } }, { _tag: "Finished", result: scored(req.node.strategy) })
        }
      })
      assert.deepStrictEqual(requests.map((r) => [r.attempt, r.job?.id, r.reconcile, r.onRecord?.map((j) => j.id)]), [[0, "lost", undefined, ["lost"]], [1, undefined, true, ["lost"]]])
      const jobs = (yield* journal.read()).flatMap((e) => (e.event._tag === "JobSubmitted" ? [e.event.job.id] : []))
      assert.deepStrictEqual(jobs, ["lost", "found"])
    }))

  it.live("a reconciling retry that reports a job on record (an executor written when reconcile meant only \"nothing on record\", adopting the node's first listed job) is warned of once, naming the node and job", () =>
    Effect.gen(function*() {
      const journal = Journal.makeMemory()
      const warnings: Array<string> = []
      const run = (executor: ExecutorAgent.ExecutorAgentShape) =>
        Explorer.run(makeTask({ maxTrials: 1 }), { runId: "r1", runDir: "/tmp/unused", seed: 7 }).pipe(
          Effect.provide(Layer.mergeAll(Layer.succeed(Journal.Journal, journal), Uct.layer(), layers(gridResearcher, executor))),
          Effect.provide(Logger.layer([Logger.make((o) => void (o.logLevel === "Warn" && warnings.push(String(o.message))))]))
        )
      const lost = { backend: "b", id: "lost", data: {} }
      const first = yield* Effect.forkChild(run({ name: "old", run: () => Stream.concat(Stream.make<Array<ExecutorAgent.ExecutionEvent>>({ _tag: "Submitted", job: lost }), Stream.never) }))
      for (let i = 0; i < 5000 && !(yield* journal.read()).some((e) => e.event._tag === "JobSubmitted"); i++) yield* Effect.sleep("1 millis")
      yield* Fiber.interrupt(first)
      // the reattached job is lost; the retry, reconciling, adopts the node's first listed job: the lost one (reported twice)
      let nodeId = ""
      yield* run({
        name: "old",
        run: (req) => {
          nodeId = req.node.id
          if (req.job !== undefined) return Stream.make({ _tag: "Finished", result: Result.failure("Infra", "the container was removed", { retryable: true }) })
          return Stream.make({ _tag: "Submitted", job: lost }, { _tag: "Submitted", job: lost }, { _tag: "Finished", result: scored(req.node.strategy) })
        }
      })
      const said = warnings.filter((w) => w.includes("on record already"))
      assert.strictEqual(said.length, 1, warnings.join("\n"))
      assert.include(said[0], `trial ${nodeId}`)
      assert.include(said[0], "job lost (b)")
      assert.include(said[0], "request.onRecord")
    }))

  it.live("a trial reattached on resume is told every job journaled for it, in order, the last the one reattached; one a drain withdrew left out", () =>
    Effect.gen(function*() {
      const journal = Journal.makeMemory()
      const requests: Array<ExecutorAgent.ExecutionRequest> = []
      const job = (id: string) => ({ backend: "b", id, data: {} })
      const run = (executor: ExecutorAgent.ExecutorAgentShape, control?: Control) =>
        Explorer.run(makeTask({ maxTrials: 1 }), { runId: "r1", runDir: "/tmp/unused", seed: 7, ...(control !== undefined ? { control } : {}) }).pipe(
          Effect.provide(Layer.mergeAll(Layer.succeed(Journal.Journal, journal), Uct.layer(), layers(gridResearcher, executor)))
        )
      const submittedOf = Effect.map(journal.read(), (entries) => entries.filter((e) => e.event._tag === "JobSubmitted").length)
      // first controller: the trial's job waits in its backend's queue, and a drain withdraws it
      const control = new Control()
      const first = yield* Effect.forkChild(run({
        name: "queued",
        withdraw: () => Effect.succeed(true),
        run: (req) => {
          requests.push(req)
          return Stream.concat(Stream.make<Array<ExecutorAgent.ExecutionEvent>>({ _tag: "Submitted", job: job("w") }, { _tag: "State", state: "Pending" }), Stream.never)
        }
      }, control))
      for (let i = 0; i < 5000 && !(yield* journal.read()).some((e) => e.event._tag === "JobState"); i++) yield* Effect.sleep("1 millis")
      control.stop("drain")
      yield* Fiber.join(first)
      // second controller: the trial submitted afresh, it submits two jobs (as a code agent's training attempts), then dies
      const second = yield* Effect.forkChild(run({
        name: "attempts",
        run: (req) => {
          requests.push(req)
          return Stream.concat(Stream.make<Array<ExecutorAgent.ExecutionEvent>>({ _tag: "Submitted", job: job("a") }, { _tag: "Submitted", job: job("b") }), Stream.never)
        }
      }))
      for (let i = 0; i < 5000 && (yield* submittedOf) < 3; i++) yield* Effect.sleep("1 millis")
      yield* Fiber.interrupt(second)
      // third controller: reattaches to the last job, and is told the others
      yield* run({
        name: "reattached",
        run: (req) => {
          requests.push(req)
          return Stream.make({ _tag: "Finished", result: scored(req.node.strategy) })
        }
      })
      assert.deepStrictEqual(requests.map((r) => [r.job?.id, r.jobs?.map((j) => j.id)]), [[undefined, undefined], [undefined, undefined], ["b", ["a", "b"]]])
    }))

  it.live("a drain asks the executor to withdraw a waiting trial: one that has just started (withdraw says no) runs to its end", () =>
    Effect.gen(function*() {
      const control = new Control()
      const release = yield* Deferred.make<void>()
      const submitted: Array<string> = []
      const asked: Array<string> = []
      // every trial reports Pending; the backend has in fact started them all, so it withdraws none
      const started: ExecutorAgent.ExecutorAgentShape = {
        name: "started",
        withdraw: (job) => Effect.sync(() => void asked.push(job.id)).pipe(Effect.as(false)),
        run: (req) =>
          Stream.unwrap(Effect.sync(() => {
            submitted.push(req.node.id)
            return trialEvents(req.node.id, "started", { _tag: "State", state: "Pending" }, Effect.as(Deferred.await(release), { _tag: "Finished", result: scored(req.node.strategy) } as const))
          }))
      }
      const { fiber, journal } = yield* runTwoInFlight(started, control)
      while (submitted.length < 2) yield* Effect.sleep("1 millis")
      control.stop("drain")
      for (let i = 0; i < 5000 && asked.length < 2; i++) yield* Effect.sleep("1 millis")
      assert.deepStrictEqual(asked, submitted.map((id) => `job-${id}`), "both waiting trials were asked about")
      yield* Deferred.succeed(release, undefined)
      const summary = yield* Fiber.join(fiber)
      assert.strictEqual(summary.reason, "stopped by request")
      const finished = (yield* journal.read()).flatMap((e) => (e.event._tag === "NodeFinished" ? [e.event.nodeId] : []))
      assert.deepStrictEqual([...finished].sort(), [...submitted].sort(), "neither was stopped: both finished")
    }))

  it.live("a drain whose executor's withdraw throws or dies stops the waiting trials as without a withdraw: the run ends by request, they run on resume", () =>
    Effect.gen(function*() {
      for (const bug of [() => Effect.die(new Error("withdraw: off by one")), () => { throw new Error("withdraw: off by one") }]) {
        const control = new Control()
        const submitted: Array<string> = []
        const buggy: ExecutorAgent.ExecutorAgentShape = {
          name: "buggy",
          withdraw: bug,
          run: (req) =>
            Stream.unwrap(Effect.sync(() => {
              submitted.push(req.node.id)
              return trialEvents(req.node.id, "buggy", { _tag: "State", state: "Pending" }, undefined)
            }))
        }
        const { fiber, journal } = yield* runTwoInFlight(buggy, control)
        while (submitted.length < 2) yield* Effect.sleep("1 millis")
        control.stop("drain")
        const summary = yield* Fiber.join(fiber)
        assert.strictEqual(summary.reason, "stopped by request")
        const tree = ExperimentTree.fold((yield* journal.read()).map((e) => e.event))!.view
        assert.deepStrictEqual(submitted.map((id) => tree.get(id)?.withdrawn), [true, true], "both withdrawn: they run on resume")
      }
    }))

  it.live("a drain's withdraw that waits for its backend is asked once, however often the trial's wait changes meanwhile", () =>
    Effect.gen(function*() {
      const control = new Control()
      const answer = yield* Deferred.make<void>()
      const submitted: Array<string> = []
      const asked: Array<string> = []
      const waits = new Map<string, Queue.Queue<ExecutorAgent.ExecutionEvent>>()
      // the backend does not answer the withdraw until `answer`; meanwhile the trial's wait is told again, for other reasons
      const stalled: ExecutorAgent.ExecutorAgentShape = {
        name: "stalled",
        withdraw: (job) => Effect.sync(() => void asked.push(job.id)).pipe(Effect.andThen(Deferred.await(answer)), Effect.as(true)),
        run: (req) =>
          Stream.unwrap(Effect.gen(function*() {
            const more = yield* Queue.unbounded<ExecutorAgent.ExecutionEvent>()
            waits.set(req.node.id, more)
            submitted.push(req.node.id)
            return Stream.concat(
              Stream.make<Array<ExecutorAgent.ExecutionEvent>>({ _tag: "Submitted", job: { backend: "stalled", id: `job-${req.node.id}`, data: {} } }, { _tag: "State", state: "Pending", reason: "no free GPU" }),
              Stream.fromQueue(more)
            )
          }))
      }
      const { fiber, journal } = yield* runTwoInFlight(stalled, control)
      while (submitted.length < 2) yield* Effect.sleep("1 millis")
      for (let i = 0; i < 2000 && !(yield* journal.read()).some((e) => e.event._tag === "JobState"); i++) yield* Effect.sleep("1 millis")
      control.stop("drain")
      // the drain asks one trial's withdraw at a time: the first, then the next once the first is answered (a
      // second is asked before then only by the `Pending`s below), so wait for the first (waiting for two ran out
      // the loop's 5,000 sleeps, 6-42 s)
      for (let i = 0; i < 5000 && asked.length < 1; i++) yield* Effect.sleep("1 millis")
      for (const reason of ["the scheduler does not answer", "the scheduler does not answer (2 s)", "no free GPU"]) {
        for (const q of waits.values()) yield* Queue.offer(q, { _tag: "State", state: "Pending", reason })
        yield* Effect.sleep("20 millis")
      }
      yield* Deferred.succeed(answer, undefined)
      const summary = yield* Fiber.join(fiber).pipe(Effect.timeout("5 seconds"))
      assert.strictEqual(summary.reason, "stopped by request")
      assert.deepStrictEqual([...asked].sort(), submitted.map((id) => `job-${id}`).sort(), "each trial's job was asked once")
      const withdrawn = (yield* journal.read()).flatMap((e) => (e.event._tag === "JobState" && e.event.state === "Withdrawn" ? [e.event.nodeId] : []))
      assert.deepStrictEqual([...withdrawn].sort(), [...submitted].sort(), "each withdrawal journaled once")
    }))

  it.live("a policy that stops ends the run with its reason", () =>
    Effect.gen(function*() {
      const summary = yield* Explorer.run(makeTask({ maxTrials: 5 }), { runId: "s", runDir: "/tmp/unused" }).pipe(
        Effect.provide(
          Layer.mergeAll(
            Journal.Journal.layerMemory,
            Layer.succeed(SearchPolicy.SearchPolicy, { name: "never", select: () => Effect.succeed(SearchPolicy.stop("nothing to do")) }),
            layers(gridResearcher, functionExecutor({ runs: [] }))
          )
        )
      )
      assert.strictEqual(summary.reason, "nothing to do")
      assert.strictEqual(summary.tree.size, 0)
    }))

  it.live("score function sanity: the landscape has a unique best", () =>
    Effect.sync(() => {
      assert.strictEqual(score({ ...makeTask({}).defaultStrategy!, training: { ...makeTask({}).defaultStrategy!.training, learningRate: 0.003, epochs: 4 } }), 1)
    }))
})

describe("Explorer, given what it cannot do", () => {
  /** A run with these parts on a fresh memory journal (or the one given). */
  const runParts = (parts: {
    readonly policy?: SearchPolicy.SearchPolicyShape
    readonly researcher?: Researcher.ResearcherShape
    readonly executor?: ExecutorAgent.ExecutorAgentShape
    readonly journal?: Journal.Journal["Service"]
    readonly maxTrials?: number
    readonly options?: Partial<Explorer.Options>
  }) =>
    Explorer.run(makeTask({ maxTrials: parts.maxTrials ?? 6 }), { runId: "g", runDir: "/tmp/unused", seed: 4, ...parts.options }).pipe(
      Effect.provide(
        Layer.mergeAll(
          Layer.succeed(Journal.Journal, parts.journal ?? Journal.makeMemory()),
          parts.policy !== undefined ? Layer.succeed(SearchPolicy.SearchPolicy, parts.policy) : Uct.layer(),
          layers(parts.researcher ?? gridResearcher, parts.executor ?? functionExecutor({ runs: [] }))
        )
      )
    )

  it.live("invalid options fail at once with a typed error naming each field, and nothing is journaled", () =>
    Effect.gen(function*() {
      const journal = Journal.makeMemory()
      const bad = { concurrency: Number.NaN, seed: "abc", runId: "", concurency: 2, retries: -1, onEvent: 5, budget: { maxTrails: 3 }, researcherRetryDelay: -1 } as unknown as Partial<Explorer.Options>
      const error = yield* Effect.flip(runParts({ journal, options: bad }))
      assert.strictEqual(error._tag, "InvalidInput")
      const lines = error.message.split("\n").map((l) => l.trim())
      assert.strictEqual(lines[0], "invalid Explorer.run options:")
      assert.includeMembers(lines, [
        `concurency: not an option; did you mean "concurrency"?`,
        "runId: expected a non-empty string, got \"\"",
        "seed: expected an integer (the run's seed), got \"abc\"",
        "concurrency: expected an integer of at least 1 (trials in flight at once), got NaN",
        "retries: expected an integer of at least 0 (retries of a trial that failed for infrastructure reasons), got -1",
        "onEvent: expected a function, got 5",
        `researcherRetryDelay: expected a duration of 0 or more (the first wait before a researcher that failed retryably is asked again, doubled each time), e.g. "2 seconds" or 500 (milliseconds), got -1`,
        // dropped in silence, the typo left a resumed run without a trial limit
        `budget: maxTrails: Expected no excess property; did you mean "maxTrials"?`
      ])
      assert.lengthOf(yield* journal.read(), 0)
    }))

  it.live("a new run whose default strategy lies outside its search space is refused as a task file is; a journal of one resumes", () =>
    Effect.gen(function*() {
      // epochs 7 is not one of the space's epochs: the baseline ran it, and the trials that start from it kept it
      const outside = makeTask({ maxTrials: 4 }, { defaultStrategy: { ...defaultStrategy, training: { ...defaultStrategy.training, epochs: 7 } } })
      const provide = (journal: Journal.Journal["Service"], log: ExecLog) =>
        Effect.provide(Layer.mergeAll(Layer.succeed(Journal.Journal, journal), Uct.layer(), layers(gridResearcher, functionExecutor(log))))
      const fresh = Journal.makeMemory()
      const log: ExecLog = { runs: [] }
      const error = yield* Effect.flip(Explorer.run(outside, { runId: "d", runDir: "/tmp/unused", seed: 4 }).pipe(provide(fresh, log)))
      assert.strictEqual(error._tag, "InvalidInput")
      assert.strictEqual((error as Errors.InvalidInput).source, "task")
      assert.strictEqual(
        error.message,
        "invalid task in Explorer.run's task (toy), for a new run:\n" +
          "  defaultStrategy.training.epochs: 7 is not one of searchSpace.parameters[1].values [1, 2, 3, 4, 5, 6]: the baseline would run it as " +
          "written, and the trials that start from it keep it until a move changes it. Set it to one of them, or add 7 to them"
      )
      assert.lengthOf(yield* fresh.read(), 0)
      assert.lengthOf(log.runs, 0)
      // a run journaled before that check (its task holds such a default) still resumes, and runs its trials
      const old = Journal.makeMemory()
      yield* old.append([JournalEvent.make("RunStarted", { runId: "d", task: outside, seed: 4, options: {}, at: 0 })])
      const resumed = yield* Explorer.run(outside, { runId: "d", runDir: "/tmp/unused", seed: 4 }).pipe(provide(old, log))
      assert.strictEqual(resumed.reason, "budget: maxTrials")
      assert.lengthOf(log.runs, 4)
    }))

  it.live("a journal of another run is a typed Mismatch that names both runs", () =>
    Effect.gen(function*() {
      const journal = Journal.makeMemory()
      yield* runParts({ journal, maxTrials: 2 })
      const error = yield* Effect.flip(runParts({ journal, options: { runId: "other" } }))
      assert.strictEqual(error._tag, "JournalError")
      assert.strictEqual((error as Errors.JournalError).reason, "Mismatch")
      assert.include(error.message, `holds run "g", not "other"`)
    }))

  it.live("a policy that expands what may not be expanded stops the run with a PolicyError, its journal sound and resumable", () =>
    Effect.gen(function*() {
      // always the best node, even once it is exhausted (no isExpandable check): the researcher has one child for it
      const stubborn: SearchPolicy.SearchPolicyShape = { name: "stubborn", select: (tree) => Effect.succeed(SearchPolicy.expand(tree.best()?.id ?? "root")) }
      const oneChild: Researcher.ResearcherShape = {
        ...gridResearcher,
        propose: (ctx, n) => (ctx.parentId === "root" ? gridResearcher.propose(ctx, n) : Effect.succeed([]))
      }
      const journal = Journal.makeMemory()
      const error = yield* Effect.flip(runParts({ journal, policy: stubborn, researcher: oneChild }))
      assert.strictEqual(error._tag, "PolicyError")
      assert.include(error.message, "stubborn chose n1, which may not be expanded (exhausted: the researcher had nothing new under it)")
      const events = (yield* journal.read()).map((e) => e.event._tag)
      assert.strictEqual(events.filter((t) => t === "NodeExhausted").length, 1, "exhausted once, not journaled again and again")
      // mended (the default policy), the run goes on to its budget
      const summary = yield* runParts({ journal })
      assert.strictEqual(summary.reason, "budget: maxTrials")
      assert.strictEqual(summary.tree.size, 6)

      for (const [answer, expected] of [
        [SearchPolicy.expand("n99"), "chose n99, which may not be expanded (the tree has no such node)"],
        [{ _tag: "Expnad", nodeId: "root" }, `{"_tag":"Expnad","nodeId":"root"} is not a selection`],
        [undefined, "undefined is not a selection"]
      ] as const) {
        const wrong = yield* Effect.flip(runParts({ policy: { name: "wrong", select: () => Effect.succeed(answer as SearchPolicy.Selection) } }))
        assert.strictEqual(wrong._tag, "PolicyError")
        assert.include(wrong.message, expected)
      }
    }))

  it.live("a policy that throws, or answers wrongly while trials run, lets them finish (nothing cancelled), then fails the run", () =>
    Effect.gen(function*() {
      const log: ExecLog = { runs: [] }
      let calls = 0
      // expands the root twice, then answers nonsense while both trials still run
      const lapsing: SearchPolicy.SearchPolicyShape = {
        name: "lapsing",
        select: () => Effect.succeed(++calls <= 2 ? SearchPolicy.expand("root") : ({ _tag: "Expand", nodeId: "n77" } as SearchPolicy.Selection))
      }
      const journal = Journal.makeMemory()
      const error = yield* Effect.flip(runParts({ journal, policy: lapsing, executor: functionExecutor(log, { stepMillis: 50 }), options: { concurrency: 2 } }))
      assert.strictEqual(error._tag, "PolicyError")
      const finished = (yield* journal.read()).flatMap((e) => (e.event._tag === "NodeFinished" ? [`${e.event.nodeId}:${e.event.outcome}`] : []))
      assert.deepStrictEqual(finished.sort(), ["n1:Succeeded", "n2:Succeeded"])
      assert.notInclude((yield* journal.read()).map((e) => e.event._tag), "RunFinished")

      const throwing = yield* Effect.flip(runParts({ policy: { name: "throwing", select: () => Effect.sync(() => { throw new Error("off by one") }) } }))
      assert.strictEqual(throwing._tag, "PolicyError")
      assert.strictEqual(throwing.message, "throwing failed unexpectedly (a bug in it): off by one")
    }))

  it.live("a researcher that throws stops the run as one that errs: named, nothing exhausted, resumable", () =>
    Effect.gen(function*() {
      const buggy: Researcher.ResearcherShape = { ...gridResearcher, propose: () => Effect.sync(() => { throw new Error("undefined is not a function") }) }
      const journal = Journal.makeMemory()
      const stopped = yield* runParts({ journal, researcher: buggy })
      assert.strictEqual(stopped.reason, "the researcher failed: propose failed unexpectedly (a bug in the researcher): undefined is not a function")
      assert.notInclude((yield* journal.read()).map((e) => e.event._tag), "NodeExhausted")
      assert.strictEqual((yield* runParts({ journal })).tree.size, 6)
    }))

  it.live("a policy or researcher that throws as it is called (a plain function, before any effect) is handled as one whose effect throws", () =>
    Effect.gen(function*() {
      const bug = (where: string) => () => {
        throw new Error(`off by one in ${where}`)
      }
      const policy = yield* Effect.flip(runParts({ policy: { name: "plain", select: bug("select") } }))
      assert.strictEqual(policy._tag, "PolicyError")
      assert.strictEqual(policy.message, "plain failed unexpectedly (a bug in it): off by one in select")

      const journal = Journal.makeMemory()
      const stopped = yield* runParts({ journal, researcher: { ...gridResearcher, propose: bug("propose") } })
      assert.strictEqual(stopped.reason, "the researcher failed: propose failed unexpectedly (a bug in the researcher): off by one in propose")
      assert.notInclude((yield* journal.read()).map((e) => e.event._tag), "NodeExhausted")
      assert.strictEqual((yield* runParts({ journal })).tree.size, 6, "mended, it resumes")

      // analyze and distill: handled as their errors are (a placeholder analysis; no insights this time)
      const carriedOn = yield* runParts({ researcher: { ...gridResearcher, analyze: bug("analyze"), distill: bug("distill") } })
      assert.strictEqual(carriedOn.reason, "budget: maxTrials")
      assert.strictEqual(carriedOn.tree.analysis?.summary, "analysis failed: analyze failed unexpectedly (a bug in the researcher): off by one in analyze")
    }))

  // (on the test clock: the backoffs, 2 s then 4 s, took 8 s of the suite)
  it.effect("a researcher that fails with a retryable error is asked again after a backoff (researcherRetryDelay); one that keeps failing, or fails for good, stops the run, nothing marked exhausted", () =>
    Effect.gen(function*() {
      let failures = 2
      const askedAt: Array<number> = []
      const flaky: Researcher.ResearcherShape = {
        ...gridResearcher,
        propose: (ctx, n) =>
          Effect.andThen(
            Effect.map(Clock.currentTimeMillis, (at) => void askedAt.push(at)),
            failures-- > 0 ? Effect.fail(new Errors.ResearcherError({ operation: "propose", message: "overloaded", retryable: true })) : gridResearcher.propose(ctx, n)
          )
      }
      const recovered = yield* onTestClock(runParts({ researcher: flaky, maxTrials: 3 }))
      assert.strictEqual(recovered.reason, "budget: maxTrials")
      assert.strictEqual(recovered.tree.size, 3)
      assert.deepStrictEqual(askedAt.slice(0, 3).map((at) => at - askedAt[0]!), [0, 2000, 6000], "asked again after 2 s, then after 4 s more")
      // researcherRetryDelay: the first wait, doubled each time
      failures = 2
      askedAt.length = 0
      yield* onTestClock(runParts({ researcher: flaky, maxTrials: 3, options: { researcherRetryDelay: "500 millis" } }))
      assert.deepStrictEqual(askedAt.slice(0, 3).map((at) => at - askedAt[0]!), [0, 500, 1500], "asked again after 0.5 s, then after 1 s more")

      // an outage that outlasts the retries: asked researcherRetries + 1 times, then the run stops
      let outageAsks = 0
      const outage: Researcher.ResearcherShape = {
        ...gridResearcher,
        propose: () => Effect.suspend(() => (outageAsks++, Effect.fail(new Errors.ResearcherError({ operation: "propose", message: "529 overloaded", retryable: true }))))
      }
      const outlasted = yield* onTestClock(runParts({ researcher: outage, options: { researcherRetries: 1 } }))
      assert.strictEqual(outlasted.reason, "the researcher failed: 529 overloaded")
      assert.strictEqual(outageAsks, 2)

      // a refused key is not asked again: asking again cannot mend it
      let asks = 0
      const refused = (operation: string) => new Errors.ResearcherError({ operation, message: "401: invalid x-api-key", retryable: false })
      const down: Researcher.ResearcherShape = {
        ...gridResearcher,
        analyze: () => Effect.fail(refused("analyze")),
        propose: () => Effect.suspend(() => (asks++, Effect.fail(refused("propose"))))
      }
      const journal = Journal.makeMemory()
      const stopped = yield* onTestClock(runParts({ journal, researcher: down }))
      assert.strictEqual(stopped.reason, "the researcher failed: 401: invalid x-api-key")
      assert.strictEqual(asks, 1, "a researcher error that is not retryable is not asked again")
      assert.strictEqual(stopped.tree.analysis?.summary, "analysis failed: 401: invalid x-api-key")
      assert.notInclude((yield* journal.read()).map((e) => e.event._tag), "NodeExhausted")
      // the key mended: the resumed run asks for the analysis again (it failed in the same outage), proposes and runs its trials
      const resumed = yield* onTestClock(runParts({ journal }))
      assert.strictEqual(resumed.tree.size, 6)
      assert.strictEqual(resumed.tree.analysis?.summary, (yield* gridResearcher.analyze(makeTask({}))).summary)
      const folded = ExperimentTree.fold((yield* journal.read()).map((e) => e.event))!
      assert.strictEqual(folded.view.analysis?.summary, resumed.tree.analysis?.summary, "a replay sees the analysis asked for again")
    }))

  it.live("under a dollar budget, a paid proposal is asked for only when its trial can be admitted, and nothing is distilled once it is spent", () =>
    Effect.gen(function*() {
      const call = Cost.make({ inputTokens: 1000, outputTokens: 100, dollars: 0.002 })
      let asked = 0
      // every answer new (no duplicate is asked for again): each paid proposal is a trial, unless it is dropped
      const paid: Researcher.ResearcherShape = {
        ...gridResearcher,
        propose: (ctx) =>
          Effect.gen(function*() {
            yield* (yield* CostMeter.CostMeter).record(call, "propose")
            const i = ++asked
            return [{ strategy: { ...defaultStrategy, training: { ...defaultStrategy.training, extra: { i } } }, rationale: `try ${i}` }]
          }),
        distill: () =>
          Effect.gen(function*() {
            yield* (yield* CostMeter.CostMeter).record(call, "distill")
            return []
          })
      }
      // each trial costs $0.01 (a rented GPU): admission holds the mean back for each trial in flight
      const inner = functionExecutor({ runs: [] }, { stepMillis: 10 })
      const rented: ExecutorAgent.ExecutorAgentShape = {
        name: "rented",
        run: (req) => Stream.map(inner.run(req), (e) => (e._tag === "Finished" ? { ...e, result: { ...e.result, cost: { ...e.result.cost, dollars: 0.01 } } } : e))
      }
      const journal = Journal.makeMemory()
      const summary = yield* Explorer.run(makeTask({ dollars: 0.06 }), { runId: "d", runDir: "/tmp/unused", seed: 1, concurrency: 3, distillEvery: 2 }).pipe(
        Effect.provide(Layer.mergeAll(Layer.succeed(Journal.Journal, journal), Uct.layer(), layers(paid, rented)))
      )
      assert.match(summary.reason, /^budget: dollars/)
      const events = (yield* journal.read()).map((e) => e.event)
      const proposals = events.filter((e) => e._tag === "BudgetCharged" && e.reason === "propose").length
      const trials = events.filter((e) => e._tag === "NodeProposed").length
      assert.isAtMost(proposals - trials, 1, `${proposals} paid proposals for ${trials} trials: only the one that crossed the limit may be dropped`)
      const spentAt = events.findIndex((e, i) =>
        e._tag === "BudgetCharged" && events.slice(0, i + 1).reduce((a, x) => a + (x._tag === "BudgetCharged" ? x.cost.dollars : 0), 0) >= 0.06 - 1e-9)
      if (spentAt >= 0) {
        assert.notInclude(events.slice(spentAt + 1).map((e) => e._tag === "BudgetCharged" ? e.reason : ""), "distill", "no distillation after the dollars were spent")
      }
    }))

  it.live("an invalid strategy from the researcher is not run nor journaled; the researcher is asked again", () =>
    Effect.gen(function*() {
      let calls = 0
      const careless: Researcher.ResearcherShape = {
        ...gridResearcher,
        propose: (ctx, n) =>
          Effect.map(gridResearcher.propose(ctx, n), (ps) =>
            ++calls % 2 === 1 ? ps.map((p) => ({ ...p, strategy: { ...p.strategy, training: { ...p.strategy.training, learningRate: -1 } } })) : ps)
      }
      const journal = Journal.makeMemory()
      const summary = yield* runParts({ journal, researcher: careless, maxTrials: 3 })
      assert.strictEqual(summary.tree.size, 3)
      for (const n of summary.tree.nodes()) assert.isAbove(n.strategy.training.learningRate, 0)
      assert.isAtLeast(calls, 6, "each invalid answer was followed by another question")
      const proposed = (yield* journal.read()).flatMap((e) => (e.event._tag === "NodeProposed" ? [e.event.node.strategy.training.learningRate] : []))
      assert.lengthOf(proposed, 3)
    }))

  it.live("an onEvent callback that throws is the caller's bug: the run and its trials go on, every event journaled", () =>
    Effect.gen(function*() {
      for (const on of ["RunStarted", "JobProgress", "NodeFinished", "RunFinished"]) {
        const journal = Journal.makeMemory()
        const summary = yield* runParts({
          journal,
          maxTrials: 3,
          options: { onEvent: (e) => { if (e.event._tag === on) throw new Error(`listener bug on ${on}`) } }
        })
        assert.strictEqual(summary.reason, "budget: maxTrials", on)
        assert.strictEqual([...summary.tree.nodes()].filter((n) => n.state._tag === "Succeeded").length, 3, on)
        assert.strictEqual((yield* journal.read()).at(-1)?.event._tag, "RunFinished", on)
      }
    }))

  it.live("an executor whose stream dies fails that trial as Infra, naming the defect; the run carries on", () =>
    Effect.gen(function*() {
      const log: ExecLog = { runs: [] }
      const inner = functionExecutor(log)
      const buggy: ExecutorAgent.ExecutorAgentShape = {
        name: "buggy",
        run: (req) => (req.node.id === "n2" ? Stream.concat(Stream.take(inner.run(req), 1), Stream.die(new Error("watch blew up"))) : inner.run(req))
      }
      const summary = yield* runParts({ executor: buggy, maxTrials: 4 })
      assert.strictEqual(summary.reason, "budget: maxTrials")
      const n2 = summary.tree.get("n2")!
      assert.strictEqual(n2.state._tag, "Failed")
      assert.include(n2.state._tag === "Failed" ? n2.state.result.failure?.message : "", `executor "buggy" failed unexpectedly (a bug in it or its backend): watch blew up`)
      assert.strictEqual([...summary.tree.nodes()].filter((n) => n.state._tag === "Succeeded").length, 3)
    }))

  it.live("an insight the journal cannot hold (undefined or NaN in its data) is left out; the run and its journal carry on", () =>
    Effect.gen(function*() {
      let calls = 0
      const careless: Researcher.ResearcherShape = {
        ...gridResearcher,
        distill: () =>
          Effect.sync(() => {
            calls++
            return [
              { id: `bad-${calls}`, text: "a value it never set", evidence: [], createdAt: 1, data: { value: undefined as unknown as string } },
              { id: `nan-${calls}`, text: "a delta of NaN", evidence: [], createdAt: 1, data: { delta: Number.NaN } },
              { id: `good-${calls}`, text: "a sound one", evidence: [], createdAt: 1, data: { delta: 0.1 } }
            ]
          })
      }
      const journal = Journal.makeMemory()
      const summary = yield* runParts({ journal, researcher: careless, maxTrials: 4, options: { distillEvery: 1 } })
      assert.strictEqual(summary.reason, "budget: maxTrials")
      assert.isAtLeast(calls, 2)
      const ids = summary.tree.insights.map((i) => i.id)
      assert.isTrue(ids.every((id) => id.startsWith("good-")), ids.join(", "))
      assert.isAtLeast(ids.length, 2)
      const entries = yield* journal.read()
      assert.strictEqual(entries.at(-1)?.event._tag, "RunFinished")
    }))

  it.live("an executor's NaN or infinite values fail that trial as InvalidOutput (a score) or are left out (a progress point); the run and its journal carry on", () =>
    Effect.gen(function*() {
      const inner = functionExecutor({ runs: [] })
      // n2 diverges: its progress and its score are NaN; n3 reports an infinite point on the way, then a score
      const diverging: ExecutorAgent.ExecutorAgentShape = {
        name: "own",
        run: (req) =>
          Stream.map(inner.run(req), (ev): ExecutorAgent.ExecutionEvent => {
            if (req.node.id === "n2" && ev._tag === "Progress") return { ...ev, metrics: ev.metrics.map((m) => ({ ...m, value: Number.NaN })) }
            if (req.node.id === "n2" && ev._tag === "Finished") return { _tag: "Finished", result: { ...ev.result, score: Number.NaN, metrics: { score: Number.NaN } } }
            if (req.node.id === "n3" && ev._tag === "Progress" && ev.metrics[0]?.step === 2) {
              return { ...ev, fraction: Number.POSITIVE_INFINITY, metrics: [...ev.metrics, { step: 2, split: "eval", name: "loss", value: Number.POSITIVE_INFINITY }] }
            }
            return ev
          })
      }
      const journal = Journal.makeMemory()
      const summary = yield* runParts({ journal, executor: diverging, maxTrials: 4 })
      assert.strictEqual(summary.reason, "budget: maxTrials")
      const n2 = summary.tree.get("n2")!
      assert.strictEqual(n2.state._tag, "Failed")
      const failure = n2.state._tag === "Failed" ? n2.state.result.failure : undefined
      assert.strictEqual(failure?.kind, "InvalidOutput")
      assert.include(failure?.message, `executor "own" reported a result the journal cannot hold (`)
      assert.include(failure?.message, "Expected a finite number")
      assert.lengthOf(n2.curve, 0)
      const n3 = summary.tree.get("n3")!
      assert.strictEqual(n3.state._tag, "Succeeded")
      assert.deepStrictEqual(n3.curve.map((m) => m.step), [1, 2, 3, 4])
      assert.isTrue(n3.curve.every((m) => m.name === "score" && Number.isFinite(m.value)))
      // every event was journaled, and the journal reads back to the same tree
      const entries = yield* journal.read()
      assert.strictEqual(entries.at(-1)?.event._tag, "RunFinished")
      assert.deepStrictEqual(treeShape(ExperimentTree.fold(entries.map((e) => e.event))!.view), treeShape(summary.tree))
    }))
})

describe("Explorer: budgets", () => {
  /**
   * An executor whose trials cost `cost(node)` GPU-seconds and finish at once, or, for a node with a
   * gate, once the test opens it.
   */
  const gated = (gates: ReadonlyMap<string, Deferred.Deferred<void>>, cost: (node: string) => number): ExecutorAgent.ExecutorAgentShape => ({
    name: "gated",
    run: (req) =>
      Stream.fromEffect(Effect.gen(function*() {
        const gate = gates.get(req.node.id)
        if (gate !== undefined) yield* Deferred.await(gate)
        const s = score(req.node.strategy)
        return {
          _tag: "Finished",
          result: { metrics: { score: s }, score: s, curves: [], artifacts: [], cost: Cost.make({ gpuSeconds: cost(req.node.id), wallSeconds: 1 }) }
        } as const
      }))
  })
  /** Proposes any untried point of the grid, wherever it is asked (the root is never exhausted early). */
  const anywhere: Researcher.ResearcherShape = {
    ...gridResearcher,
    propose: (ctx) =>
      Effect.gen(function*() {
        for (let i = 0; i < 100; i++) {
          const strategy = SearchSpace.set(
            SearchSpace.set(defaultStrategy, "training.learningRate", LRS[yield* Random.nextIntBetween(0, LRS.length - 1)]!),
            "training.epochs",
            EPOCHS[yield* Random.nextIntBetween(0, EPOCHS.length - 1)]!
          )
          if (!ctx.tried(Fingerprint.of(strategy))) return [{ strategy: { ...strategy, rationale: "anywhere" } }]
        }
        return []
      })
  }
  const gatesFor = (...ids: ReadonlyArray<string>) => new Map(ids.map((id) => [id, Deferred.makeUnsafe<void>()]))
  const open = (gates: ReadonlyMap<string, Deferred.Deferred<void>>, id: string) => Deferred.doneUnsafe(gates.get(id)!, Exit.void)
  /**
   * Run the grid with the budget of `task` and three gated trials at once, each costing `cost(node)`:
   * the run's fiber once n3 is admitted and n1 (let go first) has finished, with time given for the
   * loop to admit what it would after n1.
   */
  const afterFirstOfThree = (
    task: Task.Task,
    gates: ReadonlyMap<string, Deferred.Deferred<void>>,
    cost: (node: string) => number,
    watch: ReadonlyArray<ReturnType<typeof when>> = []
  ) =>
    Effect.gen(function*() {
      const third = when((e) => e._tag === "NodeAdmitted" && e.nodeId === "n3")
      const first = when((e) => e._tag === "NodeFinished" && e.nodeId === "n1")
      const fiber = yield* Explorer.run(task, {
        runId: "h",
        runDir: "/tmp/unused",
        seed: 1,
        concurrency: 3,
        onEvent: ({ event }) => [third, first, ...watch].forEach((w) => w.onEvent(event))
      }).pipe(
        Effect.provide(Layer.mergeAll(Journal.Journal.layerMemory, Uct.layer(), layers(anywhere, gated(gates, cost)))),
        Effect.forkChild
      )
      yield* Deferred.await(third.seen)
      open(gates, "n1")
      yield* Deferred.await(first.seen)
      // (time for the loop to act on n1's cost: to admit a fourth trial, as it did, or see the held ones past the budget)
      yield* Effect.sleep("300 millis")
      return fiber
    })
  /** Completed when `onEvent` sees an event `is` accepts. */
  const when = (is: (e: JournalEvent.JournalEvent) => boolean) => {
    const seen = Deferred.makeUnsafe<void>()
    return { seen, onEvent: (e: JournalEvent.JournalEvent) => (is(e) ? Deferred.doneUnsafe(seen, Exit.void) : undefined) }
  }

  it.live("trials admitted before any cost was known hold the mean cost once one is: no more start than the GPU-hours pay for", () =>
    Effect.gen(function*() {
      // three trials start at once with no estimate (nothing declared, nothing finished); each costs
      // 1000 GPU-seconds. Once the first has finished, the two in flight hold 1000 each: a fourth
      // (1000 spent + 2000 held + 1000) does not fit in the hour. Held at 0, it did, and the run
      // spent 5000 of its 3600.
      const gates = gatesFor("n1", "n2", "n3")
      const fiber = yield* afterFirstOfThree(makeTask({ gpuHours: 1 }), gates, () => 1000)
      open(gates, "n2")
      open(gates, "n3")
      const summary = yield* Fiber.join(fiber)
      assert.strictEqual(summary.reason, "budget: gpuHours")
      assert.strictEqual(summary.usage.trials, 3)
      assert.isAtMost(summary.usage.spent.gpuSeconds, 3600)
    }))

  it.live("before any cost is known, a trial with a time limit holds that limit's worth of its GPUs and of the task's prices: the first trials cannot pass the budget together", () =>
    Effect.gen(function*() {
      // an hour of GPU time and $4: a trial holds 1 GPU for at most 1500 s, at $3 a GPU-hour ($1.25), so
      // two start at once (3000 GPU-s, $2.50), not three (4500 GPU-s); each costs 1400 GPU-s ($1.17).
      // Held at nothing (an estimate of 0), a third could start beside them while no cost was known
      const task = makeTask({ gpuHours: 1, dollars: 4 }, {
        recipe: { command: ["x"], env: {}, resources: { gpus: 1, cpus: 1, timeLimitSeconds: 1500 } },
        backend: { pricing: { dollarsPerGpuHour: 3 } }
      })
      const gates = gatesFor("n1", "n2", "n3")
      const second = when((e) => e._tag === "NodeAdmitted" && e.nodeId === "n2")
      const journal = Journal.makeMemory()
      const priced: ExecutorAgent.ExecutorAgentShape = {
        name: "priced",
        run: (req) => Stream.map(gated(gates, () => 1400).run(req), (e) => e._tag === "Finished" && e.result.cost !== undefined ? { ...e, result: { ...e.result, cost: { ...e.result.cost, dollars: 1400 / 3600 * 3 } } } : e)
      }
      const fiber = yield* Explorer.run(task, { runId: "tl", runDir: "/tmp/unused", seed: 1, concurrency: 3, onEvent: ({ event }) => second.onEvent(event) }).pipe(
        Effect.provide(Layer.mergeAll(Layer.succeed(Journal.Journal, journal), Uct.layer(), layers(anywhere, priced))),
        Effect.forkChild
      )
      yield* Deferred.await(second.seen)
      for (const id of ["n1", "n2", "n3"]) open(gates, id)
      const summary = yield* Fiber.join(fiber)
      const admitted = (yield* journal.read()).flatMap((e) => (e.event._tag === "NodeAdmitted" ? [e.event] : []))
      assert.deepStrictEqual(admitted[0]!.estimate, Cost.make({ gpuSeconds: 1500, dollars: 1.25 }), "the first trial holds its time limit's worth")
      assert.strictEqual(summary.reason, "budget: gpuHours")
      // 1400 + 1400 spent; a third at the mean (1400) would pass the hour
      assert.strictEqual(summary.usage.trials, 2)
      assert.isAtMost(summary.usage.spent.gpuSeconds, 3600)
      assert.isAtMost(summary.usage.spent.dollars, 4)
    }))

  it.live("a first trial whose time limit's worth is more than the budget starts alone; the next waits for its cost", () =>
    Effect.gen(function*() {
      // an hour of GPU time, trials of at most 2 hours: the first starts (nothing else runs), the second
      // only once the first has reported 1000 GPU-s; from then on the mean decides, as without a limit
      const task = makeTask({ gpuHours: 1 }, { recipe: { command: ["x"], env: {}, resources: { gpus: 1, cpus: 1, timeLimitSeconds: 7200 } } })
      const gates = gatesFor("n1")
      const first = when((e) => e._tag === "NodeAdmitted" && e.nodeId === "n1")
      const journal = Journal.makeMemory()
      const fiber = yield* Explorer.run(task, { runId: "tl", runDir: "/tmp/unused", seed: 1, concurrency: 3, onEvent: ({ event }) => first.onEvent(event) }).pipe(
        Effect.provide(Layer.mergeAll(Layer.succeed(Journal.Journal, journal), Uct.layer(), layers(anywhere, gated(gates, () => 1000)))),
        Effect.forkChild
      )
      yield* Deferred.await(first.seen)
      // (time for a loop that did not hold the bound to admit a second trial beside the first)
      yield* Effect.sleep("200 millis")
      open(gates, "n1")
      const summary = yield* Fiber.join(fiber)
      const tags = (yield* journal.read()).map((e) => `${e.event._tag}${"nodeId" in e.event ? ` ${e.event.nodeId}` : ""}`)
      assert.isBelow(tags.indexOf("NodeFinished n1"), tags.indexOf("NodeAdmitted n2"), tags.join(", "))
      assert.strictEqual(summary.reason, "budget: gpuHours")
      assert.strictEqual(summary.usage.trials, 3, "1000 GPU-s each, three fit in the hour once the cost is known")
      assert.isAtMost(summary.usage.spent.gpuSeconds, 3600)
    }))

  it.live("a strict budget holds every trial at its time limit's worth for the whole run: trials that cost more than the mean cannot pass it together", () =>
    Effect.gen(function*() {
      // an hour of GPU time, trials of at most 1500 GPU-s: n1 costs 100, the others their whole 1500. Held at
      // the mean once n1 had reported (100), n3 and n4 started beside n2 and the three spent 4600 in all
      const recipe: Task.Recipe = { command: ["x"], env: {}, resources: { gpus: 1, cpus: 1, timeLimitSeconds: 1500 } }
      const task = makeTask({ gpuHours: 1, strict: true }, { recipe })
      const gates = gatesFor("n1", "n2", "n3", "n4", "n5", "n6")
      const second = when((e) => e._tag === "NodeAdmitted" && e.nodeId === "n2")
      const first = when((e) => e._tag === "NodeFinished" && e.nodeId === "n1")
      const journal = Journal.makeMemory()
      const fiber = yield* Explorer.run(task, { runId: "st", runDir: "/tmp/unused", seed: 1, concurrency: 3, onEvent: ({ event }) => [second, first].forEach((w) => w.onEvent(event)) }).pipe(
        Effect.provide(Layer.mergeAll(Layer.succeed(Journal.Journal, journal), Uct.layer(), layers(anywhere, gated(gates, (id) => (id === "n1" ? 100 : 1500))))),
        Effect.forkChild
      )
      yield* Deferred.await(second.seen)
      open(gates, "n1")
      yield* Deferred.await(first.seen)
      for (const id of gates.keys()) open(gates, id)
      const summary = yield* Fiber.join(fiber)
      const admitted = (yield* journal.read()).flatMap((e) => (e.event._tag === "NodeAdmitted" ? [e.event] : []))
      for (const a of admitted) assert.strictEqual(a.estimate.gpuSeconds, 1500, `${a.nodeId} is held at its time limit's worth`)
      assert.strictEqual(summary.reason, "budget: gpuHours")
      assert.isAtMost(summary.usage.spent.gpuSeconds, 3600)
      assert.strictEqual(summary.usage.trials, 3, "100 + 1500 + 1500; a fourth could cost 1500 more")
      // without a time limit there is nothing to hold: refused, naming the field
      const refused = yield* Effect.flip(Explorer.run(makeTask({ gpuHours: 1, strict: true }), { runId: "st2", runDir: "/tmp/unused" }).pipe(
        Effect.provide(Layer.mergeAll(Journal.Journal.layerMemory, Uct.layer(), layers(anywhere, gated(new Map(), () => 1))))
      ))
      assert.strictEqual(refused._tag, "InvalidInput")
      assert.match(refused.message, /budget\.strict holds each trial at the most it can cost.*set recipe\.resources\.timeLimitSeconds/)
    }))

  it.live("trials in flight held at more than the budget has left stop admissions, not the run: one that settles cheaper lets the next start", () =>
    Effect.gen(function*() {
      // n1 costs 3000, the others 100: after n1, n2 and n3 are held at 3000 each (9000 of 7200), yet
      // once n2 has settled at 100 the mean is 1550, and a fourth trial fits
      const gates = gatesFor("n1", "n2", "n3")
      const second = when((e) => e._tag === "NodeFinished" && e.nodeId === "n2")
      const fourth = when((e) => e._tag === "NodeAdmitted" && e.nodeId === "n4")
      const fiber = yield* afterFirstOfThree(makeTask({ gpuHours: 2 }), gates, (id) => (id === "n1" ? 3000 : 100), [second, fourth])
      open(gates, "n2")
      yield* Deferred.await(second.seen)
      // the run goes on: a fourth trial starts while n3 still runs (a run that stopped admitting would wait for n3 for ever)
      const started = yield* Effect.timeoutOption(Deferred.await(fourth.seen), "20 seconds")
      open(gates, "n3")
      const summary = yield* Fiber.join(fiber)
      assert.isTrue(Option.isSome(started), `no fourth trial started while n3 ran (${summary.reason})`)
      assert.isAbove(summary.usage.trials, 4, summary.reason)
      assert.isAtMost(summary.usage.spent.gpuSeconds, 7200)
    }))

  it.live("a trial whose declared wall time would end past the wall clock does not start", () =>
    Effect.gen(function*() {
      const task = makeTask({ wallClockHours: 0.5 }, { recipe: { command: ["x"], env: {}, resources: { gpus: 0, cpus: 1 }, estimate: { wallSeconds: 3600 } } })
      const log: ExecLog = { runs: [] }
      const summary = yield* Explorer.run(task, { runId: "c", runDir: "/tmp/unused", seed: 1 }).pipe(
        Effect.provide(Layer.mergeAll(Journal.Journal.layerMemory, Uct.layer(), layers(gridResearcher, functionExecutor(log))))
      )
      assert.strictEqual(summary.reason, "budget: wallClockHours")
      assert.strictEqual(log.runs.length, 0)
    }))

  it.live("under a wall clock, a trial starts only if the time trials took so far, on average, still fits", () =>
    Effect.gen(function*() {
      const limit = 2
      const journal = Journal.makeMemory()
      const summary = yield* Explorer.run(makeTask({ wallClockHours: limit / 3600 }), { runId: "t", runDir: "/tmp/unused", seed: 1 }).pipe(
        Effect.provide(Layer.mergeAll(Layer.succeed(Journal.Journal, journal), Uct.layer(), layers(gridResearcher, functionExecutor({ runs: [] }, { stepMillis: 60 }))))
      )
      assert.strictEqual(summary.reason, "budget: wallClockHours")
      // every admission: the mean time (admission to end) of the trials finished before it is its
      // estimate, and the run's clock then plus that estimate is within the limit
      const events = (yield* journal.read()).map((e) => e.event)
      const start = events[0]!.at
      const took: Array<number> = []
      const admittedAt = new Map<string, number>()
      let admissions = 0
      for (const e of events) {
        if (e._tag === "NodeAdmitted") {
          admissions++
          admittedAt.set(e.nodeId, e.at)
          const mean = took.length === 0 ? 0 : took.reduce((a, b) => a + b, 0) / took.length
          assert.closeTo(e.estimate.wallSeconds, mean, 1e-9, `the estimate of ${e.nodeId}`)
          assert.isAtMost((e.at - start) / 1000 + e.estimate.wallSeconds, limit, `${e.nodeId} would end past the wall clock`)
        } else if (e._tag === "NodeFinished") took.push((e.at - admittedAt.get(e.nodeId)!) / 1000)
      }
      assert.isAtLeast(admissions, 2)
    }))

  it.effect("under a wall clock, a trial is admitted on the run's time after its proposal: one whose proposal took the run past the limit does not start", () =>
    Effect.gen(function*() {
      // trials that take no time (on the test clock), under 100 s; the proposal after the first trial's end takes
      // 101 s (a slow model): the second trial is admitted, or not, when that proposal is back
      let slowed = false
      const slow: Researcher.ResearcherShape = {
        ...gridResearcher,
        propose: (ctx, n) =>
          Effect.andThen(
            Effect.suspend(() => (ctx.usage.trials === 1 && !slowed ? ((slowed = true), TestClock.adjust("101 seconds")) : Effect.void)),
            gridResearcher.propose(ctx, n)
          )
      }
      const journal = Journal.makeMemory()
      const summary = yield* Explorer.run(makeTask({ wallClockHours: 100 / 3600 }), { runId: "t", runDir: "/tmp/unused", seed: 1, concurrency: 1 }).pipe(
        Effect.provide(Layer.mergeAll(Layer.succeed(Journal.Journal, journal), Uct.layer(), layers(slow, functionExecutor({ runs: [] }, { stepMillis: 0 }))))
      )
      assert.isTrue(slowed)
      assert.strictEqual(summary.reason, "budget: wallClockHours")
      // the first trial only: the second's proposal ended past the limit
      const events = (yield* journal.read()).map((e) => e.event)
      assert.deepStrictEqual(events.flatMap((e) => (e._tag === "NodeAdmitted" ? [e.nodeId] : [])), ["n1"])
      assert.strictEqual(summary.usage.trials, 1)
    }))

  it.live("admission tells whether a run's journal leaves room for another trial under a budget", () =>
    Effect.gen(function*() {
      // trials of 600 GPU-seconds under half an hour: three run, and a fourth does not fit
      const journal = Journal.makeMemory()
      const task = makeTask({ gpuHours: 0.5 })
      const summary = yield* Explorer.run(task, { runId: "a", runDir: "/tmp/unused", seed: 1 }).pipe(
        Effect.provide(Layer.mergeAll(Layer.succeed(Journal.Journal, journal), Uct.layer(), layers(gridResearcher, functionExecutor({ runs: [] }, { gpuSeconds: 600 }))))
      )
      assert.strictEqual(summary.usage.trials, 3)
      const entries = yield* journal.read()
      const at = (budget: Task.Task["budget"]) => Explorer.admission(entries, { ...task, budget })
      assert.strictEqual(at({ gpuHours: 0.5 }).blockedBy, "gpuHours")
      assert.strictEqual(at({ gpuHours: 0.5 }).estimate.gpuSeconds, 600)
      assert.strictEqual(at({ gpuHours: 0.5 }).usage.spent.gpuSeconds, 1800)
      assert.strictEqual(at({ gpuHours: 0.6 }).blockedBy, "gpuHours", "600 s more do not fit in 0.1 h")
      assert.isUndefined(at({ gpuHours: 2 / 3 }).blockedBy)
      assert.strictEqual(at({ gpuHours: 1, maxTrials: 3 }).blockedBy, "maxTrials")
      // a trial in flight (its end not journaled): a resume finishes it, so nothing blocks
      const open = entries.filter((e) => !(e.event._tag === "NodeFinished" && e.event.nodeId === "n3"))
      assert.isUndefined(Explorer.admission(open, { ...task, budget: { gpuHours: 0.5 } }).blockedBy)
    }))

  it.live("a new run's budget option is its budget, journaled with its task", () =>
    Effect.gen(function*() {
      const journal = Journal.makeMemory()
      const log: ExecLog = { runs: [] }
      const summary = yield* runWith(journal, { maxTrials: 12, log, budget: { maxTrials: 2 } })
      assert.strictEqual(summary.reason, "budget: maxTrials")
      assert.strictEqual(log.runs.length, 2)
      assert.strictEqual(summary.tree.task.budget.maxTrials, 2)
      const started = (yield* journal.read())[0]!.event
      assert.deepStrictEqual(started._tag === "RunStarted" ? started.task.budget : undefined, { maxTrials: 2 })
    }))
})

describe("Explorer: trials that all fail the same way (a setup error)", () => {
  /** A trainer that cannot start, as a Python traceback ends; `broken` false once the setup is mended. */
  const setup = (log: ExecLog, state: { broken: boolean; failure?: (node: string) => Result.Result }): ExecutorAgent.ExecutorAgentShape => {
    const healthy = functionExecutor(log)
    return {
      name: "setup",
      run: (req) =>
        !state.broken ? healthy.run(req) : Stream.suspend(() => {
          log.runs.push({ node: req.node.id, reattached: req.job !== undefined })
          const result = state.failure?.(req.node.id) ??
            Result.failure("Crash", "exited with code 1", {
              exitCode: 1,
              logTail: ["Traceback (most recent call last):", `  File "/jobs/${req.node.id}/train.py", line 2`, "ModuleNotFoundError: No module named 'transformerz'"]
            })
          return Stream.make({ _tag: "Submitted", job: { backend: "setup", id: `job-${req.node.id}`, data: {} } } as const, { _tag: "Finished", result } as const)
        })
    }
  }

  it.live("stop the run after failFast of them with a SetupFailure naming them; a resume once mended runs their strategies again first, then goes on", () =>
    Effect.gen(function*() {
      const journal = Journal.makeMemory()
      const log: ExecLog = { runs: [] }
      const state = { broken: true }
      const error = yield* Effect.flip(runWith(journal, { maxTrials: 12, log, executor: setup(log, state) }))
      assert.strictEqual(error._tag, "SetupFailure")
      const setupFailure = error as Errors.SetupFailure
      assert.deepStrictEqual(setupFailure.nodes, ["n1", "n2", "n3"])
      assert.isUndefined(setupFailure.refused)
      assert.strictEqual(setupFailure.failure, "Crash: exited with code 1 (ModuleNotFoundError: No module named 'transformerz')")
      assert.match(setupFailure.message, /^3 trials \(n1, n2, n3\) failed the same way, and none succeeded: .*resume the run/)
      assert.strictEqual(log.runs.length, 3, "no trial after the third")
      const events = (yield* journal.read()).map((e) => e.event)
      const finished = events.at(-1)!
      assert.strictEqual(finished._tag, "RunFinished")
      assert.isTrue(finished._tag === "RunFinished" && finished.reason.startsWith(Explorer.SAME_FAILURE))
      const failed = ExperimentTree.fold(events)!.view
      const strategies = ["n1", "n2", "n3"].map((id) => failed.get(id)!.fingerprint)
      // nor do they poison later runs sharing the folder: the result cache holds successes only
      const cache = ResultCache.fromJournals([yield* journal.read()])
      assert.deepStrictEqual(strategies.map((fp) => cache.lookup(fp)), [undefined, undefined, undefined])

      // resumed before it is mended: the three strategies run again first, fail alike, and the run stops again
      const again = yield* Effect.flip(runWith(journal, { maxTrials: 12, log, executor: setup(log, state) }))
      assert.deepStrictEqual((again as Errors.SetupFailure).nodes, ["n4", "n5", "n6"])
      // mended: the resumed run runs those three strategies again, in order, before anything new, and goes on to its budget
      state.broken = false
      const resumed = yield* runWith(journal, { maxTrials: 12, log, executor: setup(log, state) })
      assert.strictEqual(resumed.reason, "budget: maxTrials")
      assert.deepStrictEqual(["n4", "n5", "n6", "n7", "n8", "n9"].map((id) => resumed.tree.get(id)!.fingerprint), [...strategies, ...strategies])
      assert.deepStrictEqual(["n7", "n8", "n9"].map((id) => resumed.tree.get(id)!.state._tag), ["Succeeded", "Succeeded", "Succeeded"])
      assert.deepStrictEqual(["n7", "n8", "n9"].map((id) => resumed.tree.get(id)!.parent), ["n1", "n2", "n3"].map((id) => failed.get(id)!.parent))
      assert.match(resumed.tree.get("n4")!.strategy.rationale, /^Again: n1 failed as the trials beside it did/)
      assert.match(resumed.tree.get("n7")!.strategy.rationale, /^Again: n4 failed as the trials beside it did/)
      assert.strictEqual(resumed.tree.get("n7")!.strategy.rationale.split("Again:").length, 2, "one 'Again:', not a chain")
      assert.strictEqual(resumed.tree.size, 12, "the failed trials count against the budget: 12 trials in all")
      const ran = log.runs.map((r) => r.node)
      assert.strictEqual(new Set(ran).size, ran.length, "no node ran twice")
      // a replay of the journal agrees, and a second resume has nothing left to run again
      assert.deepStrictEqual(treeShape(ExperimentTree.fold((yield* journal.read()).map((e) => e.event))!.view), treeShape(resumed.tree))

      // resumed with the stop turned off (the failures were the strategies' own): none is run again, the search goes on
      const offJournal = Journal.makeMemory()
      const broken = { broken: true }
      yield* Effect.flip(runWith(offJournal, { maxTrials: 6, executor: setup({ runs: [] }, broken) }))
      broken.broken = false
      const off = yield* runWith(offJournal, { maxTrials: 6, executor: setup({ runs: [] }, broken), failFast: 0 })
      assert.strictEqual(off.reason, "budget: maxTrials")
      const first = new Set(["n1", "n2", "n3"].map((id) => off.tree.get(id)!.fingerprint))
      assert.isTrue(["n4", "n5", "n6"].every((id) => !first.has(off.tree.get(id)!.fingerprint)), "no strategy run again")
    }))

  it.live("a trial failed on the executor's own settings (ExecutorError.setup: a key revoked) stops the run at once, its best kept; a resume once mended runs it again first; failFast 0 goes on", () =>
    Effect.gen(function*() {
      /** Healthy until `state.from` trials ran, then the service refuses the executor's key, as CodeAgentExecutor reports a 401. */
      const revoked = (log: ExecLog, state: { from: number }): ExecutorAgent.ExecutorAgentShape => {
        const healthy = functionExecutor(log)
        return {
          name: "revoked",
          run: (req) =>
            Stream.suspend(() => {
              if (log.runs.length < state.from) return healthy.run(req)
              log.runs.push({ node: req.node.id, reattached: req.job !== undefined })
              return Stream.fail(new Errors.ExecutorError({ nodeId: req.node.id, message: "HTTP 401 authentication_error: invalid x-api-key (check ANTHROPIC_API_KEY)", retryable: false, setup: true }))
            })
        }
      }
      const journal = Journal.makeMemory()
      const log: ExecLog = { runs: [] }
      const state = { from: 2 }
      const executor = revoked(log, state)
      // two trials work, then the key is revoked
      const error = yield* Effect.flip(runWith(journal, { maxTrials: 6, log, executor }))
      assert.strictEqual(error._tag, "SetupFailure")
      const stop = error as Errors.SetupFailure
      assert.deepStrictEqual(stop.nodes, ["n3"], "one trial is enough: every trial would fail alike")
      assert.isTrue(stop.refused)
      assert.match(stop.message, /^trial n3 failed on the executor's own settings, which the service it calls refused: Infra: HTTP 401 .*its best so far \(n[12], .*\) kept: mend the settings .*then resume the run; this trial's strategy runs again$/)
      assert.strictEqual(log.runs.length, 3, "no trial after the refused one")
      const events = (yield* journal.read()).map((e) => e.event)
      const finished = events.at(-1)!
      assert.isTrue(finished._tag === "RunFinished" && finished.reason.startsWith(Explorer.SETTINGS_REFUSED))
      const n3 = events.find((e) => e._tag === "NodeFinished" && e.nodeId === "n3")
      assert.isTrue(n3?._tag === "NodeFinished" && n3.result?.failure?.setup === true, "journaled as the settings' failure")
      const fingerprint = ExperimentTree.fold(events)!.view.get("n3")!.fingerprint

      // mended: the resume runs n3's strategy again first, then goes on to its budget
      state.from = Infinity
      const resumed = yield* runWith(journal, { maxTrials: 6, log, executor })
      assert.strictEqual(resumed.reason, "budget: maxTrials")
      assert.strictEqual(resumed.tree.get("n4")!.fingerprint, fingerprint)
      assert.strictEqual(resumed.tree.get("n4")!.state._tag, "Succeeded")

      // with the stop turned off, a refused key fails its trials and the run goes on to its budget
      const offLog: ExecLog = { runs: [] }
      const off = yield* runWith(Journal.makeMemory(), { maxTrials: 4, log: offLog, executor: revoked(offLog, { from: 0 }), failFast: 0 })
      assert.strictEqual(off.reason, "budget: maxTrials")
      assert.strictEqual(offLog.runs.length, 4)
    }))

  it.live("failures a strategy may cause (OOM, Timeout), causes that differ, or a run where a trial worked never stop it; failFast 0 turns the stop off", () =>
    Effect.gen(function*() {
      const run = (failure: ((node: string) => Result.Result) | undefined, options: Partial<Explorer.Options> = {}, broken = true) => {
        const log: ExecLog = { runs: [] }
        return Effect.map(runWith(Journal.makeMemory(), { maxTrials: 6, log, executor: setup(log, { broken, ...(failure !== undefined ? { failure } : {}) }), ...options }), (s) => s.reason)
      }
      // out of memory with the same message on every trial: the strategies' batches, not the setup
      assert.strictEqual(yield* run(() => Result.failure("OOM", "CUDA out of memory. Tried to allocate 2.00 GiB")), "budget: maxTrials")
      assert.strictEqual(yield* run(() => Result.failure("Timeout", "killed at its time limit of 120 s")), "budget: maxTrials")
      // each its own crash (a loss gone NaN at another step)
      assert.strictEqual(yield* run((node) => Result.failure("Crash", `exited with code 1`, { logTail: [`loss is NaN at step ${node.slice(1)}`] })), "budget: maxTrials")
      // the same cause, the stop turned off
      assert.strictEqual(yield* run(undefined, { failFast: 0 }), "budget: maxTrials")
      // a trial worked first: the setup works, later failures are the strategies'
      let first = true
      const worked = functionExecutor({ runs: [] })
      const broken = setup({ runs: [] }, { broken: true })
      const afterOne: ExecutorAgent.ExecutorAgentShape = { name: "after-one", run: (req) => (first ? ((first = false), worked.run(req)) : broken.run(req)) }
      const log: ExecLog = { runs: [] }
      assert.strictEqual((yield* runWith(Journal.makeMemory(), { maxTrials: 6, log, executor: afterOne })).reason, "budget: maxTrials")
      // a trial in flight when the third failure comes succeeds: the setup works, and the run goes on
      const third = Deferred.makeUnsafe<void>()
      let failures = 0
      const healthy = functionExecutor({ runs: [] })
      const lateSuccess: ExecutorAgent.ExecutorAgentShape = {
        name: "late-success",
        run: (req) =>
          req.node.id === "n2"
            ? Stream.unwrap(Effect.as(Deferred.await(third), healthy.run(req)))
            : Stream.unwrap(Effect.sync(() => {
              if (++failures === 3) Deferred.doneUnsafe(third, Exit.void)
              return broken.run(req)
            }))
      }
      const late = yield* runWith(Journal.makeMemory(), { maxTrials: 6, concurrency: 2, executor: lateSuccess })
      assert.strictEqual(late.reason, "budget: maxTrials")
      assert.strictEqual(late.tree.get("n2")!.state._tag, "Succeeded")
      // what differs from trial to trial of one setup error (node ids, job directories' random ids, job ids) is not a difference
      const slurm = (node: string) =>
        Result.failure("Infra", `slurm sbatch: sbatch --chdir=/shared/jobs/run/${node}-mx9znxt9tw7k exited 1: sbatch: error: invalid partition specified: nosuch (job ${40000 + Number(node.slice(1))})`)
      const stopped = yield* Effect.flip(runWith(Journal.makeMemory(), { maxTrials: 6, executor: setup({ runs: [] }, { broken: true, failure: slurm }), failFast: 2 }))
      assert.strictEqual(stopped._tag, "SetupFailure")
      assert.deepStrictEqual((stopped as Errors.SetupFailure).nodes, ["n1", "n2"])
      // an invalid value is named
      const invalid = yield* Effect.flip(runWith(Journal.makeMemory(), { failFast: -1 }))
      assert.strictEqual(invalid._tag, "InvalidInput")
      assert.match(invalid.message, /failFast: .*0 turns it off/)
    }))

  const withSources = (sources: ReadonlyArray<{ readonly name: string; readonly weight: number }>): Strategy.Strategy =>
    ({ ...defaultStrategy, data: { ...defaultStrategy.data, sources } })
  /** The fingerprint a journal of before 2026-12-05 recorded: the mixture hashed as written. */
  const asWritten = (s: Strategy.Strategy) =>
    crypto.hash("sha256", Fingerprint.canonicalJson({ data: s.data, evaluation: s.evaluation, training: s.training }), "hex").slice(0, 16)

  it.live("a strategy run again after the stop, journaled before 2026-12-05 (its mixture hashed as written), reuses another run's result of that mixture, recorded in either rule", () =>
    Effect.gen(function*() {
      const written = withSources([{ name: "web", weight: 1 }, { name: "code", weight: 1 }])
      const crash = Result.failure("Crash", "exited with code 1", { exitCode: 1, logTail: ["ModuleNotFoundError: No module named 'transformerz'"] })
      /** A run of before: its trials (n1 `written`, ...) failed as the setup's error, and the run stopped on them. */
      const stopped = (...strategies: ReadonlyArray<Strategy.Strategy>) =>
        Effect.gen(function*() {
          const journal = Journal.makeMemory()
          const ids = strategies.map((_, i) => `n${i + 1}`)
          yield* journal.append([
            JournalEvent.make("RunStarted", { runId: "old", task: makeTask({ maxTrials: 2 * strategies.length }), seed: 7, options: {}, at: 0 }),
            ...strategies.flatMap((strategy, i) => [
              JournalEvent.make("NodeProposed", { node: { id: ids[i]!, parent: ExperimentNode.ROOT, strategy, fingerprint: asWritten(strategy), proposedAt: 1 }, at: 1 }),
              JournalEvent.make("NodeAdmitted", { nodeId: ids[i]!, estimate: Cost.zero, at: 1 }),
              JournalEvent.make("NodeFinished", { nodeId: ids[i]!, outcome: "Failed", result: crash, at: 2 })
            ]),
            JournalEvent.make("RunFinished", { reason: `${Explorer.SAME_FAILURE} (${ids.join(", ")}): Crash: exited with code 1 (ModuleNotFoundError: No module named 'transformerz')`, at: 3 })
          ])
          return journal
        })
      /** Another run in the folder, whose n1 ran `strategy` (the same mixture), journaled under `fingerprint`. */
      const other = (strategy: Strategy.Strategy, fingerprint: string): ReadonlyArray<JournalEvent.Entry> =>
        [
          JournalEvent.make("RunStarted", { runId: "beside", task: makeTask({ maxTrials: 2 }), seed: 1, options: {}, at: 0 }),
          JournalEvent.make("NodeProposed", { node: { id: "n1", parent: ExperimentNode.ROOT, strategy, fingerprint, proposedAt: 1 }, at: 1 }),
          JournalEvent.make("NodeFinished", { nodeId: "n1", outcome: "Succeeded", result: Result.success({ score: 0.5 }, 0.5, Cost.make({ gpuSeconds: 60 })), at: 2 })
        ].map((event, i) => ({ seq: i + 1, event }))
      const canonical = withSources([{ name: "code", weight: 0.5 }, { name: "web", weight: 0.5 }])
      const reordered = withSources([{ name: "code", weight: 2 }, { name: "web", weight: 2 }])
      // by a trex of now (the canonical fingerprint), and by one of before (another form, hashed as written)
      for (const [strategy, fingerprint] of [[canonical, Fingerprint.of(canonical)], [reordered, asWritten(reordered)]] as const) {
        assert.notStrictEqual(fingerprint, asWritten(written))
        const log: ExecLog = { runs: [] }
        const resumed = yield* runWith(yield* stopped(written), { runId: "old", maxTrials: 2, log, cache: ResultCache.fromJournals([other(strategy, fingerprint)]) })
        const n2 = resumed.tree.get("n2")!
        assert.match(n2.strategy.rationale, /^Again: n1 failed as the trials beside it did/)
        assert.deepStrictEqual(n2.strategy.data.sources, written.data.sources, "run again as it was written")
        assert.strictEqual(n2.state._tag === "Succeeded" ? n2.state.result.reusedFrom : n2.state._tag, "beside/n1")
        assert.notInclude(log.runs.map((r) => r.node), "n2", "not run: its result was reused")
        // the stop's strategy is run again once: the search goes on to its budget (the failed trial and one more)
        assert.strictEqual(resumed.reason, "budget: maxTrials")
        assert.strictEqual(log.runs.length, 1)
      }
      // two trials of the stop that ran that mixture written two ways (two fingerprints then): it runs again once
      const twice = yield* stopped(written, reordered)
      const log: ExecLog = { runs: [] }
      const resumed = yield* runWith(twice, { runId: "old", maxTrials: 4, log })
      assert.strictEqual(resumed.reason, "budget: maxTrials")
      assert.deepStrictEqual(log.runs.map((r) => r.node), ["n3", "n4"])
      assert.match(resumed.tree.get("n3")!.strategy.rationale, /^Again: n1 /)
      assert.notMatch(resumed.tree.get("n4")!.strategy.rationale, /^Again:/, "the search went on: n2's mixture is n1's")
    }))

  it.live("a trial journaled before 2026-12-05 and not yet started, resumed while a run beside runs its mixture written another way, waits for that result and reuses it", () =>
    Effect.gen(function*() {
      const written = withSources([{ name: "web", weight: 1 }, { name: "code", weight: 1 }])
      const journal = Journal.makeMemory()
      // the controller stopped after n1 was admitted, before its job was submitted
      yield* journal.append([
        JournalEvent.make("RunStarted", { runId: "old", task: makeTask({ maxTrials: 1 }), seed: 7, options: {}, at: 0 }),
        JournalEvent.make("NodeProposed", { node: { id: "n1", parent: ExperimentNode.ROOT, strategy: written, fingerprint: asWritten(written), proposedAt: 1 }, at: 1 }),
        JournalEvent.make("NodeAdmitted", { nodeId: "n1", estimate: Cost.zero, at: 1 })
      ])
      // the run beside runs the same mixture, written [code 0.5, web 0.5] (the canonical fingerprint), and finishes it at its second look
      const canonical = Fingerprint.of(withSources([{ name: "code", weight: 0.5 }, { name: "web", weight: 0.5 }]))
      assert.notStrictEqual(canonical, asWritten(written))
      const looks = { n: 0 }
      const hit: ResultCache.Hit = { result: Result.success({ score: 0.5 }, 0.5, Cost.make({ gpuSeconds: 60 })), source: "beside/n1" }
      const cache: ResultCache.ResultCache = {
        lookup: (fp) => (fp === canonical && looks.n >= 2 ? hit : undefined),
        refresh: Effect.sync(() => void looks.n++),
        running: (fp) => (fp === canonical && looks.n < 2 ? "beside/n1" : undefined)
      }
      const log: ExecLog = { runs: [] }
      const resumed = yield* runWith(journal, { runId: "old", maxTrials: 1, log, cache })
      const n1 = resumed.tree.get("n1")!
      assert.strictEqual(n1.state._tag === "Succeeded" ? n1.state.result.reusedFrom : n1.state._tag, "beside/n1")
      assert.deepStrictEqual(log.runs.map((r) => r.node), [], "not run beside the run that was running it")
      assert.strictEqual(looks.n, 2)
    }))

  /** The setup breaks once `works` trials have started (concurrency 1: once that many finished); `state.broken` false again once mended. */
  const breaksAfter = (log: ExecLog, works: number, state: { broken: boolean; failure?: (node: string) => Result.Result }): ExecutorAgent.ExecutorAgentShape => {
    const inner = setup(log, state)
    let started = 0
    return { name: "breaks", run: (req) => Stream.suspend(() => (++started === works + 1 && (state.broken = true), inner.run(req))) }
  }

  it.live("after trials worked, twice failFast finished one after another failing alike stop the run, its best kept; a resume once mended runs them again first", () =>
    Effect.gen(function*() {
      const journal = Journal.makeMemory()
      const log: ExecLog = { runs: [] }
      const state = { broken: false }
      const error = yield* Effect.flip(runWith(journal, { maxTrials: 24, log, executor: breaksAfter(log, 3, state) }))
      assert.strictEqual(error._tag, "SetupFailure")
      const stop = error as Errors.SetupFailure
      assert.deepStrictEqual(stop.nodes, ["n4", "n5", "n6", "n7", "n8", "n9"])
      assert.strictEqual(log.runs.length, 9, "no trial after the ninth, where the budget had 15 more")
      const events = (yield* journal.read()).map((e) => e.event)
      const tree = ExperimentTree.fold(events)!.view
      const best = tree.best()!
      assert.include(["n1", "n2", "n3"], best.id)
      assert.strictEqual(
        stop.message.split(":")[0],
        "the latest 6 trials (n4, n5, n6, n7, n8, n9) failed the same way, one after another, after 3 had worked"
      )
      assert.include(stop.message, `its best so far (${best.id}, score ${Number(ExperimentNode.score(best)!.toPrecision(4))}) kept: mend the setup, then resume the run`)
      const finished = events.at(-1)!
      assert.isTrue(finished._tag === "RunFinished" && finished.bestNode === best.id, "the best kept in RunFinished")
      assert.strictEqual(
        finished._tag === "RunFinished" ? finished.reason : "",
        `${Explorer.SAME_FAILURE_SINCE} (n4, n5, n6, n7, n8, n9): Crash: exited with code 1 (ModuleNotFoundError: No module named 'transformerz')`
      )
      const strategies = ["n4", "n5", "n6", "n7", "n8", "n9"].map((id) => tree.get(id)!.fingerprint)

      // resumed before it is mended: the six strategies run again first, fail alike, and the run stops again
      const again = yield* Effect.flip(runWith(journal, { maxTrials: 24, log, executor: setup(log, state) }))
      assert.deepStrictEqual((again as Errors.SetupFailure).nodes, ["n10", "n11", "n12", "n13", "n14", "n15"])
      // mended: those six strategies run again, in order, before anything new, and the run goes on to its budget
      state.broken = false
      const resumed = yield* runWith(journal, { maxTrials: 24, log, executor: setup(log, state) })
      assert.strictEqual(resumed.reason, "budget: maxTrials")
      const rerun = ["n16", "n17", "n18", "n19", "n20", "n21"]
      assert.deepStrictEqual(rerun.map((id) => resumed.tree.get(id)!.fingerprint), strategies)
      assert.deepStrictEqual(rerun.map((id) => resumed.tree.get(id)!.state._tag), rerun.map(() => "Succeeded"))
      assert.match(resumed.tree.get("n10")!.strategy.rationale, /^Again: n4 failed as the trials beside it did/)
      assert.strictEqual(resumed.tree.size, 24)
      assert.deepStrictEqual(treeShape(ExperimentTree.fold((yield* journal.read()).map((e) => e.event))!.view), treeShape(resumed.tree))

      // resumed with the stop turned off (the failures were the strategies' own): none is run again, the search goes on
      const offJournal = Journal.makeMemory()
      const off = { broken: false }
      yield* Effect.flip(runWith(offJournal, { maxTrials: 14, executor: breaksAfter({ runs: [] }, 3, off) }))
      off.broken = false
      const on = yield* runWith(offJournal, { maxTrials: 14, executor: setup({ runs: [] }, off), failFast: 0 })
      assert.strictEqual(on.reason, "budget: maxTrials")
      const failed = new Set(["n4", "n5", "n6", "n7", "n8", "n9"].map((id) => on.tree.get(id)!.fingerprint))
      assert.isTrue(["n10", "n11", "n12", "n13", "n14"].every((id) => !failed.has(on.tree.get(id)!.fingerprint)), "no strategy run again")
    }))

  it.live("after trials worked, a streak that a success, another cause or an OOM breaks, failures a strategy may cause, or failFast 0 never stop it; failFast 2 stops after 4", () =>
    Effect.gen(function*() {
      const crash = (line: string) => Result.failure("Crash", "exited with code 1", { exitCode: 1, logTail: ["Traceback (most recent call last):", line] })
      const missing = crash("FileNotFoundError: [Errno 2] No such file or directory: '/data/train.jsonl'")
      /** n1-n3 work; then the n-th failure (from 1) fails with `failure(n)`, or the trial works where that is undefined. */
      const run = (failure: (n: number) => Result.Result | undefined, options: Partial<Explorer.Options> = {}) => {
        const healthy = functionExecutor({ runs: [] })
        let started = 0
        const executor: ExecutorAgent.ExecutorAgentShape = {
          name: "after-three",
          run: (req) =>
            Stream.suspend(() => {
              const n = ++started - 3
              const result = n >= 1 ? failure(n) : undefined
              return result === undefined
                ? healthy.run(req)
                : Stream.make({ _tag: "Submitted", job: { backend: "t", id: `job-${req.node.id}`, data: {} } } as const, { _tag: "Finished", result } as const)
            })
        }
        // (a stop would fail the run with a SetupFailure; the run goes on past where one would come)
        return Effect.map(runWith(Journal.makeMemory(), { maxTrials: 14, executor, ...options }), (s) => `${s.tree.size}: ${s.reason}`)
      }
      // five alike, one that works, five alike, ...: the setup works, and the run spends its budget
      assert.strictEqual(yield* run((n) => (n % 6 === 0 ? undefined : missing)), "14: budget: maxTrials")
      // two causes taking turns: each trial meets its own
      assert.strictEqual(yield* run((n) => (n % 2 === 0 ? missing : crash("ValueError: lora rank 256 > 64"))), "14: budget: maxTrials")
      // five alike, an OOM (that trial ran as far as its strategy's memory), five alike, ...
      assert.strictEqual(yield* run((n) => (n % 6 === 0 ? Result.failure("OOM", "CUDA out of memory") : missing)), "14: budget: maxTrials")
      // the same OOM or Timeout on every trial: the strategies', not the setup's
      assert.strictEqual(yield* run(() => Result.failure("OOM", "CUDA out of memory. Tried to allocate 2.00 GiB")), "14: budget: maxTrials")
      assert.strictEqual(yield* run(() => Result.failure("Timeout", "killed at its time limit of 120 s")), "14: budget: maxTrials")
      // every trial alike, the stop turned off
      assert.strictEqual(yield* run(() => missing, { failFast: 0 }), "14: budget: maxTrials")
      // failFast 2: four in a row, ids aside, stop it
      const stopped = yield* Effect.flip(run((n) => crash(`OSError: [Errno 28] No space left on device: '/scratch/job-${4000 + n}/ckpt'`), { failFast: 2 }))
      assert.strictEqual(stopped._tag, "SetupFailure")
      assert.deepStrictEqual((stopped as Errors.SetupFailure).nodes, ["n4", "n5", "n6", "n7"])
    }))
})

describe("Explorer: a result whose failure is retryable (Infra) is tried again after a backoff", () => {
  /** A disk that stays full: every attempt of n1 fails as `Infra`, retryably, at the clock's time it began. */
  const fullDisk = (attempts: Array<{ node: string; at: number; reattached: boolean }>, healthyAfter = Infinity): ExecutorAgent.ExecutorAgentShape => {
    const healthy = functionExecutor({ runs: [] })
    return {
      name: "full-disk",
      run: (req) =>
        Stream.unwrap(Effect.map(Clock.currentTimeMillis, (at) => {
          attempts.push({ node: req.node.id, at, reattached: req.job !== undefined })
          if (req.node.id !== "n1" || attempts.length > healthyAfter) return healthy.run(req)
          const failure = Result.failure("Infra", "the job ran out of disk space (exited with code 1): OSError: [Errno 28] No space left on device", { retryable: true, exitCode: 1 })
          return Stream.make(
            { _tag: "Submitted", job: req.job ?? { backend: "full-disk", id: `job-n1-${attempts.length}`, data: {} } } as const,
            { _tag: "Finished", result: failure } as const
          )
        }))
    }
  }
  it.effect("after 2 and then 4 seconds (each retry a fresh job), where it was retried at once", () =>
    Effect.gen(function*() {
      const attempts: Array<{ node: string; at: number; reattached: boolean }> = []
      const summary = yield* onTestClock(runWith(Journal.makeMemory(), { maxTrials: 2, executor: fullDisk(attempts), failFast: 0 }))
      const n1 = attempts.filter((a) => a.node === "n1")
      assert.deepStrictEqual(n1.map((a) => a.at - n1[0]!.at), [0, 2000, 6000], "three attempts: at once, after 2 s, after 4 s more")
      assert.isTrue(n1.every((a) => !a.reattached))
      assert.strictEqual(summary.tree.get("n1")!.state._tag, "Failed")
      assert.strictEqual(summary.tree.get("n2")!.state._tag, "Succeeded")
    }))

  it.effect("a drain during the wait ends it: no new job starts, the trial stays unfinished, and a resumed run reattaches and tries again", () =>
    Effect.gen(function*() {
      const journal = Journal.makeMemory()
      const attempts: Array<{ node: string; at: number; reattached: boolean }> = []
      const control = new Control()
      const fiber = yield* Effect.forkChild(runWith(journal, { maxTrials: 2, executor: fullDisk(attempts, 1), control }))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(attempts.length, 1, "the first attempt failed; its retry waits")
      control.stop("drain")
      const stopped = yield* Fiber.join(fiber)
      assert.strictEqual(stopped.reason, "stopped by request")
      assert.strictEqual(attempts.length, 1, "no retry started during the drain")
      assert.strictEqual(stopped.tree.get("n1")!.state._tag, "Running", "not finished: a resumed run tries again")
      const resumed = yield* onTestClock(runWith(journal, { maxTrials: 2, executor: fullDisk(attempts, 1) }))
      assert.deepStrictEqual(attempts.slice(1).map((a) => [a.node, a.reattached]), [["n1", true], ["n2", false]], "n1 reattached to its job (which has room now), then n2")
      assert.strictEqual(resumed.tree.get("n1")!.state._tag, "Succeeded")
    }))
})
