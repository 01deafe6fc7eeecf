import { assert, describe, it } from "@effect/vitest"
import { type Backend, Errors, type ExperimentNode, Strategy, Task } from "@trex/core"
import { Effect, Schema, Stream } from "effect"
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

describe("TemplateExecutor.run", () => {
  it.effect("passes on the backend's job states (waiting, running) before the result", () =>
    Effect.gen(function*() {
      const job: ExperimentNode.JobRef = { backend: "queue", id: "j1", data: {} }
      const events: ReadonlyArray<Backend.JobEvent> = [
        { _tag: "State", state: "Pending", reason: "waiting for a GPU" },
        { _tag: "State", state: "Running" },
        { _tag: "Exit", outcome: "Succeeded", result: { metrics: { acc: 0.5 }, primary: 0.5 }, logTail: [], wallSeconds: 1, gpuSeconds: 0 }
      ]
      const backend: Backend.BackendShape = {
        name: "queue",
        submit: () => Effect.succeed(job),
        watch: () => Stream.fromIterable(events),
        cancel: () => Effect.void,
        list: () => Effect.succeed([]),
        capacity: Effect.succeed({ slots: 1, gpus: 1, inUse: 0 })
      }
      const executor = TemplateExecutor.make(backend, { taskDir: "/tmp" })
      const node = { id: "n1", parent: "root", strategy: Schema.decodeUnknownSync(Strategy.Strategy)({ data: { sources: [{ name: "toy" }] }, training: { learningRate: 0.001, epochs: 1, batchSize: 8 } }), fingerprint: "f", proposedAt: 0 } as ExperimentNode.NodeSpec
      const seen = yield* Stream.runCollect(executor.run({ task: Schema.decodeUnknownSync(Task.Task)({ name: "t", objective: "o", metric: { name: "acc", direction: "maximize" }, recipe: { command: ["train"] } }), runId: "r", runDir: "/tmp", node }))
      assert.deepStrictEqual(seen.map((e) => e._tag === "State" ? `${e._tag}:${e.state}:${e.reason ?? ""}` : e._tag), [
        "Submitted",
        "State:Pending:waiting for a GPU",
        "State:Running:",
        "Finished"
      ])
    }))
})

describe("TemplateExecutor when the backend's watch fails", () => {
  const job: ExperimentNode.JobRef = { backend: "flaky", id: "j1", data: {} }
  const node = { id: "n1", parent: "root", strategy: Schema.decodeUnknownSync(Strategy.Strategy)({ data: { sources: [{ name: "toy" }] }, training: { learningRate: 0.001, epochs: 1, batchSize: 8 } }), fingerprint: "f", proposedAt: 0 } as ExperimentNode.NodeSpec
  const request = { task: Schema.decodeUnknownSync(Task.Task)({ name: "t", objective: "o", metric: { name: "acc", direction: "maximize" }, recipe: { command: ["train"] } }), runId: "r", runDir: "/tmp", node }
  /** A backend whose first `failures` watches lose their connection after the job's Running state. */
  const flaky = (failures: number, retryable = true) => {
    const calls = { submit: 0, watch: 0, cancel: 0 }
    const backend: Backend.BackendShape = {
      name: "flaky",
      submit: () => Effect.sync(() => (calls.submit++, job)),
      watch: () => {
        const lost = ++calls.watch <= failures
        return Stream.concat(
          Stream.make({ _tag: "State", state: "Running" } as const),
          lost
            ? Stream.fail(new Errors.BackendError({ backend: "flaky", operation: "watch", message: "connection reset", retryable }))
            : Stream.make({ _tag: "Exit", outcome: "Succeeded", result: { metrics: { acc: 0.7 }, primary: 0.7 }, logTail: [], wallSeconds: 1, gpuSeconds: 0 } as const)
        )
      },
      cancel: () => Effect.sync(() => void calls.cancel++),
      list: () => Effect.succeed([]),
      capacity: Effect.succeed({ slots: 1, gpus: 0, inUse: 0 })
    }
    return { calls, executor: TemplateExecutor.make(backend, { taskDir: "/tmp" }) }
  }

  it.live("a retryable failure follows the same job again, left running: submitted once, never cancelled", () =>
    Effect.gen(function*() {
      const { calls, executor } = flaky(2)
      const seen = yield* Stream.runCollect(executor.run(request))
      const last = seen.at(-1)
      assert.strictEqual(last?._tag, "Finished")
      assert.strictEqual(last?._tag === "Finished" ? last.result.score : undefined, 0.7)
      assert.deepStrictEqual(calls, { submit: 1, watch: 3, cancel: 0 })
    }))

  it.live("after three failures in a row, or at once when not retryable, the trial fails and its job is cancelled", () =>
    Effect.gen(function*() {
      const persistent = flaky(10)
      const error = yield* Effect.flip(Stream.runCollect(persistent.executor.run(request)))
      assert.strictEqual(error.message, "flaky watch: connection reset")
      assert.isTrue(error.retryable)
      assert.deepStrictEqual(persistent.calls, { submit: 1, watch: 4, cancel: 1 })
      const fatal = flaky(1, false)
      assert.isFalse((yield* Effect.flip(Stream.runCollect(fatal.executor.run(request)))).retryable)
      assert.deepStrictEqual(fatal.calls, { submit: 1, watch: 1, cancel: 1 })
    }))
})

describe("TemplateExecutor.withdraw", () => {
  it.effect("asks the backend to withdraw a queued job; without the backend's support (or on its error) the trial is to be stopped", () =>
    Effect.gen(function*() {
      const job: ExperimentNode.JobRef = { backend: "b", id: "j1", data: {} }
      const base: Backend.BackendShape = {
        name: "b",
        submit: () => Effect.succeed(job),
        watch: () => Stream.empty,
        cancel: () => Effect.void,
        list: () => Effect.succeed([]),
        capacity: Effect.succeed({ slots: 1, gpus: 0, inUse: 0 })
      }
      const asked: Array<string> = []
      const started = TemplateExecutor.make({ ...base, withdraw: (ref) => Effect.sync(() => void asked.push(ref.id)).pipe(Effect.as(false)) }, { taskDir: "/tmp" })
      assert.isFalse(yield* started.withdraw!(job))
      assert.deepStrictEqual(asked, ["j1"])
      assert.isTrue(yield* TemplateExecutor.make(base, { taskDir: "/tmp" }).withdraw!(job))
      const failing = TemplateExecutor.make({ ...base, withdraw: () => Effect.fail(new Errors.BackendError({ backend: "b", operation: "withdraw", message: "down", retryable: true })) }, { taskDir: "/tmp" })
      assert.isTrue(yield* failing.withdraw!(job))
    }))
})
