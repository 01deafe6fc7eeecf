// Which limits of a task's budget can work as set, for the run's wiring.
import { assert, describe, it } from "@effect/vitest"
import type { Task } from "@trex/core"
import { TreeBuilder } from "@trex/core/testing"
import * as Settings from "../src/Settings.ts"
import * as Wiring from "../src/Wiring.ts"

const settings = (over: Partial<Settings.Settings> = {}): Settings.Settings => ({ ...Settings.defaults, taskFile: "t.yaml", taskDir: ".", ...over })
const task = (budget: Task.Task["budget"], recipe?: Partial<Task.Recipe>): Task.Task => ({
  ...TreeBuilder.task({ budget }),
  recipe: { command: ["node", "{taskDir}/train.mjs"], env: {}, resources: { gpus: 0, cpus: 1 }, ...recipe }
})
const warned = (s: Settings.Settings, t: Task.Task, costKnown?: boolean) =>
  Wiring.budgetWarnings(s, t, costKnown !== undefined ? { costKnown } : {}).join("\n")

describe("Wiring.budgetWarnings", () => {
  it("gpuHours on trials that ask for no GPU never stops the run", () => {
    assert.match(warned(settings(), task({ gpuHours: 2 })), /^budget\.gpuHours \(2\) will never stop this run: its trials ask for no GPU \(recipe\.resources\.gpus is 0\)/)
    assert.match(warned(settings({ backend: "docker" }), task({ gpuHours: 2 })), /will never stop this run/)
    // with GPUs asked for, or on the simulator (its trials cost their recorded GPU time), it does
    assert.notMatch(warned(settings({ concurrency: 1 }), task({ gpuHours: 2 }, { resources: { gpus: 1, cpus: 1 } })), /gpuHours/)
    assert.notMatch(warned(settings({ backend: "simulator", concurrency: 1 }), task({ gpuHours: 2 })), /gpuHours/)
  })

  it("gpuHours under concurrency, with no declared estimate before any trial reported its cost, may be passed by the first trials", () => {
    const gpu = { resources: { gpus: 1, cpus: 1 } }
    assert.match(warned(settings({ concurrency: 4 }), task({ gpuHours: 2 }, gpu)), /the first 4 trials \(--concurrency\) start before any has reported its GPU time.*recipe\.estimate\.gpuSeconds/)
    assert.strictEqual(warned(settings({ concurrency: 1 }), task({ gpuHours: 2 }, gpu)), "")
    assert.strictEqual(warned(settings({ concurrency: 4 }), task({ gpuHours: 2 }, { ...gpu, estimate: { gpuSeconds: 3600 } })), "")
    assert.strictEqual(warned(settings({ concurrency: 4 }), task({ gpuHours: 2 }, gpu), true), "", "a resumed run whose trials reported costs")
  })

  it("dollars and tokens are spent by model calls only: without a model-backed agent they never stop the run", () => {
    for (const limit of ["dollars", "tokens"] as const) {
      assert.match(warned(settings(), task({ [limit]: 5 })), new RegExp(`^budget\\.${limit} \\(5\\) will never stop this run: only model calls spend ${limit}`))
      assert.strictEqual(warned(settings({ researcher: "claude" }), task({ [limit]: 5 })), "")
      assert.strictEqual(warned(settings({ executor: "code-agent" }), task({ [limit]: 5 })), "")
    }
    // a model of an OpenAI-compatible server is priced as free: its calls spend tokens, no dollars
    assert.match(warned(settings({ researcher: "claude", modelApi: "openai-compatible" }), task({ dollars: 5 })), /priced as free/)
    assert.strictEqual(warned(settings({ researcher: "claude", modelApi: "openai-compatible" }), task({ tokens: 5 })), "")
    assert.strictEqual(warned(settings(), task({ maxTrials: 5, wallClockHours: 1 })), "")
  })
})
