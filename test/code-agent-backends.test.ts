// The code agent on the real Docker, Slurm, Grid Engine and SSH backends that scripts/services/start-all.sh starts (facts in
// scripts/services/.env, as packages/executors/test/*Backend.test.ts read them), and on Kubernetes (the stand-in API
// server, whose kubelet runs each pod's command as a local process), its model the local Messages API
// stand-in. The stand-in plays a model that does what it is told: it takes the interpreter from the task's command
// that the first message names, and checks that each thing the message says of the jobs' directories and
// environment holds on that backend. Without the session knowing its backend (finding BD) the message said
// nothing of where the jobs ran, and said that a node's commands share a directory, which is false on Slurm and
// Grid Engine. And a controller killed (SIGKILL) under a training job it never recorded: the resumed session adopts
// the job from the backend's list, as on the local backend (test/code-agent-local.test.ts).
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { AnthropicModel, CodeAgentExecutor, Model } from "@trex/agents"
import { Backend, type ExecutorAgent, type ExperimentNode, Task } from "@trex/core"
import { Effect, Fiber, Redacted, Stream } from "effect"
import { firstMessage, lastToolResults, request, task } from "../packages/agents/test/support/codeAgentToy.ts"
import * as Fake from "../packages/agents/test/support/FakeAnthropicServer.ts"
import * as Backends from "./support/codeAgentBackends.ts"
import * as Killed from "./support/killedController.ts"

const SECRET = "hf_codeagent_Secret_0123456789"
const base = Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-code-agent-backends-"))
afterAll(() => {
  Fs.rmSync(base, { recursive: true, force: true })
  Fs.rmSync(Backends.sshRoot(base), { recursive: true, force: true }) // the test's SSH host is this machine
})

/** What the first message must say, on each backend, of where the jobs run (Docker's image is the recipe's). */
const where: Record<Backends.Kind, ReadonlyArray<string>> = {
  docker: ["the docker backend", `containers of image ${Backends.IMAGE}`, `not the task folder (${base})`],
  slurm: ["the slurm backend", "compute nodes", "use full paths"],
  gridengine: ["the gridengine backend", "compute nodes", "use full paths"],
  ssh: ["the ssh backend", "a remote host", `not the task folder ${base}`],
  kubernetes: ["the kubernetes backend", `pods of image ${Backends.IMAGE}`, `not the task folder ${base}`]
}

/** What the stand-in writes: a library in a subdirectory, and a training job that needs it, the secret and TOY_MODE. */
const lib = `hello() { echo "hello from lib ($TOY_MODE)"; }\n`
const train = [
  `. src/lib.sh; hello`,
  `[ "$HF_TOKEN" = "${SECRET}" ] || { echo "no secret" >&2; exit 4; }`,
  `echo "token is $HF_TOKEN"`,
  `[ -e made.txt ] && { echo "a command's file reached the training job" >&2; exit 5; }`,
  `echo 'TREX_METRIC {"step":1,"split":"train","name":"loss","value":0.5}'`,
  `echo '{"metrics":{"accuracy":0.9},"primary":0.9}' > "$TREX_JOB_DIR/result.json"`
].join("\n")
const broken = `echo "the token $HF_TOKEN does not help" >&2; echo "ValueError: the first draft broke" >&2; exit 3\n`
/** Names the backends keep in a job directory, which the stand-in tries to write. */
const backendFiles = ["stdout.log", ".trex-env", ".trex-exit"]

const finishedOf = (events: ReadonlyArray<ExecutorAgent.ExecutionEvent>) => {
  const last = events.at(-1)
  if (last?._tag !== "Finished") return assert.fail(`no Finished event: ${JSON.stringify(last)}`)
  return last.result
}

const waitFor = Killed.waitFor

/** Start a controller process running the agent for `nodeId` on `kind` (support/codeAgentController.ts); SIGKILL it once `ready`. */
const killedWhen = (kind: Backends.Kind, url: string, nodeId: string, ready: () => boolean) =>
  Killed.killedWhen([base, url, nodeId], ready, { env: { TREX_CODE_AGENT_BACKEND: kind } })

/** A training job that says it started (a file) and waits for a `go` file in its directory (for 60 s at most: a failed test leaves no job behind). */
const waiting = `touch started\ni=0\nwhile [ ! -e go ]; do i=$((i+1)); [ $i -gt 600 ] && exit 9; sleep 0.1; done\necho '{"metrics":{"accuracy":0.8},"primary":0.8}' > "$TREX_JOB_DIR/result.json"\n`

