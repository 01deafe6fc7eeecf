import { assert, describe, it } from "@effect/vitest"
import { Budget, Cost, Fingerprint, Insight, JournalEvent, type Researcher, Result, SearchSpace, Strategy, type Task } from "@trex/core"
import { ResearcherConformance, TreeBuilder } from "@trex/core/testing"
import { Effect, Random, Schema } from "effect"
import * as HeuristicResearcher from "../src/HeuristicResearcher.ts"
import * as RandomResearcher from "../src/RandomResearcher.ts"
import * as TpeResearcher from "../src/TpeResearcher.ts"

const researchers = {
  heuristic: () => HeuristicResearcher.make(),
  random: () => RandomResearcher.make(),
  tpe: () => TpeResearcher.make()
}
for (const [name, make] of Object.entries(researchers)) {
  describe(`Researcher conformance: ${name}`, () => {
    for (const c of ResearcherConformance.cases(make)) it.effect(c.name, () => c.run)
  })
}

const task = TreeBuilder.task()
/** What the explorer would hand a researcher asked for children of `parentId` in `b`'s tree. */
const contextFor = (t: Task.Task, b: TreeBuilder.TreeBuilder, parentId: string): Researcher.ProposalContext => ({
  task: t,
  analysis: { summary: "", metricNotes: "", dataNotes: "", risks: [], notes: {} },
  tree: b.view,
  parentId,
  usage: new Budget.Ledger(t.budget).usage(),
  tried: (fp) => b.view.byFingerprint(fp) !== undefined
})
const propose = (b: TreeBuilder.TreeBuilder, parentId: string, n: number, options: HeuristicResearcher.Options = {}) =>
  HeuristicResearcher.make(options).propose(contextFor(task, b, parentId), n)

const changed = (space: SearchSpace.SearchSpace, a: Parameters<typeof SearchSpace.get>[0], b: Parameters<typeof SearchSpace.get>[0]) =>
  space.parameters.filter((p) => SearchSpace.get(a, p.path) !== SearchSpace.get(b, p.path)).map((p) => p.path)

/** The test task with a pool of every configuration of its grid. */
const gridPool = () => {
  const space = task.searchSpace!
  const points = space.parameters[0]!.values.flatMap((lr) =>
    space.parameters[1]!.values.flatMap((ep) => space.parameters[2]!.values.map((f) => [lr, ep, f]))
  )
  return { ...task, searchSpace: { ...space, points } }
}

