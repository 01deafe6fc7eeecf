/**
 * A resumed trial whose reattached job turns out lost, while that loss's retry (submitted by the controller that
 * crashed, its record not yet committed) runs on: the retry's job is adopted, never run a second time. The explorer
 * and the template executor on the real Docker engine (a backend that gives each job an id of its own while the
 * node's jobs share one directory); the crash is the first controller stopped without cancelling its job, its
 * journal cut just before the retry's `JobSubmitted` (the 20 ms a group commit waits).
 */
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { TemplateExecutor } from "@trex/agents"
import { type Backend, ExperimentTree, Journal } from "@trex/core"
import { DockerBackend } from "@trex/executors"
import { Explorer, Uct } from "@trex/mcts"
import { Effect, Fiber, Layer } from "effect"
import { gridResearcher, layers, makeTask } from "../packages/mcts/test/support/toy.ts"
import { waitFor } from "./support/killedController.ts"

const SOCKET = (process.env["DOCKER_HOST"] ?? "unix:///var/run/docker.sock").replace(/^unix:\/\//, "")
const IMAGE = process.env["TREX_TEST_DOCKER_IMAGE"] ?? "local/busybox:latest"

describe("a resumed trial's retry after its reattached job was lost", () => {
  it.live("adopts the retry's job that the crashed controller submitted but had not recorded: the node's work runs once after the loss", () =>
    Effect.gen(function*() {
      const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-retry-resume-"))
      // a run of its own: the backend lists the run's containers on the whole engine
      const runId = `retry-resume-${Path.basename(root).slice(-6)}`
      const jobsRoot = Path.join(root, "docker")
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          const left = execFileSync("docker", ["ps", "-a", "--filter", `label=trex.run=${runId}`, "--format", "{{.ID}} {{.Label \"trex.jobdir\"}}"], { encoding: "utf8" })
          for (const line of left.split("\n")) {
            const [id, dir] = line.split(" ")
            if (id && dir?.startsWith(jobsRoot)) execFileSync("docker", ["rm", "-f", id], { stdio: "ignore" })
          }
          Fs.rmSync(root, { recursive: true, force: true })
        })
      )
      // each run of the node's job appends a line to runs.txt (kept across its directory's jobs), then waits for `go`
      const recipe = {
        command: ["sh", "-c", `echo run >> "$TREX_JOB_DIR/runs.txt"; while [ ! -e "$TREX_JOB_DIR/go" ]; do sleep 0.1; done; echo '{"metrics": {"score": 0.5}}' > "$TREX_JOB_DIR/result.json"`],
        env: {},
        image: IMAGE,
        resources: { gpus: 0, cpus: 1 }
      }
      // slots of its own: by default the engine's CPU count, less every TREX container running on the engine (the
      // shared-engine files beside it run theirs), and a job queued as a ticket is not removed by `docker rm -f`
      const backendOf = () => DockerBackend.make({ root: jobsRoot, socketPath: SOCKET, image: IMAGE, stopGraceSeconds: 1, slots: 8 })
      const run = (journal: Journal.Journal["Service"], backend: Backend.BackendShape) =>
        Explorer.run(makeTask({ maxTrials: 1 }), { runId, runDir: root, seed: 7 }).pipe(
          Effect.provide(Layer.mergeAll(Layer.succeed(Journal.Journal, journal), Uct.layer(), layers(gridResearcher, TemplateExecutor.make(backend, { taskDir: root, recipe }))))
        )
      const runs = () => {
        const dirs = Fs.existsSync(jobsRoot) ? Fs.readdirSync(jobsRoot) : []
        return dirs.flatMap((d) => (Fs.existsSync(Path.join(jobsRoot, d, "runs.txt")) ? Fs.readFileSync(Path.join(jobsRoot, d, "runs.txt"), "utf8").trim().split("\n") : []))
      }
      const first = Journal.makeMemory()
      const submitted = () => Effect.map(first.read(), (entries) => entries.flatMap((e) => (e.event._tag === "JobSubmitted" ? [e] : [])))
      // the first controller: a crash leaves its jobs running, so its stop cancels none
      const crashing = yield* Effect.scoped(Effect.gen(function*() {
        const backend = yield* backendOf()
        return yield* run(first, { ...backend, cancel: () => Effect.void, withdraw: () => Effect.succeed(false) })
      })).pipe(Effect.forkChild)
      // its job runs, and is lost (removed from outside): the trial's retry, after its backoff, submits a second job
      yield* waitFor("the first job runs", () => runs().length === 1)
      let jobs = yield* submitted()
      for (let i = 0; i < 100 && jobs.length === 0; i++) jobs = yield* Effect.andThen(Effect.sleep("20 millis"), submitted())
      const lostJob = jobs[0]!.event
      assert.strictEqual(lostJob._tag, "JobSubmitted")
      if (lostJob._tag !== "JobSubmitted") return
      execFileSync("docker", ["rm", "-f", lostJob.job.id], { stdio: "ignore" })
      yield* waitFor("the retry's job runs", () => runs().length === 2)
      yield* Fiber.interrupt(crashing)
      // the journal as the crash left it: the retry's submission not committed
      const entries = yield* first.read()
      const retry = entries.findIndex((e) => e.event._tag === "JobSubmitted" && e.seq > jobs[0]!.seq)
      const cut = Journal.makeMemory()
      yield* cut.append(entries.slice(0, retry < 0 ? entries.length : retry).map((e) => e.event))
      Fs.writeFileSync(Path.join(jobsRoot, lostJob.nodeId, "go"), "")
      // the second controller: reattached to the lost job, it finds it gone; the retry adopts the job running
      yield* Effect.scoped(Effect.flatMap(backendOf(), (backend) => run(cut, backend)))
      const events = (yield* cut.read()).map((e) => e.event)
      const node = ExperimentTree.fold(events)!.view.get(lostJob.nodeId)
      assert.strictEqual(node?.state._tag, "Succeeded", JSON.stringify(node?.state))
      assert.deepStrictEqual(runs(), ["run", "run"], "the lost job, and its retry once: no third copy")
      const adopted = events.flatMap((e) => (e._tag === "JobSubmitted" ? [e.job.id] : []))
      assert.strictEqual(adopted.length, 2, adopted.join(", "))
      assert.notStrictEqual(adopted[1], lostJob.job.id)
    }).pipe(Effect.scoped), 60_000)
})
