import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Backend, Task } from "@trex/core"
import { HeldSubmit } from "@trex/core/testing"
import { Effect, Redacted, Schema, Stream } from "effect"
import * as CodeAgentExecutor from "../src/CodeAgentExecutor.ts"
import * as AnthropicModel from "../src/model/AnthropicModel.ts"
import * as Model from "../src/model/Model.ts"
import * as Fake from "./support/FakeAnthropicServer.ts"
import { broken, lastToolResults, request, strategy, task } from "./support/codeAgentToy.ts"
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
      assert.strictEqual(events.filter((e) => e._tag === "Progress" && e.metrics.length > 0).length, 2)
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

  it.live("a job that exits 0 without a valid result.json is InvalidOutput", () =>
    Effect.gen(function*() {
      const { events } = yield* setup(() => Fake.message([Fake.toolUse("submit_training_job", { argv: [node, "-e", "console.log('hi')"] })]), { maxAttempts: 1 })
      const finished = events.at(-1)!
      if (finished._tag !== "Finished") return assert.fail("no Finished event")
      assert.strictEqual(finished.result.failure?.kind, "InvalidOutput")
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
})

/** A training script that counts its runs in `<jobs root>/runs-<node>.txt`, waits for a `go` file if asked, and scores 0.9. */
