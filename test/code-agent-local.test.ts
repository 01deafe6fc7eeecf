// The code agent on the real local backend (real child processes): its job identities (a command and
// the node's training job never collide), and what a restarted controller does with the jobs a
// SIGKILLed one left. Here, not in packages/agents/test: the agents package never depends on
// @trex/executors, and its own tests bring a backend of their own (ProcessBackend).
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { AnthropicModel, CodeAgentExecutor, Model } from "@trex/agents"
import { Backend, type ExecutorAgent, type ExperimentNode } from "@trex/core"
import { LocalBackend } from "@trex/executors"
import { Effect, Fiber, Redacted, Stream } from "effect"
import { broken, firstMessage, lastToolResults, request } from "../packages/agents/test/support/codeAgentToy.ts"
import * as Fake from "../packages/agents/test/support/FakeAnthropicServer.ts"
import * as Killed from "./support/killedController.ts"

const node = process.execPath
/** A training job that counts its runs (`runsOf`); it waits for a `go` file if `waits`, and if `fails` exits 3. */
const counted = (waits: boolean, fails = false) => `import * as fs from "node:fs"
const dir = process.env.TREX_JOB_DIR
fs.appendFileSync(dir + "/../runs-" + JSON.parse(fs.readFileSync(dir + "/job.json", "utf8")).node + ".txt", "ran\\n")
console.log("started")
${waits ? `while (!fs.existsSync(dir + "/go")) await new Promise((r) => setTimeout(r, 50))` : ""}
${fails ? `console.error("the attempt broke"); process.exit(3)` : ""}
fs.writeFileSync(dir + "/result.json", JSON.stringify({ metrics: { accuracy: 0.9 }, primary: 0.9 }))
`
const runsOf = (root: string, nodeId: string) => {
  const file = Path.join(root, "jobs", `runs-${nodeId}.txt`)
  return Fs.existsSync(file) ? Fs.readFileSync(file, "utf8").trim().split("\n").length : 0
}

const finishedOf = (events: ReadonlyArray<ExecutorAgent.ExecutionEvent>) => {
  const last = events.at(-1)
  if (last?._tag !== "Finished") return assert.fail(`no Finished event: ${JSON.stringify(events.at(-1))}`)
  return last.result
}

const gone = (pid: number) => {
  try {
    process.kill(pid, 0)
    return Fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.startsWith("Z")
  } catch {
    return true
  }
}

const waitFor = (what: string, check: () => boolean, timeoutMs = 20_000) => Killed.waitFor(what, check, timeoutMs, 50)

