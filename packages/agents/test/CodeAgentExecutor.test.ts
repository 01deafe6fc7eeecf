import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Backend, type ExecutorAgent, type ExperimentNode, Task } from "@trex/core"
import { HeldSubmit } from "@trex/core/testing"
import { Effect, Fiber, Redacted, Schema, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as CodeAgentExecutor from "../src/CodeAgentExecutor.ts"
import * as AnthropicModel from "../src/model/AnthropicModel.ts"
import * as Model from "../src/model/Model.ts"
import * as OpenAiModel from "../src/model/OpenAiModel.ts"
import * as Fake from "./support/FakeAnthropicServer.ts"
import * as FakeOpenAi from "./support/FakeOpenAiServer.ts"
import { broken, firstMessage, lastToolResults, request, strategy, task } from "./support/codeAgentToy.ts"
import * as ProcessBackend from "./support/ProcessBackend.ts"

const node = process.execPath
const fixed = `import * as fs from "node:fs"
const dir = process.env.TREX_JOB_DIR
const s = JSON.parse(fs.readFileSync(dir + "/strategy.json", "utf8"))
for (let step = 1; step <= s.training.epochs; step++) {
  console.log("TREX_METRIC " + JSON.stringify({ step, split: "train", name: "loss", value: 1 / step }))
}
fs.writeFileSync(dir + "/result.json", JSON.stringify({ metrics: { accuracy: 0.9, lr: s.training.learningRate }, primary: 0.9, summary: "ok" }))
`

const setup = (script: Fake.Handler, options: CodeAgentExecutor.Options = {}, withTask: Task.Task = task) =>
  Effect.gen(function*() {
    const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-code-agent-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(root, { recursive: true, force: true })))
    const server = yield* Fake.make(script)
    const backend = ProcessBackend.make(Path.join(root, "jobs"))
    const executor = yield* CodeAgentExecutor.make({ maxTurns: 12, ...options }).pipe(
      Effect.provideService(Model.Model, AnthropicModel.make({ apiKey: Redacted.make("sk-test"), baseURL: server.url })),
      Effect.provideService(Backend.Backend, backend)
    )
    const events = yield* Stream.runCollect(executor.run(request(root, withTask)))
    return { root, server, backend, events }
  })

/**
 * A session resumed after a restart: the training jobs of node n1 a lost session submitted (each
 * `code` run by node, in order; the last one awaited to its exit unless `lastRuns`) are on the
 * backend, and `resume` says what the Explorer hands the new session (the last recorded job, or
 * `reconcile`). `release` (if any) runs once the new session has started.
 */
const resumedOn = (
  codes: ReadonlyArray<string>,
  resume: (lost: ReadonlyArray<ExperimentNode.JobRef>) => Partial<ExecutorAgent.ExecutionRequest>,
  script: Fake.Handler,
  options: CodeAgentExecutor.Options & {
    readonly lastRuns?: boolean
    readonly release?: (root: string) => void
    /** How the backend lists its jobs to the session (as they come, by default). */
    readonly listed?: (jobs: ReadonlyArray<Backend.JobInfo>) => ReadonlyArray<Backend.JobInfo>
  } = {}
) =>
  Effect.gen(function*() {
    const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-code-agent-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(root, { recursive: true, force: true })))
    const backend = ProcessBackend.make(Path.join(root, "jobs"))
    const lost: Array<ExperimentNode.JobRef> = []
    yield* Effect.addFinalizer(() => Effect.forEach(lost, (ref) => backend.cancel(ref).pipe(Effect.ignore)))
    for (const [i, code] of codes.entries()) {
      const ref = yield* backend.submit({
        name: `lost-${i}`,
        argv: [node, "-e", code],
        env: {},
        files: [],
        resources: { gpus: 0, cpus: 1 },
        labels: { run: "r1", node: "n1" }
      })
      lost.push(ref)
      if (i < codes.length - 1 || options.lastRuns !== true) yield* Backend.awaitExit(backend, ref)
    }
    const server = yield* Fake.make(script)
    const listed = options.listed
    const executor = yield* CodeAgentExecutor.make({ maxTurns: 6, ...options }).pipe(
      Effect.provideService(Model.Model, AnthropicModel.make({ apiKey: Redacted.make("sk-test"), baseURL: server.url })),
      Effect.provideService(Backend.Backend, listed === undefined ? backend : { ...backend, list: (run) => Effect.map(backend.list(run), listed) })
    )
    const running = yield* Stream.runCollect(executor.run({ ...request(root), ...resume(lost) })).pipe(Effect.forkChild)
    if (options.release !== undefined) {
      yield* Effect.sleep("300 millis")
      options.release(root)
    }
    const events = yield* Fiber.join(running)
    const finished = events.at(-1)
    if (finished?._tag !== "Finished") return assert.fail(`no Finished event: ${JSON.stringify(finished)}`)
    return { backend, events, lost, result: finished.result, server }
  })

