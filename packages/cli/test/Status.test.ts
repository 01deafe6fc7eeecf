import { assert, describe, it } from "@effect/vitest"
import { ExperimentNode, ExperimentTree, JournalEvent, Result } from "@trex/core"
import { TreeBuilder } from "@trex/core/testing"
import * as Status from "../src/Status.ts"

describe("trex status, a best trial with a thousand metrics", () => {
  it("shows its first 12 metrics on one short line and says how many more --json has", () => {
    const b = new TreeBuilder.TreeBuilder(TreeBuilder.task({ budget: { maxTrials: 4 } }))
    const id = b.start(b.propose(ExperimentNode.ROOT, { "training.learningRate": 0.02 }))
    const metrics: Record<string, number> = { score: 0.9 }
    for (let i = 0; i < 1000; i++) metrics[`class_${i}_f1`] = i / 1000
    b.events.push(JournalEvent.make("NodeFinished", { nodeId: id, outcome: "Succeeded", result: Result.success(metrics, 0.9), at: 100 }))
    const tree = ExperimentTree.fold(b.events)!
    const info = { started: b.events[0] as JournalEvent.Of<"RunStarted">, finished: undefined, tree, entries: b.events.map((event, i) => ({ seq: i + 1, event })), writer: undefined }
    const best = Status.toText(info, "/runs/r").split("\n").find((l) => l.startsWith("Best: "))!
    assert.match(best, /^Best: n1 score=0\.9 \(score 0\.9, class_0_f1 0, class_1_f1 0\.001, .*class_10_f1 0\.01, and 989 more: trex status --json\)$/)
    assert.isBelow(best.length, 300)
    assert.strictEqual(Object.keys(Status.toJson(info).best!.metrics).length, 1001)
  })
})