/** The stand-in's turn: write `script` as train.sh and submit it as a training job. */
const trains = (script: string) => Fake.message([Fake.toolUse("write_file", { path: "train.sh", content: script }), Fake.toolUse("submit_training_job", { argv: ["sh", "train.sh"] })])

/**
 * Kill a controller process running the agent for `nodeId` on `kind` once a `waiting` training job has started, then
 * resume the node in this process with what `resume` adds to the request (given the jobs the killed session reported),
 * let the job finish, and check that it is the node's result (0.8), one training job having started.
 */
const killedThenResumed = (
  kind: Backends.Kind,
  server: { readonly url: string },
  nodeId: string,
  resume: (reported: ReadonlyArray<ExperimentNode.JobRef>) => Partial<ExecutorAgent.ExecutionRequest>
) =>
  Effect.gen(function*() {
    const started = () => Backends.trainingDirs(kind, base, nodeId).filter((d) => Fs.existsSync(Path.join(d, "started")))
    yield* killedWhen(kind, server.url, nodeId, () => started().length > 0)
    const file = Path.join(base, `submitted-${nodeId}.jsonl`)
    const reported = Fs.existsSync(file) ? Fs.readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l) as ExperimentNode.JobRef) : []
    const backend = yield* Backends.make(kind, base)
    const executor = yield* CodeAgentExecutor.make({ maxTurns: 4 }).pipe(
      Effect.provideService(Model.Model, AnthropicModel.make({ apiKey: Redacted.make("sk-test"), baseURL: server.url })),
      Effect.provideService(Backend.Backend, backend)
    )
    const node = { ...request(base).node, id: nodeId }
    const running = yield* Stream.runCollect(executor.run({ ...request(base), node, ...resume(reported) })).pipe(Effect.forkChild)
    yield* Effect.sleep("500 millis")
    for (const d of started()) Fs.writeFileSync(Path.join(d, "go"), "")
    const events = yield* Fiber.join(running)
    const result = finishedOf(events)
    assert.isUndefined(result.failure, `${result.failure?.message}\n${result.failure?.logTail.join("\n")}`)
    assert.strictEqual(result.score, 0.8)
    assert.strictEqual(started().length, 1, "one training job ran")
    return { events, reported }
  })

