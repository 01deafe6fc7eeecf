import { assert, describe, it } from "@effect/vitest"
import type { Backend, Task } from "@trex/core"
import * as TemplateExecutor from "../src/TemplateExecutor.ts"

const task = { name: "t", objective: "o", metric: { name: "acc", direction: "maximize" } } as unknown as Task.Task
const exit = (extra: Partial<Backend.JobExit>): Backend.JobExit => ({
  _tag: "Exit",
  outcome: "Failed",
  failureKind: "Crash",
  logTail: [],
  wallSeconds: 1,
  gpuSeconds: 0,
  ...extra
}) as Backend.JobExit

describe("TemplateExecutor.toResult", () => {
  it("exit 2 (the job refused its strategy) carries the job's reason, its last line", () => {
    const result = TemplateExecutor.toResult(task, exit({ exitCode: 2, message: "exited with code 2", logTail: ["loading", "invalid strategy field data.sources[1].name: must be one of add3 | add2", ""] }), [])
    assert.strictEqual(result.failure?.kind, "Crash")
    assert.strictEqual(result.failure?.message, "the job refused the strategy (exit 2): invalid strategy field data.sources[1].name: must be one of add3 | add2")
  })

  it("other exits keep the backend's message", () => {
    assert.strictEqual(TemplateExecutor.toResult(task, exit({ exitCode: 3, message: "exited with code 3", logTail: ["boom"] }), []).failure?.message, "exited with code 3")
    const oom = TemplateExecutor.toResult(task, exit({ exitCode: 137, failureKind: "OOM", message: "out of memory" }), [])
    assert.deepStrictEqual([oom.failure?.kind, oom.failure?.message], ["OOM", "out of memory"])
    assert.strictEqual(TemplateExecutor.toResult(task, exit({ exitCode: 2, signal: "SIGTERM", message: "killed" }), []).failure?.message, "killed")
  })
})
