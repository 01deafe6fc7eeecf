import { afterAll, assert, describe, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import * as ExperimentNode from "../src/ExperimentNode.ts"
import * as ExperimentTree from "../src/ExperimentTree.ts"
import * as Fingerprint from "../src/Fingerprint.ts"
import { Journal } from "../src/Journal.ts"
import * as JournalEvent from "../src/JournalEvent.ts"
import { removeTempDirs, tempDir } from "./support/journal.ts"

// A journal written by trex 0.1.0 in format 1 (see fixtures/make-journal-v1.ts). The file never changes:
// every number below is what that run was, so a failure here means this version cannot read it any more.
const fixture = new URL("./fixtures/journal-v1.sqlite", import.meta.url).pathname
afterAll(removeTempDirs)

const sha256 = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex")

/** A copy of the fixture in a temporary directory (SQLite may create -shm/-wal files next to it). */
const copy = () => {
  const file = path.join(tempDir(), "journal.sqlite")
  fs.copyFileSync(fixture, file)
  return file
}

const readAll = (file: string, options: { readonly readonly?: boolean } = {}) =>
  Effect.runPromise(Effect.gen(function*() {
    return yield* (yield* Journal).read()
  }).pipe(Effect.provide(Journal.layerSqlite(file, options))))

describe("Compat: journal format 1", () => {
  it("opens the v1 fixture read-only and folds it to the recorded tree", async () => {
    const before = sha256(fixture)
    const file = copy()
    const entries = await readAll(file, { readonly: true })
    assert.strictEqual(sha256(file), before, "a read-only open changes nothing")
    assert.strictEqual(entries.length, 38)
    assert.deepStrictEqual(entries.map((e) => e.seq), Array.from({ length: 38 }, (_, i) => i + 1))
    assert.strictEqual(entries[0]!.event._tag, "RunStarted")
    assert.strictEqual(entries.at(-1)!.event._tag, "RunFinished")

    const tree = ExperimentTree.fold(entries.map((e) => e.event))!
    const v = tree.view
    assert.strictEqual(tree.runId, "fixture-run")
    assert.strictEqual(tree.seed, 7)
    assert.strictEqual(tree.applied, 38)
    assert.strictEqual(v.task.name, "fixture-addition")
    assert.strictEqual(v.task.budget.maxTrials, 8)
    assert.strictEqual(v.size, 6)
    assert.deepStrictEqual(v.root.children, ["n1", "n2"])
    assert.deepStrictEqual(
      [...v.nodes()].map((n) => [n.id, n.parent, n.depth, n.state._tag]),
      [
        ["n1", "root", 1, "Succeeded"],
        ["n2", "root", 1, "Failed"],
        ["n3", "n1", 2, "Succeeded"],
        ["n4", "n1", 2, "Pruned"],
        ["n5", "n3", 3, "Succeeded"],
        ["n6", "n3", 3, "Cancelled"]
      ]
    )
    assert.strictEqual(v.best()?.id, "n3")
    assert.strictEqual(ExperimentNode.score(v.best()!), 0.81)
    assert.deepStrictEqual({ ...ExperimentTree.copyStats(v.root.stats), valueSum: Math.round(v.root.stats.valueSum * 1e9) / 1e9 }, {
      visits: 5,
      successes: 3,
      valueSum: 2.22,
      bestUtility: 0.81,
      pending: 0,
      open: 5
    })
    assert.strictEqual(v.get("n1")!.stats.visits, 4)
    assert.strictEqual(v.get("n3")!.stats.successes, 2)
    assert.deepStrictEqual(v.utilityRange(), { min: 0.62, max: 0.81 })
    assert.deepStrictEqual(v.insights.map((i) => i.id), ["i1", "i2"])
    assert.strictEqual(ExperimentNode.result(v.get("n2")!)?.failure?.kind, "OOM")
    assert.deepStrictEqual(v.get("n1")!.curve, [{ step: 100, split: "train", name: "loss", value: 0.8 }])
    assert.strictEqual(v.get("n1")!.progress, 0.5)

    // fingerprints recorded then still find their nodes, and so do the fingerprints computed now (a node not
    // found would be run again): these mixtures ([add3 0.9, add2 0.1]) were hashed as written, and are
    // hashed in canonical form now ([add2 0.1, add3 0.9])
    assert.strictEqual(v.get("n1")!.fingerprint, "0adda193aef3f058")
    for (const n of v.nodes()) {
      assert.notStrictEqual(Fingerprint.of(n.strategy), n.fingerprint, n.id)
      assert.strictEqual(v.byFingerprint(n.fingerprint)?.id, n.id, n.id)
      assert.strictEqual(v.byFingerprint(Fingerprint.of(n.strategy))?.id, n.id, n.id)
      // the same mixture written in canonical form
      const sources = [...n.strategy.data.sources].reverse()
      assert.deepStrictEqual(sources.map((src) => src.name), ["add2", "add3"])
      assert.strictEqual(v.byFingerprint(Fingerprint.of({ ...n.strategy, data: { ...n.strategy.data, sources } }))?.id, n.id, n.id)
    }

    const charged = entries.flatMap((e) => (e.event._tag === "BudgetCharged" ? [e.event.cost] : []))
    assert.strictEqual(charged.reduce((a, c) => a + c.wallSeconds, 0), 188)
    assert.strictEqual(charged.reduce((a, c) => a + c.inputTokens + c.outputTokens, 0), 1500)
  })

  it("resumes: a writer opens the v1 fixture and appends after it", async () => {
    const file = copy()
    const last = await Effect.runPromise(Effect.gen(function*() {
      return yield* (yield* Journal).append([JournalEvent.make("RunResumed", { at: 0 })])
    }).pipe(Effect.provide(Journal.layerSqlite(file))))
    assert.strictEqual(last, 39)
    assert.strictEqual((await readAll(file)).length, 39)
  })

  it("a v1 journal continued by this version, with its analysis journaled, still opens and folds", async () => {
    // a run of 0.1.0 never journaled its analysis: the resumed run journals one (AnalysisCompleted)
    const file = copy()
    const analysis = { summary: "Addition, 2 to 3 digits.", metricNotes: "exact match", dataNotes: "", risks: ["carry"], notes: {} }
    await Effect.runPromise(Effect.gen(function*() {
      return yield* (yield* Journal).append([
        JournalEvent.make("RunResumed", { at: 1 }),
        JournalEvent.make("AnalysisCompleted", { analysis, at: 2 })
      ])
    }).pipe(Effect.provide(Journal.layerSqlite(file))))
    const entries = await readAll(file, { readonly: true })
    assert.strictEqual(entries.length, 40)
    const tree = ExperimentTree.fold(entries.map((e) => e.event))!
    assert.deepStrictEqual(tree.view.analysis, analysis)
    assert.strictEqual(tree.view.size, 6)
    assert.strictEqual(tree.view.best()?.id, "n3")
  })
})
