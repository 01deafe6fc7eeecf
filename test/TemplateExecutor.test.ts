// The template executor on the real local backend: every way a trial can end becomes the right
// node result (never a crash of the run).
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { TemplateExecutor } from "@trex/agents"
import { Backend, type ExecutorAgent, Fingerprint, type Result, Strategy } from "@trex/core"
import { HeldSubmit, TreeBuilder } from "@trex/core/testing"
import { LocalBackend } from "@trex/executors"
import { Effect, Stream } from "effect"

const task = TreeBuilder.task({ metric: { name: "acc", direction: "maximize" } })
const strategy = Strategy.decodeSync({ data: { sources: [{ name: "d" }] }, training: { learningRate: 0.01, epochs: 1, batchSize: 4 } })

/** Run one node whose job is the given Node.js program; returns the node's events. */
const runJob = (program: string, options: { timeLimitSeconds?: number; env?: Record<string, string> } = {}) =>
  Effect.scoped(
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-template-"))
      fs.writeFileSync(path.join(dir, "job.mjs"), program)
      const backend = yield* LocalBackend.make({ root: path.join(dir, "jobs"), slots: 1, killGraceMs: 500 })
      const executor = TemplateExecutor.make(backend, { taskDir: dir })
      const node = { id: "n1", parent: "root", strategy, fingerprint: Fingerprint.of(strategy), proposedAt: 0 }
      const recipe = {
        command: [process.execPath, "{taskDir}/job.mjs", "{node}"],
        env: options.env ?? {},
        resources: { gpus: 0, cpus: 1, ...(options.timeLimitSeconds !== undefined ? { timeLimitSeconds: options.timeLimitSeconds } : {}) }
      }
      const events = yield* executor.run({ task: { ...task, recipe }, runId: "r", runDir: dir, node }).pipe(Stream.runCollect)
      return Array.from(events) as Array<ExecutorAgent.ExecutionEvent>
    })
  )

const resultOf = (events: ReadonlyArray<ExecutorAgent.ExecutionEvent>): Result.Result => {
  const last = events.at(-1)
  assert.strictEqual(last?._tag, "Finished")
  return (last as Extract<ExecutorAgent.ExecutionEvent, { _tag: "Finished" }>).result
}

const writeResult = (json: string) =>
  `import fs from "node:fs"; fs.writeFileSync(process.env.TREX_JOB_DIR + "/result.json", ${JSON.stringify(json)});`