/** A resumed session over a first training job that failed and a second that waits for `go`: the second is adopted (reported), never run again, the model not asked. */
const adoptsTheRunningJob = (
  resume: (lost: ReadonlyArray<ExperimentNode.JobRef>) => Partial<ExecutorAgent.ExecutionRequest>,
  listed?: (jobs: ReadonlyArray<Backend.JobInfo>) => ReadonlyArray<Backend.JobInfo>
) =>
  Effect.gen(function*() {
    const waits = `const fs = require("node:fs"); const dir = process.env.TREX_JOB_DIR
const go = setInterval(() => { if (fs.existsSync(dir + "/go")) { clearInterval(go); fs.writeFileSync(dir + "/result.json", JSON.stringify({ metrics: { accuracy: 0.8 } })) } }, 50)`
    const { backend, events, lost, result, server } = yield* resumedOn(
      [failing("first attempt broke"), waits],
      resume,
      () => Fake.error(400, "invalid_request_error", "the adopted job needs no model"),
      { lastRuns: true, release: (root) => Fs.writeFileSync(Path.join(root, "jobs", "n1", "go"), ""), ...(listed !== undefined ? { listed } : {}) }
    )
    assert.isUndefined(result.failure, result.failure?.message)
    assert.strictEqual(result.score, 0.8)
    assert.strictEqual(server.requests.length, 0)
    assert.strictEqual(backend.submitted.length, 2, "the running job was not submitted again")
    const adopted = events.flatMap((e) => (e._tag === "Submitted" ? [e.job.id] : []))
    assert.deepStrictEqual(adopted, [lost[1]!.id], "the running job is the one adopted, reported so that it is journaled")
  }).pipe(Effect.scoped)

/** A model that submits `crash` as its first training job, then writes `trainer` as train.mjs and submits that. */
const crashThenFix = (crash: string, trainer: string): Fake.Handler => (_req, i) =>
  Fake.message([
    i === 0
      ? Fake.toolUse("submit_training_job", { argv: [node, "-e", crash] })
      : i === 1
      ? Fake.toolUse("write_file", { path: "train.mjs", content: trainer })
      : Fake.toolUse("submit_training_job", { argv: [node, "train.mjs"] })
  ])

/** A job that prints `what` and exits 3. */
const failing = (what: string) => `console.error(${JSON.stringify(what)}); process.exit(3)`

