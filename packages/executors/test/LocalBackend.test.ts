import { afterAll, assert, describe, it } from "@effect/vitest"
import { Backend, type ExperimentNode } from "@trex/core"
import { BackendConformance, HeldSubmit } from "@trex/core/testing"
import { Effect, Fiber, Redacted, Stream } from "effect"
import { execFileSync, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as LocalBackend from "../src/LocalBackend.ts"
import { eventually } from "./support/eventually.ts"
import { gone } from "./support/process.ts"
import { assertTooBig, BULKY_RESULT_SCRIPT } from "./support/bulkyResult.ts"

const base = Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-local-"))
afterAll(() => Fs.rmSync(base, { recursive: true, force: true }))
let roots = 0
const tmpRoot = () => Path.join(base, `root${++roots}`)

const spec = (node: string, script: string, extra: Partial<Backend.JobSpec> = {}): Backend.JobSpec => ({
  name: node,
  argv: ["sh", "job.sh"],
  env: {},
  files: [{ path: "job.sh", content: script }],
  resources: { gpus: 0, cpus: 1 },
  labels: { run: "local-test", node },
  ...extra
})

const readJson = (file: string) => JSON.parse(Fs.readFileSync(file, "utf8"))

describe("LocalBackend conformance", () => {
  const config = { root: tmpRoot(), slots: 1, killGraceMs: 1000 }
  const cases = BackendConformance.cases({
    command: (_, script) => ({ argv: ["sh", script] }),
    supportsOom: true,
    fresh: LocalBackend.make(config)
  })
  for (const c of cases) {
    it.live(c.name, () => c.run.pipe(Effect.provide(LocalBackend.layer(config))))
  }
})

describe("LocalBackend", () => {
  it.live("hands each job its own GPUs through CUDA_VISIBLE_DEVICES", () =>
    Effect.scoped(Effect.gen(function*() {
      const backend = yield* LocalBackend.make({ root: tmpRoot(), slots: 3, gpus: ["0", "1"] })
      const script = `printf '{"metrics":{},"primary":0,"artifacts":[],"summary":"%s"}' "$CUDA_VISIBLE_DEVICES" > result.json\nsleep 0.5`
      const gpuJob = (node: string) => spec(node, script, { resources: { gpus: 1, cpus: 1 } })
      const refs = yield* Effect.forEach([gpuJob("g1"), gpuJob("g2"), spec("cpu", script)], (s) => backend.submit(s))
      const capacity = yield* backend.capacity
      assert.deepStrictEqual([capacity.slots, capacity.gpus], [3, 2])
      const exits = yield* Effect.forEach(refs, (ref) => Backend.awaitExit(backend, ref), { concurrency: "unbounded" })
      const seen = exits.map((e) => (e.result as { summary: string }).summary)
      assert.deepStrictEqual(seen.slice(0, 2).sort(), ["0", "1"])
      assert.strictEqual(seen[2], "")
      assert.ok(exits[0]!.gpuSeconds > 0 && Math.abs(exits[0]!.gpuSeconds - exits[0]!.wallSeconds) < 1e-9)
      assert.strictEqual(exits[2]!.gpuSeconds, 0)
      const tooMany = yield* Effect.flip(backend.submit(spec("g3", script, { resources: { gpus: 3, cpus: 1 } })))
      assert.strictEqual(tooMany._tag, "BackendError")
    })))

  it.live("priced: each job's exit reports its GPU and wall time in dollars, added to what the backend reported", () =>
    Effect.scoped(Effect.gen(function*() {
      const local = yield* LocalBackend.make({ root: tmpRoot(), slots: 2, gpus: ["0"] })
      // $2 a GPU-hour and $1 an hour, priced again at $0.5 an hour: the second adds to the first
      const backend = Backend.priced(Backend.priced(local, { dollarsPerGpuHour: 7200, dollarsPerHour: 3600 }), { dollarsPerHour: 1800 })
      const script = `echo working\nsleep 0.3\nprintf '{"metrics":{}}' > result.json`
      const refs = yield* Effect.forEach([spec("pg", script, { resources: { gpus: 1, cpus: 1 } }), spec("pc", script)], (s) => backend.submit(s))
      const watched = yield* Effect.forEach(refs, (ref) => Stream.runCollect(backend.watch(ref)), { concurrency: "unbounded" })
      const [gpu, cpu] = watched.map((events) => events.find((e): e is Backend.JobExit => e._tag === "Exit")!)
      assert.isAbove(gpu!.gpuSeconds, 0.2)
      assert.closeTo(gpu!.dollars!, 2 * gpu!.gpuSeconds + 1.5 * gpu!.wallSeconds, 1e-9)
      assert.strictEqual(cpu!.gpuSeconds, 0)
      assert.closeTo(cpu!.dollars!, 1.5 * cpu!.wallSeconds, 1e-9)
      assert.deepStrictEqual(Backend.exitCost(cpu!), { gpuSeconds: 0, wallSeconds: cpu!.wallSeconds, dollars: cpu!.dollars!, inputTokens: 0, outputTokens: 0 })
      // the other events pass as they were
      assert.isTrue(watched[1]!.some((e) => e._tag === "Log" && e.line === "working"))
      // unpriced, a job reports no dollars
      const plain = yield* Backend.awaitExit(local, yield* local.submit(spec("pp", script)))
      assert.isUndefined(plain.dollars)
      assert.strictEqual(Backend.exitCost(plain).dollars, 0)
    })))

  it.live("withdraw cancels a job only while it is queued: a queued one never runs, a started one runs on", () =>
    Effect.scoped(Effect.gen(function*() {
      const backend = yield* LocalBackend.make({ root: tmpRoot(), slots: 1 })
      const script = `echo ran > ran.txt\nsleep 0.3`
      const first = yield* backend.submit(spec("w1", script))
      const second = yield* backend.submit(spec("w2", script))
      assert.isFalse(yield* backend.withdraw!(first), "w1 took the slot: it is not withdrawn")
      assert.isTrue(yield* backend.withdraw!(second), "w2 waits for the slot: withdrawn")
      assert.strictEqual((yield* Backend.awaitExit(backend, first)).outcome, "Succeeded")
      assert.strictEqual((yield* Backend.awaitExit(backend, second)).outcome, "Cancelled")
      const dir = (ref: typeof first) => ref.data["dir"] as string
      assert.isTrue(Fs.existsSync(Path.join(dir(first), "ran.txt")))
      assert.isFalse(Fs.existsSync(Path.join(dir(second), "ran.txt")), "the withdrawn job never started, even after the slot freed")
      assert.isFalse(yield* backend.withdraw!(second), "a job withdrawn already is not withdrawn again")
    })))

  it.live("a third GPU job waits for a free GPU, then gets the one released", () =>
    Effect.scoped(Effect.gen(function*() {
      const backend = yield* LocalBackend.make({ root: tmpRoot(), slots: 4, gpus: ["a", "b"] })
      // q2 holds its GPU until the test lets it go (the file `release`), so q3 can only get q1's
      const holdDir = tmpRoot()
      Fs.mkdirSync(holdDir, { recursive: true })
      const release = Path.join(holdDir, "release")
      const script = `echo "$CUDA_VISIBLE_DEVICES" > gpus.txt\nif [ -n "$HOLD" ]; then while [ ! -f "$HOLD" ]; do sleep 0.05; done; else sleep "$T"; fi`
      const job = (node: string, env: Record<string, string>) => spec(node, script, { env, resources: { gpus: 1, cpus: 1 } })
      const first = yield* backend.submit(job("q1", { T: "0.3" }))
      const second = yield* backend.submit(job("q2", { HOLD: release }))
      const third = yield* backend.submit(job("q3", { T: "0" }))
      const events = yield* Stream.runCollect(backend.watch(third))
      assert.deepStrictEqual(events[0], { _tag: "State", state: "Pending", reason: "no free slot or GPU" })
      // once out of the queue it runs (reported once), and nothing says it waits again
      const states = events.flatMap((e) => (e._tag === "State" ? [e.state] : []))
      assert.deepStrictEqual(states, ["Pending", "Running"])
      yield* Backend.awaitExit(backend, first)
      const dir = (ref: typeof first) => ref.data["dir"] as string
      assert.strictEqual(Fs.readFileSync(Path.join(dir(third), "gpus.txt"), "utf8").trim(), Fs.readFileSync(Path.join(dir(first), "gpus.txt"), "utf8").trim())
      Fs.writeFileSync(release, "")
      assert.strictEqual((yield* Backend.awaitExit(backend, second)).outcome, "Succeeded")
    })))

  it.live("a job whose Exit was delivered frees its directory and slot at once; one still queued or running keeps them", () =>
    Effect.scoped(Effect.gen(function*() {
      const root = tmpRoot()
      const backend = yield* LocalBackend.make({ root, slots: 1, killGraceMs: 500 })
      // back to back in one directory, as an agent runs a check and then its training: no window in which the next is refused
      for (let i = 1; i <= 5; i++) {
        const ref = yield* backend.submit(spec("again", `echo run ${i} >> runs.txt\nprintf '{"metrics":{"i":${i}}}' > result.json`))
        const exit = yield* Backend.awaitExit(backend, ref)
        assert.deepStrictEqual([exit.outcome, exit.result], ["Succeeded", { metrics: { i } }], JSON.stringify(exit))
        assert.strictEqual((yield* backend.capacity).inUse, 0, "the slot is free as soon as the Exit is out")
      }
      assert.deepStrictEqual(Fs.readFileSync(Path.join(root, "again", "runs.txt"), "utf8").trim().split("\n"), [1, 2, 3, 4, 5].map((i) => `run ${i}`))
      // a job waiting for the slot starts the moment the Exit of the one holding it is out
      const first = yield* backend.submit(spec("holder", "sleep 0.2"))
      const next = yield* backend.submit(spec("next", "echo next"))
      yield* Backend.awaitExit(backend, first)
      assert.isFalse(yield* backend.withdraw!(next), "out of the queue: it has the slot")
      assert.strictEqual((yield* Backend.awaitExit(backend, next)).outcome, "Succeeded")
      // the one-job-per-directory rule still holds for a job that has not ended
      const busy = yield* backend.submit(spec("busy", "echo started\nsleep 60"))
      const queued = yield* backend.submit(spec("waiting", "true"))
      for (const node of ["busy", "waiting"]) {
        const refused = yield* Effect.flip(backend.submit(spec(node, "echo second > second.txt")))
        assert.match(refused.message, /already queued or running/)
      }
      yield* backend.cancel(busy)
      assert.strictEqual((yield* Backend.awaitExit(backend, busy)).outcome, "Cancelled")
      assert.strictEqual((yield* Backend.awaitExit(backend, queued)).outcome, "Succeeded")
      assert.isFalse(Fs.existsSync(Path.join(root, "busy", "second.txt")))
    })))

  it.live("a run directory moved after its jobs ended: a backend on the new root finds them by the refs the journal holds", () =>
    Effect.scoped(Effect.gen(function*() {
      const before = Path.join(tmpRoot(), "run", "jobs")
      const first = yield* LocalBackend.make({ root: before, slots: 1 })
      const ref = yield* first.submit(spec("moved", `echo '{"metrics":{"acc":0.9}}' > result.json`))
      assert.strictEqual((yield* Backend.awaitExit(first, ref)).outcome, "Succeeded")
      const after = Path.join(tmpRoot(), "moved-run", "jobs")
      Fs.mkdirSync(Path.dirname(after), { recursive: true })
      Fs.renameSync(Path.dirname(before), Path.dirname(after))
      assert.strictEqual(ref.data["dir"], Path.join(before, ref.id), "the ref records where the job was")
      const moved = yield* LocalBackend.make({ root: after, slots: 1 })
      const exit = yield* Backend.awaitExit(moved, ref)
      assert.strictEqual(exit.outcome, "Succeeded")
      assert.deepStrictEqual(exit.result, { metrics: { acc: 0.9 } })
    })))

  it.live("a queued job can be cancelled before it starts", () =>
    Effect.scoped(Effect.gen(function*() {
      const backend = yield* LocalBackend.make({ root: tmpRoot(), slots: 1, killGraceMs: 500 })
      const running = yield* backend.submit(spec("busy", "echo started\nsleep 60"))
      yield* backend.watch(running).pipe(Stream.takeUntil((e) => e._tag === "Log" && e.line === "started"), Stream.runDrain)
      const queued = yield* backend.submit(spec("queued", "echo ran > ran.txt"))
      assert.deepStrictEqual((yield* backend.list("local-test")).map((j) => [j.labels.node, j.state]).sort(), [["busy", "Running"], ["queued", "Pending"]].sort())
      yield* backend.cancel(queued)
      assert.strictEqual((yield* Backend.awaitExit(backend, queued)).outcome, "Cancelled")
      yield* backend.cancel(running)
      assert.strictEqual((yield* Backend.awaitExit(backend, running)).outcome, "Cancelled")
      assert.ok(!Fs.existsSync(Path.join(queued.data["dir"] as string, "ran.txt")), "the cancelled queued job never ran")
    })))

  it.live("a job that completes in the grace period after a cancel (exit 0, result written) succeeded; one that only exits 0 was cancelled", () =>
    Effect.scoped(Effect.gen(function*() {
      const backend = yield* LocalBackend.make({ root: tmpRoot(), slots: 2, killGraceMs: 5000 })
      const finishes = yield* backend.submit(spec("finishes", `trap 'echo "{\\"metrics\\":{\\"acc\\":0.5}}" > result.json; exit 0' TERM\necho started\nsleep 60 & wait`))
      const quits = yield* backend.submit(spec("quits", `trap 'exit 0' TERM\necho started\nsleep 60 & wait`))
      for (const ref of [finishes, quits]) {
        yield* backend.watch(ref).pipe(Stream.takeUntil((e) => e._tag === "Log" && e.line === "started"), Stream.runDrain)
        yield* backend.cancel(ref)
      }
      const done = yield* Backend.awaitExit(backend, finishes)
      assert.strictEqual(done.outcome, "Succeeded")
      assert.deepStrictEqual(done.result, { metrics: { acc: 0.5 } })
      assert.strictEqual((yield* Backend.awaitExit(backend, quits)).outcome, "Cancelled")
    })))

  it.live("Backend.run cancels its job when interrupted, also while the submit is returning", () =>
    Effect.scoped(Effect.gen(function*() {
      const local = yield* LocalBackend.make({ root: tmpRoot(), slots: 2, killGraceMs: 500 })
      // interrupted while it waits for the exit
      const waiting = yield* Backend.run(local, spec("waits", "echo started\nsleep 60")).pipe(Effect.forkChild)
      yield* eventually("the job runs", Effect.map(local.list("local-test"), (jobs) => jobs.some((j) => j.labels.node === "waits" && j.state === "Running")))
      yield* Fiber.interrupt(waiting)
      const [waited] = (yield* local.list("local-test")).filter((j) => j.labels.node === "waits")
      assert.strictEqual((yield* Backend.awaitExit(local, waited!.ref).pipe(Effect.timeout("20 seconds"))).outcome, "Cancelled")
      // interrupted when the backend has the job but the submit has not returned yet
      const held = yield* HeldSubmit.make(local)
      const submitting = yield* Backend.run(held.backend, spec("submitting", "sleep 60")).pipe(Effect.forkChild)
      const job = yield* held.stopDuringSubmit(submitting)
      assert.strictEqual((yield* Backend.awaitExit(local, job).pipe(Effect.timeout("20 seconds"))).outcome, "Cancelled")
    })))

  it.live("withJob cancels its job when its use fails or dies before the job ends (the process is gone), and not once the exit was seen", () =>
    Effect.scoped(Effect.gen(function*() {
      const local = yield* LocalBackend.make({ root: tmpRoot(), slots: 2, killGraceMs: 500 })
      const cancels: Array<string> = []
      const backend: Backend.BackendShape = { ...local, cancel: (ref) => Effect.andThen(Effect.sync(() => cancels.push(ref.id)), local.cancel(ref)) }
      const held = (node: string, after: Effect.Effect<never, string>) =>
        Effect.gen(function*() {
          let job: { ref: ExperimentNode.JobRef; pid: number } | undefined
          const failed = yield* Effect.exit(Backend.withJob(backend, backend.submit(spec(node, "echo started\nsleep 60")), (ref) =>
            Backend.follow(backend, ref).pipe(
              Stream.takeUntil((e) => e._tag === "Log" && e.line === "started"),
              Stream.runDrain,
              Effect.andThen(Effect.sync(() => (job = { ref, pid: readJson(Path.join(ref.data["dir"] as string, "pid")).pid as number }))),
              Effect.andThen(after)
            )))
          assert.isTrue(failed._tag === "Failure" && job !== undefined, node)
          assert.ok(gone(job!.pid), `${node}: its process is gone once withJob returns`)
          assert.strictEqual((yield* Backend.awaitExit(local, job!.ref)).outcome, "Cancelled", node)
        })
      yield* held("fails", Effect.fail("the caller's own failure"))
      yield* held("dies", Effect.die(new Error("a defect in the caller")))
      assert.strictEqual(cancels.length, 2)
      // a use that fails after it saw the exit leaves the ended job be: no cancel, the exit as it was
      let done: ExperimentNode.JobRef | undefined
      yield* Effect.exit(Backend.withJob(backend, backend.submit(spec("ends", "echo done")), (ref) =>
        Effect.andThen(Backend.awaitExit(backend, ref), Effect.andThen(Effect.sync(() => (done = ref)), Effect.fail("recording failed")))))
      assert.strictEqual(cancels.length, 2)
      assert.strictEqual((yield* Backend.awaitExit(local, done!)).outcome, "Succeeded")
    })))

  it.live("withJob knows its job ended however its use saw it (backend.watch itself; an outer job followed inside a nested withJob): no cancel; a job still running is cancelled", () =>
    Effect.scoped(Effect.gen(function*() {
      const local = yield* LocalBackend.make({ root: tmpRoot(), slots: 2, killGraceMs: 500 })
      const cancels: Array<string> = []
      const counted: Backend.BackendShape = { ...local, cancel: (ref) => Effect.andThen(Effect.sync(() => cancels.push(ref.id)), local.cancel(ref)) }
      const refs: Record<string, ExperimentNode.JobRef> = {}
      const take = <A, E>(node: string, script: string, use: (ref: ExperimentNode.JobRef) => Effect.Effect<A, E>) =>
        Backend.withJob(counted, counted.submit(spec(node, script)), (ref) => Effect.andThen(Effect.sync(() => (refs[node] = ref)), use(ref)))
      const nodeOf = (id: string) => Object.keys(refs).find((n) => refs[n]!.id === id)
      // watched to its end through the backend's own watch (not Backend.follow), then a failure: no cancel
      const watched = yield* Effect.exit(take("watched", "echo done", (ref) => Effect.andThen(Stream.runDrain(local.watch(ref)), Effect.fail("recording failed"))))
      assert.strictEqual(watched._tag, "Failure")
      // watched until it started, then a failure: the job still runs, and is cancelled
      const running = yield* Effect.exit(take("running", "echo started\nsleep 60", (ref) =>
        local.watch(ref).pipe(Stream.takeUntil((e) => e._tag === "Log" && e.line === "started"), Stream.runDrain, Effect.andThen(Effect.fail("gave up")))))
      assert.strictEqual(running._tag, "Failure")
      // an outer job followed to its end from inside a nested withJob (whose own job still runs), then a failure:
      // the inner job is cancelled, the outer one (ended) is not
      const nested = yield* Effect.exit(take("outer", "echo done", (outer) =>
        take("inner", "echo started\nsleep 60", () => Effect.andThen(Backend.awaitExit(local, outer), Effect.fail("recording failed")))))
      assert.strictEqual(nested._tag, "Failure")
      assert.deepStrictEqual(cancels.map(nodeOf), ["running", "inner"])
      const outcomes = yield* Effect.forEach(["watched", "running", "outer", "inner"], (n) => Effect.map(Backend.awaitExit(local, refs[n]!), (e) => [n, e.outcome]))
      assert.deepStrictEqual(outcomes, [["watched", "Succeeded"], ["running", "Cancelled"], ["outer", "Succeeded"], ["inner", "Cancelled"]])
    })))

  it.live("cancel kills the whole process group, grandchildren included", () =>
    Effect.scoped(Effect.gen(function*() {
      const backend = yield* LocalBackend.make({ root: tmpRoot(), slots: 1, killGraceMs: 500 })
      const ref = yield* backend.submit(spec("forker", "sleep 300 &\necho $! > grandchild.pid\necho started\nwait"))
      yield* backend.watch(ref).pipe(Stream.takeUntil((e) => e._tag === "Log" && e.line === "started"), Stream.runDrain)
      const dir = ref.data["dir"] as string
      const child = readJson(Path.join(dir, "pid")).pid as number
      const grandchild = Number(Fs.readFileSync(Path.join(dir, "grandchild.pid"), "utf8"))
      assert.ok(!gone(child) && !gone(grandchild), "both run before the cancel")
      yield* backend.cancel(ref)
      assert.ok(gone(child), "the job is gone when cancel returns")
      // SIGKILL of the group is asynchronous for the grandchild: allow it a moment.
      yield* eventually("the grandchild is gone too", () => gone(grandchild))
      assert.strictEqual((yield* Backend.awaitExit(backend, ref)).outcome, "Cancelled")
    })))

  it.live("secrets reach the job's env but never job.spec.json or the pid file", () =>
    Effect.scoped(Effect.gen(function*() {
      const root = tmpRoot()
      const backend = yield* LocalBackend.make({ root })
      const secret = "s3cr3t-0123456789"
      const ref = yield* backend.submit(spec("secret", `printf '%s|%s|%s' "$API_KEY" "$PLAIN" "$TREX_JOB_DIR" > seen.txt`, {
        env: { API_KEY: Redacted.make(secret), PLAIN: "visible" }
      }))
      assert.strictEqual((yield* Backend.awaitExit(backend, ref)).outcome, "Succeeded")
      const dir = Path.join(root, "secret")
      assert.strictEqual(Fs.readFileSync(Path.join(dir, "seen.txt"), "utf8"), `${secret}|visible|${dir}`)
      for (const file of ["job.spec.json", "pid", "exit.json", "supervisor.log"]) {
        const text = Fs.existsSync(Path.join(dir, file)) ? Fs.readFileSync(Path.join(dir, file), "utf8") : ""
        assert.ok(!text.includes(secret), `${file} must not hold the secret`)
      }
      assert.deepStrictEqual(readJson(Path.join(dir, "job.spec.json")).env, { API_KEY: "<redacted>", PLAIN: "visible" })
    })))

  it.live("rejects job files that escape the job directory, and bad node labels", () =>
    Effect.scoped(Effect.gen(function*() {
      const root = tmpRoot()
      const backend = yield* LocalBackend.make({ root })
      for (const path of ["../escape.txt", "/tmp/trex-escape.txt", "a/../../escape.txt", "pid"]) {
        const error = yield* Effect.flip(backend.submit(spec(`esc${path.length}`, "true", { files: [{ path, content: "x" }] })))
        assert.strictEqual(error._tag, "BackendError")
      }
      assert.ok(!Fs.existsSync(Path.join(root, "escape.txt")))
      const bad = yield* Effect.flip(backend.submit(spec("../up", "true")))
      assert.strictEqual(bad.operation, "submit")
    })))

  it.live("a command that cannot start is Failed/Crash with the reason", () =>
    Effect.scoped(Effect.gen(function*() {
      const backend = yield* LocalBackend.make({ root: tmpRoot() })
      const exit = yield* Backend.run(backend, spec("missing", "", { argv: ["/nonexistent/trex-binary"] }))
      assert.strictEqual(exit.outcome, "Failed")
      assert.strictEqual(exit.failureKind, "Crash")
      assert.match(exit.message ?? "", /ENOENT/)
    })))

  it.live("jobs survive a SIGKILLed controller: a fresh backend lists, watches and cancels them", () =>
    Effect.scoped(Effect.gen(function*() {
      const root = tmpRoot()
      const run = "survivor"
      // "finishes" waits for the test's `go` file (so it is still running when the fresh backend lists it)
      const job = (node: string, sleep: number) =>
        spec(node, `echo started\nif [ "$1" = wait ]; then while [ ! -f go ]; do sleep 0.05; done; else sleep ${sleep}; fi\nprintf '{"metrics":{},"primary":1,"artifacts":[]}' > result.json`, { labels: { run, node } })
      const controller = spawn(process.execPath, [
        "--conditions=@trex/source",
        Path.join(import.meta.dirname, "fixtures", "controller.ts"),
        root,
        JSON.stringify([{ ...job("finishes", 0), argv: [...job("finishes", 0).argv, "wait"] }, job("lingers", 300), { ...job("limited", 300), resources: { gpus: 0, cpus: 1, timeLimitSeconds: 10 } }])
      ], { stdio: ["ignore", "pipe", "inherit"] })
      yield* Effect.callback<void, Error>((resume) => {
        let out = ""
        controller.stdout.on("data", (d) => {
          out += String(d)
          if (out.includes("RUNNING")) resume(Effect.void)
        })
        controller.on("exit", (code) => resume(Effect.fail(new Error(`controller exited early (${code}): ${out}`))))
      }).pipe(Effect.timeout("20 seconds"))
      controller.kill("SIGKILL")
      yield* Effect.callback<void>((resume) => {
        if (controller.exitCode !== null || controller.signalCode !== null) resume(Effect.void)
        else controller.on("exit", () => resume(Effect.void))
      })

      const fresh = yield* LocalBackend.make({ root, slots: 2, killGraceMs: 500 })
      const jobs = yield* fresh.list(run)
      assert.deepStrictEqual(jobs.map((j) => [j.labels.node, j.state]).sort(), [["finishes", "Running"], ["limited", "Running"], ["lingers", "Running"]])
      assert.strictEqual((yield* fresh.capacity).inUse, 3, "the adopted jobs hold their slots (beyond the 2 configured)")
      const byNode = (node: string) => jobs.find((j) => j.labels.node === node)!.ref
      Fs.writeFileSync(Path.join(root, "finishes", "go"), "")
      const exit = yield* Backend.awaitExit(fresh, byNode("finishes"))
      assert.strictEqual(exit.outcome, "Succeeded")
      assert.deepStrictEqual(exit.result, { metrics: {}, primary: 1, artifacts: [] })

      const limited = yield* Backend.awaitExit(fresh, byNode("limited"))
      assert.deepStrictEqual([limited.outcome, limited.failureKind], ["Failed", "Timeout"], "the time limit holds without the controller that set it")

      // Its supervisor dies too: cancel then kills the group itself.
      const { pid: lingering, supervisorPid } = readJson(Path.join(root, "lingers", "pid")) as { pid: number; supervisorPid: number }
      process.kill(supervisorPid, "SIGKILL")
      yield* Effect.sleep("100 millis")
      assert.strictEqual((yield* fresh.list(run)).find((j) => j.labels.node === "lingers")?.state, "Running", "the job outlives its supervisor")
      yield* fresh.cancel(byNode("lingers"))
      assert.strictEqual((yield* Backend.awaitExit(fresh, byNode("lingers"))).outcome, "Cancelled")
      assert.ok(gone(lingering), "the cancelled job's process is gone")
      assert.deepStrictEqual((yield* fresh.list(run)).map((j) => j.state), ["Finished", "Finished", "Finished"])
      // the slot monitors poll every 100 ms
      yield* eventually("their slots are free again", Effect.map(fresh.capacity, (c) => c.inUse === 0))
    })))
})

describe("LocalBackend, a full disk", () => {
  /** A fresh 8 MB tmpfs of its own (needs root, as CI runs), unmounted when the scope closes. */
  const smallDisk = Effect.acquireRelease(
    Effect.sync(() => {
      const dir = tmpRoot()
      Fs.mkdirSync(dir, { recursive: true })
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", dir])
      return dir
    }),
    (dir) => Effect.sync(() => execFileSync("umount", ["-l", dir]))
  )

  it.live("a job that fills its disk (a checkpoint written until ENOSPC, its traceback lost with it) fails as Infra naming the disk, its exit recorded", () =>
    Effect.scoped(Effect.gen(function*() {
      const root = yield* smallDisk
      const backend = yield* LocalBackend.make({ root })
      // the disk is full when the job exits: its error message cannot be written to its log either
      const exit = yield* Backend.run(backend, spec("ckpt", "head -c 100000000 /dev/zero > checkpoint.bin || exit 1\nprintf '{\"metrics\":{}}' > result.json"))
      assert.strictEqual(exit.outcome, "Failed")
      assert.strictEqual(exit.failureKind, "Infra")
      // the supervisor recorded the job's own exit (in the room it took at the start), not "lost"
      assert.strictEqual(exit.exitCode, 1)
      assert.match(exit.message!, new RegExp(`the job failed \\(exited with code 1\\) while the disk holding ${root}/ckpt was full \\(\\d+ KB free\\)\\. The machine's failure, not the strategy's`))
      // while it is full, a new job is refused (retryably), saying why and where
      const refused = yield* Effect.flip(backend.submit(spec("next", "exit 0")))
      assert.isTrue(refused.retryable)
      assert.strictEqual(refused.message, `cannot prepare ${root}/next: no space left on device: free space on the disk holding it (or make it writable)`)
      // once there is room, a job runs there again
      Fs.rmSync(Path.join(root, "ckpt", "checkpoint.bin"))
      const again = yield* Backend.run(backend, spec("ckpt", "printf '{\"metrics\":{}}' > result.json"))
      assert.strictEqual(again.outcome, "Succeeded")
    })))

  it.live("a job whose supervisor cannot start for want of room is reported at once as Infra, its slot freed, though no exit could be written", () =>
    Effect.scoped(Effect.gen(function*() {
      const root = yield* smallDisk
      const backend = yield* LocalBackend.make({ root, slots: 1 })
      // the first job fills the disk after the second was submitted (queued behind it: its files written)
      const filler = yield* backend.submit(spec("filler", "sleep 0.3\nhead -c 100000000 /dev/zero > ../fill\nexit 0"))
      const starved = yield* backend.submit(spec("starved", "printf '{\"metrics\":{}}' > result.json"))
      yield* Backend.awaitExit(backend, filler)
      const exit = yield* Backend.awaitExit(backend, starved)
      assert.strictEqual(exit.failureKind, "Infra")
      assert.match(exit.message!, new RegExp(`^the job failed \\(cannot start the supervisor: ENOSPC: no space left on device, .*\\) while the disk holding ${root}/starved was full`))
      assert.isFalse(Fs.existsSync(Path.join(root, "starved", "exit.json")))
      // its slot is free: once there is room, the next job runs
      Fs.rmSync(Path.join(root, "fill"))
      const next = yield* Backend.run(backend, spec("next", "printf '{\"metrics\":{}}' > result.json"))
      assert.strictEqual(next.outcome, "Succeeded")
    })))

  it.live("a failure whose log says the disk was full is Infra, on any disk; any other stays the strategy's Crash", () =>
    Effect.scoped(Effect.gen(function*() {
      const backend = yield* LocalBackend.make({ root: tmpRoot() })
      const cases = [
        ["py", "echo 'Traceback (most recent call last):' >&2\necho 'OSError: [Errno 28] No space left on device' >&2\nexit 1"],
        ["quota", "echo \"torch.save: [Errno 122] Disk quota exceeded: '/ckpt/step-100'\" >&2\nexit 1"],
        ["crash", "echo 'ValueError: bad shape' >&2\nexit 1"]
      ] as const
      const exits = yield* Effect.forEach(cases, ([node, script]) => Backend.run(backend, spec(node, script)))
      assert.deepStrictEqual(exits.map((e) => e.failureKind), ["Infra", "Infra", "Crash"])
      assert.strictEqual(exits[0]!.message, "the job ran out of disk space (exited with code 1): OSError: [Errno 28] No space left on device. The machine's failure, not the strategy's: free space where the job writes (checkpoints, outputs, logs)")
      assert.match(exits[1]!.message!, /^the job ran out of disk space \(exited with code 1\): torch\.save: \[Errno 122\] Disk quota exceeded/)
      assert.strictEqual(exits[2]!.message, "exited with code 1")
    })))

  it.live("an exit.json left empty (a write a full disk cut short) with its job gone is reported lost, not waited for", () =>
    Effect.scoped(Effect.gen(function*() {
      const root = tmpRoot()
      const backend = yield* LocalBackend.make({ root })
      const ref = yield* backend.submit(spec("cut", "sleep 60"))
      const pidFile = Path.join(root, "cut", "pid")
      yield* eventually("the job runs", () => Fs.existsSync(pidFile))
      const pid = readJson(pidFile)
      // as an older controller's giveUp left it: exit.json created, its write failed
      process.kill(pid.supervisorPid, "SIGKILL")
      process.kill(-pid.pid, "SIGKILL")
      Fs.writeFileSync(Path.join(root, "cut", "exit.json"), "")
      yield* eventually("the job is gone", () => gone(pid.pid) && gone(pid.supervisorPid))
      const exit = yield* Backend.awaitExit(backend, ref)
      assert.strictEqual(exit.failureKind, "Infra")
      assert.strictEqual(exit.message, "the job's supervisor died without recording an exit")
    })))
})

describe("LocalBackend, a job that prints at volume", () => {
  /** The local backend's slice of a log read a step (`READ_CHUNK`, 4 MiB). */
  const READ_CHUNK = 4 << 20
  it.live("a log of many megabytes is read a bounded slice at a time: every line, in order, never the whole log at once", () =>
    Effect.scoped(Effect.gen(function*() {
      const backend = yield* LocalBackend.make({ root: tmpRoot() })
      // 3.5 slices' worth of numbered lines, and a metric at the very end (read before the Exit)
      const lines = Math.ceil((3.5 * READ_CHUNK) / 100)
      const script = `awk 'BEGIN { for (i = 0; i < ${lines}; i++) printf "line %08d %s\\n", i, sprintf("%86s", "") }'\n` +
        `echo 'TREX_METRIC {"step":1,"split":"eval","name":"score","value":0.5}'\nprintf '{"metrics":{"score":0.5}}' > result.json`
      const ref = yield* backend.submit(spec("loud", script))
      yield* Backend.awaitExit(backend, ref)
      // a fresh watch of the finished job replays its log from the start (as after a controller restart)
      const chunks = yield* Stream.runCollect(Stream.chunks(backend.watch(ref)))
      const events = chunks.flat()
      const logged = events.filter((e) => e._tag === "Log")
      assert.strictEqual(logged.length, lines)
      assert.ok(logged.every((e, i) => e._tag === "Log" && e.line.startsWith(`line ${String(i).padStart(8, "0")} `)))
      assert.deepStrictEqual(events.slice(-2).map((e) => e._tag), ["Metric", "Exit"])
      const biggest = chunks.reduce((m, c) => Math.max(m, c.length), 0)
      assert.isAtMost(biggest, READ_CHUNK / 100 + 2, `a chunk of ${biggest} events: the log was not read in slices`)
    })))

  it.live("the tail of a job killed while a \\r progress bar rewrote one line for a long while shows the bar's last state", () =>
    Effect.scoped(Effect.gen(function*() {
      const backend = yield* LocalBackend.make({ root: tmpRoot(), killGraceMs: 500 })
      // tqdm on stderr: 5,000 states of one line (about 300 KB, no newline), then the job dies
      const script = `awk 'BEGIN { for (i = 1; i <= 5000; i++) printf "\\rTraining: %4d/5000 [00:10<00:00, 912.34it/s, loss=0.%03d]", i, i % 1000 > "/dev/stderr" }'\nkill -9 $$`
      const exit = yield* Backend.run(backend, spec("tqdm", script))
      assert.strictEqual(exit.failureKind, "OOM")
      assert.deepStrictEqual(exit.logTail, ["Training: 5000/5000 [00:10<00:00, 912.34it/s, loss=0.000]"])
    })))

  it.live("a result.json over 64 MB is not read: the exit says how big it is, not that there is none", () =>
    Effect.scoped(Effect.gen(function*() {
      const backend = yield* LocalBackend.make({ root: tmpRoot() })
      assertTooBig(yield* Backend.run(backend, spec("bulky", BULKY_RESULT_SCRIPT)), true)
    })))
})

describe("LocalBackend environment", () => {
  it.live("a job inherits paths and locale but not the controller's secrets; its spec env still reaches it", () =>
    Effect.scoped(
      Effect.gen(function*() {
        const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-env-"))
        process.env["ANTHROPIC_API_KEY"] = "fake-key-controller-secret"
        try {
          const backend = yield* LocalBackend.make({ root, slots: 1 })
          const exit = yield* Backend.run(backend, {
            name: "env",
            argv: [process.execPath, "-e", "require('fs').writeFileSync(process.env.TREX_JOB_DIR + '/result.json', JSON.stringify({ metrics: {}, keys: Object.keys(process.env) }))"],
            env: { GIVEN: Redacted.make("by-spec") },
            files: [],
            resources: { gpus: 0, cpus: 1 },
            labels: { run: "r", node: "env" }
          })
          const keys = (exit.result as { keys: Array<string> }).keys
          assert.include(keys, "PATH")
          assert.include(keys, "GIVEN")
          assert.notInclude(keys, "ANTHROPIC_API_KEY")
        } finally {
          delete process.env["ANTHROPIC_API_KEY"]
        }
      })
    ))
})