describe("TemplateExecutor on the local backend", () => {
  it.live("a successful job: score from `primary`, curves and cost recorded", () =>
    Effect.gen(function*() {
      const events = yield* runJob(
        `console.log('TREX_METRIC {"step":1,"split":"train","name":"loss","value":0.5}'); ` +
          `if (process.argv[2] !== "n1") process.exit(9); ` + writeResult(`{"metrics":{"acc":0.7,"f1":0.6},"primary":0.75}`)
      )
      assert.strictEqual(events[0]!._tag, "Submitted")
      const r = resultOf(events)
      assert.strictEqual(r.score, 0.75)
      assert.deepStrictEqual(r.metrics, { acc: 0.7, f1: 0.6 })
      assert.strictEqual(r.curves.length, 1)
      assert.isAbove(r.cost.wallSeconds, 0)
      assert.isUndefined(r.failure)
    }))

  it.live("without `primary`, the task's metric is the score", () =>
    Effect.gen(function*() {
      const r = resultOf(yield* runJob(writeResult(`{"metrics":{"acc":0.64}}`)))
      assert.strictEqual(r.score, 0.64)
    }))

  it.live("a non-zero exit is a Crash with the last log lines", () =>
    Effect.gen(function*() {
      const r = resultOf(yield* runJob(`console.error("Traceback: CUDA is not available"); process.exit(3)`))
      assert.strictEqual(r.failure?.kind, "Crash")
      assert.strictEqual(r.failure?.exitCode, 3)
      assert.isTrue(r.failure!.logTail.some((l) => l.includes("Traceback: CUDA is not available")))
    }))

  it.live("a job past its time limit is a Timeout", () =>
    Effect.gen(function*() {
      const r = resultOf(yield* runJob(`setTimeout(() => {}, 60000)`, { timeLimitSeconds: 1 }))
      assert.strictEqual(r.failure?.kind, "Timeout")
    }))

  it.live("a job killed like the OOM killer does is OOM", () =>
    Effect.gen(function*() {
      const r = resultOf(yield* runJob(`process.kill(process.pid, "SIGKILL")`))
      assert.strictEqual(r.failure?.kind, "OOM")
    }))

  it.live("exit 0 without result.json, with invalid JSON, or without a score is InvalidOutput", () =>
    Effect.gen(function*() {
      const none = resultOf(yield* runJob(`console.log("done")`))
      assert.strictEqual(none.failure?.kind, "InvalidOutput")
      const notJson = resultOf(yield* runJob(writeResult("{not json")))
      assert.strictEqual(notJson.failure?.kind, "InvalidOutput")
      const badField = resultOf(yield* runJob(writeResult(`{"metrics":{"acc":"high"}}`)))
      assert.strictEqual(badField.failure?.kind, "InvalidOutput")
      // one line, the issue by its path (not a dump of the schema error's cause)
      assert.match(badField.failure!.message, /^result\.json is not valid: metrics\.acc: Expected number$/)
      const noScore = resultOf(yield* runJob(writeResult(`{"metrics":{"f1":0.5}}`)))
      assert.strictEqual(noScore.failure?.kind, "InvalidOutput")
      assert.match(noScore.failure!.message, /no "primary" and no metric "acc"/)
    }))

  it.live("a stream stopped before the job's exit cancels the job; a backend error is an ExecutorError", () =>
    Effect.scoped(
      Effect.gen(function*() {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-template-"))
        // reports a metric, then would run for a minute
        fs.writeFileSync(path.join(dir, "job.mjs"), `console.log('TREX_METRIC {"step":1,"split":"train","name":"loss","value":0.5}'); setTimeout(() => {}, 60000)`)
        const backend = yield* LocalBackend.make({ root: path.join(dir, "jobs"), slots: 1, killGraceMs: 500 })
        const executor = TemplateExecutor.make(backend, { taskDir: dir })
        const node = { id: "n1", parent: "root", strategy, fingerprint: Fingerprint.of(strategy), proposedAt: 0 }
        const recipe = { command: [process.execPath, "{taskDir}/job.mjs"], env: {}, resources: { gpus: 0, cpus: 1 } }
        const request = { task: { ...task, recipe }, runId: "r", runDir: dir, node }
        // the consumer stops after the submission, the job's start and its first metric, as a prune or a stop does
        const seen = Array.from(yield* executor.run(request).pipe(Stream.take(3), Stream.runCollect))
        assert.deepStrictEqual(seen.map((e) => e._tag === "State" ? `State:${e.state}` : e._tag), ["Submitted", "State:Running", "Progress"])
        const job = (seen[0] as Extract<ExecutorAgent.ExecutionEvent, { _tag: "Submitted" }>).job
        const exit = yield* Backend.awaitExit(backend, job)
        assert.strictEqual(exit.outcome, "Cancelled")
        // a job the backend does not know (a reattachment after its files were removed)
        const error = yield* executor.run({ ...request, job: { ...job, id: `${job.id}-gone`, data: {} } }).pipe(Stream.runCollect, Effect.flip)
        assert.strictEqual(error._tag, "ExecutorError")
        assert.strictEqual(error.nodeId, "n1")
        assert.match(error.message, /^local watch: /)
      })
    ))

  it.live("a stop that lands while the job is being submitted still cancels the job once the submit returns", () =>
    Effect.scoped(
      Effect.gen(function*() {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-template-"))
        fs.writeFileSync(path.join(dir, "job.mjs"), `setTimeout(() => {}, 60000)`)
        const local = yield* LocalBackend.make({ root: path.join(dir, "jobs"), slots: 1, killGraceMs: 500 })
        // The backend has the job (the real submit returned) but the submit call has not returned
        // to the executor yet: the moment a stop can land between a submit and its cancel.
        const held = yield* HeldSubmit.make(local)
        const executor = TemplateExecutor.make(held.backend, { taskDir: dir })
        const node = { id: "n1", parent: "root", strategy, fingerprint: Fingerprint.of(strategy), proposedAt: 0 }
        const recipe = { command: [process.execPath, "{taskDir}/job.mjs"], env: {}, resources: { gpus: 0, cpus: 1 } }
        const consumer = yield* executor.run({ task: { ...task, recipe }, runId: "r", runDir: dir, node }).pipe(Stream.runDrain, Effect.forkChild)
        const job = yield* held.stopDuringSubmit(consumer)
        const exit = yield* Backend.awaitExit(local, job).pipe(Effect.timeout("20 seconds"))
        assert.strictEqual(exit.outcome, "Cancelled")
      })
    ))

  it.live("the recipe's env values get the placeholders substituted, per job; other braces pass as they are", () =>
    Effect.gen(function*() {
      const program = `const e = process.env; ` +
        `const ok = e.TAG === "r/n1" && e.DATA === process.argv[1].replace(/job\\.mjs$/, "data") && e.NODE_BIN === process.execPath && e.LITERAL === "{strategy} {Node}"; ` +
        `if (!ok) { console.error(JSON.stringify([e.TAG, e.DATA, e.NODE_BIN, e.LITERAL])); process.exit(3) } ` + writeResult(`{"metrics":{"acc":1}}`)
      const r = resultOf(yield* runJob(program, { env: { TAG: "{run}/{node}", DATA: "{taskDir}/data", NODE_BIN: "{execPath}", LITERAL: "{strategy} {Node}" } }))
      assert.isUndefined(r.failure, r.failure?.logTail.join("\n"))
      assert.strictEqual(r.score, 1)
    }))

  it("substitutes only the four placeholders; strategy values never reach argv", () => {
    assert.deepStrictEqual(
      TemplateExecutor.argv(["{execPath}", "{taskDir}/train.py", "--node={node}", "{run}", "{strategy}", "$(rm -rf /)"], { taskDir: "/t", run: "r1", node: "n2" }),
      [process.execPath, "/t/train.py", "--node=n2", "r1", "{strategy}", "$(rm -rf /)"]
    )
  })
})
