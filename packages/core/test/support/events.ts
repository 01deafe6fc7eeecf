/**
 * Random valid journals: proposals under existing nodes, admissions, submissions, progress,
 * finishes with random outcomes and scores, insights, budget charges — and a little noise a
 * fold must ignore (unknown node ids, a second finish).
 */
import fc from "fast-check"
import * as ExperimentNode from "../../src/ExperimentNode.ts"
import * as JournalEvent from "../../src/JournalEvent.ts"
import * as Result from "../../src/Result.ts"
import * as Strategy from "../../src/Strategy.ts"
import * as Task from "../../src/Task.ts"
import { Schema } from "effect"
import * as Cost from "../../src/Cost.ts"

export const makeTask = (direction: Task.Direction): Task.Task =>
  Schema.decodeUnknownSync(Task.Task)({ name: "t", objective: "o", metric: { name: "m", direction } })

export const strategy = Strategy.decodeSync({
  data: { sources: [{ name: "a" }] },
  training: { learningRate: 0.001, epochs: 1, batchSize: 8 }
})

type Op =
  | { readonly op: "propose"; readonly pick: number; readonly fp: number }
  | { readonly op: "admit" | "submit"; readonly pick: number }
  | { readonly op: "progress"; readonly pick: number; readonly fraction: number }
  | { readonly op: "finish"; readonly pick: number; readonly outcome: JournalEvent.Outcome; readonly score: number | undefined }
  | { readonly op: "insight" | "charge" | "noise" | "exhaust" | "analysis"; readonly pick: number }

const op: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant("propose" as const), pick: fc.nat(), fp: fc.nat(30) }), weight: 4 },
  { arbitrary: fc.record({ op: fc.constantFrom("admit" as const, "submit" as const), pick: fc.nat() }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant("progress" as const), pick: fc.nat(), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }), weight: 1 },
  {
    arbitrary: fc.record({
      op: fc.constant("finish" as const),
      pick: fc.nat(),
      outcome: fc.constantFrom("Succeeded", "Succeeded", "Failed", "Cancelled", "Pruned") as fc.Arbitrary<JournalEvent.Outcome>,
      score: fc.option(fc.integer({ min: -100, max: 100 }).map((x) => x / 10), { nil: undefined, freq: 5 })
    }),
    weight: 4
  },
  { arbitrary: fc.record({ op: fc.constantFrom("insight" as const, "charge" as const, "noise" as const, "exhaust" as const, "analysis" as const), pick: fc.nat() }), weight: 1 }
)

/** Interpret abstract ops as a valid journal, starting with `RunStarted`. */
export const interpret = (task: Task.Task, ops: ReadonlyArray<Op>): Array<JournalEvent.JournalEvent> => {
  const events: Array<JournalEvent.JournalEvent> = [
    JournalEvent.make("RunStarted", { runId: "run-1", task, seed: 3, options: {}, at: 0 })
  ]
  const state = new Map<string, "Proposed" | "Queued" | "Running" | "Finished">()
  const ids: Array<string> = []
  const inState = (...s: ReadonlyArray<string>) => ids.filter((id) => s.includes(state.get(id)!))
  let at = 0
  for (const o of ops) {
    at += 1
    switch (o.op) {
      case "propose": {
        const parents = [ExperimentNode.ROOT, ...ids]
        const id = `n${ids.length + 1}`
        const node = { id, parent: parents[o.pick % parents.length]!, strategy, fingerprint: `fp${o.fp}`, proposedAt: at }
        events.push(JournalEvent.make("NodeProposed", { node, at }))
        ids.push(id)
        state.set(id, "Proposed")
        break
      }
      case "admit": {
        const c = inState("Proposed")
        if (c.length === 0) break
        const id = c[o.pick % c.length]!
        events.push(JournalEvent.make("NodeAdmitted", { nodeId: id, estimate: Cost.make({ gpuSeconds: 1 }), at }))
        state.set(id, "Queued")
        break
      }
      case "submit": {
        const c = inState("Proposed", "Queued")
        if (c.length === 0) break
        const id = c[o.pick % c.length]!
        events.push(JournalEvent.make("JobSubmitted", { nodeId: id, job: { backend: "test", id: `job-${id}`, data: {} }, at }))
        state.set(id, "Running")
        break
      }
      case "progress": {
        const c = inState("Running")
        if (c.length === 0) break
        const id = c[o.pick % c.length]!
        events.push(JournalEvent.make("JobProgress", {
          nodeId: id,
          fraction: o.fraction,
          metrics: [{ step: at, split: "train", name: "loss", value: 1 - o.fraction }],
          at
        }))
        break
      }
      case "finish": {
        const c = inState("Proposed", "Queued", "Running")
        if (c.length === 0) break
        const id = c[o.pick % c.length]!
        // a success may lack a score (the job wrote no primary metric): it is a visit, not a success
        const result: Result.Result = o.outcome !== "Succeeded"
          ? Result.failure("Crash", "boom")
          : o.score === undefined
          ? { metrics: {}, curves: [], artifacts: [], cost: Cost.zero }
          : Result.success({ m: o.score }, o.score)
        const fields = o.outcome === "Cancelled" ? { reason: "stopped" } : { result }
        events.push(JournalEvent.make("NodeFinished", { nodeId: id, outcome: o.outcome, ...fields, at }))
        state.set(id, "Finished")
        break
      }
      case "insight":
        events.push(JournalEvent.make("InsightsDistilled", {
          insights: [{ id: `i${at}`, text: "an insight", evidence: ids.slice(0, 2), createdAt: at, data: {} }],
          at
        }))
        break
      case "analysis":
        // the explorer journals one before its first proposal; a fold keeps the first of any number
        events.push(JournalEvent.make("AnalysisCompleted", {
          analysis: { summary: `analysis ${at}`, metricNotes: "", dataNotes: "", risks: o.pick % 2 === 0 ? [] : ["overfitting"], notes: {} },
          at
        }))
        break
      case "charge":
        events.push(JournalEvent.make("BudgetCharged", { cost: Cost.make({ inputTokens: 10 }), reason: "propose", at }))
        break
      case "exhaust": {
        // any node (or the root), finished or not, possibly twice
        const targets = [ExperimentNode.ROOT, ...ids]
        events.push(JournalEvent.make("NodeExhausted", { nodeId: targets[o.pick % targets.length]!, at }))
        break
      }
      case "noise": {
        // events a fold must ignore: an unknown node, or a second finish of a finished node
        const done = inState("Finished")
        const target = o.pick % 2 === 0 || done.length === 0 ? "ghost" : done[o.pick % done.length]!
        events.push(JournalEvent.make("NodeFinished", { nodeId: target, outcome: "Succeeded", result: Result.success({}, 1e6), at }))
        events.push(JournalEvent.make("NodeAdmitted", { nodeId: target, estimate: Cost.zero, at }))
        break
      }
    }
  }
  return events
}

/** A random valid journal for a random direction. */
export const journal = fc.record({
  direction: fc.constantFrom("maximize" as const, "minimize" as const),
  ops: fc.array(op, { minLength: 1, maxLength: 80, size: "medium" })
}).map(({ direction, ops }) => ({ task: makeTask(direction), events: interpret(makeTask(direction), ops) }))