for (const kind of Backends.kinds) {
  describe(`CodeAgentExecutor on the ${kind === "kubernetes" ? "stand-in API server's" : "real"} ${kind} backend`, () => {
    it.live("what the agent is told of its jobs holds: where they run, the interpreter, the directories, the secret by name only", () =>
      Effect.gen(function*() {
        const recipe = Task.Recipe.make({
          command: ["/bin/sh", "{taskDir}/train.sh"],
          ...(kind === "docker" || kind === "kubernetes" ? { image: Backends.IMAGE } : {}),
          env: { TOY_MODE: "fast" },
          resources: { gpus: 0, cpus: 1, timeLimitSeconds: 120 }
        })
        let shared: boolean | undefined
        let sh = ""
        const server = yield* Fake.make((req, i) => {
          switch (i) {
            case 0: {
              const said = firstMessage(req)
              for (const w of where[kind]) assert.include(said, w)
              assert.include(said, "TOY_MODE=fast")
              assert.include(said, "HF_TOKEN (a secret")
              assert.notInclude(said, SECRET)
              assert.include(said, "stopped after 120 s")
              // what it is told of the directories: a node's commands share one, or each job has a new one
              const sharing = said.includes("a later command finds what an earlier one created")
              const fresh = said.includes("nothing a command creates is there for the next command")
              assert.isTrue(sharing !== fresh, `the message says one thing of the directories: ${said}`)
              shared = sharing
              // the interpreter, from the task's own command
              sh = /training command, which runs there[^:]*: (\S+)/.exec(said)?.[1] ?? assert.fail(`no task command in: ${said}`)
              return Fake.message([
                ...backendFiles.map((path) => Fake.toolUse("write_file", { path, content: "mine\n" })),
                Fake.toolUse("write_file", { path: "src/lib.sh", content: lib }),
                Fake.toolUse("write_file", { path: "src/train.sh", content: train }),
                Fake.toolUse("write_file", { path: "broken.sh", content: broken }),
                Fake.toolUse("run_command", { argv: [sh, "-c", `echo made > made.txt; [ "$(pwd)" = "$TREX_JOB_DIR" ] && . src/lib.sh && hello && env | grep -e TOY_MODE -e HF_TOKEN`] }),
                Fake.toolUse("run_command", { argv: [sh, "-c", "cat made.txt"] }),
                Fake.toolUse("submit_training_job", { argv: [sh, "broken.sh"] })
              ])
            }
            case 1: {
              const results = lastToolResults(req)
              const refused = results.slice(0, backendFiles.length)
              assert.deepStrictEqual(refused.map((r) => r.is_error), backendFiles.map(() => true), JSON.stringify(refused))
              assert.include(refused[0]!.content, "a name the backends keep")
              const [ran, reread, attempt] = results.slice(backendFiles.length + 3)
              assert.notStrictEqual(ran!.is_error, true, ran!.content)
              assert.include(ran!.content, "hello from lib (fast)")
              assert.include(ran!.content, "HF_TOKEN=<secret HF_TOKEN>")
              assert.strictEqual(reread!.is_error !== true, shared, `told ${shared ? "shared" : "new"} directories; a later command read: ${reread!.content}`)
              assert.include(attempt!.content, "training attempt 1 of 3 failed")
              assert.include(attempt!.content, "ValueError: the first draft broke")
              assert.include(attempt!.content, "the token <secret HF_TOKEN> does not help")
              for (const r of results) assert.notInclude(r.content, SECRET)
              return Fake.message([Fake.toolUse("submit_training_job", { argv: [sh, "src/train.sh"] })])
            }
            default:
              return Fake.error(400, "invalid_request_error", "unexpected extra turn")
          }
        })
        const backend = yield* Backends.make(kind, base)
        const executor = yield* CodeAgentExecutor.make({ maxTurns: 4, taskDir: base, env: { HF_TOKEN: Redacted.make(SECRET) } }).pipe(
          Effect.provideService(Model.Model, AnthropicModel.make({ apiKey: Redacted.make("sk-test"), baseURL: server.url })),
          Effect.provideService(Backend.Backend, backend)
        )
        const events = yield* Stream.runCollect(executor.run(request(base, { ...task, recipe })))
        const result = finishedOf(events)
        assert.isUndefined(result.failure, `${result.failure?.message}\n${result.failure?.logTail.join("\n")}`)
        assert.strictEqual(result.score, 0.9)
        assert.strictEqual(server.requests.length, 2)
        const logs = events.flatMap((e) => (e._tag === "Log" ? [e.line] : []))
        assert.include(logs, "token is <secret HF_TOKEN>")
        assert.isFalse(logs.some((l) => l.includes(SECRET)), "no log line holds the secret")
      }).pipe(Effect.scoped), 60_000)

    // not on Grid Engine: the same there, and slower (its scheduler's interval), for the ~2 minutes this file keeps to;
    // not on the Kubernetes stand-in, which lives in this process (a controller process of its own could not share it)
    if (kind === "gridengine" || kind === "kubernetes") return
    it.live("killed (SIGKILL) while a training job runs that was never recorded, the resumed session adopts it: trained once", () =>
      Effect.gen(function*() {
        const server = yield* Fake.make((_, i) => (i === 0 ? trains(waiting) : Fake.error(400, "invalid_request_error", "the adopted job needs no model")))
        const { events } = yield* killedThenResumed(kind, server, "n2", () => ({ reconcile: true }))
        assert.strictEqual(server.requests.length, 1, "the model was not asked again")
        assert.isTrue(events.some((e) => e._tag === "Submitted"), "the adopted job is reported, to be journaled")
      }).pipe(Effect.scoped), 90_000)

    // on Docker, where each job has an id of its own in the node's one directory (the local and SSH backends reuse
    // the directory's id, so reattaching the recorded job follows the later one anyway)
    if (kind !== "docker") return
    it.live("killed (SIGKILL) just after a failed training attempt's retry was submitted, before its record, the resumed session follows the retry: not run beside a new one", () =>
      Effect.gen(function*() {
        const server = yield* Fake.make((_, i) =>
          i === 0 ? trains(broken) : i === 1 ? trains(waiting) : Fake.error(400, "invalid_request_error", "the retry that runs needs no model")
        )
        // resumed with the journal as the kill left it: the first attempt on record, its retry not yet
        const { events, reported } = yield* killedThenResumed(kind, server, "n3", (reported) => ({ job: reported[0]!, jobs: [reported[0]!], onRecord: [reported[0]!] }))
        // (the kill comes when the retry's job has started: the controller may or may not have reported its submit by then)
        assert.include([1, 2], reported.length)
        assert.strictEqual(server.requests.length, 2, "the model was not asked again")
        const submitted = events.flatMap((e) => (e._tag === "Submitted" ? [e.job.id] : []))
        assert.strictEqual(submitted.length, 1, "the retry followed, and reported to be journaled; nothing submitted")
        assert.notStrictEqual(submitted[0], reported[0]!.id, "not the failed attempt")
        if (reported.length === 2) assert.strictEqual(submitted[0], reported[1]!.id)
      }).pipe(Effect.scoped), 90_000)
  })
}