describe("HeuristicResearcher", () => {
  it.effect("the first child of the root is the default strategy: the baseline", () =>
    Effect.gen(function*() {
      const b = new TreeBuilder.TreeBuilder(task)
      const [first] = yield* propose(b, "root", 1)
      assert.strictEqual(Fingerprint.of(first!.strategy), Fingerprint.of(task.defaultStrategy!))
      assert.match(first!.strategy.rationale, /Baseline/)
    }))

  it.effect("children differ from their parent in one or two declared parameters, by the parameter's kind", () =>
    Effect.gen(function*() {
      const b = new TreeBuilder.TreeBuilder(task)
      const parent = b.succeed("root", { "training.learningRate": 0.001, "training.epochs": 2 }, 0.5)
      const proposals = yield* propose(b, parent, 12, { crossover: 0, followInsights: 0 }).pipe(Random.withSeed(3))
      assert.strictEqual(proposals.length, 12)
      const base = b.view.get(parent)!.strategy
      for (const p of proposals) {
        const diff = changed(task.searchSpace!, base, p.strategy)
        assert.isAtLeast(diff.length, 1)
        assert.isAtMost(diff.length, 2)
        // a learning-rate move is one or two log-grid steps; an epochs move a single neighbour step
        const lrs = task.searchSpace!.parameters[0]!.values as ReadonlyArray<number>
        const di = Math.abs(lrs.indexOf(p.strategy.training.learningRate) - lrs.indexOf(0.001))
        assert.isAtMost(di, 2)
        assert.isAtMost(Math.abs(p.strategy.training.epochs - 2), 1)
        assert.match(p.strategy.rationale, /From n\d+: /)
      }
    }))

  it.effect("distils a controlled comparison into an insight with its evidence", () =>
    Effect.gen(function*() {
      const b = new TreeBuilder.TreeBuilder(task)
      let parent = "root"
      for (let i = 0; i < 5; i++) {
        const base = b.succeed(parent, { "data.format": "plain", "training.epochs": 1 + (i % 4) }, 0.2 + i * 0.01)
        b.succeed(base, { "data.format": "reversed" }, 0.3 + i * 0.01)
        parent = base
      }
      const insights = yield* HeuristicResearcher.make().distill({ task, tree: b.view, now: 1 })
      const reversed = insights.find((i) => i.text.startsWith("data.format=reversed"))
      assert.isDefined(reversed)
      assert.match(reversed!.text, /beat its comparison in 5 of 5 pairs, \+0\.1 score on average/)
      assert.isAtLeast(reversed!.evidence.length, 10)
      for (const id of reversed!.evidence) assert.isDefined(b.view.get(id))
    }))

  it.effect("insights and rationales name a parameter's value as declared, not rounded", () =>
    Effect.gen(function*() {
      // a four-digit grid: to 3 significant digits 1024 and 2048 read as 1020 and 2050
      const sized = TreeBuilder.task({
        searchSpace: {
          parameters: [
            { path: "training.batchSize", kind: "ordinal", values: [1024, 2048] },
            { path: "training.epochs", kind: "ordinal", values: [1, 2, 3, 4, 5] }
          ]
        }
      })
      const b = new TreeBuilder.TreeBuilder(sized)
      for (let i = 0; i < 4; i++) {
        const base = b.succeed("root", { "training.batchSize": 1024, "training.epochs": 1 + i }, 0.2 + i * 0.01)
        b.succeed(base, { "training.batchSize": 2048 }, 0.3 + i * 0.01)
      }
      const insights = yield* HeuristicResearcher.make().distill({ task: sized, tree: b.view, now: 1 })
      const texts = insights.map((i) => i.text)
      assert.include(texts, "training.batchSize=2048 beat its comparison in 4 of 4 pairs, +0.1 score on average")
      assert.include(texts, "training.batchSize=1024 lost 4 of 4 comparisons, -0.1 score on average")
      // and a child that follows the insight says which value it set
      const start = b.succeed("root", { "training.batchSize": 1024, "training.epochs": 5 }, 0.2)
      const proposals = yield* HeuristicResearcher.make({ followInsights: 1, surrogate: false }).propose(
        { ...contextFor(sized, b, start), tree: { ...b.view, insights } },
        1
      ).pipe(Random.withSeed(1))
      assert.match(proposals[0]!.strategy.rationale, /set training\.batchSize=2048 \(insight: it won 4 of 4 comparisons, \+0\.1 on average\)/)
    }))

  it.effect("distils a parameter that made no difference into an insight, once", () =>
    Effect.gen(function*() {
      const b = new TreeBuilder.TreeBuilder(task)
      // the score depends on the learning rate only: every change of data.format alone ties
      const lrs = [1e-4, 3e-4, 1e-3]
      const ids: Array<string> = []
      for (const [i, lr] of lrs.entries()) {
        ids.push(b.succeed("root", { "training.learningRate": lr, "data.format": "plain" }, 0.1 * (i + 1)))
        ids.push(b.succeed("root", { "training.learningRate": lr, "data.format": "reversed" }, 0.1 * (i + 1)))
      }
      const researcher = HeuristicResearcher.make()
      const insights = yield* researcher.distill({ task, tree: b.view, now: 1 })
      const none = insights.filter((i) => i.id.endsWith(":no-effect"))
      assert.deepStrictEqual(none.map((i) => i.id), ["heuristic:data.format:no-effect"])
      assert.match(none[0]!.text, /^data\.format made no difference: 3 of 3 changes of it alone left score exactly the same/)
      assert.deepStrictEqual(none[0]!.evidence, [...ids].sort())
      assert.deepStrictEqual(none[0]!.data, { path: "data.format", effect: "none", ties: 3, pairs: 3 })
      // not repeated once the tree has it
      const again = yield* researcher.distill({ task, tree: { ...b.view, insights: none }, now: 2 })
      assert.isUndefined(again.find((i) => i.id.endsWith(":no-effect")))
    }))

  it.effect("follows insights: with an insight, children move to the winning value", () =>
    Effect.gen(function*() {
      const b = new TreeBuilder.TreeBuilder(task)
      const start = b.succeed("root", { "data.format": "plain" }, 0.2)
      const insight = {
        id: "x",
        text: "reversed wins",
        evidence: [start],
        createdAt: 0,
        data: { path: "data.format", value: "reversed", wins: 5, pairs: 5, delta: 0.1 }
      }
      const tree = { ...b.view, insights: [insight] }
      const proposals = yield* HeuristicResearcher.make({ followInsights: 1 }).propose(
        {
          task,
          analysis: { summary: "", metricNotes: "", dataNotes: "", risks: [], notes: {} },
          tree,
          parentId: start,
          usage: new Budget.Ledger(task.budget).usage(),
          tried: () => false
        },
        4
      ).pipe(Random.withSeed(1))
      assert.isAbove(proposals.length, 0)
      for (const p of proposals) assert.strictEqual(p.strategy.data.format, "reversed")
    }))

  it.effect("in a finite pool, proposals are configurations of the pool", () =>
    Effect.gen(function*() {
      const points = [[1e-4, 1, "plain"], [1e-3, 2, "reversed"], [3e-3, 4, "plain"], [1e-2, 3, "scratchpad"]]
      const pooled = { ...task, searchSpace: { ...task.searchSpace!, points } }
      const b = new TreeBuilder.TreeBuilder(pooled)
      const n1 = b.succeed("root", {}, 0.3)
      const proposals = yield* HeuristicResearcher.make().propose(
        {
          task: pooled,
          analysis: { summary: "", metricNotes: "", dataNotes: "", risks: [], notes: {} },
          tree: b.view,
          parentId: n1,
          usage: new Budget.Ledger(pooled.budget).usage(),
          tried: (fp) => b.view.byFingerprint(fp) !== undefined
        },
        3
      ).pipe(Random.withSeed(4))
      assert.strictEqual(proposals.length, 3)
      for (const p of proposals) {
        const values = pooled.searchSpace.parameters.map((q) => SearchSpace.get(p.strategy, q.path))
        assert.isTrue(points.some((pt) => JSON.stringify(pt) === JSON.stringify(values)), JSON.stringify(values))
      }
    }))

  it.effect("in a finite pool, the last untried configuration is proposed from any node; once it has run, no node has anything left", () =>
    Effect.gen(function*() {
      const points = [[1e-4, 1, "plain"], [1e-3, 2, "reversed"], [3e-3, 4, "plain"], [1e-2, 3, "scratchpad"]]
      const pooled = { ...task, searchSpace: { ...task.searchSpace!, points } }
      const paths = pooled.searchSpace.parameters.map((q) => q.path)
      const at = (pt: ReadonlyArray<SearchSpace.Value>) => Object.fromEntries(paths.map((p, i) => [p, pt[i]!]))
      const b = new TreeBuilder.TreeBuilder(pooled)
      const ran = points.slice(0, 3).map((pt, i) => b.succeed("root", at(pt), 0.1 * (i + 1)))
      const researcher = HeuristicResearcher.make()
      for (const parent of ran) {
        const left = yield* researcher.propose(contextFor(pooled, b, parent), 2).pipe(Random.withSeed(3))
        assert.deepStrictEqual(left.map((p) => paths.map((q) => SearchSpace.get(p.strategy, q))), [points[3]], parent)
      }
      b.succeed(ran[2]!, at(points[3]!), 0.5)
      for (const parent of b.view.children("root").map((n) => n.id)) {
        assert.deepStrictEqual(yield* researcher.propose(contextFor(pooled, b, parent), 2).pipe(Random.withSeed(3)), [], parent)
      }
    }))

  it.effect("in a finite pool, the untried configuration of the corner the results point at goes first, its rationale naming the corner", () =>
    Effect.gen(function*() {
      // docs/benchmarks.md, "Search quality": the pair learning rate 1e-3 with 2 epochs is the only pair of
      // settings seen twice, and both its results are good; the single best result lies elsewhere
      const pooled = gridPool()
      const b = new TreeBuilder.TreeBuilder(pooled)
      let best = ""
      for (const [lr, ep, f, score] of [[1e-3, 2, "plain", 0.8], [1e-3, 2, "reversed", 0.75], [1e-2, 4, "scratchpad", 0.9], [1e-2, 3, "plain", 0.3], [3e-3, 4, "plain", 0.5], [1e-4, 1, "plain", 0.1], [3e-4, 1, "reversed", 0.2]] as const) {
        const id = b.succeed("root", { "training.learningRate": lr, "training.epochs": ep, "data.format": f }, score)
        if (score === 0.9) best = id
      }
      for (let seed = 0; seed < 4; seed++) {
        const [p] = yield* HeuristicResearcher.make().propose(contextFor(pooled, b, best), 1).pipe(Random.withSeed(seed))
        assert.deepStrictEqual([p!.strategy.training.learningRate, p!.strategy.training.epochs, p!.strategy.data.format], [1e-3, 2, "scratchpad"])
        assert.match(p!.strategy.rationale, /completes the corner training\.learningRate=0\.001, training\.epochs=2, whose results have the best mean so far/)
      }
    }))

  it.effect("with the model on a pool it scores whole, following an insight changes no proposal; without the model it does", () =>
    Effect.gen(function*() {
      // docs/benchmarks.md, "Do insights help?": the jumps are every untried pool point, so the
      // proposal is the untried point of highest expected improvement whatever the mutations are
      const space = task.searchSpace!
      const pooled = gridPool()
      const b = new TreeBuilder.TreeBuilder(pooled)
      const lrs = space.parameters[0]!.values as ReadonlyArray<number>
      let best = ""
      for (const [lr, ep, f, score] of [[1e-4, 1, "plain", 0.2], [1e-3, 2, "plain", 0.5], [3e-3, 3, "plain", 0.4], [1e-3, 3, "plain", 0.6], [1e-2, 4, "scratchpad", 0.1], [3e-4, 2, "plain", 0.3]] as const) {
        const id = b.succeed("root", { "training.learningRate": lr, "training.epochs": ep, "data.format": f }, score + lrs.indexOf(lr) * 0.001)
        if (score === 0.6) best = id
      }
      const insight = { id: "x", text: "reversed wins", evidence: [best], createdAt: 0, data: { path: "data.format", value: "reversed", wins: 5, pairs: 5, delta: 0.1 } }
      const tree = { ...b.view, insights: [insight] }
      const first = (options: HeuristicResearcher.Options, seed: number) =>
        HeuristicResearcher.make(options).propose({ ...contextFor(pooled, b, best), tree }, 1).pipe(
          Random.withSeed(seed),
          Effect.map((ps) => Fingerprint.of(ps[0]!.strategy))
        )
      let differs = 0
      for (let seed = 0; seed < 8; seed++) {
        assert.strictEqual(yield* first({ followInsights: 1 }, seed), yield* first({ followInsights: 0 }, seed))
        if ((yield* first({ followInsights: 1, surrogate: false }, seed)) !== (yield* first({ followInsights: 0, surrogate: false }, seed))) differs++
      }
      assert.isAbove(differs, 0)
    }))

  it.effect("a parameter whose changes left the result identical is not varied alone again", () =>
    Effect.gen(function*() {
      // The score depends on the learning rate and epochs only; data.format is ignored by the trainer.
      const lrs = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
      const scoreOf = (lr: number, epochs: number) => 1 - Math.abs(lrs.indexOf(lr) - 2) * 0.2 - Math.abs(epochs - 3) * 0.15
      const b = new TreeBuilder.TreeBuilder(task)
      const at = (lr: number, epochs: number, format: string) =>
        b.succeed("root", { "training.learningRate": lr, "training.epochs": epochs, "data.format": format }, scoreOf(lr, epochs))
      at(1e-4, 1, "plain")
      at(1e-2, 4, "reversed")
      at(3e-4, 2, "scratchpad")
      at(3e-3, 1, "plain")
      // one controlled comparison of data.format: identical results
      at(1e-3, 3, "plain")
      const best = at(1e-3, 3, "reversed")
      const finished = [...b.view.nodes()].filter((nd) => nd.id !== "root").map((nd) => nd.strategy)
      const proposals = yield* propose(b, best, 6).pipe(Random.withSeed(2))
      assert.strictEqual(proposals.length, 6)
      for (const p of proposals) {
        for (const f of finished) {
          assert.notDeepEqual(changed(task.searchSpace!, f, p.strategy), ["data.format"], p.strategy.rationale)
        }
      }
    }))

  it.effect("a fresh researcher on a long run's tree proposes what the one that saw it grow proposes (a resumed run)", () =>
    Effect.gen(function*() {
      // 8,000 configurations, so the 320 trials leave most untried
      const big = TreeBuilder.task({
        searchSpace: {
          parameters: [
            { path: "training.learningRate", kind: "log", values: [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3] },
            { path: "training.epochs", kind: "ordinal", values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] },
            { path: "training.batchSize", kind: "ordinal", values: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] },
            { path: "data.format", kind: "categorical", values: ["plain", "reversed", "scratchpad", "chat", "json", "csv", "xml", "md"] }
          ]
        }
      })
      const space = big.searchSpace!.parameters
      const grown = HeuristicResearcher.make()
      const b = new TreeBuilder.TreeBuilder(big)
      // 320 trials, one at a time, the best early: a researcher that only read the newest 256 would miss them
      let seed = 7
      const next = () => (seed = (seed * 16807) % 2147483647) / 2147483647
      let last = "root"
      for (let i = 0; i < 320; i++) {
        const changes = Object.fromEntries(space.map((p) => [p.path, p.values[Math.floor(next() * p.values.length)]!]))
        last = b.succeed(i < 5 ? "root" : last, changes, (i < 40 ? 1 : 0) + next())
        if (i % 8 === 0 || i === 319) yield* grown.propose(contextFor(big, b, last), 1).pipe(Random.withSeed(i))
        if (i % 50 === 0) yield* grown.distill({ task: big, tree: b.view, now: i })
      }
      const fresh = HeuristicResearcher.make()
      const ask = (r: Researcher.ResearcherShape) => r.propose(contextFor(big, b, last), 4).pipe(Random.withSeed(99))
      const a = yield* ask(grown)
      const f = yield* ask(fresh)
      assert.strictEqual(a.length, 4)
      assert.deepStrictEqual(f.map((p) => Fingerprint.of(p.strategy)), a.map((p) => Fingerprint.of(p.strategy)))
      assert.deepStrictEqual(f.map((p) => p.strategy.rationale), a.map((p) => p.strategy.rationale))
      const insights = (r: Researcher.ResearcherShape) => r.distill({ task: big, tree: b.view, now: 1000 }).pipe(Effect.map((is) => is.map((i) => i.text)))
      assert.deepStrictEqual(yield* insights(fresh), yield* insights(grown))
    }))

  it.effect("a task without a search space is a clear error", () =>
    Effect.gen(function*() {
      const { searchSpace: _, ...bare } = task
      const error = yield* Effect.flip(HeuristicResearcher.make().analyze(bare))
      assert.match(error.message, /declares no searchSpace/)
    }))
})

