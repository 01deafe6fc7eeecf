// Which limits of a task's budget can work as set, for the run's wiring.
import { assert, describe, it } from "@effect/vitest"
import type { Backend, Task } from "@trex/core"
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

  it("gpuHours under concurrency, with no declared estimate or time limit before any trial reported its cost, may be passed by the first trials", () => {
    const gpu = { resources: { gpus: 1, cpus: 1 } }
    assert.match(warned(settings({ concurrency: 4 }), task({ gpuHours: 2 }, gpu)), /the first 4 trials \(--concurrency\) start before any has reported its GPU time.*recipe\.estimate\.gpuSeconds/)
    assert.strictEqual(warned(settings({ concurrency: 1 }), task({ gpuHours: 2 }, gpu)), "")
    assert.strictEqual(warned(settings({ concurrency: 4 }), task({ gpuHours: 2 }, { ...gpu, estimate: { gpuSeconds: 3600 } })), "")
    assert.strictEqual(warned(settings({ concurrency: 4 }), task({ gpuHours: 2 }, { resources: { gpus: 1, cpus: 1, timeLimitSeconds: 3600 } })), "", "a time limit bounds them")
    assert.strictEqual(warned(settings({ concurrency: 4 }), task({ gpuHours: 2 }, gpu), true), "", "a resumed run whose trials reported costs")
  })

  it("tokens are spent by model calls only, dollars by model calls and priced trials: with neither they never stop the run", () => {
    assert.match(warned(settings(), task({ tokens: 5 })), /^budget\.tokens \(5\) will never stop this run: only model calls spend tokens/)
    assert.match(warned(settings(), task({ dollars: 5 })), /^budget\.dollars \(5\) will never stop this run: no agent of this run calls a model .* and its trials are priced at nothing\. Price the backend's compute in backend\.pricing/)
    for (const limit of ["dollars", "tokens"] as const) {
      assert.strictEqual(warned(settings({ researcher: "claude" }), task({ [limit]: 5 })), "")
      assert.strictEqual(warned(settings({ executor: "code-agent" }), task({ [limit]: 5 })), "")
    }
    // a model of an OpenAI-compatible server is priced as free: its calls spend tokens, no dollars
    assert.match(warned(settings({ researcher: "claude", modelApi: "openai-compatible" }), task({ dollars: 5 })), /priced as free/)
    assert.strictEqual(warned(settings({ researcher: "claude", modelApi: "openai-compatible" }), task({ tokens: 5 })), "")
    assert.strictEqual(warned(settings(), task({ maxTrials: 5, wallClockHours: 1 })), "")
  })

  it("priced trials spend dollars: an hourly price always, a GPU-hour price when trials hold GPUs; the first concurrent trials hold nothing without an estimate or a time limit", () => {
    const priced = (pricing: Backend.Pricing, budget: Task.Task["budget"], recipe?: Partial<Task.Recipe>): Task.Task => ({ ...task(budget, recipe), backend: { pricing } })
    const one = settings({ concurrency: 1 })
    assert.strictEqual(warned(one, priced({ dollarsPerHour: 2 }, { dollars: 5 })), "")
    assert.strictEqual(warned(one, priced({ dollarsPerGpuHour: 2 }, { dollars: 5 }, { resources: { gpus: 1, cpus: 1 } })), "")
    assert.strictEqual(warned(settings({ backend: "simulator", concurrency: 1 }), priced({ dollarsPerGpuHour: 2 }, { dollars: 5 })), "")
    // a GPU-hour price on trials with no GPU, or prices of 0, spend nothing
    assert.match(warned(one, priced({ dollarsPerGpuHour: 2 }, { dollars: 5 })), /^budget\.dollars \(5\) will never stop this run/)
    assert.match(warned(one, priced({ dollarsPerHour: 0 }, { dollars: 5 })), /^budget\.dollars \(5\) will never stop this run/)
    const four = settings({ concurrency: 4 })
    assert.match(warned(four, priced({ dollarsPerHour: 2 }, { dollars: 5 })), /the first 4 trials \(--concurrency\) start before any has reported its cost.*recipe\.estimate\.dollars/)
    assert.strictEqual(warned(four, priced({ dollarsPerHour: 2 }, { dollars: 5 }, { estimate: { dollars: 1 } })), "")
    assert.strictEqual(warned(four, priced({ dollarsPerHour: 2 }, { dollars: 5 }, { resources: { gpus: 0, cpus: 1, timeLimitSeconds: 600 } })), "", "a time limit bounds them")
    assert.strictEqual(warned(four, priced({ dollarsPerHour: 2 }, { dollars: 5 }), true), "", "a resumed run whose trials reported costs")
  })
})
