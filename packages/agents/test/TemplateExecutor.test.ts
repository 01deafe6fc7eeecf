import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type Backend, Errors, type ExperimentNode, Strategy, Task } from "@trex/core"
import { Effect, Logger, Redacted, Schema, Stream } from "effect"
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

describe("TemplateExecutor.toResult, a result.json at volume", () => {
  it("keeps the first 1,000 metrics and the task's, and 4,000 characters of summary; the summary says what was left out", () => {
    const metrics: Record<string, number> = {}
    for (let i = 0; i < 5000; i++) metrics[`example_${i}`] = i / 5000
    metrics["acc"] = 0.75
    const result = TemplateExecutor.toResult(task, exit({ outcome: "Succeeded", result: { metrics, summary: "s".repeat(100_000) } }), [])
    assert.strictEqual(result.score, 0.75)
    assert.strictEqual(Object.keys(result.metrics).length, 1001)
    assert.strictEqual(result.metrics["acc"], 0.75)
    assert.isAtMost(result.summary!.length, 4300)
    assert.match(result.summary!, /\[trex: result\.json too big: 4000 of its 5001 metrics left out \(the first 1000 kept\); its summary cut from 100000 characters; the job directory's result\.json has it all\]$/)
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

describe("TemplateExecutor reconciling", () => {
  it.effect("adopts the node's job that is not on record (the one not finished, else the last), never one on record; with every one on record it submits", () =>
    Effect.gen(function*() {
      const ref = (id: string): ExperimentNode.JobRef => ({ backend: "b", id, data: {} })
      const exit: Backend.JobEvent = { _tag: "Exit", outcome: "Succeeded", result: { metrics: { acc: 0.5 } }, logTail: [], wallSeconds: 1, gpuSeconds: 0 }
      const submitted: Array<string> = []
      const backend: Backend.BackendShape = {
        name: "b",
        submit: () => Effect.sync(() => (submitted.push("new"), ref("new"))),
        watch: () => Stream.make(exit),
        cancel: () => Effect.void,
        // the lost job on record (its end read), a later one of the node not on record, and another node's
        list: () =>
          Effect.succeed([
            { ref: ref("lost"), labels: { run: "r", node: "n1" }, state: "Finished", submittedAt: 1 },
            { ref: ref("retry"), labels: { run: "r", node: "n1" }, state: "Running", submittedAt: 2 },
            { ref: ref("other"), labels: { run: "r", node: "n2" }, state: "Running", submittedAt: 3 }
          ]),
        capacity: Effect.succeed({ slots: 1, gpus: 1, inUse: 0 })
      }
      const executor = TemplateExecutor.make(backend, { taskDir: "/tmp" })
      const node = { id: "n1", parent: "root", strategy: Schema.decodeUnknownSync(Strategy.Strategy)({ data: { sources: [{ name: "toy" }] }, training: { learningRate: 0.001, epochs: 1, batchSize: 8 } }), fingerprint: "f", proposedAt: 0 } as ExperimentNode.NodeSpec
      const task = Schema.decodeUnknownSync(Task.Task)({ name: "t", objective: "o", metric: { name: "acc", direction: "maximize" }, recipe: { command: ["train"] } })
      const jobOf = (onRecord: ReadonlyArray<ExperimentNode.JobRef>) =>
        Effect.map(Stream.runCollect(executor.run({ task, runId: "r", runDir: "/tmp", node, attempt: 1, reconcile: true, onRecord })), (events) =>
          events.flatMap((e) => (e._tag === "Submitted" ? [e.job.id] : [])))
      assert.deepStrictEqual(yield* jobOf([ref("lost")]), ["retry"])
      assert.deepStrictEqual(submitted, [])
      assert.deepStrictEqual(yield* jobOf([ref("lost"), ref("retry")]), ["new"])
      assert.deepStrictEqual(submitted, ["new"])
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
      // while it is followed again, the trial is said to be out of touch with its job, and back in touch after
      const lost = "flaky watch failed (connection reset); following the job again"
      const states = seen.flatMap((e) => (e._tag === "State" ? [`${e.state}${e.reason !== undefined ? `: ${e.reason}` : ""}`] : []))
      assert.deepStrictEqual(states, ["Running", `Running: ${lost}`, "Running", "Running", `Running: ${lost}`, "Running", "Running"])
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

describe("TemplateExecutor with logDir: each trial's job log kept as its backend streams it", () => {
  const job: ExperimentNode.JobRef = { backend: "remote", id: "j1", data: {} }
  const node = { id: "n1", parent: "root", strategy: Schema.decodeUnknownSync(Strategy.Strategy)({ data: { sources: [{ name: "toy" }] }, training: { learningRate: 0.001, epochs: 1, batchSize: 8 } }), fingerprint: "f", proposedAt: 0 } as ExperimentNode.NodeSpec
  const request = { task: Schema.decodeUnknownSync(Task.Task)({ name: "t", objective: "o", metric: { name: "acc", direction: "maximize" }, recipe: { command: ["train"] } }), runId: "r", runDir: "/tmp", node }
  const log = (line: string) => ({ _tag: "Log", stream: "stdout", line }) as const
  const done = { _tag: "Exit", outcome: "Succeeded", result: { metrics: { acc: 0.7 }, primary: 0.7 }, logTail: [], wallSeconds: 1, gpuSeconds: 0 } as const
  /** A backend whose first watch streams `first` and loses its connection; each later one streams `then`, from the log's start, and the job's end. */
  const remote = (first: ReadonlyArray<string>, then: ReadonlyArray<string>) => {
    let watches = 0
    const backend: Backend.BackendShape = {
      name: "remote",
      submit: () => Effect.succeed(job),
      watch: () =>
        ++watches === 1
          ? Stream.concat(Stream.fromIterable(first.map(log)), Stream.fail(new Errors.BackendError({ backend: "remote", operation: "watch", message: "connection reset", retryable: true })))
          : Stream.fromIterable([...then.map(log), done]),
      cancel: () => Effect.void,
      list: () => Effect.succeed([]),
      capacity: Effect.succeed({ slots: 1, gpus: 0, inUse: 0 })
    }
    return backend
  }
  const kept = (dir: string) => fs.readFileSync(path.join(dir, "n1", "trex-job.log"), "utf8")

  it.live("a watch that streams the log from its start again replaces it at the job's end; one that finds it gone keeps it; secrets are taken out as it is written", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-joblog-"))
      const env = { HUB_TOKEN: Redacted.make("hub_s3cr3t_v4lue") }
      const again = TemplateExecutor.make(remote(["epoch 1", "token hub_s3cr3t_v4lue"], ["epoch 1", "token hub_s3cr3t_v4lue", "epoch 2", "done"]), { taskDir: "/tmp", env, logDir: dir })
      assert.strictEqual((yield* Stream.runCollect(again.run(request))).at(-1)?._tag, "Finished")
      assert.strictEqual(kept(dir), "epoch 1\ntoken <secret HUB_TOKEN>\nepoch 2\ndone\n")
      assert.deepStrictEqual(fs.readdirSync(path.join(dir, "n1")), ["trex-job.log"], "no .next left")
      // the backend's log was gone when it was followed again: what was kept stays
      const gone = fs.mkdtempSync(path.join(os.tmpdir(), "trex-joblog-"))
      yield* Stream.runCollect(TemplateExecutor.make(remote(["epoch 1", "epoch 2"], []), { taskDir: "/tmp", logDir: gone }).run(request))
      assert.strictEqual(kept(gone), "epoch 1\nepoch 2\n")
      assert.deepStrictEqual(fs.readdirSync(path.join(gone, "n1")), ["trex-job.log"])
    }))

  it.live("a folder it cannot write is said once, and the trial goes on", () =>
    Effect.gen(function*() {
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "trex-joblog-")), "not-a-folder")
      fs.writeFileSync(file, "")
      const lines: Array<string> = []
      const seen = yield* Stream.runCollect(TemplateExecutor.make(remote(["a"], ["a", "b"]), { taskDir: "/tmp", logDir: file }).run(request)).pipe(
        Effect.provide(Logger.layer([Logger.make((o) => void lines.push(`${o.logLevel}: ${String(o.message)}`))]))
      )
      const last = seen.at(-1)
      assert.strictEqual(last?._tag === "Finished" ? last.result.score : undefined, 0.7)
      const said = lines.filter((l) => l.includes("is no longer kept"))
      assert.deepStrictEqual(said, [`Warn: trial n1: the job's log is no longer kept in ${file}/n1/trex-job.log (start: ENOTDIR: not a directory, mkdir '${file}/n1')`])
    }))
})

describe("TemplateExecutor.withdraw", () => {
  it.effect("asks the backend to withdraw a queued job; without the backend's support the trial is to be stopped; on the backend's error it is let run (the job may still start)", () =>
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
      assert.isFalse(yield* failing.withdraw!(job), "a withdraw that failed did not withdraw: stopping the trial could run it twice")
    }))
})

describe("TemplateExecutor, a job that reports at every step", () => {
  const job: ExperimentNode.JobRef = { backend: "loud", id: "j1", data: {} }
  const node = { id: "n1", parent: "root", strategy: Schema.decodeUnknownSync(Strategy.Strategy)({ data: { sources: [{ name: "toy" }] }, training: { learningRate: 0.001, epochs: 1, batchSize: 8 } }), fingerprint: "f", proposedAt: 0 } as ExperimentNode.NodeSpec
  const request = { task: Schema.decodeUnknownSync(Task.Task)({ name: "t", objective: "o", metric: { name: "acc", direction: "maximize" }, recipe: { command: ["train"] } }), runId: "r", runDir: "/tmp", node }
  /** 10,000 steps, each a train loss (on stdout and in metrics.jsonl: twice) and a progress report, in polls of 500 steps; an eval point at the end. */
  const loud = (): Backend.BackendShape => {
    const polls: Array<Array<Backend.JobEvent>> = []
    for (let poll = 0; poll < 20; poll++) {
      const chunk: Array<Backend.JobEvent> = []
      for (let step = poll * 500; step < (poll + 1) * 500; step++) {
        chunk.push({ _tag: "Metric", point: { step, split: "train", name: "loss", value: 1 / (step + 1) } })
        chunk.push({ _tag: "Progress", fraction: step / 10_000, message: `step ${step}` })
      }
      // the same points again, from metrics.jsonl
      for (let step = poll * 500; step < (poll + 1) * 500; step++) chunk.push({ _tag: "Metric", point: { step, split: "train", name: "loss", value: 1 / (step + 1) } })
      polls.push(chunk)
    }
    polls.push([
      { _tag: "Metric", point: { step: 10_000, split: "eval", name: "acc", value: 0.9 } },
      { _tag: "Exit", outcome: "Succeeded", result: { metrics: { acc: 0.9 }, primary: 0.9 }, logTail: [], wallSeconds: 1, gpuSeconds: 0 }
    ])
    return {
      name: "loud",
      submit: () => Effect.succeed(job),
      watch: () => Stream.fromIterable(polls).pipe(Stream.flatMap((chunk) => Stream.fromArray(chunk), { concurrency: 1 }), Stream.rechunk(1501)),
      cancel: () => Effect.void,
      list: () => Effect.succeed([]),
      capacity: Effect.succeed({ slots: 1, gpus: 1, inUse: 0 })
    }
  }

  it.effect("a poll's reports are one progress event; the curves are thinned, not cut: they end at the last step and keep the eval point", () =>
    Effect.gen(function*() {
      const executor = TemplateExecutor.make(loud(), { taskDir: "/tmp", maxCurvePoints: 200 })
      const seen = yield* Stream.runCollect(executor.run(request))
      const progress = seen.filter((e) => e._tag === "Progress")
      // 21 polls, not 30,001 events (one per line): the journal gets one entry a poll
      assert.isAtMost(progress.length, 21)
      // the points passed on (journaled) are a few hundred, not the 20,000 lines reported
      const passed = progress.flatMap((e) => e._tag === "Progress" ? e.metrics : [])
      assert.isAtMost(passed.length, 1200)
      const finished = seen.at(-1)!
      assert.strictEqual(finished._tag, "Finished")
      const curves = finished._tag === "Finished" ? finished.result.curves : []
      assert.isAtMost(curves.length, 200)
      const train = curves.filter((p) => p.split === "train").map((p) => p.step)
      assert.deepStrictEqual([train[0], train.at(-1)], [0, 9999], "the first and the latest step")
      assert.ok(train.every((s, i) => i === 0 || s > train[i - 1]!), "in order, each step once")
      assert.isAtMost(Math.max(...train.slice(1).map((s, i) => s - train[i]!)), 10_000 / 50, "spread over the whole run")
      assert.deepStrictEqual(curves.filter((p) => p.split === "eval"), [{ step: 10_000, split: "eval", name: "acc", value: 0.9 }])
    }))

  it.effect("reports of progress alone (a bar's fraction, thousands a second) are passed on at most once a second", () =>
    Effect.gen(function*() {
      const polls = Array.from({ length: 50 }, (_, poll) =>
        Array.from({ length: 200 }, (_, k): Backend.JobEvent => ({ _tag: "Progress", fraction: (poll * 200 + k) / 10_000 })))
      const backend: Backend.BackendShape = {
        name: "bar",
        submit: () => Effect.succeed(job),
        // the test clock stands still: every poll comes within the same second
        watch: () =>
          Stream.concat(
            Stream.fromIterable(polls).pipe(Stream.flatMap((chunk) => Stream.fromArray(chunk), { concurrency: 1 }), Stream.rechunk(200)),
            Stream.make({ _tag: "Exit", outcome: "Succeeded", result: { metrics: { acc: 0.9 }, primary: 0.9 }, logTail: [], wallSeconds: 1, gpuSeconds: 0 } as const)
          ),
        cancel: () => Effect.void,
        list: () => Effect.succeed([]),
        capacity: Effect.succeed({ slots: 1, gpus: 1, inUse: 0 })
      }
      const seen = yield* Stream.runCollect(TemplateExecutor.make(backend, { taskDir: "/tmp" }).run(request))
      assert.deepStrictEqual(seen.map((e) => e._tag === "Progress" ? `Progress:${e.fraction}` : e._tag), ["Submitted", "Progress:0.0199", "Finished"])
    }))
})