describe("conditional search spaces", () => {
  // the quickstart's shape: the method matters only when all layers train, the rank only under LoRA
  const base = TreeBuilder.task()
  const conditional = TreeBuilder.task({
    searchSpace: {
      parameters: [
        ...base.searchSpace!.parameters,
        { path: "training.extra.trainable", kind: "categorical", values: ["all", "head"] },
        { path: "training.method", kind: "categorical", values: ["full", "lora"], when: { path: "training.extra.trainable", values: ["all"] } },
        { path: "training.lora.rank", kind: "ordinal", values: [2, 4, 8, 16], when: { path: "training.method", values: ["lora"] } }
      ]
    },
    defaultStrategy: SearchSpace.set(SearchSpace.set(SearchSpace.set(base.defaultStrategy!, "training.extra.trainable", "all"), "training.method", "full"), "training.lora.rank", 8)
  })
  const space = conditional.searchSpace!
  const defaults = conditional.defaultStrategy!

  it.effect("the analysis counts the strategies the space holds, not the points of its grid", () =>
    Effect.gen(function*() {
      const analysis = yield* HeuristicResearcher.make().analyze(conditional)
      // head (method and rank held), all + full (rank held), all + LoRA at each of 4 ranks: 6 per point of the rest
      const rest = SearchSpace.size(base.searchSpace!)
      assert.include(analysis.summary, `over ${space.parameters.length} parameters (${rest * 6} combinations)`)
    }))

  for (const [name, make] of Object.entries(researchers)) {
    it.effect(`${name}: every proposal holds its inactive parameters at the default, and none repeats another in effect`, () =>
      Effect.gen(function*() {
        const b = new TreeBuilder.TreeBuilder(conditional)
        const full = b.succeed("root", { "training.method": "full", "training.learningRate": 1e-3 }, 0.4)
        const lora = b.succeed(full, { "training.method": "lora", "training.lora.rank": 4 }, 0.6)
        b.succeed(lora, { "training.lora.rank": 16 }, 0.5)
        b.succeed("root", { "training.extra.trainable": "head", "training.method": "full" }, 0.3)
        const proposals: Array<Researcher.Proposal> = []
        for (const parentId of ["root", full, lora]) {
          proposals.push(
            ...(yield* make().propose(contextFor(conditional, b, parentId), 12).pipe(Random.withSeed(parentId)))
          )
        }
        assert.isAtLeast(proposals.length, 12)
        for (const p of proposals) {
          const held = SearchSpace.normalize(space, p.strategy, defaults)
          assert.deepStrictEqual(changed(space, held, p.strategy), [], p.strategy.rationale)
          if (SearchSpace.get(p.strategy, "training.method") !== "lora") assert.strictEqual(SearchSpace.get(p.strategy, "training.lora.rank"), 8)
          if (SearchSpace.get(p.strategy, "training.extra.trainable") === "head") assert.strictEqual(SearchSpace.get(p.strategy, "training.method"), "full")
        }
        // the same call never proposes one strategy twice
        const fps = proposals.slice(0, 12).map((p) => Fingerprint.of(p.strategy))
        assert.strictEqual(new Set(fps).size, fps.length)
      }))
  }

  // a default strategy that leaves the switch and what it conditions unset: the explorer runs the
  // baseline with the inactive rank held at its first value
  const unset = TreeBuilder.task({
    searchSpace: {
      parameters: [
        { path: "training.extra.method", kind: "categorical", values: ["full", "lora"] },
        { path: "training.extra.rank", kind: "ordinal", values: [4, 8, 16], when: { path: "training.extra.method", values: ["lora"] } }
      ]
    }
  })

  it.effect("heuristic: once the baseline has run as the explorer holds it, the root's next children are drafts, not the baseline again", () =>
    Effect.gen(function*() {
      const b = new TreeBuilder.TreeBuilder(unset)
      const held = SearchSpace.normalize(unset.searchSpace!, unset.defaultStrategy!, unset.defaultStrategy!)
      assert.strictEqual(SearchSpace.get(held, "training.extra.rank"), 4)
      b.succeed("root", { "training.extra.rank": 4 }, 0.5)
      assert.isDefined(b.view.byFingerprint(Fingerprint.of(held)))
      for (const seed of [1, 2, 3]) {
        const [next] = yield* HeuristicResearcher.make().propose(contextFor(unset, b, "root"), 1).pipe(Random.withSeed(seed))
        assert.isDefined(next)
        assert.match(next!.strategy.rationale, /Draft/)
        assert.isUndefined(b.view.byFingerprint(Fingerprint.of(next!.strategy)))
      }
    }))

  it.effect("heuristic: a crossover never takes a value its donor leaves unset", () =>
    Effect.gen(function*() {
      const b = new TreeBuilder.TreeBuilder(unset)
      // the best node, a donor, is the baseline: training.extra.method unset
      b.succeed("root", { "training.extra.rank": 4 }, 0.9)
      const lora = b.succeed("root", { "training.extra.method": "lora", "training.extra.rank": 4 }, 0.5)
      for (const seed of [1, 2, 3, 4]) {
        const proposals = yield* HeuristicResearcher.make({ crossover: 1, followInsights: 0, surrogate: false })
          .propose(contextFor(unset, b, lora), 4)
          .pipe(Random.withSeed(seed))
        assert.isAtLeast(proposals.length, 1)
        for (const p of proposals) assert.isDefined(SearchSpace.get(p.strategy, "training.extra.method"), p.strategy.rationale)
      }
    }))

  it.effect("heuristic: an insight credits only values a strategy sets: one compared with a default that leaves the parameter unset is a journalable insight", () =>
    Effect.gen(function*() {
      const b = new TreeBuilder.TreeBuilder(unset)
      // the baseline leaves training.extra.method unset; each child sets it to lora alone, and wins
      for (let i = 0; i < 4; i++) {
        const baseline = b.succeed(i === 0 ? "root" : `n${2 * i - 1}`, { "training.extra.rank": 4 }, 0.2 + i * 0.01)
        b.succeed(baseline, { "training.extra.method": "lora" }, 0.5 + i * 0.01)
      }
      const insights = yield* HeuristicResearcher.make().distill({ task: unset, tree: b.view, now: 1 })
      // every insight is one the journal can hold (an undefined value failed the run at its commit)
      for (const i of insights) assert.isTrue(Schema.is(Insight.Insight)(i), JSON.stringify(i))
      assert.isTrue(insights.some((i) => i.text.startsWith("training.extra.method=lora beat its comparison")), insights.map((i) => i.text).join("; "))
    }))

  it.effect("heuristic: mutations of a full fine-tune never move the LoRA rank", () =>
    Effect.gen(function*() {
      const b = new TreeBuilder.TreeBuilder(conditional)
      const full = b.succeed("root", { "training.method": "full" }, 0.4)
      const proposals = yield* HeuristicResearcher.make({ crossover: 0, followInsights: 0 })
        .propose(contextFor(conditional, b, full), 12)
        .pipe(Random.withSeed(5))
      assert.strictEqual(proposals.length, 12)
      for (const p of proposals) {
        // the rank is not a move of its own while the parent fine-tunes in full
        assert.notMatch(p.strategy.rationale, /training\.lora\.rank/)
        if (SearchSpace.get(p.strategy, "training.method") !== "lora") assert.strictEqual(SearchSpace.get(p.strategy, "training.lora.rank"), 8)
      }
    }))
})