describe("CodeAgentExecutor on the real local backend", () => {
  const onLocal = (root: string, url: string, options: CodeAgentExecutor.Options = {}) =>
    Effect.gen(function*() {
      const backend = yield* LocalBackend.make({ root: Path.join(root, "jobs"), slots: 1, killGraceMs: 1000 })
      const executor = yield* CodeAgentExecutor.make({ maxTurns: 6, ...options }).pipe(
        Effect.provideService(Model.Model, AnthropicModel.make({ apiKey: Redacted.make("sk-test"), baseURL: url })),
        Effect.provideService(Backend.Backend, backend)
      )
      return { backend, executor }
    })
  // a test that fails leaves no job of a killed controller behind: each supervisor and process group is killed
  const killJobs = (root: string) => {
    const jobs = Path.join(root, "jobs")
    for (const dir of Fs.existsSync(jobs) ? Fs.readdirSync(jobs) : []) {
      const file = Path.join(jobs, dir, "pid")
      if (!Fs.existsSync(file)) continue
      const { pid, supervisorPid } = JSON.parse(Fs.readFileSync(file, "utf8")) as { pid: number; supervisorPid: number }
      for (const target of [supervisorPid, -pid]) {
        try {
          process.kill(target, "SIGKILL")
        } catch {
          // gone already
        }
      }
    }
  }
  const tmp = Effect.acquireRelease(
    Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-code-agent-local-"))),
    (root) =>
      Effect.sync(() => {
        killJobs(root)
        Fs.rmSync(root, { recursive: true, force: true })
      })
  )

  it.live("a reply holding run_command and submit_training_job, then a training retry right after a failed attempt, all run", () =>
    Effect.gen(function*() {
      const root = yield* tmp
      const server = yield* Fake.make((req, i) => {
        switch (i) {
          case 0:
            // a fast model: the check, a broken training run and, once told, the fixed one, each at once
            return Fake.message([
              Fake.toolUse("write_file", { path: "broken.mjs", content: broken }),
              Fake.toolUse("write_file", { path: "train.mjs", content: counted(false) }),
              Fake.toolUse("run_command", { argv: [node, "-e", "console.log('checked')"] }),
              Fake.toolUse("submit_training_job", { argv: [node, "broken.mjs"] })
            ])
          case 1: {
            const results = lastToolResults(req)
            assert.deepStrictEqual(results.map((r) => r.is_error === true), [false, false, false, true])
            assert.include(results[2]!.content, "checked")
            assert.include(results[3]!.content, "training attempt 1 of 3 failed")
            return Fake.message([Fake.toolUse("submit_training_job", { argv: [node, "train.mjs"] })])
          }
          default:
            return Fake.error(400, "invalid_request_error", "unexpected extra turn")
        }
      })
      const { executor } = yield* onLocal(root, server.url)
      const events = yield* Stream.runCollect(executor.run(request(root)))
      const result = finishedOf(events)
      assert.isUndefined(result.failure, result.failure?.message)
      assert.strictEqual(result.score, 0.9)
      assert.strictEqual(events.filter((e) => e._tag === "Submitted").length, 2)
      assert.strictEqual(runsOf(root, "n1"), 1)
      assert.isTrue(Fs.existsSync(Path.join(root, "jobs", "n1", "result.json")), "the node's directory holds its result")
      assert.include(Fs.readFileSync(Path.join(root, "jobs", "n1.cmd", "stdout.log"), "utf8"), "checked")
    }).pipe(Effect.scoped))

  it.live("a secret of the controller's that local jobs inherit (HF_TOKEN) reaches the job, never the model: its value is replaced by its name", () =>
    Effect.gen(function*() {
      const root = yield* tmp
      const secret = "hf_inherited_Secret_0123456789"
      const before = process.env["HF_TOKEN"]
      yield* Effect.acquireRelease(
        Effect.sync(() => (process.env["HF_TOKEN"] = secret)),
        () => Effect.sync(() => (before === undefined ? delete process.env["HF_TOKEN"] : (process.env["HF_TOKEN"] = before)))
      )
      const show = `console.log("token=" + process.env.HF_TOKEN)`
      const server = yield* Fake.make((req, i) => {
        if (i === 0) {
          const said = firstMessage(req)
          assert.include(said, "the local backend")
          assert.include(said, `the task folder (${root})`)
          return Fake.message([Fake.toolUse("run_command", { argv: [node, "-e", show] })])
        }
        if (i === 1) {
          const [shown] = lastToolResults(req)
          assert.include(shown!.content, "token=<secret HF_TOKEN>")
          assert.notInclude(JSON.stringify(req.body), secret)
          return Fake.message([
            Fake.toolUse("write_file", { path: "train.mjs", content: `${show}\nif (process.env.HF_TOKEN !== ${JSON.stringify(secret)}) process.exit(4)\n${counted(false)}` }),
            Fake.toolUse("submit_training_job", { argv: [node, "train.mjs"] })
          ])
        }
        return Fake.error(400, "invalid_request_error", "unexpected extra turn")
      })
      const { executor } = yield* onLocal(root, server.url, { taskDir: root })
      const events = yield* Stream.runCollect(executor.run(request(root)))
      const result = finishedOf(events)
      assert.isUndefined(result.failure, result.failure?.message)
      const logs = events.flatMap((e) => (e._tag === "Log" ? [e.line] : []))
      assert.include(logs, "token=<secret HF_TOKEN>")
      assert.notInclude(JSON.stringify(events), secret)
    }).pipe(Effect.scoped))

  /**
   * Start a controller (a child process) running the agent for `nodeId`, resumed with `resume` if
   * given (what the Explorer adds to the request); SIGKILL it once `ready`.
   */
  const killedWhen = (root: string, url: string, nodeId: string, ready: () => boolean, resume?: Partial<ExecutorAgent.ExecutionRequest>) =>
    Killed.killedWhen([root, url, nodeId, ...(resume !== undefined ? [JSON.stringify(resume)] : [])], ready, { timeoutMs: 20_000 })

  it.live("killed (SIGKILL) during a run_command, the resumed session cancels the orphaned command and finishes the node", () =>
    Effect.gen(function*() {
      const root = yield* tmp
      let sessions = 0
      const server = yield* Fake.make((req) => {
        if (req.body.messages.length !== 1) return Fake.error(400, "invalid_request_error", "unexpected extra turn")
        // the killed session's first turn: a command that runs until killed; the resumed one's: check and train at once
        return ++sessions === 1
          ? Fake.message([Fake.toolUse("run_command", { argv: [node, "-e", "console.log('started'); setInterval(() => {}, 1000)"] })])
          : Fake.message([
            Fake.toolUse("write_file", { path: "train.mjs", content: counted(false) }),
            Fake.toolUse("run_command", { argv: [node, "-e", "console.log('checked')"] }),
            Fake.toolUse("submit_training_job", { argv: [node, "train.mjs"] })
          ])
      })
      const cmdDir = Path.join(root, "jobs", "n1.cmd")
      const stdout = Path.join(cmdDir, "stdout.log")
      yield* killedWhen(root, server.url, "n1", () => Fs.existsSync(stdout) && Fs.readFileSync(stdout, "utf8").includes("started"))
      const orphan = JSON.parse(Fs.readFileSync(Path.join(cmdDir, "pid"), "utf8")).pid as number
      assert.isFalse(gone(orphan), "the command outlives its controller")

      const { backend, executor } = yield* onLocal(root, server.url)
      // no submission on record: the Explorer asks the executor to reconcile
      const events = yield* Stream.runCollect(executor.run({ ...request(root), reconcile: true }))
      const result = finishedOf(events)
      assert.isUndefined(result.failure, result.failure?.message)
      assert.strictEqual(result.score, 0.9)
      assert.isTrue(gone(orphan), "the orphaned command was cancelled")
      assert.strictEqual(server.requests.length, 2)
      assert.strictEqual(runsOf(root, "n1"), 1)
      assert.include(Fs.readFileSync(stdout, "utf8"), "checked")
      assert.strictEqual((yield* backend.capacity).inUse, 0)
    }).pipe(Effect.scoped))

  it.live("killed (SIGKILL) while a training job runs that was never recorded, the resumed session adopts it: trained once", () =>
    Effect.gen(function*() {
      const root = yield* tmp
      const server = yield* Fake.make((_, i) =>
        i === 0
          ? Fake.message([
            Fake.toolUse("write_file", { path: "train.mjs", content: counted(true) }),
            Fake.toolUse("submit_training_job", { argv: [node, "train.mjs"] })
          ])
          : Fake.error(400, "invalid_request_error", "the adopted job needs no model")
      )
      yield* killedWhen(root, server.url, "n2", () => runsOf(root, "n2") === 1)
      const { executor } = yield* onLocal(root, server.url)
      const node2 = { ...request(root).node, id: "n2" }
      const running = yield* Stream.runCollect(executor.run({ ...request(root), node: node2, reconcile: true })).pipe(Effect.forkChild)
      yield* Effect.sleep("300 millis")
      Fs.writeFileSync(Path.join(root, "jobs", "n2", "go"), "")
      const events = yield* Fiber.join(running)
      const result = finishedOf(events)
      assert.isUndefined(result.failure, result.failure?.message)
      assert.strictEqual(result.score, 0.9)
      assert.strictEqual(runsOf(root, "n2"), 1, "the training ran once")
      assert.strictEqual(server.requests.length, 1)
      assert.isTrue(events.some((e) => e._tag === "Submitted"), "the adopted job is reported, to be journaled")
    }).pipe(Effect.scoped))

  it.live("killed (SIGKILL) after a failed training attempt, before the next, the resumed session goes on with the attempts left", () =>
    Effect.gen(function*() {
      const root = yield* tmp
      let sessions = 0
      const server = yield* Fake.make((req) => {
        if (req.body.messages.length !== 1) {
          // the killed session, told its attempt failed, is killed while it waits for its model
          return sessions === 1 ? Fake.error(529, "overloaded_error", "overloaded", { "retry-after": "60" }) : Fake.error(400, "invalid_request_error", "unexpected extra turn")
        }
        if (++sessions === 1) {
          return Fake.message([
            Fake.toolUse("write_file", { path: "broken.mjs", content: broken }),
            Fake.toolUse("submit_training_job", { argv: [node, "broken.mjs"] })
          ])
        }
        const said = firstMessage(req)
        assert.include(said, "resumed after a restart")
        assert.include(said, "Training attempt 1 of 3 failed (Crash)")
        assert.include(said, "consle is not defined")
        assert.include(said, "write them again")
        return Fake.message([
          Fake.toolUse("write_file", { path: "train.mjs", content: counted(false) }),
          Fake.toolUse("submit_training_job", { argv: [node, "train.mjs"] })
        ])
      })
      yield* killedWhen(root, server.url, "n3", () => server.requests.length >= 2)
      const { backend, executor } = yield* onLocal(root, server.url)
      // the failed attempt's submission is on record: the Explorer hands it to the new session
      const recorded = (yield* backend.list("r1")).find((j) => j.labels.node === "n3")
      assert.strictEqual(recorded?.state, "Finished")
      assert.isNumber(recorded?.submittedAt, "the local backend says when a job was submitted")
      const node3 = { ...request(root).node, id: "n3" }
      const events = yield* Stream.runCollect(executor.run({ ...request(root), node: node3, job: recorded!.ref }))
      const result = finishedOf(events)
      assert.isUndefined(result.failure, result.failure?.message)
      assert.strictEqual(result.score, 0.9)
      assert.strictEqual(server.requests.length, 3)
      assert.strictEqual(runsOf(root, "n3"), 1)
      const submitted = events.flatMap((e) => (e._tag === "Submitted" ? [e.job] : []))
      assert.strictEqual(submitted.length, 1, "the new attempt only: the reattached job is on record already")
    }).pipe(Effect.scoped))

  it.live("killed (SIGKILL) twice, each time after a failed training attempt, the node ends after its third attempt (maxAttempts 3), never a fourth", () =>
    Effect.gen(function*() {
      const root = yield* tmp
      let sessions = 0
      const server = yield* Fake.make((req) => {
        if (req.body.messages.length === 1) {
          const said = firstMessage(req)
          // the first session starts afresh; each resumed one is told how many attempts are left
          if (++sessions === 2) assert.include(said, "Training attempt 1 of 3 failed (Crash)")
          if (sessions === 3) {
            assert.include(said, "Training attempt 1 failed before it. Training attempt 2 of 3 failed (Crash)")
            assert.include(said, "1 training attempt(s) left of 3")
          }
          return Fake.message([
            Fake.toolUse("write_file", { path: "train.mjs", content: counted(false, true) }),
            Fake.toolUse("submit_training_job", { argv: [node, "train.mjs"] })
          ])
        }
        // told its attempt failed: the killed sessions wait for their model until killed; the last
        // one, had it attempts left, would submit a fourth
        return sessions < 3
          ? Fake.error(529, "overloaded_error", "overloaded", { "retry-after": "60" })
          : Fake.message([Fake.toolUse("submit_training_job", { argv: [node, "train.mjs"] })])
      })
      const node4 = { ...request(root).node, id: "n4" }
      // what the Explorer journals: every job reported Submitted (here, by the killed controllers)
      const journaled = () =>
        Fs.readFileSync(Path.join(root, "submitted-n4.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as ExperimentNode.JobRef)
      yield* killedWhen(root, server.url, "n4", () => server.requests.length >= 2)
      assert.strictEqual(runsOf(root, "n4"), 1)
      const first = journaled()
      yield* killedWhen(root, server.url, "n4", () => server.requests.length >= 4, { job: first.at(-1)!, jobs: first })
      assert.strictEqual(runsOf(root, "n4"), 2)
      const second = journaled()
      assert.strictEqual(second.length, 2, "one record per submission: the reattached job was not reported again")
      // the local backend keeps one job per node directory: it lists the last attempt only
      const { backend, executor } = yield* onLocal(root, server.url)
      assert.strictEqual((yield* backend.list("r1")).filter((j) => j.labels.node === "n4").length, 1)

      const events = yield* Stream.runCollect(executor.run({ ...request(root), node: node4, job: second.at(-1)!, jobs: second }))
      const result = finishedOf(events)
      assert.strictEqual(result.failure?.kind, "Crash")
      assert.isTrue(result.failure!.logTail.some((l) => l.includes("the attempt broke")), result.failure!.logTail.join("\n"))
      assert.strictEqual(runsOf(root, "n4"), 3, "three training attempts in all")
      assert.strictEqual(server.requests.length, 5, "the model is not asked again after the third attempt")
    }).pipe(Effect.scoped))
})