describe("CodeAgentExecutor", () => {
  it.live("the recipe's env reaches the model's jobs with its placeholders substituted", () =>
    Effect.gen(function*() {
      const check = `const e = process.env
if (e.TAG !== "r1/n1" || e.DATA !== "/tasks/toy/data" || e.LITERAL !== "{x}") { console.error(JSON.stringify([e.TAG, e.DATA, e.LITERAL])); process.exit(3) }
require("node:fs").writeFileSync(e.TREX_JOB_DIR + "/result.json", JSON.stringify({ metrics: { accuracy: 1 } }))`
      const withRecipe = Schema.decodeUnknownSync(Task.Task)({
        ...Schema.encodeSync(Task.Task)(task),
        recipe: { command: ["unused"], env: { TAG: "{run}/{node}", DATA: "{taskDir}/data", LITERAL: "{x}" } }
      })
      const { events } = yield* setup(() => Fake.message([Fake.toolUse("submit_training_job", { argv: [node, "-e", check] })]), { taskDir: "/tasks/toy" }, withRecipe)
      const finished = events.at(-1)!
      if (finished._tag !== "Finished") return assert.fail("no Finished event")
      assert.isUndefined(finished.result.failure, finished.result.failure?.logTail.join("\n"))
      assert.strictEqual(finished.result.score, 1)
    }))

  it.live("on a backend it does not know, the agent is told to count on nothing shared, with the task's command and limits; names the backends keep are refused", () =>
    Effect.gen(function*() {
      const withRecipe = Schema.decodeUnknownSync(Task.Task)({
        ...Schema.encodeSync(Task.Task)(task),
        recipe: { command: ["{execPath}", "{taskDir}/train.mjs"], env: { DATA: "{taskDir}/data" }, resources: { cpus: 2, timeLimitSeconds: 60 } }
      })
      const names = ["pid", "stderr.log", ".trex-anything", "trex-job.sh", "logs/stdout.log"]
      const { events } = yield* setup((req, i) => {
        if (i === 0) {
          const said = firstMessage(req)
          assert.include(said, "Where your jobs run (the process backend): perhaps another machine")
          assert.include(said, "(nor the task folder /tasks/toy)")
          assert.include(said, "Do not count on a file one job created being there for another")
          assert.include(said, `the environment the jobs have): ${node} /tasks/toy/train.mjs`)
          assert.include(said, "Every job's environment has DATA=/tasks/toy/data, TREX_JOB_DIR.")
          assert.include(said, "A training job gets 0 GPU(s), 2 CPU(s), and is stopped after 60 s; a command gets no GPU, 1 CPU and at most 300 s.")
          return Fake.message(names.map((path) => Fake.toolUse("write_file", { path, content: "x" })))
        }
        const results = lastToolResults(req)
        assert.deepStrictEqual(results.map((r) => r.is_error === true), [true, true, true, true, false], JSON.stringify(results))
        assert.include(results[0]!.content, "pid is a name the backends keep for their own files in a job directory")
        return Fake.message([Fake.toolUse("write_file", { path: "train.mjs", content: fixed }), Fake.toolUse("submit_training_job", { argv: [node, "train.mjs"] })])
      }, { taskDir: "/tasks/toy" }, withRecipe)
      const finished = events.at(-1)!
      if (finished._tag !== "Finished") return assert.fail("no Finished event")
      assert.isUndefined(finished.result.failure, finished.result.failure?.logTail.join("\n"))
    }))

  it.live("fixes a failing script: write, run, see the error, rewrite, submit, result", () =>
    Effect.gen(function*() {
      const { backend, events, root, server } = yield* setup((req, i) => {
        switch (i) {
          case 0:
            return Fake.message([Fake.text("Writing the trainer."), Fake.toolUse("write_file", { path: "train.mjs", content: broken })])
          case 1:
            return Fake.message([Fake.toolUse("run_command", { argv: [node, "train.mjs"], timeoutSeconds: 30 })])
          case 2: {
            const [result] = lastToolResults(req)
            // Only a model that saw the failure rewrites the script.
            if (result?.is_error !== true || !result.content.includes("consle is not defined")) return Fake.message([Fake.text("looks fine")])
            return Fake.message([Fake.toolUse("write_file", { path: "train.mjs", content: fixed })])
          }
          case 3:
            return Fake.message([Fake.toolUse("read_file", { path: "./train.mjs" })])
          case 4:
            assert.include(lastToolResults(req)[0]!.content, "TREX_METRIC")
            return Fake.message([Fake.toolUse("submit_training_job", { argv: [node, "train.mjs"] })])
          default:
            return Fake.error(400, "invalid_request_error", "unexpected extra turn")
        }
      })
      const finished = events.at(-1)!
      assert.strictEqual(finished._tag, "Finished")
      if (finished._tag !== "Finished") return
      assert.isUndefined(finished.result.failure)
      assert.strictEqual(finished.result.score, 0.9)
      assert.deepStrictEqual(finished.result.metrics, { accuracy: 0.9, lr: 0.01 })
      assert.deepStrictEqual(finished.result.curves.map((p) => p.value), [1, 0.5])
      assert.strictEqual(server.requests.length, 5)
      assert.isTrue(events.some((e) => e._tag === "Submitted"))
      // both points reported as progress (those of one burst in one event)
      assert.deepStrictEqual(events.flatMap((e) => (e._tag === "Progress" ? e.metrics.map((p) => p.step) : [])), [1, 2])
      // the command has a job identity of its own, the training job the node's
      assert.deepStrictEqual(backend.submitted.map((s) => s.labels.node), ["n1.cmd", "n1"])
      assert.strictEqual(Fs.readFileSync(Path.join(root, "jobs", "n1", "train.mjs"), "utf8"), fixed)
    }))

  it.live("rejects paths outside the workspace and fails with the last logs when attempts run out", () =>
    Effect.gen(function*() {
      const { events, root, server } = yield* setup((req, i) => {
        if (i === 0) {
          return Fake.message([
            Fake.toolUse("write_file", { path: "../escape.mjs", content: "x" }),
            Fake.toolUse("write_file", { path: "/tmp/abs.mjs", content: "x" }),
            Fake.toolUse("write_file", { path: "train.mjs", content: broken })
          ])
        }
        if (i === 1) {
          const results = lastToolResults(req)
          assert.deepStrictEqual(results.map((r) => r.is_error === true), [true, true, false])
        }
        return Fake.message([Fake.toolUse("submit_training_job", { argv: [node, "train.mjs"] })])
      }, { maxAttempts: 2 })
      const finished = events.at(-1)!
      if (finished._tag !== "Finished") return assert.fail("no Finished event")
      assert.strictEqual(finished.result.failure?.kind, "Crash")
      assert.isTrue(finished.result.failure!.logTail.some((l) => l.includes("consle is not defined")))
      assert.strictEqual(server.requests.length, 3)
      assert.isFalse(Fs.existsSync(Path.join(root, "jobs", "escape.mjs")))
      assert.strictEqual(events.filter((e) => e._tag === "Submitted").length, 2)
    }))

  it.live("the node's cost is every job its session ran: a failed training attempt's GPU time is charged with the one that succeeded", () =>
    Effect.gen(function*() {
      const onGpu = Schema.decodeUnknownSync(Task.Task)({
        ...Schema.encodeSync(Task.Task)(task),
        recipe: { command: ["unused"], resources: { gpus: 2, cpus: 1 } }
      })
      // attempt 1 trains for 0.6 s and crashes; attempt 2 succeeds at once
      const slowCrash = `setTimeout(() => { console.error("CUDA error: out of memory"); process.exit(1) }, 600)`
      const { events } = yield* setup(crashThenFix(slowCrash, fixed), { maxAttempts: 2 }, onGpu)
      const finished = events.at(-1)!
      if (finished._tag !== "Finished") return assert.fail("no Finished event")
      assert.strictEqual(finished.result.score, 0.9)
      // both jobs' GPU time (2 GPUs each), not the successful job's alone
      assert.isAtLeast(finished.result.cost.gpuSeconds, 2 * 0.6)
      assert.isAtLeast(finished.result.cost.wallSeconds, 0.6)
      assert.strictEqual(finished.result.cost.gpuSeconds, 2 * finished.result.cost.wallSeconds)
    }))

  it.live("with logDir, the trial's training log is kept as the backend streamed it, secrets taken out: its last training job's, the one its result is", () =>
    Effect.gen(function*() {
      const logDir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-code-agent-logs-"))
      // the failed attempt printed more than the one that succeeded: its log is not the trial's all the same
      const crash = `console.error("Traceback (most recent call last):\\n  File train.py, line 9\\nCUDA error: out of memory"); process.exit(1)`
      const trains = `${fixed}console.log("trained with " + process.env.HUB_TOKEN)\n`
      const { events } = yield* setup(crashThenFix(crash, trains), { maxAttempts: 2, logDir, env: { HUB_TOKEN: Redacted.make("hub_s3cr3t_v4lue") } })
      const finished = events.at(-1)!
      if (finished._tag !== "Finished") return assert.fail("no Finished event")
      assert.strictEqual(finished.result.score, 0.9)
      assert.strictEqual(Fs.readFileSync(Path.join(logDir, "n1", "trex-job.log"), "utf8"), "trained with <secret HUB_TOKEN>\n")
    }))

  it.live("a job that exits 0 without a valid result.json is InvalidOutput", () =>
    Effect.gen(function*() {
      const { events } = yield* setup(() => Fake.message([Fake.toolUse("submit_training_job", { argv: [node, "-e", "console.log('hi')"] })]), { maxAttempts: 1 })
      const finished = events.at(-1)!
      if (finished._tag !== "Finished") return assert.fail("no Finished event")
      assert.strictEqual(finished.result.failure?.kind, "InvalidOutput")
    }))

  it.live("an answer with no content (the API's end_turn with nothing in it) is not sent back empty: the session goes on", () =>
    Effect.gen(function*() {
      const submit = "require('fs').writeFileSync(process.env.TREX_JOB_DIR + '/result.json', JSON.stringify({ metrics: { accuracy: 0.5 } }))"
      const { events, server } = yield* setup((_req, i) =>
        i === 0 ? { kind: "message", content: [], stopReason: "end_turn" } : Fake.message([Fake.toolUse("submit_training_job", { argv: [node, "-e", submit] })])
      )
      const finished = events.at(-1)!
      if (finished._tag !== "Finished") return assert.fail("no Finished event")
      assert.isUndefined(finished.result.failure, finished.result.failure?.message)
      assert.strictEqual(finished.result.score, 0.5)
      assert.strictEqual(server.requests.length, 2)
    }))

  /** Sessions of one executor on `model`, each of node `id` on a fresh backend; `failed(id)` is the error a session fails with. */
  const executorOn = (model: Model.ModelShape) =>
    Effect.gen(function*() {
      const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-code-agent-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(root, { recursive: true, force: true })))
      const executor = yield* CodeAgentExecutor.make().pipe(
        Effect.provideService(Model.Model, model),
        Effect.provideService(Backend.Backend, ProcessBackend.make(Path.join(root, "jobs")))
      )
      return (id: string) => Effect.flip(Stream.runCollect(executor.run({ ...request(root), node: { ...request(root).node, id } })))
    })

  it.live("a key or model the API refuses (401, 403 permission_error, 404) fails the session at once, and every later session without a call", () =>
    Effect.gen(function*() {
      /** The errors of nodes n1, then n2 and n3 at once. */
      const sessions = (model: Model.ModelShape) =>
        Effect.gen(function*() {
          const failed = yield* executorOn(model)
          const first = yield* failed("n1")
          return [first, ...yield* Effect.all([failed("n2"), failed("n3")], { concurrency: 2 })].map((e) => [e.nodeId, e.message, e.retryable, e.setup] as const)
        })
      const claude: ReadonlyArray<readonly [number, string, string, (url: string) => string]> = [
        [401, "authentication_error", "invalid x-api-key", () => "check ANTHROPIC_API_KEY"],
        [403, "permission_error", "Your API key does not have permission to use the specified resource.", () =>
          "check ANTHROPIC_API_KEY: the key may not use this model, set by TREX_MODEL, or this endpoint"],
        [404, "not_found_error", "model: claude-sonet-5-5", (url) => `check the base URL ${url}, set by ANTHROPIC_BASE_URL, and TREX_MODEL`]
      ]
      for (const [status, type, said, hint] of claude) {
        const server = yield* Fake.make(() => Fake.error(status, type, said))
        const errors = yield* sessions(AnthropicModel.make({ apiKey: Redacted.make("sk-test"), baseURL: server.url, model: "claude-sonet-5-5" }))
        const message = `HTTP ${status} ${type}: ${said} (${hint(server.url)})`
        // marked as the settings' (Result.Failure.setup): the explorer stops the run at the first
        assert.deepStrictEqual(errors, [["n1", message, false, true], ["n2", message, false, true], ["n3", message, false, true]])
        assert.strictEqual(server.requests.length, 1, `HTTP ${status}: asked once, not by every session`)
      }
      // an OpenAI-compatible server's refusal alike
      const local = yield* FakeOpenAi.make(() => ({ kind: "error", status: 401, body: "Incorrect API key provided" }))
      const errors = yield* sessions(OpenAiModel.make({ baseURL: local.url, model: "llama", apiKey: Redacted.make("sk-local") }))
      assert.include(errors[0]![1], "(check OPENAI_API_KEY)")
      assert.deepStrictEqual(errors.map(([id, message, retryable, setup]) => [id, message === errors[0]![1], retryable, setup]), [["n1", true, false, true], ["n2", true, false, true], ["n3", true, false, true]])
      assert.strictEqual(local.requests.length, 1)
    }))

  it.effect("a wait the server asks for past maxRetryAfter fails the later sessions at once, without a call, until it is over (TestClock)", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make(() => Fake.error(429, "rate_limit_error", "daily limit reached", { "retry-after-ms": "2000" }))
      const failed = yield* executorOn(AnthropicModel.make({ apiKey: Redacted.make("sk-test"), baseURL: server.url, retry: { maxRetryAfter: "1 second" } }))
      const first = yield* failed("n1")
      assert.include(first.message, "HTTP 429 rate_limit_error: daily limit reached: the server asked to wait 2 s (retry-after) before calling again")
      assert.isFalse(first.retryable)
      // a wait is not the settings': the run's own stop on trials failing alike judges it
      assert.isUndefined(first.setup)
      assert.strictEqual((yield* failed("n2")).message, first.message)
      assert.strictEqual(server.requests.length, 1)
      yield* TestClock.adjust("2 seconds")
      yield* failed("n3")
      assert.strictEqual(server.requests.length, 2, "asked again once the wait was over")
    }))

  it.live("a model that declines (stop reason refusal) ends the session at once with an error that says so, not after every turn", () =>
    Effect.gen(function*() {
      const refusal: Fake.Reply = { kind: "message", content: [Fake.text("I can't help with that.")], stopReason: "refusal" }
      const error = yield* Effect.flip(setup(() => refusal))
      assert.strictEqual(error._tag, "ExecutorError")
      assert.isFalse(error.retryable, "the same request would be declined again")
      assert.match(error.message, /^the model declined to write node n1's code \(stop reason refusal\)/)
      assert.include(error.message, "TREX_MODEL")
    }))

  it.live("a call cut off at maxTokens is not run (a script cut short would be written and run): the model is told, and goes on", () =>
    Effect.gen(function*() {
      const { events, server } = yield* setup((_req, i) =>
        i === 0
          ? { kind: "message", content: [Fake.toolUse("write_file", { path: "train.mjs", content: fixed.slice(0, 60) })], stopReason: "max_tokens" }
          : i === 1
          ? Fake.message([Fake.toolUse("write_file", { path: "train.mjs", content: fixed })])
          : Fake.message([Fake.toolUse("submit_training_job", { argv: [node, "train.mjs"] })]), { maxTokens: 512 })
      const finished = events.at(-1)!
      if (finished._tag !== "Finished") return assert.fail("no Finished event")
      assert.isUndefined(finished.result.failure, finished.result.failure?.message)
      const told = lastToolResults(server.requests[1]!)
      assert.strictEqual(told.length, 1)
      assert.isTrue(told[0]!.is_error)
      assert.match(told[0]!.content, /^not run: your answer was cut off at the output limit \(512 tokens\)/)
    }))

  it.live("a conversation that fills the model's context window ends the session with an error that says so", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(setup(() => ({ kind: "message", content: [Fake.text("Let me")], stopReason: "model_context_window_exceeded" })))
      assert.strictEqual(error._tag, "ExecutorError")
      assert.isFalse(error.retryable)
      assert.match(error.message, /^the model's answer was cut short \(stop reason model_context_window_exceeded\): node n1's conversation outgrew the model's context window at turn 1/)
      assert.include(error.message, "lower logLines (60) or maxTurns (12)")
    }))

  it.live("a conversation that outgrows the model's context window (prompt is too long) is asked again with its old file contents elided: the files still reach the job", () =>
    Effect.gen(function*() {
      const notes = "0123456789".repeat(3_000)
      const trainer = `import * as fs from "node:fs"
const n = fs.readFileSync("notes.txt", "utf8").length
if (n !== ${notes.length}) { console.error("notes.txt has " + n); process.exit(3) }
fs.writeFileSync(process.env.TREX_JOB_DIR + "/result.json", JSON.stringify({ metrics: { accuracy: 0.7 } }))`
      let answered = 0
      const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-code-agent-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(root, { recursive: true, force: true })))
      // a model whose window holds the task and a few turns, not a 30 000-character file as well
      const server = yield* Fake.make(() =>
        answered++ === 0
          ? Fake.message([Fake.toolUse("write_file", { path: "notes.txt", content: notes }), Fake.toolUse("write_file", { path: "train.mjs", content: trainer })])
          : Fake.message([Fake.toolUse("submit_training_job", { argv: [node, "train.mjs"] })]), { contextTokens: 4_000 })
      const executor = yield* CodeAgentExecutor.make({ maxTurns: 12 }).pipe(
        Effect.provideService(Model.Model, AnthropicModel.make({ apiKey: Redacted.make("sk-test"), baseURL: server.url })),
        Effect.provideService(Backend.Backend, ProcessBackend.make(Path.join(root, "jobs")))
      )
      const events = yield* Stream.runCollect(executor.run(request(root)))
      const finished = events.at(-1)!
      if (finished._tag !== "Finished") return assert.fail("no Finished event")
      assert.isUndefined(finished.result.failure, finished.result.failure?.message)
      assert.strictEqual(finished.result.score, 0.7)
      assert.strictEqual(server.requests.length, 3, "the turn refused once, then asked again shorter")
      assert.isAbove(Fake.promptTokens(server.requests[1]!.body), 4_000)
      const shorter = JSON.stringify(server.requests[2]!.body.messages)
      assert.isAtMost(Fake.promptTokens(server.requests[2]!.body), 4_000)
      assert.include(shorter, "characters elided to keep this conversation within the model's context window; the workspace keeps the file: read_file notes.txt shows it")
      assert.include(shorter, "fs.readFileSync(\\\"notes.txt\\\"", "a short file is kept whole")
    }))

  it.live("a task that alone outgrows the model's context window ends the session with the API's message and what to lower", () =>
    Effect.gen(function*() {
      const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-code-agent-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(root, { recursive: true, force: true })))
      const server = yield* Fake.make(() => Fake.message([Fake.text("unreached")]), { contextTokens: 500 })
      const executor = yield* CodeAgentExecutor.make({ maxTurns: 12 }).pipe(
        Effect.provideService(Model.Model, AnthropicModel.make({ apiKey: Redacted.make("sk-test"), baseURL: server.url })),
        Effect.provideService(Backend.Backend, ProcessBackend.make(Path.join(root, "jobs")))
      )
      const error = yield* Effect.flip(Stream.runCollect(executor.run(request(root))))
      assert.strictEqual(error._tag, "ExecutorError")
      assert.isFalse(error.retryable)
      assert.match(error.message, /^HTTP 400 invalid_request_error: prompt is too long: \d+ tokens > 500 maximum \(node n1's conversation outgrew the model's context window at turn 1/)
      assert.include(error.message, "lower logLines (60) or maxTurns (12), or use a model with a larger window (TREX_MODEL))")
      assert.strictEqual(server.requests.length, 1)
    }))

  it.live("a result.json that breaks the protocol fails with the field it breaks", () =>
    Effect.gen(function*() {
      const write = "require('fs').writeFileSync(process.env.TREX_JOB_DIR + '/result.json', JSON.stringify({ metrics: { accuracy: 'high' } }))"
      const { events } = yield* setup(() => Fake.message([Fake.toolUse("submit_training_job", { argv: [node, "-e", write] })]), { maxAttempts: 1 })
      const finished = events.at(-1)!
      if (finished._tag !== "Finished") return assert.fail("no Finished event")
      assert.strictEqual(finished.result.failure?.kind, "InvalidOutput")
      assert.match(finished.result.failure!.message, /does not match the job protocol/)
      assert.match(finished.result.failure!.message, /accuracy/)
    }))
  it.live("a training job that reports at every step: a burst of reports is one progress event, its curves thinned to their bound", () =>
    Effect.gen(function*() {
      const loud = "let out = ''; for (let step = 0; step < 5000; step++) out += 'TREX_METRIC ' + JSON.stringify({ step, split: 'train', name: 'loss', value: 1 / (step + 1) }) + '\\nTREX_PROGRESS ' + JSON.stringify({ fraction: step / 5000 }) + '\\n'; " +
        "process.stdout.write(out, () => require('fs').writeFileSync(process.env.TREX_JOB_DIR + '/result.json', JSON.stringify({ metrics: { accuracy: 0.9 }, primary: 0.9 })))"
      const { events } = yield* setup(() => Fake.message([Fake.toolUse("submit_training_job", { argv: [node, "-e", loud] })]), { maxAttempts: 1 })
      const finished = events.at(-1)!
      if (finished._tag !== "Finished") return assert.fail("no Finished event")
      assert.strictEqual(finished.result.score, 0.9)
      // 10,000 report lines: one event a burst, not one a line
      assert.isAtMost(events.filter((e) => e._tag === "Progress").length, 200)
      const steps = finished.result.curves.map((p) => p.step)
      assert.isAtMost(steps.length, 2000)
      assert.deepStrictEqual([steps[0], steps.at(-1)], [0, 4999])
    }))

  it.live("a stop that lands while a training job is being submitted cancels the job once the submit returns", () =>
    Effect.gen(function*() {
      const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-code-agent-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(root, { recursive: true, force: true })))
      const server = yield* Fake.make(() => Fake.message([Fake.toolUse("submit_training_job", { argv: [node, "-e", "setTimeout(() => {}, 60000)"] })]))
      const processes = ProcessBackend.make(Path.join(root, "jobs"))
      // The job is running, but its submit has not returned to the executor yet.
      const held = yield* HeldSubmit.make(processes)
      const executor = yield* CodeAgentExecutor.make({ maxTurns: 4, maxAttempts: 1 }).pipe(
        Effect.provideService(Model.Model, AnthropicModel.make({ apiKey: Redacted.make("sk-test"), baseURL: server.url })),
        Effect.provideService(Backend.Backend, held.backend)
      )
      const consumer = yield* executor.run(request(root)).pipe(Stream.runDrain, Effect.forkChild)
      const job = yield* held.stopDuringSubmit(consumer)
      const exit = yield* Backend.awaitExit(processes, job).pipe(Effect.timeout("20 seconds"))
      assert.strictEqual(exit.outcome, "Cancelled")
    }).pipe(Effect.scoped))

  /**
   * A session whose model answers `script`; `cancelWhen` says, from the events so far and the model's
   * requests, when to cancel the training job last reported (as a scheduler's prune does).
   */
  const cancelled = (script: Fake.Handler, cancelWhen: (events: ReadonlyArray<ExecutorAgent.ExecutionEvent>, requests: number) => boolean) =>
    Effect.gen(function*() {
      const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-code-agent-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(root, { recursive: true, force: true })))
      const server = yield* Fake.make(script)
      const backend = ProcessBackend.make(Path.join(root, "jobs"))
      const executor = yield* CodeAgentExecutor.make({ maxTurns: 4 }).pipe(
        Effect.provideService(Model.Model, AnthropicModel.make({ apiKey: Redacted.make("sk-test"), baseURL: server.url })),
        Effect.provideService(Backend.Backend, backend)
      )
      const cancel = executor.cancel
      if (cancel === undefined) return assert.fail("the code agent has no cancel: a prune would stop its stream, and what the trial cost is lost")
      const events: Array<ExecutorAgent.ExecutionEvent> = []
      const running = yield* executor.run(request(root)).pipe(Stream.runForEach((e) => Effect.sync(() => events.push(e))), Effect.forkChild)
      for (let i = 0; i < 2000 && !cancelWhen(events, server.requests.length); i++) yield* Effect.sleep("10 millis")
      const job = events.findLast((e) => e._tag === "Submitted")
      if (job?._tag !== "Submitted") return assert.fail("no training job to cancel")
      yield* cancel(job.job)
      yield* Fiber.join(running).pipe(Effect.timeout("10 seconds"))
      const finished = events.at(-1)
      if (finished?._tag !== "Finished") return assert.fail(`no Finished event: ${JSON.stringify(finished)}`)
      return { backend, events, result: finished.result, server }
    })

  it.live("cancel (a prune) ends the node with its training job's Cancelled exit and the cost it ran up: no attempt goes back to the model", () =>
    Effect.gen(function*() {
      const trains = `console.log("TREX_METRIC " + JSON.stringify({ step: 1, split: "eval", name: "accuracy", value: 0.2 })); setInterval(() => {}, 1000)`
      const { backend, events, result, server } = yield* cancelled(
        (_, i) =>
          i === 0
            ? Fake.message([Fake.toolUse("submit_training_job", { argv: [node, "-e", trains] })])
            : Fake.error(400, "invalid_request_error", "a cancelled job is no failed attempt to tell the model of"),
        (events) => events.some((e) => e._tag === "Progress" && e.metrics.length > 0)
      )
      assert.strictEqual(result.failure?.kind, "Cancelled", result.failure?.message)
      assert.isAbove(result.cost.wallSeconds, 0, "the cost the job ran up")
      assert.strictEqual(server.requests.length, 1)
      assert.strictEqual(backend.submitted.length, 1)
      assert.strictEqual(events.filter((e) => e._tag === "Submitted").length, 1)
    }).pipe(Effect.scoped))

  it.live("cancel between training attempts ends the node at once, during its model turn, with the failed attempt's cost", () =>
    Effect.gen(function*() {
      const { backend, result, server } = yield* cancelled(
        (_, i) =>
          i === 0
            ? Fake.message([Fake.toolUse("submit_training_job", { argv: [node, "-e", failing("first attempt broke")] })])
            // told its attempt failed, the model is overloaded: the session waits a minute to ask again
            : Fake.error(529, "overloaded_error", "overloaded", { "retry-after": "60" }),
        (_, requests) => requests >= 2
      )
      assert.strictEqual(result.failure?.kind, "Cancelled", result.failure?.message)
      assert.include(result.failure!.message, "cancelled before training attempt 2 of 3 (attempt 1 failed:")
      assert.isTrue(result.failure!.logTail.some((l) => l.includes("first attempt broke")))
      assert.isAbove(result.cost.wallSeconds, 0, "the failed attempt's cost")
      assert.strictEqual(server.requests.length, 2)
      assert.strictEqual(backend.submitted.length, 1)
    }).pipe(Effect.scoped))

  it.live("resumed on a recorded training job that failed, with attempts left, the agent goes on: told what failed, its next job's result the node's", () =>
    Effect.gen(function*() {
      const { backend, events, result, server } = yield* resumedOn([failing("CUDA out of memory at step 7")], (lost) => ({ job: lost[0]! }), (req, i) => {
        if (i > 0) return Fake.error(400, "invalid_request_error", "unexpected extra turn")
        const said = firstMessage(req)
        assert.include(said, "resumed after a restart")
        assert.include(said, "Training attempt 1 of 3 failed (Crash)")
        assert.include(said, "CUDA out of memory at step 7")
        assert.include(said, "write them again")
        assert.include(said, "2 training attempt(s) left of 3")
        return Fake.message([
          Fake.toolUse("write_file", { path: "train.mjs", content: fixed }),
          Fake.toolUse("submit_training_job", { argv: [node, "train.mjs"] })
        ])
      })
      assert.isUndefined(result.failure, result.failure?.message)
      assert.strictEqual(result.score, 0.9)
      assert.strictEqual(server.requests.length, 1)
      assert.deepStrictEqual(backend.submitted.map((s) => s.labels.node), ["n1", "n1"], "one new training job")
      assert.strictEqual(events.filter((e) => e._tag === "Submitted").length, 1, "the new job only: the reattached one is on record already")
    }).pipe(Effect.scoped))

  it.live("resumed with every training attempt used, the node fails with the last attempt's failure: no new job, the model not asked", () =>
    Effect.gen(function*() {
      const noModel = () => Fake.error(400, "invalid_request_error", "the model must not be asked")
      const codes = [failing("first attempt broke"), failing("second attempt broke")]
      // the last job on record, or none on record: the one to adopt is the last submitted, not the first listed
      const resumes = [(lost: ReadonlyArray<ExperimentNode.JobRef>) => ({ job: lost[1]! }), () => ({ reconcile: true })]
      for (const resume of resumes) {
        const { backend, result, server } = yield* resumedOn(codes, resume, noModel, { maxAttempts: 2 })
        assert.strictEqual(result.failure?.kind, "Crash")
        assert.isTrue(result.failure!.logTail.some((l) => l.includes("second attempt broke")), result.failure!.logTail.join("\n"))
        assert.strictEqual(server.requests.length, 0)
        assert.strictEqual(backend.submitted.length, 2)
      }
    }).pipe(Effect.scoped))

  it.live("resumed on a training job the run's stop cancelled, the agent runs it again: that job is not an attempt", () =>
    Effect.gen(function*() {
      // the job a second Ctrl-C cancelled (as the backend reports it: Cancelled, by SIGTERM)
      const stopped = `process.kill(process.pid, "SIGTERM"); setInterval(() => {}, 1000)`
      const { backend, result, server } = yield* resumedOn([failing("first attempt broke"), stopped], (lost) => ({ job: lost[1]!, jobs: lost }), (req, i) => {
        if (i > 0) return Fake.error(400, "invalid_request_error", "unexpected extra turn")
        const said = firstMessage(req)
        assert.include(said, "Training attempt 1 failed before it.")
        assert.include(said, "Training attempt 2 of 2 was cancelled when the run was stopped")
        assert.include(said, "1 training attempt(s) left of 2")
        return Fake.message([
          Fake.toolUse("write_file", { path: "train.mjs", content: fixed }),
          Fake.toolUse("submit_training_job", { argv: [node, "train.mjs"] })
        ])
      }, { maxAttempts: 2 })
      assert.isUndefined(result.failure, result.failure?.message)
      assert.strictEqual(result.score, 0.9)
      assert.strictEqual(server.requests.length, 1)
      assert.strictEqual(backend.submitted.length, 3, "the cancelled attempt ran again")
    }).pipe(Effect.scoped))

  it.live("reattached to its recorded failed training job while a later one runs unrecorded (the next attempt, submitted just before the crash), the session follows the later one: not run beside a new one", () =>
    // the journal holds the first job only: the second's record was not committed
    adoptsTheRunningJob((lost) => ({ job: lost[0]!, jobs: [lost[0]!], onRecord: [lost[0]!] })))

  it.live("... also on a backend that lists its jobs newest first and without submission times (Docker, Kubernetes by name, SSH by host): the later job is not taken for an earlier one", () =>
    adoptsTheRunningJob(
      (lost) => ({ job: lost[0]!, jobs: [lost[0]!], onRecord: [lost[0]!] }),
      (jobs) => jobs.map(({ submittedAt: _, ...j }) => j).reverse()
    ))

  it.live("reconciling with an earlier failed training job and a later running one, the session adopts the running one: not run again, its result the node's", () =>
    adoptsTheRunningJob(() => ({ reconcile: true })))
})