describe("mixture weights on a grid (no pool)", () => {
  // two weights and a format: 12 points, 12 distinct mixtures (toy, the source the space does not name, takes the rest)
  const mixed = TreeBuilder.task({
    searchSpace: {
      parameters: [
        { path: "data.mixture.web", kind: "ordinal", values: [0, 0.25, 0.5] },
        { path: "data.mixture.code", kind: "ordinal", values: [0, 0.5] },
        { path: "data.format", kind: "categorical", values: ["a", "b"] }
      ]
    },
    defaultStrategy: Strategy.decodeSync({
      data: { sources: [{ name: "toy", weight: 0.5 }, { name: "web", weight: 0.5 }], format: "a" },
      training: { learningRate: 1e-3, epochs: 1, batchSize: 8 }
    })
  })
  const paths = mixed.searchSpace!.parameters.map((p) => p.path)
  /** What a strategy runs: each source's share of the mixture, and the format. */
  const mixtureOf = (s: Strategy.Strategy) => {
    const total = s.data.sources.reduce((acc, x) => acc + x.weight, 0)
    const shares = s.data.sources.filter((x) => x.weight > 0).map((x) => `${x.name} ${(x.weight / total).toFixed(6)}`).sort()
    return `${shares.join(", ")}; ${s.data.format}`
  }
  /** Grows a tree as the explorer would, depth first: asks under the newest open node, runs what is new, and closes a node that has nothing new. */
  const grow = (trials: number) =>
    Effect.gen(function*() {
      const b = new TreeBuilder.TreeBuilder(mixed)
      const researcher = HeuristicResearcher.make()
      const open = ["root"]
      let at = 0
      while (open.length > 0 && b.view.size < trials) {
        const parent = open.at(-1)!
        const [p] = yield* researcher.propose(contextFor(mixed, b, parent), 1).pipe(Random.withSeed(`grid:${b.view.size}:${parent}`))
        const fp = p === undefined ? undefined : Fingerprint.of(p.strategy)
        if (p === undefined || b.view.byFingerprint(fp!) !== undefined) {
          open.pop()
          continue
        }
        const id = `n${b.view.size + 1}`
        const score = SearchSpace.get(p.strategy, "data.mixture.web") as number
        b.tree.apply(JournalEvent.make("NodeProposed", { node: { id, parent, strategy: p.strategy, fingerprint: fp!, proposedAt: ++at }, at }))
        b.tree.apply(JournalEvent.make("NodeAdmitted", { nodeId: id, estimate: Cost.zero, at: ++at }))
        b.tree.apply(JournalEvent.make("JobSubmitted", { nodeId: id, job: { backend: "test", id, data: {} }, at: ++at }))
        b.tree.apply(JournalEvent.make("NodeFinished", { nodeId: id, outcome: "Succeeded", result: Result.success({ score }, score), at: ++at }))
        open.push(id)
      }
      return [...b.view.nodes()].filter((n) => n.id !== "root")
    })

  it.effect("heuristic: one mixture runs once, under one fingerprint, and moves stay on the grid: the 12 points, then nothing", () =>
    Effect.gen(function*() {
      const nodes = yield* grow(40)
      const mixtures = nodes.map((n) => mixtureOf(n.strategy))
      assert.strictEqual(new Set(mixtures).size, mixtures.length, mixtures.join("\n"))
      for (const n of nodes) {
        for (const p of mixed.searchSpace!.parameters) assert.include(p.values, SearchSpace.get(n.strategy, p.path), `${n.id}: ${mixtureOf(n.strategy)}`)
      }
      assert.strictEqual(nodes.length, 12)
      // the baseline is the default as written (its weights are the shares its point makes)
      assert.deepStrictEqual(paths.map((p) => SearchSpace.get(nodes[0]!.strategy, p)), [0.5, 0, "a"])
      assert.deepStrictEqual(nodes[0]!.strategy.data.sources, [{ name: "toy", weight: 0.5 }, { name: "web", weight: 0.5 }])
    }))
})
