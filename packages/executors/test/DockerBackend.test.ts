/**
 * Against a real Docker engine: start one with `sudo scripts/services/start-all.sh docker`
 * (or start-docker.sh). Without an engine these tests fail, saying so. The scenarios that matter
 * also run on Podman's Docker-compatible API when it is up (start-podman.sh; see support/engines.ts).
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Backend } from "@trex/core"
import type { ExperimentNode } from "@trex/core"
// Until packages/core/package.json exports "./testing", import the suite by path.
import { BackendConformance } from "../../core/src/testing/index.ts"
import Docker from "dockerode"
import { Deferred, Effect, Fiber, Logger, Redacted, Schedule, Stream } from "effect"
import { execFile, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { promisify } from "node:util"
import * as DockerBackend from "../src/DockerBackend.ts"
import { assertTooBig, BULKY_RESULT_SCRIPT } from "./support/bulkyResult.ts"
import { checkLoudWatch, loudScript } from "./support/loudLog.ts"
import { checkQueued, checkSlotReleases } from "./support/queued.ts"
import { eventually } from "./support/eventually.ts"
import { type TestEngine, testEngines } from "./support/engines.ts"
import * as Spec from "../src/internal/dockerSpec.ts"
import { engineOptions, socketRefusal, type SshAgent, sshAgent } from "../src/internal/dockerEngine.ts"
import { QueuePoll } from "../src/internal/admissionQueue.ts"
import { logins, ownSshd as ownSshdIn, sshKeys } from "./support/ownSshd.ts"
import { withEnv } from "./support/withEnv.ts"

const execFileAsync = promisify(execFile)
/**
 * A client of the engine on `socket`, whatever DOCKER_HOST says (docker-modem would take a host there over the socket;
 * a test here sets DOCKER_HOST=ssh://... while a backend is made).
 */
const dockerAt = (socket: string) => new Docker({ socketPath: socket, host: undefined, protocol: "http" } as Docker.DockerOptions)
const ENGINES = testEngines()
const DOCKER = ENGINES[0]!
const SOCKET = DOCKER.socket
const IMAGE = DOCKER.image
const engine = dockerAt(SOCKET)
const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-docker-"))
const run = `r${Date.now().toString(36)}`
let counter = 0
afterAll(async () => {
  for (const e of ENGINES) {
    const client = dockerAt(e.socket)
    const left = await client.listContainers({ all: true, filters: { label: [`trex.jobdir`] } }).catch(() => [])
    await Promise.all(left.filter((c) => c.Labels["trex.jobdir"]?.startsWith(root)).map((c) => client.getContainer(c.Id).remove({ force: true }).catch(() => {})))
  }
  // a file left immutable (a test that failed while it held one) is made mutable, and deleted; nothing here fails the run
  await Fs.promises.rm(root, { recursive: true, force: true }).catch(() =>
    execFileAsync("chattr", ["-R", "-i", root]).then(() => Fs.promises.rm(root, { recursive: true, force: true }))
  ).catch(() => undefined)
})

/** What {@link proxiedEngine} answers a request with itself: at once, or after the engine has carried it out. */
interface ProxyAnswer {
  readonly status: number
  readonly body: unknown
  readonly afterUpstream?: boolean
}
/**
 * The engine on {@link SOCKET} behind an HTTP proxy on a socket of its own (its path), for the scope: a request for which
 * `answer` (given the request and its URL, decoded) returns an answer gets that one; every other is passed on.
 */
const proxiedEngine = (answer: (req: Http.IncomingMessage, url: string) => ProxyAnswer | undefined) =>
  Effect.acquireRelease(
    Effect.promise(() => {
      const path = Path.join(Fs.mkdtempSync(Path.join(root, "sock-")), "engine.sock")
      const server = Http.createServer((req, res) => {
        const own = answer(req, decodeURIComponent(req.url ?? ""))
        const send = (a: ProxyAnswer) => void res.writeHead(a.status, { "content-type": "application/json" }).end(JSON.stringify(a.body))
        if (own !== undefined && own.afterUpstream !== true) return send(own)
        const up = Http.request({ socketPath: SOCKET, path: req.url, method: req.method, headers: req.headers }, (upstream) => {
          if (own !== undefined) return void upstream.resume().once("end", () => send(own))
          res.writeHead(upstream.statusCode ?? 502, upstream.headers)
          upstream.pipe(res)
        })
        up.on("error", () => res.destroy())
        req.pipe(up)
      })
      return new Promise<{ server: Http.Server; path: string }>((resolve) => server.listen(path, () => resolve({ server, path })))
    }),
    ({ server }) => Effect.sync(() => server.close()).pipe(Effect.andThen(Effect.sync(() => server.closeAllConnections())))
  ).pipe(Effect.map(({ path }) => path))

/** Run scripts/services/start-docker.sh (needs root, as in CI). */
const trying = (args: ReadonlyArray<string>) =>
  Effect.tryPromise({
    try: () => execFileAsync(Path.join(import.meta.dirname, "../../../scripts/services/start-docker.sh"), [...args]),
    catch: (e) => new Error(`start-docker.sh ${args.join(" ")} failed (it needs root): ${String(e)}`)
  })
const service = (args: ReadonlyArray<string>) => trying(args).pipe(Effect.orDie)

const upOn = (e: TestEngine) =>
  Effect.tryPromise({
    try: () => dockerAt(e.socket).ping(),
    catch: (err) =>
      new Error(`no ${e.name} engine on ${e.socket} (${String(err)}): run \`sudo scripts/services/start-all.sh ${e.name}\` (or ${e.script}) first`)
  }).pipe(Effect.orDie)
const engineUp = upOn(DOCKER)

const specOn = (e: TestEngine) => (script: string, extra: Partial<Backend.JobSpec> = {}): Backend.JobSpec => ({
  name: "t",
  argv: ["sh", "-c", script],
  image: e.image,
  env: {},
  files: [],
  resources: { gpus: 0, cpus: 1 },
  labels: { run, node: `n${++counter}` },
  ...extra
})
const spec = specOn(DOCKER)

const backendOn = (e: TestEngine) => (config: Partial<DockerBackend.Config> = {}) =>
  Effect.andThen(upOn(e), DockerBackend.make({ root, socketPath: e.socket, ...config }))
const backendWith = backendOn(DOCKER)

const collect = (backend: Backend.BackendShape, s: Backend.JobSpec) =>
  Effect.gen(function*() {
    const ref = yield* backend.submit(s)
    const events = yield* Stream.runCollect(backend.watch(ref))
    const exit = events.at(-1)
    assert.strictEqual(exit?._tag, "Exit", `last event: ${JSON.stringify(exit)}`)
    return { ref, events, exit: exit as Backend.JobExit }
  })

/** This process's TCP connections to the SSH server on `port`, by local port, with the pids of the sshd processes serving each. */
const sshConnections = (port: number) =>
  Effect.promise(() => execFileAsync("ss", ["-tnpH", "state", "established", `( sport = :${port} or dport = :${port} )`])).pipe(
    Effect.map(({ stdout }) => {
      const lines = stdout.split("\n")
      const ours = lines.filter((l) => l.includes(`pid=${process.pid},`)).map((l) => /127\.0\.0\.1:(\d+)\s+127\.0\.0\.1:\d+/.exec(l)![1]!)
      return ours.map((local) => ({
        port: local,
        sshd: lines.filter((l) => new RegExp(`127\\.0\\.0\\.1:${port}\\s+127\\.0\\.0\\.1:${local}\\b`).test(l)).flatMap((l) => [...l.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])))
      }))
    })
  )

/** The processes under `pids` (an SSH login's sshd) whose command line includes `word`. */
const descendants = (pids: ReadonlyArray<number>, word: string) =>
  Effect.promise(() => execFileAsync("ps", ["-eo", "pid=,ppid=,args="])).pipe(
    Effect.map(({ stdout }) => {
      const rows = stdout.split("\n").flatMap((l) => {
        const m = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l)
        return m === null ? [] : [{ pid: Number(m[1]), ppid: Number(m[2]), args: m[3]! }]
      })
      const under = new Set(pids)
      for (let grew = true; grew;) {
        grew = false
        for (const r of rows) {
          if (under.has(r.ppid) && !under.has(r.pid)) {
            under.add(r.pid)
            grew = true
          }
        }
      }
      return rows.filter((r) => under.has(r.pid) && r.args.includes(word)).map((r) => r.pid)
    })
  )

/** Whether process `pid` runs (one ended and not yet reaped, a zombie, does not). */
const running = (pid: number) => {
  try {
    return !/\) Z /.test(Fs.readFileSync(`/proc/${pid}/stat`, "utf8"))
  } catch {
    return false
  }
}

/** An sshd of this test's own (see support/ownSshd.ts). */
const ownSshd = (settings: string, hostKeys?: ReadonlyArray<string>) => ownSshdIn(root, settings, hostKeys)

/** Each engine's tests one at a time: they stop their engine, and count its containers (see the lanes at the end). */
const inOrder = { concurrent: false } as const

/** The conformance suite and the backend's own scenarios on engine `e`: one test body for each engine that is up. */
const engineTests = (e: TestEngine) => {
  const engine = dockerAt(e.socket)
  const spec = specOn(e)
  const backendWith = backendOn(e)

  describe(`DockerBackend conformance on ${e.name}`, inOrder, () => {
    const config = { root: Path.join(root, `conformance-${e.name}`), socketPath: e.socket, slots: 2, stopGraceSeconds: 2 }
    const cases = BackendConformance.cases({
      command: (_, script) => ({ argv: ["sh", script], image: e.image }),
      // a SIGKILL is a crash here: the engine says when the kernel's OOM killer struck (tested below)
      supportsOom: false,
      fresh: DockerBackend.make(config)
    })
    for (const c of cases) {
      it.live(c.name, () => upOn(e).pipe(Effect.andThen(c.run), Effect.provide(DockerBackend.layer(config))))
    }
  })

  describe(`DockerBackend on ${e.name}`, inOrder, () => {
    it.live("runs a job: logs, TREX_METRIC lines, metrics.jsonl, result.json, secrets in env, then removes the container", () =>
      Effect.gen(function*() {
        const backend = yield* backendWith()
        const script = [
          `echo hello; echo oops >&2`,
          `echo 'TREX_METRIC {"step":1,"split":"train","name":"loss","value":0.5}'`,
          `echo 'TREX_PROGRESS {"fraction":0.5}'`,
          `echo '{"step":2,"split":"eval","name":"acc","value":0.75}' >> "$TREX_JOB_DIR/metrics.jsonl"`,
          `cat "$TREX_JOB_DIR/strategy.json"; echo; echo "secret=$API_KEY"`,
          `echo '{"metrics":{"acc":0.75},"primary":0.75}' > "$TREX_JOB_DIR/result.json"`,
          // long enough to measure: Docker may record a container of a few ms as finishing before it started
          `sleep 0.5`
        ].join("; ")
        const s = spec(script, {
          env: { API_KEY: Redacted.make("s3cr3t"), PLAIN: "x" },
          files: [{ path: "strategy.json", content: `{"lr":0.1}` }]
        })
        const { events, exit, ref } = yield* collect(backend, s)
        const logs = events.flatMap((e) => (e._tag === "Log" ? [`${e.stream}:${e.line}`] : []))
        assert.includeMembers(logs, ["stdout:hello", "stderr:oops", `stdout:{"lr":0.1}`, "stdout:secret=s3cr3t"])
        const metrics = events.flatMap((e) => (e._tag === "Metric" ? [`${e.point.name}@${e.point.step}=${e.point.value}`] : []))
        assert.sameMembers(metrics, ["loss@1=0.5", "acc@2=0.75"])
        assert.isTrue(events.some((e) => e._tag === "Progress" && e.fraction === 0.5))
        assert.strictEqual(exit.outcome, "Succeeded")
        assert.deepStrictEqual(exit.result, { metrics: { acc: 0.75 }, primary: 0.75 })
        assert.strictEqual(exit.exitCode, 0)
        assert.isAtLeast(exit.wallSeconds, 0.4, "the container's own run time")
        const gone = yield* Effect.promise(() => engine.getContainer(ref.id).inspect().then(() => false, () => true))
        assert.isTrue(gone, "container removed after its exit was read")
        // watching again yields the exit at once
        const again = yield* Stream.runCollect(backend.watch(ref))
        assert.deepStrictEqual(again.map((e) => e._tag), ["Exit"])
      }))

    it.live("a non-zero exit is a Crash with its code; a missing result.json is explained; submitted again into its directory, the earlier container (removed) is not kept in the record, and a resume reads the last job's exit, running nothing again", () =>
      Effect.gen(function*() {
        const backend = yield* backendWith()
        const s = spec(`echo ran >> "$TREX_JOB_DIR/runs"; echo bad; exit 3`)
        const { exit } = yield* collect(backend, s)
        assert.strictEqual(exit.outcome, "Failed")
        assert.strictEqual(exit.failureKind, "Crash")
        assert.strictEqual(exit.exitCode, 3)
        assert.strictEqual(exit.resultError, "the job wrote no result.json")
        assert.include(exit.logTail, "bad")
        // the same job again (a trial's retry): the record names its container; the earlier one, which the engine no
        // longer has, is not kept under `ended` (that serves only the removal of one left dead: see the test of that)
        const jobDir = Path.join(root, s.labels.node)
        const second = yield* backend.submit(s)
        const last = yield* Backend.awaitExit(backend, second)
        const record = JSON.parse(Fs.readFileSync(Path.join(jobDir, Spec.RECORD.job), "utf8"))
        assert.deepStrictEqual([record.container, record.ended], [second.id, undefined], JSON.stringify(record))
        // a resumed run (a new backend) reattaches the last job: its exit as read, the job not run a third time
        const again = yield* Backend.awaitExit(yield* backendWith(), second)
        assert.deepStrictEqual([again.outcome, again.exitCode, again.logTail], [last.outcome, 3, last.logTail])
        assert.strictEqual(Fs.readFileSync(Path.join(jobDir, "runs"), "utf8"), "ran\nran\n")
      }))

    it.live("a result.json over 64 MB is not read: the exit says how big it is", () =>
      Effect.gen(function*() {
        const backend = yield* backendWith()
        const { exit } = yield* collect(backend, spec(BULKY_RESULT_SCRIPT))
        assertTooBig(exit, true)
      }))

    it.live("a log of tens of megabytes reaches a slow consumer in bounded chunks: every line and metric in order, \\r as shown, the right tail", () =>
      Effect.gen(function*() {
        const backend = yield* backendWith()
        // ~20 MB of log and ~5 MB of metrics.jsonl (more than a slice of it, 4 MiB), at once
        const metrics = 80_000
        const script = [
          `awk 'BEGIN { for (i = 0; i < ${metrics}; i++) printf "{\\"step\\":%d,\\"split\\":\\"train\\",\\"name\\":\\"loss\\",\\"value\\":0.5}\\n", i }' > "$TREX_JOB_DIR/metrics.jsonl"`,
          ...loudScript
        ].join("; ")
        const ref = yield* backend.submit(spec(script))
        const { events } = yield* checkLoudWatch(backend.watch(ref))
        const steps = events.flatMap((e) => (e._tag === "Metric" ? [e.point.step] : []))
        assert.strictEqual(steps.length, metrics)
        assert.isTrue(steps.every((step, i) => step === i))
      }), { timeout: 180_000 }) // Podman's log is read in polls: 18-23 s alone, 40 s and once over 60 s in the clean-clone CI

    it.live("the time limit kills the container: Timeout", () =>
      Effect.gen(function*() {
        const backend = yield* backendWith({ stopGraceSeconds: 1 })
        const { exit } = yield* collect(backend, spec("echo start; sleep 60; echo slept-to-the-end", { resources: { gpus: 0, cpus: 1, timeLimitSeconds: 1 } }))
        assert.strictEqual(exit.failureKind, "Timeout")
        assert.include(exit.logTail, "start")
        assert.notInclude(exit.logTail, "slept-to-the-end", "killed before the end")
      }))

    it.live("a memory limit that is exceeded is an OOM", () =>
      Effect.gen(function*() {
        const backend = yield* backendWith()
        const { exit } = yield* collect(
          backend,
          spec(`x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived`, { resources: { gpus: 0, cpus: 1, memoryMb: 16 } })
        )
        assert.strictEqual(exit.failureKind, "OOM", JSON.stringify(exit))
      }))

    it.live("cancel stops a running job: Cancelled; list(run) finds kept containers by label", () =>
      Effect.gen(function*() {
        const backend = yield* backendWith({ keep: true, stopGraceSeconds: 1 })
        const s = spec("trap 'exit 143' TERM; echo up; while true; do sleep 0.1; done")
        const ref = yield* backend.submit(s)
        const listed = yield* backend.list(run)
        const mine = listed.find((j) => j.ref.id === ref.id)
        assert.deepStrictEqual(mine?.labels, s.labels)
        assert.strictEqual(mine?.state, "Running")
        // a second controller (a new backend) reattaches and sees the cancellation
        const other = yield* backendWith({ keep: true })
        const up = yield* Deferred.make<void>()
        const fiber = yield* Stream.runCollect(other.watch(ref).pipe(Stream.tap((e) => (e._tag === "Log" && e.line === "up" ? Deferred.succeed(up, undefined) : Effect.void))))
          .pipe(Effect.forkChild)
        yield* Deferred.await(up) // the second controller watches, and the job runs
        yield* backend.cancel(ref)
        const events = yield* Fiber.join(fiber)
        const exit = events.at(-1) as Backend.JobExit
        assert.strictEqual(exit.outcome, "Cancelled")
        assert.include(events.flatMap((e) => (e._tag === "Log" ? [e.line] : [])), "up")
        const after = (yield* backend.list(run)).find((j) => j.ref.id === ref.id)
        assert.strictEqual(after?.state, "Finished")
        // a third controller finds the kept, finished container: its exit at once, with the log tail
        const third = yield* backendWith({ keep: true })
        const late = yield* Stream.runCollect(third.watch(ref))
        assert.deepStrictEqual(late.map((e) => e._tag), ["Exit"])
        assert.strictEqual((late[0] as Backend.JobExit).outcome, "Cancelled")
        assert.include((late[0] as Backend.JobExit).logTail, "up")
        // the same job again into its directory: the kept container (exited, not dead) is not kept in its record
        const next = yield* backend.submit({ ...s, argv: ["true"] })
        assert.strictEqual((yield* Backend.awaitExit(backend, next)).outcome, "Succeeded")
        const record = JSON.parse(Fs.readFileSync(Path.join(String(ref.data["jobDir"]), Spec.RECORD.job), "utf8"))
        assert.deepStrictEqual([record.container, record.ended], [next.id, undefined], JSON.stringify(record))
        yield* Effect.promise(() => Promise.all([ref.id, next.id].map((id) => engine.getContainer(id).remove({ force: true }))))
      }))

    it.live("a GPU job the engine cannot give GPUs is a clear, non-retryable BackendError (Podman would run it on none)", () =>
      Effect.gen(function*() {
        const backend = yield* backendWith()
        const s = spec("true", { resources: { gpus: 1, cpus: 1 } })
        const error = yield* backend.submit(s).pipe(Effect.flip)
        assert.strictEqual(error._tag, "BackendError")
        assert.isFalse(error.retryable)
        if (e.name === "docker") {
          assert.match(error.message, /could not give the container GPUs.*could not select device driver/s)
        } else {
          // Podman's API takes the DeviceRequest and ignores it: refused before a container is made
          assert.match(error.message, /engine is Podman \d.*ignores it: the job would run on no GPU/s)
          const made = yield* Effect.promise(() => engine.listContainers({ all: true, filters: { label: [`trex.node=${s.labels.node}`] } }))
          assert.deepStrictEqual(made, [])
        }
        assert.include(error.message, "NVIDIA Container Toolkit")
      }))

    it.live("an image that is not on the engine and cannot be pulled is a clear BackendError with the engine's reason", () =>
      Effect.gen(function*() {
        const backend = yield* backendWith({ retryFor: "1 second" })
        const error = yield* backend.submit(spec("true", { image: "local/no-such-image:latest" })).pipe(Effect.flip)
        assert.strictEqual(error._tag, "BackendError")
        assert.include(error.message, "image local/no-such-image:latest is not on the engine and cannot be pulled: ")
        // the registry's answer (none is reachable here), not the create's second "no such image"
        assert.notMatch(error.message, /cannot be pulled: .*(no such image|image not known)/)
      }))

    it.live("capacity counts running trex containers", () =>
      Effect.gen(function*() {
        const backend = yield* backendWith({ gpus: ["0", "1"] })
        const c = yield* backend.capacity
        assert.strictEqual(c.gpus, 2)
        assert.isAtLeast(c.slots, 1)
      }))

    it.live("learns which engine it is from the ping: it never asks the engine's version, nor on Podman its info (seconds each there)", () =>
      Effect.scoped(Effect.gen(function*() {
        yield* upOn(e)
        const asked: Array<string> = []
        const socket = yield* listenedTo(e.socket, asked)
        const backend = yield* DockerBackend.make({ root, socketPath: socket })
        const { exit } = yield* collect(backend, spec(`echo '{"metrics":{},"primary":1}' > result.json`))
        assert.strictEqual(exit.outcome, "Succeeded", JSON.stringify(exit))
        // slots default to the engine's CPU count (the engine is this machine): on Podman from its own info
        assert.strictEqual((yield* backend.capacity).slots, Os.cpus().length)
        const slow = asked.filter((path) => /^(\/v[\d.]+)?\/(version|info)(\?|$)/.test(path))
        assert.deepStrictEqual(slow, e.name === "podman" ? [] : ["/info"], JSON.stringify(asked))
        assert.include(asked, "/_ping")
      })))
  })
}

/**
 * A unix socket that passes every connection on to `socket`, noting the path of each HTTP request made through it in
 * `asked` (the requests' first lines: their bodies, JSON, hold none), until the scope closes.
 */
const listenedTo = (socket: string, asked: Array<string>) =>
  Effect.acquireRelease(
    Effect.promise(() => {
      const path = Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-sock-")), "engine.sock")
      const open = new Set<Net.Socket>()
      const server = Net.createServer((client) => {
        const upstream = Net.connect(socket)
        open.add(client).add(upstream)
        client.on("data", (d: Buffer) => {
          for (const m of d.toString("latin1").matchAll(/^(?:GET|POST|PUT|DELETE|HEAD) (\S+) HTTP\/1\.[01]\r$/gm)) asked.push(m[1]!)
        })
        for (const [a, b] of [[client, upstream], [upstream, client]] as const) a.on("error", () => b.destroy()).on("close", () => b.destroy())
        client.pipe(upstream).pipe(client)
      })
      return new Promise<{ server: Net.Server; path: string; open: Set<Net.Socket> }>((resolve) => server.listen(path, () => resolve({ server, path, open })))
    }),
    ({ server, path, open }) =>
      Effect.promise(() => new Promise<void>((resolve) => {
        server.close(() => resolve())
        for (const c of open) c.destroy()
      })).pipe(Effect.andThen(Effect.sync(() => Fs.rmSync(Path.dirname(path), { recursive: true, force: true }))))
  ).pipe(Effect.map(({ path }) => path))

const PODMAN = ENGINES.find((e) => e.name === "podman")
/** What is Podman's own. */
const podmanTests = (PODMAN: TestEngine) => {
  const spec = specOn(PODMAN)
  /** Run scripts/services/start-podman.sh (needs root, as in CI). */
  const podmanService = (args: ReadonlyArray<string>) =>
    Effect.tryPromise({
      try: () => execFileAsync(Path.join(import.meta.dirname, "../../../scripts/services/start-podman.sh"), [...args]),
      catch: (e) => new Error(`start-podman.sh ${args.join(" ")} failed (it needs root): ${String(e)}`)
    }).pipe(Effect.orDie)

  /** The options of a store of {@link ownPodman}'s, in `dir`, which takes the images of the machine's store (`images`), read only. */
  const storeOf = (dir: string, images: string) => [
    "--root", Path.join(dir, "root"), "--runroot", Path.join(dir, "run"), "--tmpdir", Path.join(dir, "tmp"),
    "--storage-opt", `overlay.imagestore=${images}`
  ]
  const machineImages = () => execFileAsync("podman", ["info", "--format", "{{.Store.GraphRoot}}"]).then((o) => o.stdout.trim())
  /**
   * Delete a store of {@link ownPodman}'s (its service stopped), whatever is left in it: its containers removed by Podman
   * (`conmon` and the container's processes with them), its mounts undone, its files made mutable (the test makes one
   * immutable), then the directory. Every step's failure is let be: the next steps, or the next run's sweep, do the rest.
   */
  const dropStore = async (dir: string, images: string) => {
    await execFileAsync("podman", [...storeOf(dir, images), "rm", "-af", "-t0"], { timeout: 30_000 }).catch(() => undefined)
    const mounts = Fs.readFileSync("/proc/self/mounts", "utf8").split("\n").map((l) => l.split(" ")[1] ?? "").filter((m) => m.startsWith(`${dir}/`))
    for (const m of mounts.reverse()) await execFileAsync("umount", [m]).catch(() => execFileAsync("umount", ["-l", m])).catch(() => undefined)
    await execFileAsync("chattr", ["-R", "-i", dir]).catch(() => undefined)
    await Fs.promises.rm(dir, { recursive: true, force: true }).catch(() => undefined)
  }
  /**
   * The stores of {@link ownPodman}'s that a run killed meanwhile left (its `afterAll` never ran): in a `trex-docker-*`
   * directory of the temporary directory, older than two minutes (a test takes one at most), whose service does not
   * answer (one that does is a run's that is going on; an orphaned service exits within 30 s of its last request).
   */
  const sweepStores = async () => {
    const tmp = Os.tmpdir()
    const stale: Array<string> = []
    for (const top of Fs.readdirSync(tmp).filter((n) => n.startsWith("trex-docker-"))) {
      const dirs = await Fs.promises.readdir(Path.join(tmp, top)).catch(() => [])
      for (const name of dirs.filter((n) => n.startsWith("podman-"))) {
        const dir = Path.join(tmp, top, name)
        const old = await Fs.promises.stat(dir).then((st) => st.isDirectory() && Date.now() - st.mtimeMs > 120_000, () => false)
        if (old && !(await dockerAt(Path.join(dir, "podman.sock")).ping().then(() => true, () => false))) stale.push(dir)
      }
    }
    if (stale.length === 0) return
    const images = await machineImages()
    for (const dir of stale) await dropStore(dir, images)
  }

  /**
   * A Podman service of this test's own, for the scope: its own store (`--root`, `--runroot`, `--tmpdir` in a directory
   * of `root`), which takes the images of the machine's store, read only (`overlay.imagestore`), on a socket there;
   * stopped (SIGTERM, SIGKILL after 10 s) and its store deleted at the scope's end. What breaks its store (a layer it
   * cannot delete stops every start) breaks no other test's Podman, nor anyone else's on this machine. Its service
   * exits by itself 30 s after its last request (`--time=30`) if the test's process is killed.
   */
  const ownPodman = Effect.acquireRelease(
    Effect.gen(function*() {
      const dir = Fs.mkdtempSync(Path.join(root, "podman-"))
      const images = yield* Effect.promise(machineImages)
      const socket = Path.join(dir, "podman.sock")
      // started from its directory: conmon writes its `oom` markers into the service's working directory (see start-podman.sh)
      const service = spawn("podman", [...storeOf(dir, images), "system", "service", "--time=30", `unix://${socket}`], { cwd: dir, stdio: "ignore" })
      const ended = new Promise<boolean>((resolve) => service.once("exit", () => resolve(true)))
      return { dir, images, service, ended, engine: { ...PODMAN, socket } satisfies TestEngine }
    }),
    ({ dir, ended, images, service }) =>
      Effect.promise(async () => {
        const within = (ms: number) => Promise.race([ended, new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms).unref())])
        service.kill("SIGTERM")
        if (!(await within(10_000))) {
          service.kill("SIGKILL")
          await within(5_000)
        }
        await dropStore(dir, images)
      })
  ).pipe(Effect.tap(({ engine }) => eventually("the test's own Podman service answers", Effect.promise(() => dockerAt(engine.socket).ping().then(() => true, () => false)), 20)))

  describe("DockerBackend on podman only", inOrder, () => {
    beforeAll(sweepStores, 120_000)
    it.live("a Podman service that stops mid-run leaves the job running: the watch waits (engineWait, not retryFor), then reads every line once and the exit", () =>
      Effect.gen(function*() {
        // retryFor is short: a watch that gave up with the service's calls would fail within the outage
        const backend = yield* backendOn(PODMAN)({ retryFor: "100 millis" })
        const ref = yield* backend.submit(spec(`echo up; i=0; while [ $i -lt 30 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done`))
        const up = yield* Deferred.make<void>()
        const outageSaid = yield* Deferred.make<void>()
        const fiber = yield* Stream.runCollect(backend.watch(ref).pipe(Stream.tap((e) =>
          e._tag === "Log" && e.line === "up" ? Deferred.succeed(up, undefined)
          : e._tag === "State" && e.reason !== undefined ? Deferred.succeed(outageSaid, undefined)
          : Effect.void
        ))).pipe(Effect.forkChild)
        yield* Deferred.await(up)
        // unlike dockerd, the service is no parent of the containers (conmon is): they run on without it
        yield* podmanService(["stop"])
        const down = yield* Effect.promise(() => dockerAt(PODMAN.socket).ping().then(() => false, () => true))
        assert.isTrue(down, "the service is stopped")
        // started again once the watch has said that it does not answer (its start takes longer than retryFor)
        yield* Deferred.await(outageSaid)
        yield* podmanService([])
        const events = yield* Fiber.join(fiber)
        const exit = events.at(-1) as Backend.JobExit
        assert.strictEqual(exit.outcome, "Succeeded", JSON.stringify(exit))
        const lines = events.flatMap((e) => (e._tag === "Log" ? [e.line] : []))
        assert.deepStrictEqual(lines, ["up", ...Array.from({ length: 30 }, (_, i) => `tick ${i}`)])
        assertOutageTold(events)
      }), 60_000)

    it.live("a removal Podman refuses (a file of the container it cannot delete) leaves no container but its files: the exit as read, a warning, the next start refused naming the file, then a start once it is deletable; on a Podman of the test's own, the lane's starting jobs meanwhile", () => {
      const warned: Array<string> = []
      return Effect.gen(function*() {
        // until the file is deletable no container of that Podman starts: a Podman of this test's own, not the lane's
        const own = (yield* ownPodman).engine
        const podman = dockerAt(own.socket)
        const spec = specOn(own)
        const backend = yield* backendOn(own)({ slots: 2 })
        const ref = yield* backend.submit(spec(HELD_JOB))
        const watching = yield* watchUntil(backend, ref, "up")
        // as on Docker Engine (HQ); made deletable again whatever happens
        const held = yield* holdThenEnd(podman, ref)
        const exit = (yield* Fiber.join(watching)).at(-1) as Backend.JobExit
        assert.deepStrictEqual([exit._tag, exit.outcome, exit.result], ["Exit", "Succeeded", { metrics: {}, primary: 1 }], JSON.stringify(exit))
        // Podman forgot the container before it failed to delete the file: nothing is left `dead`, nothing to remove again
        const gone = yield* Effect.promise(() => podman.getContainer(ref.id).inspect().then(() => false, () => true))
        assert.isTrue(gone, "Podman has no such container")
        assert.strictEqual(warned.length, 1, JSON.stringify(warned))
        for (const part of [`container ${ref.id.slice(0, 12)}`, "the engine removed the container but not all of its files", "operation not permitted", "no container starts until it can"]) {
          assert.include(warned[0], part)
        }
        assert.notInclude(warned[0], "docker rm -f")
        // Podman tries to delete the left files before it mounts the next container, and fails: the start is refused,
        // naming the file; the lane's Podman (and anyone else's on this machine) starts containers meanwhile
        const lane = yield* backendOn(PODMAN)({ slots: 2 })
        const [refused, elsewhere] = yield* Effect.all([
          backend.submit(spec("echo next")).pipe(Effect.flip),
          Effect.flatMap(lane.submit(specOn(PODMAN)("echo elsewhere")), (ref) => Backend.awaitExit(lane, ref))
        ], { concurrency: 2 })
        assert.isFalse(refused.retryable)
        for (const part of ["cannot delete the files an earlier container left", `chattr -i ${held}`]) assert.include(refused.message, part)
        assert.strictEqual(elsewhere.outcome, "Succeeded", JSON.stringify(elsewhere))
        // once the file is deletable, the next start deletes them, and starts
        yield* chattr(["-i", held])
        assert.strictEqual((yield* Backend.awaitExit(backend, yield* backend.submit(spec("echo next")))).outcome, "Succeeded")
        assert.strictEqual(warned.length, 1, JSON.stringify(warned))
      }).pipe(Effect.scoped, Effect.provide(Logger.layer([Logger.make((o) => void (o.logLevel === "Warn" && warned.push(String(o.message))))])))
    }, 60_000)
  })
}

/** The watch said the engine stopped answering (a `Running` with why, for `trex status`), then that it answers again. */
function assertOutageTold(events: Iterable<Backend.JobEvent>) {
  const states = [...events].flatMap((e) => (e._tag === "State" ? [e] : []))
  const told = states.findIndex((e) => e.state === "Running" && /(engine|service) at .* does not answer since \d\d:\d\d:\d\dZ .*\(engineWait\)/.test(e.reason ?? ""))
  assert.isAtLeast(told, 0, JSON.stringify(states))
  assert.isTrue(states.slice(told + 1).some((e) => e.state === "Running" && e.reason === undefined), `the end of the outage is told: ${JSON.stringify(states)}`)
}

const dockerOnlyTests = () => describe("DockerBackend on docker only", inOrder, () => {
  it.live("a container whose job directory a newer job took (a retry submitted before its end was read) reads none of that job's files: lost, the newer job's result and exit record left alone", () =>
    Effect.gen(function*() {
      const backend = yield* backendWith({ slots: 2 })
      const first = spec("sleep 2")
      const ref1 = yield* backend.submit(first)
      const ref2 = yield* backend.submit({ ...first, argv: ["sh", "-c", `echo '{"metrics": {"accuracy": 0.5}}' > "$TREX_JOB_DIR/result.json"`] })
      assert.strictEqual((yield* Backend.awaitExit(backend, ref2)).outcome, "Succeeded")
      const exitFile = Path.join(String(ref2.data["jobDir"]), Spec.RECORD.exit)
      const recorded = Fs.readFileSync(exitFile, "utf8")
      // the first ends (exit code 0): not with the newer job's result, nor over its exit record
      const lost = yield* Backend.awaitExit(backend, ref1)
      assert.deepStrictEqual([lost.outcome, lost.failureKind, lost.result], ["Failed", "Infra", undefined], JSON.stringify(lost))
      assert.include(lost.message, "was given to a newer job")
      assert.include(lost.message, ref1.id.slice(0, 12))
      assert.strictEqual(Fs.readFileSync(exitFile, "utf8"), recorded, "the newer job's exit record is kept")
      // its container removed, another controller's watch of it finds none: lost as well, not the newer job's exit
      const gone = yield* Backend.awaitExit(yield* backendWith(), ref1)
      assert.deepStrictEqual([gone.outcome, gone.failureKind], ["Failed", "Infra"], JSON.stringify(gone))
      assert.include(gone.message, "was given to a newer job")
    }).pipe(Effect.scoped), 60_000)

  it.live("two jobs of a node in one directory: listed with their submission times (the engine lists the newest first), and a stop of the older leaves the newer job's directory without its cancel marker", () =>
    Effect.gen(function*() {
      const backend = yield* backendWith({ slots: 4, stopGraceSeconds: 1 })
      const first = spec("trap 'exit 0' TERM; while true; do sleep 0.1; done")
      const ref1 = yield* backend.submit(first)
      const ref2 = yield* backend.submit({ ...first, argv: ["sh", "-c", `while [ ! -e "$TREX_JOB_DIR/go" ]; do sleep 0.1; done; echo '{"metrics": {"accuracy": 0.5}}' > "$TREX_JOB_DIR/result.json"`] })
      const listed = (yield* backend.list(run)).filter((j) => j.labels.node === first.labels.node)
      assert.deepStrictEqual(listed.map((j) => j.ref.id), [ref2.id, ref1.id], "the engine's order, newest first")
      const [at2, at1] = listed.map((j) => j.submittedAt)
      assert.isTrue(at1 !== undefined && at2 !== undefined && at1 < at2, JSON.stringify(listed))
      // the older container stopped: the marker it would write is the directory's current job's, the newer one's
      yield* backend.cancel(ref1)
      const jobDir = String(ref2.data["jobDir"])
      assert.isFalse(Fs.existsSync(Path.join(jobDir, Spec.MARKER.cancelled)), "no cancel marker in the newer job's directory")
      Fs.writeFileSync(Path.join(jobDir, "go"), "")
      const exit = yield* Backend.awaitExit(backend, ref2)
      assert.strictEqual(exit.outcome, "Succeeded", JSON.stringify(exit))
    }).pipe(Effect.scoped), 60_000)

  it.live("two backends of one engine with other roots and one run id each list only their own root's containers of the run", () =>
    Effect.gen(function*() {
      const otherRoot = Fs.mkdtempSync(Path.join(root, "other-"))
      const mine = yield* backendWith({ slots: 4 })
      const theirs = yield* backendWith({ root: otherRoot, slots: 4 })
      // one node of one run in each root, running while listed (their containers on the engine, labelled with the run)
      const s = spec(`i=0; while [ ! -e "$TREX_JOB_DIR/go" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done`)
      const ref1 = yield* mine.submit(s)
      const ref2 = yield* theirs.submit(s)
      const listed = (backend: Backend.BackendShape) => Effect.map(backend.list(run), (jobs) => jobs.filter((j) => j.labels.node === s.labels.node).map((j) => j.ref.id))
      assert.deepStrictEqual(yield* listed(mine), [ref1.id], "this root's job only")
      assert.deepStrictEqual(yield* listed(theirs), [ref2.id], "the other root's job only")
      for (const ref of [ref1, ref2]) Fs.writeFileSync(Path.join(String(ref.data["jobDir"]), "go"), "")
      assert.strictEqual((yield* Backend.awaitExit(mine, ref1)).outcome, "Succeeded")
      assert.strictEqual((yield* Backend.awaitExit(theirs, ref2)).outcome, "Succeeded")
    }).pipe(Effect.scoped), 60_000)

  it.live("an engine that does not answer at the start is retried, then said at once, naming the socket, DOCKER_HOST and the fix", () =>
    Effect.gen(function*() {
      const socket = Path.join(root, "no-such.sock")
      const error = yield* DockerBackend.make({ root, socketPath: socket, retryFor: "1 second", slots: 1 }).pipe(Effect.flip)
      assert.strictEqual(error.operation, "make")
      assert.isTrue(error.retryable)
      assert.include(error.message, `no Docker engine answers at ${socket}`)
      assert.include(error.message, "Docker engine unreachable")
      assert.include(error.message, "sudo systemctl start docker")
      assert.include(error.message, "DOCKER_HOST")
      const attempts = Number(/after (\d+) attempts/.exec(error.message)?.[1] ?? 0)
      assert.isAtLeast(attempts, 2, `retried within its second: ${error.message}`)
    }))

  it.live("a daemon that stops mid-run is waited for: watch retries, then reports the exit (no duplicate lines)", () =>
    Effect.gen(function*() {
      const backend = yield* backendWith({ retryFor: "60 seconds" })
      const ref = yield* backend.submit(spec(`trap 'echo got-term; exit 7' TERM; echo up; while true; do sleep 0.2; done`))
      const up = yield* Deferred.make<void>()
      const fiber = yield* Stream.runCollect(backend.watch(ref).pipe(Stream.tap((e) => (e._tag === "Log" && e.line === "up" ? Deferred.succeed(up, undefined) : Effect.void))))
        .pipe(Effect.forkChild)
      yield* Deferred.await(up) // the trap is set
      // dockerd stops its containers (SIGTERM) on the way down; the watch sees it gone while it starts again
      yield* service(["stop"])
      yield* service([])
      const events = yield* Fiber.join(fiber)
      const exit = events.at(-1) as Backend.JobExit
      assert.strictEqual(exit.exitCode, 7, JSON.stringify(exit))
      assert.strictEqual(exit.failureKind, "Crash")
      const lines = events.flatMap((e) => (e._tag === "Log" ? [e.line] : []))
      assert.deepStrictEqual(lines, ["up", "got-term"])
    }), 60_000)

  it.live("reaches an engine over ssh:// (docker system dial-stdio), checking the host key; its SSH login and sessions end with the backend", () =>
    Effect.gen(function*() {
      yield* engineUp
      // an sshd of the test's own (sessions without root's rc files: seconds less), as the test sshd but on another port
      const own = yield* ownSshd("MaxSessions 100")
      const ssh = { privateKeyPath: `${sshKeys}/id_ed25519`, knownHostsPath: own.knownHosts }
      const host = `ssh://root@127.0.0.1:${own.port}`
      const served = yield* Effect.scoped(Effect.gen(function*() {
        const backend = yield* DockerBackend.make({ root, host, ssh, slots: 2 })
        const { exit } = yield* collect(backend, spec(`echo via-ssh; echo '{"metrics":{},"primary":1}' > result.json`))
        assert.strictEqual(exit.outcome, "Succeeded", JSON.stringify(exit))
        assert.include(exit.logTail, "via-ssh")
        const sshd = (yield* sshConnections(own.port)).flatMap((c) => c.sshd)
        const sessions = yield* descendants(sshd, "dial-stdio")
        assert.isNotEmpty(sshd)
        assert.isNotEmpty(sessions, "an idle `docker system dial-stdio` kept for the next request")
        return [...sshd, ...sessions]
      }))
      yield* eventually("the SSH login and its dial-stdio sessions end with the backend's scope", () => served.every((pid) => !running(pid)), 10)
      const wrongHosts = Path.join(root, "known_hosts_empty")
      Fs.writeFileSync(wrongHosts, "")
      const error = yield* DockerBackend.make({ root, host, ssh: { ...ssh, knownHostsPath: wrongHosts }, slots: 1, retryFor: "100 millis" })
        .pipe(Effect.flip)
      assert.isFalse(error.retryable)
      assert.include(error.message, "host key")
    }), 60_000)

  it.live("a socketPath given wins over a DOCKER_HOST of another kind (tcp://, ssh://) in the environment", () =>
    Effect.gen(function*() {
      yield* engineUp
      // nothing listens on port 1: a backend that went there would not answer (nor would dockerode given the socket alone)
      for (const elsewhere of ["tcp://127.0.0.1:1", "ssh://root@127.0.0.1:1"]) {
        const backend = yield* withEnv({ DOCKER_HOST: elsewhere }, DockerBackend.make({ root, socketPath: SOCKET, slots: 1, retryFor: "100 millis" }))
        assert.strictEqual((yield* Backend.awaitExit(backend, yield* backend.submit(spec("echo here")))).outcome, "Succeeded", elsewhere)
      }
    }), 60_000)

  it.live("an ssh:// engine named only by DOCKER_HOST goes through the backend's pool: one login for a job, its agent's key and ~/.ssh/known_hosts", () =>
    Effect.gen(function*() {
      yield* engineUp
      const own = yield* ownSshd("MaxSessions 100")
      // an SSH agent holding the key (docker-modem's own transport logs in with it too: once a request), and a home
      // whose ~/.ssh/known_hosts knows the sshd's key
      const home = Fs.mkdtempSync(Path.join(root, "home-"))
      Fs.mkdirSync(Path.join(home, ".ssh"))
      Fs.copyFileSync(own.knownHosts, Path.join(home, ".ssh", "known_hosts"))
      const sock = Path.join(home, "agent.sock")
      yield* Effect.acquireRelease(Effect.sync(() => spawn("ssh-agent", ["-D", "-a", sock], { stdio: "ignore" })), (agent) => Effect.sync(() => agent.kill()))
      yield* eventually("the SSH agent listens", () => Fs.existsSync(sock), 10)
      yield* Effect.promise(() => execFileAsync("ssh-add", [`${sshKeys}/id_ed25519`], { env: { ...process.env, SSH_AUTH_SOCK: sock } }))
      const backend = yield* withEnv({ DOCKER_HOST: `ssh://root@127.0.0.1:${own.port}`, SSH_AUTH_SOCK: sock, HOME: home }, DockerBackend.make({ root, slots: 2 }))
      const { exit } = yield* collect(backend, spec(`echo via-docker-host; echo '{"metrics":{},"primary":1}' > result.json`))
      assert.strictEqual(exit.outcome, "Succeeded", JSON.stringify(exit))
      assert.include(exit.logTail, "via-docker-host")
      // before: one login a request (the ping, the version, the create, start, logs, inspects, removal...)
      assert.strictEqual(logins(own.log), 1, Fs.readFileSync(own.log, "utf8"))
      const sshd = (yield* sshConnections(own.port)).flatMap((c) => c.sshd)
      assert.isNotEmpty(sshd, "the connection kept for the next request")
    }), 60_000)

  /** An `ssh://` engine's agent (closed with the test's scope), its dockerode, and the ssh2 clients it made with their sockets. */
  const sshEngine = (port: number, knownHostsPath: string) =>
    Effect.gen(function*() {
      const ssh2 = yield* Effect.promise(() => import("ssh2"))
      const clients: Array<{ readonly client: InstanceType<typeof ssh2.Client>; readonly sock: Net.Socket }> = []
      class Client extends ssh2.Client {
        override connect(config: Parameters<InstanceType<typeof ssh2.Client>["connect"]>[0]) {
          clients.push({ client: this, sock: config.sock as Net.Socket })
          return super.connect(config)
        }
      }
      const options = engineOptions({ host: `ssh://root@127.0.0.1:${port}`, ssh: { privateKeyPath: `${sshKeys}/id_ed25519`, knownHostsPath } }, { ...ssh2, Client } as typeof ssh2)
      const agent = (options as { readonly agent: SshAgent }).agent
      yield* Effect.addFinalizer(() => Effect.sync(() => agent.destroy()))
      return { agent, docker: new Docker(options), clients }
    })

  /**
   * An sshd of this test's own (`MaxSessions 100`) in front of the engine, an agent of its own to it (closed with the
   * test's scope) logging in as root with the test key unless `login` says otherwise, and a dockerode through it.
   */
  const agentTo = (login: Partial<Parameters<typeof sshAgent>[1]> = {}, idle?: Parameters<typeof sshAgent>[2]) =>
    Effect.gen(function*() {
      yield* engineUp
      const sshd = yield* ownSshd("MaxSessions 100")
      const ssh2 = yield* Effect.promise(() => import("ssh2"))
      const agent = sshAgent(ssh2, { host: "127.0.0.1", port: sshd.port, username: "root", privateKey: Fs.readFileSync(`${sshKeys}/id_ed25519`), ...login }, idle)
      yield* Effect.addFinalizer(() => Effect.sync(() => agent.destroy()))
      return { sshd, agent, docker: new Docker({ protocol: "http", host: "127.0.0.1", port: sshd.port, agent } as Docker.DockerOptions) }
    })

  /** `n` event streams of the engine at once, each holding a session while open. */
  const eventStreams = (docker: Docker, n: number) =>
    Effect.acquireRelease(
      Effect.promise(() => Promise.all(Array.from({ length: n }, () => docker.getEvents() as Promise<NodeJS.ReadableStream & { destroy: () => void; readonly destroyed: boolean }>))),
      (streams) => Effect.sync(() => streams.forEach((s) => s.destroy()))
    )

  /**
   * `docker version` through `agent` answers, and the agent has then made `logins` SSH logins in all; with `moved`, the
   * request went on a new connection, the only one of this process to the sshd (`mine`), not `from`'s local port.
   */
  const answersAfter = (docker: Docker, agent: SshAgent, logins: number, moved?: { readonly mine: ReturnType<typeof sshConnections>; readonly from: { readonly port: string } }) =>
    Effect.gen(function*() {
      assert.isString((yield* Effect.promise(() => docker.version())).ApiVersion)
      assert.strictEqual(agent.made().logins, logins)
      if (moved === undefined) return
      const now = yield* moved.mine
      assert.strictEqual(now.length, 1)
      assert.notStrictEqual(now[0]!.port, moved.from.port)
    })

  it.live("an ssh:// engine's requests share one SSH connection and its sessions; one the server dropped is made again", () =>
    Effect.gen(function*() {
      yield* engineUp
      const sshd = yield* ownSshd("MaxSessions 100")
      const { agent, docker } = yield* sshEngine(sshd.port, sshd.knownHosts)
      const mine = sshConnections(sshd.port)
      // two at once, then four one after the other
      yield* Effect.promise(() => Promise.all([1, 2].map(() => docker.ping())))
      for (let i = 0; i < 4; i++) assert.isString((yield* Effect.promise(() => docker.version())).ApiVersion)
      // before: an SSH login, and a session running the login shell and its rc files, for each of the six
      assert.strictEqual(agent.made().logins, 1)
      assert.isAtMost(agent.made().sessions, 2)
      const [first, ...more] = yield* mine
      assert.deepStrictEqual(more, [], "one SSH connection")
      assert.isNotEmpty(first!.sshd)
      // the server ends it (sshd's process for this connection killed, as when sshd restarts or the host reboots)
      for (const pid of first!.sshd) process.kill(pid, "SIGTERM")
      yield* eventually("the connection is gone", Effect.map(mine, (c) => c.every((x) => x.port !== first!.port)), 30)
      yield* answersAfter(docker, agent, 2, { mine, from: first! })
    }), 60_000)

  it.live("an ssh:// engine opens sessions past the server's MaxSessions on more connections, and leaves the open ones be", () =>
    Effect.gen(function*() {
      yield* engineUp
      const sshd = yield* ownSshd("MaxSessions 2")
      const { agent, docker } = yield* sshEngine(sshd.port, sshd.knownHosts)
      // five sessions held (as five jobs' `logs follow`): at most two on each connection
      const streams = yield* eventStreams(docker, 5)
      assert.isString((yield* Effect.promise(() => docker.version())).ApiVersion)
      assert.deepStrictEqual(streams.map((s) => s.destroyed), [false, false, false, false, false], "no open session ended")
      assert.isAtLeast(agent.made().connections, 3)
      assert.isAtMost(agent.made().connections, 4)
    }), 60_000)

  it.live("an ssh:// engine notices a link that went silent (SSH keep-alives): the stream on it ends, the next request logs in again", () =>
    Effect.gen(function*() {
      // keep-alives every 0.2 s rather than 10 s, two unanswered
      const { sshd, agent, docker } = yield* agentTo({ keepaliveInterval: 200, keepaliveCountMax: 2 })
      const [events] = yield* eventStreams(docker, 1)
      // the server stops answering, its connection left open (a link dropped without a reset): its sshd processes stopped
      const [connection] = yield* sshConnections(sshd.port)
      yield* Effect.acquireRelease(
        Effect.sync(() => connection!.sshd.forEach((pid) => process.kill(pid, "SIGSTOP"))),
        () => Effect.sync(() => connection!.sshd.forEach((pid) => process.kill(pid, "SIGKILL")))
      )
      yield* eventually("the event stream on the silent connection ended", () => events!.destroyed, 10)
      yield* answersAfter(docker, agent, 2)
    }), 60_000)

  it.live("an ssh:// engine closes a session idle for its time, then the connection left without sessions; the next request logs in afresh", () =>
    Effect.gen(function*() {
      // idle times of 0.3 s and 0.5 s rather than 15 s and 10 s
      const { sshd, agent, docker } = yield* agentTo({}, { sessionMs: 300, connectionMs: 500 })
      const mine = sshConnections(sshd.port)
      // the session the agent keeps after the request, and its close (from its `free`: no race with its idle time)
      const kept: Array<Net.Socket> = []
      const closed: Array<Net.Socket> = []
      agent.on("free", (socket: Net.Socket) => kept.push(socket.once("close", () => closed.push(socket))))
      assert.isString((yield* Effect.promise(() => docker.version())).ApiVersion)
      assert.strictEqual(kept.length, 1, "the session kept for the next request")
      const [first] = yield* mine
      yield* eventually("the idle session is closed", () => closed.length === 1 && Object.values(agent.freeSockets).flat().length === 0, 8)
      yield* eventually("the connection without sessions is closed", Effect.map(mine, (c) => c.length === 0 && agent.made().connections === 0), 8)
      assert.strictEqual(agent.made().logins, 1)
      yield* answersAfter(docker, agent, 2, { mine, from: first! })
      assert.strictEqual(agent.made().sessions, 2)
    }), 60_000)

  it.live("an ssh:// engine's sessions share one close listener, and a kept session keeps no request's timeout listener; a connection whose socket no longer writes is made again", () =>
    Effect.gen(function*() {
      yield* engineUp
      const sshd = yield* ownSshd("MaxSessions 100")
      const { agent, docker, clients } = yield* sshEngine(sshd.port, sshd.knownHosts)
      // twelve sessions on one connection: one listener of the connection's close for all (not one each)
      const closers = yield* Effect.scoped(Effect.map(eventStreams(docker, 12), () => clients.map((c) => c.client.listenerCount("close"))))
      assert.strictEqual(clients.length, 1)
      assert.isAtMost(closers[0]!, 2, "close listeners on the SSH client")
      yield* eventually("no session in use or kept", () => Object.keys(agent.sockets).length + Object.keys(agent.freeSockets).length === 0)
      // the connection's socket stops writing before its close is seen: ssh2's exec throws "Not connected"
      clients[0]!.sock.end()
      yield* answersAfter(docker, agent, 2)
      // twelve requests more, one after the other on a kept session: each request's timeout listener is taken off at its end
      for (let i = 0; i < 12; i++) yield* Effect.promise(() => docker.version())
      const kept = Object.values(agent.freeSockets).flat() as Array<Net.Socket>
      assert.isNotEmpty(kept)
      assert.deepStrictEqual(kept.map((s) => s.listenerCount("timeout") <= 2), kept.map(() => true), `timeout listeners: ${kept.map((s) => s.listenerCount("timeout"))}`)
      // the same with a session kept on it: the session is not handed to the next request ("socket hang up")
      clients[1]!.sock.end()
      yield* answersAfter(docker, agent, 3)
    }), 60_000)

  /** A host key of `type` made for this test (in `root`), for {@link ownSshd}'s `hostKeys`. */
  const hostKey = (type: "ecdsa" | "rsa" | "ed25519") =>
    Effect.promise(async () => {
      const file = Path.join(root, `host_${type}_${++counter}`)
      await execFileAsync("ssh-keygen", ["-q", "-t", type, ...(type === "rsa" ? ["-b", "2048"] : []), "-N", "", "-f", file])
      return file
    })
  /** The `type key` of a public key file. */
  const publicKey = (file: string) => Fs.readFileSync(`${file}.pub`, "utf8").split(" ").slice(0, 2).join(" ")
  /** A known_hosts file of these lines. */
  const knownHostsOf = (...lines: ReadonlyArray<string>) => {
    const file = Path.join(root, `known_hosts_${++counter}`)
    Fs.writeFileSync(file, lines.map((l) => `${l}\n`).join(""))
    return file
  }
  /** Whether an `ssh://` engine of these options answers a ping ("ok"), else its error; its agent destroyed after. */
  const pingThrough = (options: Docker.DockerOptions | undefined) =>
    Effect.acquireUseRelease(
      Effect.succeed(options as Docker.DockerOptions & { readonly agent: SshAgent }),
      (o) => Effect.promise(() => new Docker(o).ping().then(() => "ok", (e: unknown) => String(e))),
      (o) => Effect.sync(() => o.agent.destroy())
    )
  /** An `ssh://` engine's options with the test key and `knownHostsPath`. */
  const withKey = (port: number, knownHostsPath: string) =>
    Effect.promise(() => import("ssh2")).pipe(
      Effect.map((ssh2) => engineOptions({ host: `ssh://root@127.0.0.1:${port}`, ssh: { privateKeyPath: `${sshKeys}/id_ed25519`, knownHostsPath } }, ssh2))
    )

  it.live("an ssh:// engine refuses a host key marked @revoked, whatever other lines say, and takes no @cert-authority key for a host key", () =>
    Effect.gen(function*() {
      yield* engineUp
      const sshd = yield* ownSshd("MaxSessions 100")
      const key = publicKey("/etc/ssh/sdktest/host_ed25519")
      assert.strictEqual(yield* pingThrough(yield* withKey(sshd.port, sshd.knownHosts)), "ok")
      const revoked = knownHostsOf(`[127.0.0.1]:${sshd.port} ${key}`, `@revoked * ${key}`)
      // the message of the SSH backend's connections (one function: sshKnownHosts.ts's `refusal`), not ssh2's "Host denied"
      assert.include(yield* pingThrough(yield* withKey(sshd.port, revoked)), `root@127.0.0.1:${sshd.port}: the host key offered is marked @revoked in ${revoked}; refusing to connect`)
      const ca = knownHostsOf(`@cert-authority [127.0.0.1]:${sshd.port} ${key}`)
      assert.include(yield* pingThrough(yield* withKey(sshd.port, ca)), `root@127.0.0.1:${sshd.port}: host key not in ${ca} (add it with ssh-keyscan`)
    }), 60_000)

  it.live("an ssh:// engine known only by its ECDSA or its RSA host key is reached: the known key types are asked for first", () =>
    Effect.gen(function*() {
      yield* engineUp
      const ecdsa = yield* hostKey("ecdsa")
      const rsa = yield* hostKey("rsa")
      // the server has all three kinds (as a stock sshd does); each known_hosts knows one of them
      const sshd = yield* ownSshd("MaxSessions 100", [ecdsa, "/etc/ssh/sdktest/host_ed25519", rsa])
      assert.strictEqual(yield* pingThrough(yield* withKey(sshd.port, sshd.knownHosts)), "ok", "known by its ECDSA key")
      assert.strictEqual(yield* pingThrough(yield* withKey(sshd.port, knownHostsOf(`[127.0.0.1]:${sshd.port} ${publicKey(rsa)}`))), "ok", "known by its RSA key")
    }), 60_000)

  /** A home of this test's own: `.ssh` with these files (name: contents). */
  const homeWith = (files: Readonly<Record<string, string | Buffer>>) => {
    const home = Fs.mkdtempSync(Path.join(root, "home-"))
    Fs.mkdirSync(Path.join(home, ".ssh"))
    for (const [name, contents] of Object.entries(files)) Fs.writeFileSync(Path.join(home, ".ssh", name), contents, { mode: 0o600 })
    return home
  }

  it.live("an ssh:// engine named only by DOCKER_HOST tries the agent, then each default key it can use (an encrypted one skipped); none usable is said at make", () =>
    Effect.gen(function*() {
      yield* engineUp
      const sshd = yield* ownSshd("MaxSessions 100")
      const ssh2 = yield* Effect.promise(() => import("ssh2"))
      // an encrypted id_ed25519 (not the server's), and the test key, which the server takes, as id_rsa
      const encrypted = Path.join(root, `encrypted_${++counter}`)
      yield* Effect.promise(() => execFileAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "a passphrase", "-f", encrypted]))
      const home = homeWith({ known_hosts: Fs.readFileSync(sshd.knownHosts), id_ed25519: Fs.readFileSync(encrypted), id_rsa: Fs.readFileSync(`${sshKeys}/id_ed25519`) })
      // an agent without keys: the agent is tried first, then the keys
      const sock = Path.join(home, "agent.sock")
      yield* Effect.acquireRelease(Effect.sync(() => spawn("ssh-agent", ["-D", "-a", sock], { stdio: "ignore" })), (agent) => Effect.sync(() => agent.kill()))
      yield* eventually("the SSH agent listens", () => Fs.existsSync(sock), 10)
      const env = { DOCKER_HOST: `ssh://root@127.0.0.1:${sshd.port}` }
      for (const agent of [sock, ""]) {
        const options = yield* withEnv({ HOME: home }, Effect.sync(() => engineOptions({}, ssh2, { ...env, SSH_AUTH_SOCK: agent })))
        assert.strictEqual(yield* pingThrough(options), "ok", `SSH_AUTH_SOCK=${agent}`)
      }
      // only the encrypted key, no agent: said when the backend is made, naming the ways out
      const locked = homeWith({ known_hosts: Fs.readFileSync(sshd.knownHosts), id_ed25519: Fs.readFileSync(encrypted) })
      const error = yield* withEnv({ HOME: locked, DOCKER_HOST: env.DOCKER_HOST, SSH_AUTH_SOCK: "" }, DockerBackend.make({ root, slots: 1 })).pipe(Effect.flip)
      assert.include(error.message, "~/.ssh/id_ed25519: Encrypted private OpenSSH key detected")
      assert.include(error.message, "ssh-add")
      assert.include(error.message, "backend.docker.ssh")
    }), 60_000)

  it.live("an ssh:// engine named only by DOCKER_HOST reads ~/.ssh/config: a Host alias's HostName, Port, User, IdentityFile, UserKnownHostsFile; a ProxyJump it cannot honour is a warning naming the line; ssh.knownHostsPath wins over it; UserKnownHostsFile none is not ~/.ssh/known_hosts", () =>
    Effect.gen(function*() {
      yield* engineUp
      const sshd = yield* ownSshd("MaxSessions 100")
      const ssh2 = yield* Effect.promise(() => import("ssh2"))
      const config = ["Host engine-alias", "  HostName 127.0.0.1", `  Port ${sshd.port}`, "  User root", "  IdentityFile ~/.ssh/engine_key",
        "  UserKnownHostsFile ~/.ssh/engine_known_hosts", "  ProxyJump bastion",
        // another key for the host: the ssh.knownHostsPath given must win over it
        "Host engine-explicit", "  HostName 127.0.0.1", `  Port ${sshd.port}`, "  User root", "  UserKnownHostsFile ~/.ssh/wrong_known_hosts",
        // no file of the user's: the system's only (here none), never ~/.ssh/known_hosts
        "Host engine-none", "  HostName 127.0.0.1", `  Port ${sshd.port}`, "  User root", "  IdentityFile ~/.ssh/engine_key", "  UserKnownHostsFile none",
        "Host *", "  Port 1", "  User nobody",
        // a token this reader cannot expand, in what ssh.privateKeyPath overrides: not expanded, not refused
        "Host engine-explicit", "  IdentityFile ~/.ssh/id_%Z",
        // a ProxyCommand, which the SSH backend follows and an engine's connection does not
        "Host engine-proxied", "  HostName 127.0.0.1", "  IdentityFile ~/.ssh/engine_key", "  UserKnownHostsFile ~/.ssh/engine_known_hosts", "  ProxyCommand nc %h %p",
        // its key known under a HostKeyAlias alone, as OpenSSH looks it up
        // (its port and user in the URL: the Host * block above gives every later block port 1 and user nobody)
        "Host engine-keyalias", "  HostName 127.0.0.1", "  IdentityFile ~/.ssh/engine_key", "  UserKnownHostsFile ~/.ssh/alias_known_hosts",
        "  HostKeyAlias engine-key", ""].join("\n")
      const wrong = `[127.0.0.1]:${sshd.port} ${Fs.readFileSync(`${sshKeys}/id_ed25519.pub`, "utf8").split(" ").slice(0, 2).join(" ")}\n`
      // no default key and no known_hosts: only what the config file names lets it in
      const aliased = Fs.readFileSync(sshd.knownHosts, "utf8").split("\n").filter((l) => l.trim() !== "").map((l) => `engine-key ${l.split(" ").slice(1, 3).join(" ")}\n`).join("")
      const home = homeWith({
        config,
        engine_key: Fs.readFileSync(`${sshKeys}/id_ed25519`),
        engine_known_hosts: Fs.readFileSync(sshd.knownHosts),
        wrong_known_hosts: wrong,
        alias_known_hosts: aliased
      })
      const warned: Array<string> = []
      const noted: Array<string> = []
      const options = yield* withEnv({ HOME: home }, Effect.sync(() =>
        engineOptions({}, ssh2, { DOCKER_HOST: "ssh://engine-alias", SSH_AUTH_SOCK: "" }, undefined, (w) => warned.push(w), (n) => noted.push(n))
      ))
      assert.strictEqual(yield* pingThrough(options), "ok")
      assert.deepStrictEqual(warned, [`ssh://engine-alias: ${home}/.ssh/config:7: ProxyJump is not supported: the connection goes straight to the host, not through bastion`])
      yield* withEnv({ HOME: home }, Effect.sync(() =>
        engineOptions({}, ssh2, { DOCKER_HOST: "ssh://engine-proxied", SSH_AUTH_SOCK: "" }, undefined, (w) => warned.push(w), () => undefined)
      ))
      assert.strictEqual(
        warned[1],
        `ssh://engine-proxied: ${home}/.ssh/config:28: ProxyCommand is not supported for an ssh:// engine: the connection goes straight to the host, not through nc %h %p`
      )
      const keyAlias = yield* withEnv({ HOME: home }, Effect.sync(() => engineOptions({}, ssh2, { DOCKER_HOST: `ssh://root@engine-keyalias:${sshd.port}`, SSH_AUTH_SOCK: "" }, undefined, () => undefined, () => undefined)))
      assert.strictEqual(yield* pingThrough(keyAlias), "ok")
      // the address the file moves the URL's host to, said once, in the SSH backend's words
      assert.deepStrictEqual(noted, [`ssh://engine-alias: ~/.ssh/config connects engine-alias -> 127.0.0.1:${sshd.port} (${home}/.ssh/config:2, ${home}/.ssh/config:3)`])
      const explicit = yield* withEnv({ HOME: home }, Effect.sync(() =>
        engineOptions({ ssh: { privateKeyPath: `${sshKeys}/id_ed25519`, knownHostsPath: sshd.knownHosts } }, ssh2, { DOCKER_HOST: "ssh://engine-explicit" })
      ))
      assert.strictEqual(yield* pingThrough(explicit), "ok")
      Fs.writeFileSync(`${home}/.ssh/known_hosts`, Fs.readFileSync(sshd.knownHosts))
      const none = yield* withEnv({ HOME: home }, Effect.try(() =>
        engineOptions({}, ssh2, { DOCKER_HOST: "ssh://engine-none", SSH_AUTH_SOCK: "" }, { user: "root", globalKnownHosts: `${home}/no_system_file` })
      )).pipe(Effect.flip)
      assert.include(String((none as { cause?: unknown }).cause), `ssh://engine-none: UserKnownHostsFile none (${home}/.ssh/config:18) leaves only the system's ${home}/no_system_file`)
    }), 60_000)

  it.live("an ssh:// engine named only by DOCKER_HOST whose agent socket is gone logs in with a default key (an unreadable one skipped), leaving no socket open", () =>
    Effect.gen(function*() {
      yield* engineUp
      const sshd = yield* ownSshd("MaxSessions 100")
      const ssh2 = yield* Effect.promise(() => import("ssh2"))
      // the test key as id_ed25519, and a directory named id_rsa (as a file this user may not read: root reads any)
      const home = homeWith({ known_hosts: Fs.readFileSync(sshd.knownHosts), id_ed25519: Fs.readFileSync(`${sshKeys}/id_ed25519`) })
      Fs.mkdirSync(Path.join(home, ".ssh", "id_rsa"))
      const env = { DOCKER_HOST: `ssh://root@127.0.0.1:${sshd.port}`, SSH_AUTH_SOCK: Path.join(home, "no-agent.sock") }
      const options = yield* withEnv({ HOME: home }, Effect.sync(() => engineOptions({}, ssh2, env))) as Effect.Effect<Docker.DockerOptions & { readonly agent: SshAgent }>
      const docker = new Docker(options)
      const answers: Array<string> = []
      for (let i = 0; i < 3; i++) answers.push(yield* Effect.promise(() => docker.ping().then(String, (e: unknown) => `failed: ${String(e)}`)))
      const made = options.agent.made()
      options.agent.destroy()
      // before: the agent's error failed each request, and ssh2 logged in with the key on a connection out of the pool,
      // left open (one a request)
      yield* eventually("no TCP connection of this process to the sshd", Effect.map(sshConnections(sshd.port), (c) => c.length === 0), 10)
      assert.deepStrictEqual(answers, ["OK", "OK", "OK"])
      assert.deepStrictEqual(made, { logins: 1, sessions: 1, connections: 1 })
      // the unreadable key alone, no agent: said at make, with why
      Fs.rmSync(Path.join(home, ".ssh", "id_ed25519"))
      const said = yield* withEnv({ HOME: home }, Effect.try({ try: () => engineOptions({}, ssh2, { ...env, SSH_AUTH_SOCK: "" }), catch: String })).pipe(Effect.flip)
      assert.include(said, "~/.ssh/id_rsa: EISDIR")
    }), 60_000)

  it.live("an ssh:// engine's ssh.privateKeyPath naming a public key is refused at make, naming the field and the private key's file", () =>
    Effect.gen(function*() {
      const ssh2 = yield* Effect.promise(() => import("ssh2"))
      const privateKeyPath = `${sshKeys}/id_ed25519.pub`
      const said = yield* Effect.try({
        try: () => engineOptions({ host: "ssh://root@127.0.0.1:1", ssh: { privateKeyPath, knownHostsPath: `${sshKeys}/known_hosts` } }, ssh2),
        catch: String
      }).pipe(Effect.flip)
      assert.include(said, `ssh.privateKeyPath ${privateKeyPath}: a public key`)
      assert.include(said, `${sshKeys}/id_ed25519, without .pub`)
    }))

  it.live("an ssh:// engine's encrypted ssh.privateKeyPath needs ssh.passphraseEnv (refused at make without it, naming it); with it the engine answers", () =>
    Effect.gen(function*() {
      yield* engineUp
      const sshd = yield* ownSshd("MaxSessions 100")
      const ssh2 = yield* Effect.promise(() => import("ssh2"))
      const privateKeyPath = Path.join(root, `encrypted_${++counter}`)
      Fs.copyFileSync(`${sshKeys}/id_ed25519`, privateKeyPath)
      yield* Effect.promise(() => execFileAsync("ssh-keygen", ["-q", "-p", "-a", "1", "-P", "", "-N", "a pass phrase", "-f", privateKeyPath]))
      const options = (passphraseEnv: string | undefined, env: NodeJS.ProcessEnv) =>
        engineOptions({ host: `ssh://root@127.0.0.1:${sshd.port}`, ssh: { privateKeyPath, knownHostsPath: sshd.knownHosts, passphraseEnv } }, ssh2, env)
      const said = yield* Effect.try({ try: () => options(undefined, {}), catch: String }).pipe(Effect.flip)
      assert.include(said, `ssh.privateKeyPath ${privateKeyPath}: an encrypted key (it has a passphrase): set ssh.passphraseEnv to the name of an environment variable`)
      assert.strictEqual(yield* pingThrough(options("KEY_PASSPHRASE", { KEY_PASSPHRASE: "a pass phrase" })), "ok")
    }), 60_000)

  it.live("an ssh:// engine's ssh.privateKeyPath naming no file is refused at make, naming the field and how to make a key", () =>
    Effect.gen(function*() {
      const ssh2 = yield* Effect.promise(() => import("ssh2"))
      const privateKeyPath = Path.join(root, `no_such_key_${++counter}`)
      const said = yield* Effect.try({
        try: () => engineOptions({ host: "ssh://root@127.0.0.1:1", ssh: { privateKeyPath, knownHostsPath: `${sshKeys}/known_hosts` } }, ssh2),
        catch: String
      }).pipe(Effect.flip)
      assert.include(said, `ssh.privateKeyPath ${privateKeyPath}: no such file: give the path of a private key`)
      assert.include(said, `ssh-keygen -t ed25519 -f ${privateKeyPath}`)
      assert.notInclude(said, "ENOENT")
    }))

  it.live("an ssh:// login whose key ssh2 cannot parse fails the request, leaving no socket open", () =>
    Effect.gen(function*() {
      const { sshd, agent, docker } = yield* agentTo({ privateKey: Buffer.from("not a key") })
      const said = yield* Effect.promise(() => docker.ping().then(() => "ok", (e: unknown) => String(e))).pipe(Effect.timeout("10 seconds"))
      assert.include(said, "Cannot parse privateKey")
      assert.strictEqual(agent.made().connections, 0)
      yield* eventually("no TCP connection of this process to the sshd", Effect.map(sshConnections(sshd.port), (c) => c.length === 0), 10)
    }), 60_000)

  it.live("an ssh:// engine named only by DOCKER_HOST reads the system's known hosts too, matches the host name in lower case, takes [::1], and logs in as the local user", () =>
    Effect.gen(function*() {
      yield* engineUp
      const sshd = yield* ownSshd("MaxSessions 100\nListenAddress ::1")
      const ssh2 = yield* Effect.promise(() => import("ssh2"))
      const key = publicKey("/etc/ssh/sdktest/host_ed25519")
      // the user's known_hosts knows nothing of it; the system's does, as ssh-keyscan writes it (lower case)
      const home = homeWith({ known_hosts: "", id_ed25519: Fs.readFileSync(`${sshKeys}/id_ed25519`) })
      const globalKnownHosts = knownHostsOf(`[::1]:${sshd.port} ${key}`, `[localhost]:${sshd.port} ${key}`)
      const through = (host: string, user: string) =>
        withEnv({ HOME: home }, Effect.sync(() => engineOptions({}, ssh2, { DOCKER_HOST: host, SSH_AUTH_SOCK: "" }, { user, globalKnownHosts }))).pipe(Effect.flatMap(pingThrough))
      assert.strictEqual(yield* through(`ssh://root@[::1]:${sshd.port}`, "nobody"), "ok")
      assert.strictEqual(yield* through(`ssh://root@LocalHost:${sshd.port}`, "nobody"), "ok")
      // no user in the URL: the local user's name (the test sshd knows the key for sdktest too), not root
      yield* through(`ssh://[::1]:${sshd.port}`, "sdktest")
      assert.match(Fs.readFileSync(sshd.log, "utf8"), /Accepted publickey for sdktest /)
    }), 60_000)

  it.live("on Docker a removal refused because another removal of the container finished first says nothing of Podman's files", () => {
    const warned: Array<string> = []
    return Effect.gen(function*() {
      yield* engineUp
      // the engine behind a proxy that carries out each container removal, then answers it as Docker answers the second
      // of two removals at once (409, already in progress): the container is gone by the time the backend looks
      const path = yield* proxiedEngine((req, url) =>
        req.method === "DELETE" && /^(\/v[\d.]+)?\/containers\/[^/]+(\?|$)/.test(url)
          ? { status: 409, body: { message: "removal of container is already in progress" }, afterUpstream: true }
          : undefined
      )
      const backend = yield* DockerBackend.make({ root, socketPath: path, slots: 1 })
      const { exit, ref } = yield* collect(backend, spec(`echo '{"metrics":{},"primary":1}' > result.json`))
      assert.strictEqual(exit.outcome, "Succeeded", JSON.stringify(exit))
      const left = yield* Effect.promise(() => engine.listContainers({ all: true, filters: { label: [`trex.jobdir=${String(ref.data["jobDir"])}`] } }))
      assert.isEmpty(left, "the container is gone")
      assert.deepStrictEqual(warned.filter((w) => /Podman|did not remove it/.test(w)), [], warned.join("\n"))
    }).pipe(Effect.scoped, Effect.provide(Logger.layer([Logger.make((o) => void (o.logLevel === "Warn" && warned.push(String(o.message))))])))
  }, 60_000)

  it.live("a backend's start whose engine does not say which runs are live leaves the dead containers of other roots, and asks it once", () =>
    Effect.gen(function*() {
      yield* engineUp
      // two containers of another root, dead, their exits recorded: as the engine behind a proxy lists them; its list
      // of the live runs fails
      const other = Fs.mkdtempSync(Path.join(root, "elsewhere-"))
      const dead = ["a", "b"].map((n) => {
        const id = n.repeat(64)
        const jobDir = Path.join(other, n)
        Fs.mkdirSync(jobDir)
        Fs.writeFileSync(Path.join(jobDir, Spec.RECORD.job), JSON.stringify({ container: id }))
        Fs.writeFileSync(Path.join(jobDir, Spec.RECORD.exit), JSON.stringify({ outcome: "Succeeded" }))
        return { Id: id, Names: [`/${n}`], State: "dead", Labels: { "trex.jobdir": jobDir, "trex.run": `${run}-gone-${n}`, "trex.node": n } }
      })
      const asked: Array<string> = []
      const seen: Array<string> = []
      const path = yield* proxiedEngine((_, url) => {
        seen.push(url)
        if (!/\/containers\/json/.test(url)) return undefined
        if (/"dead"/.test(url)) return { status: 200, body: dead }
        if (!/"running"/.test(url)) return undefined
        asked.push(url)
        return { status: 500, body: { message: "no" } }
      })
      yield* DockerBackend.make({ root: Fs.mkdtempSync(Path.join(root, "mine-")), socketPath: path, slots: 1 })
      assert.strictEqual(asked.length, 1, asked.join("\n"))
      assert.deepStrictEqual(seen.filter((u) => dead.some((c) => u.includes(c.Id))), [], "neither inspected nor removed")
    }).pipe(Effect.scoped), 60_000)

  it.live("with every slot taken a job waits in the backend's queue (Pending, with why), starts in turn, and can be withdrawn until then", () =>
    Effect.gen(function*() {
      const backend = yield* backendWith({ slots: 1 })
      const first = spec(`echo up; while [ ! -f go ]; do sleep 0.1; done`)
      const ref1 = yield* backend.submit(first)
      const ref2 = yield* backend.submit(spec(`echo second; echo '{"metrics":{},"primary":2}' > result.json`))
      const ref3 = yield* backend.submit(spec("echo third"))
      const second = yield* checkQueued(backend, run, ref2, ref3)
      // the first job holds the slot until it is told to finish
      const firstEvents = yield* Stream.runCollect(backend.watch(ref1).pipe(
        Stream.tap((e) => e._tag === "Log" && e.line === "up" ? Effect.sync(() => Fs.writeFileSync(Path.join(root, first.labels.node, "go"), "")) : Effect.void)
      ))
      assert.strictEqual((firstEvents.at(-1) as Backend.JobExit).outcome, "Succeeded")
      const events = yield* Fiber.join(second)
      const states = events.flatMap((e) => (e._tag === "State" ? [`${e.state}${e.reason !== undefined ? `: ${e.reason}` : ""}`] : []))
      assert.match(states[0] ?? "", /^Pending: (no free slot: \d+ of 1 in use|1 job ahead in the queue)$/, JSON.stringify(states))
      assert.strictEqual(states.at(-1), "Running", JSON.stringify(states))
      const exit = events.at(-1) as Backend.JobExit
      assert.strictEqual(exit.outcome, "Succeeded", JSON.stringify(exit))
      assert.deepStrictEqual(exit.result, { metrics: {}, primary: 2 })
      // started now: not withdrawn; another controller finds its container through the ticket
      assert.isFalse(yield* backend.withdraw!(ref2))
      const other = yield* backendWith({ slots: 1 })
      const again = yield* Stream.runCollect(other.watch(ref2))
      assert.strictEqual((again.at(-1) as Backend.JobExit).outcome, "Succeeded")
      assert.include((again.at(-1) as Backend.JobExit).logTail, "second")
    }), 60_000)

  it.live("a queued job starts as soon as the slot is given back, however the job that held it ended: succeeded, failed, cancelled (not at a poll)", () =>
    Effect.gen(function*() {
      // an hour's poll: only the end of the slot's holder (its watch) can start the next job within this test
      const backend = yield* backendWith({ slots: 1, stopGraceSeconds: 1 }).pipe(Effect.provideService(QueuePoll, "1 hour"))
      yield* checkSlotReleases(backend, (script) => spec(script), (ref) => String(ref.data["jobDir"]))
    }), 60_000)

  it.live("a job queued by a controller that stopped never started: another controller says so (lost: a resumed run runs it again)", () =>
    Effect.gen(function*() {
      const backend = yield* backendWith({ slots: 1 })
      const ref1 = yield* backend.submit(spec(`sleep 30`))
      const ref2 = yield* backend.submit(spec("echo never"))
      assert.strictEqual(ref2.data["queued"], true)
      const other = yield* backendWith({ slots: 1 })
      const events = yield* Stream.runCollect(other.watch(ref2))
      assert.deepStrictEqual(events.map((e) => e._tag), ["Exit"])
      const exit = events[0] as Backend.JobExit
      assert.deepStrictEqual([exit.outcome, exit.failureKind], ["Failed", "Infra"])
      assert.include(exit.message, "never started")
      // cancelled while queued: it leaves the queue, and the running one is stopped
      yield* backend.cancel(ref2)
      assert.isUndefined((yield* backend.list(run)).find((j) => j.ref.id === ref2.id))
      yield* backend.cancel(ref1)
      assert.strictEqual(((yield* Stream.runCollect(backend.watch(ref1))).at(-1) as Backend.JobExit).outcome, "Cancelled")
    }), 60_000)

  it.live("a container its controller created and never started (it stopped in between) is removed and reported lost, to run again", () =>
    Effect.gen(function*() {
      yield* engineUp
      const s = spec("echo never")
      const jobDir = Path.join(root, s.labels.node)
      Fs.mkdirSync(jobDir, { recursive: true })
      const created = yield* Effect.promise(() =>
        engine.createContainer({ Image: IMAGE, Cmd: ["echo", "never"], Labels: { "trex.node": s.labels.node, "trex.run": run, "trex.jobdir": jobDir } })
      )
      // the record a queued job gets when its turn comes, written between create and start
      const ticket = { backend: "docker", id: `queued-${s.labels.node}-x-1`, data: { jobDir, queued: true } }
      Fs.writeFileSync(Path.join(jobDir, ".trex-job.json"), JSON.stringify({ name: s.name, labels: s.labels, container: created.id, ticket: ticket.id }))
      const backend = yield* backendWith()
      const events = yield* Stream.runCollect(backend.watch(ticket))
      const exit = events.at(-1) as Backend.JobExit
      assert.deepStrictEqual([exit.outcome, exit.failureKind], ["Failed", "Infra"], JSON.stringify(events))
      assert.include(exit.message, "before starting it")
      const gone = yield* Effect.promise(() => created.inspect().then(() => false, () => true))
      assert.isTrue(gone, "the container that would never start is removed")
    }), 60_000)

  it.live("a job waits for a free GPU of the pool; when its turn comes the engine's refusal of GPUs ends it clearly", () =>
    Effect.gen(function*() {
      yield* engineUp
      // a trex container holding GPU 0 (labelled as the backend labels them; this engine has no GPUs to give)
      const holder = yield* Effect.promise(() =>
        engine.createContainer({ Image: IMAGE, Cmd: ["sleep", "60"], Labels: { "trex.node": "holder", "trex.gpuids": "0", "trex.jobdir": root } })
      )
      yield* Effect.promise(() => holder.start())
      const backend = yield* backendWith({ gpus: ["0"], slots: 8 })
      const ref = yield* backend.submit(spec("true", { resources: { gpus: 1, cpus: 1 } }))
      assert.strictEqual(ref.data["queued"], true)
      const reasons: Array<string | undefined> = []
      const fiber = yield* Stream.runCollect(backend.watch(ref).pipe(Stream.tap((e) => Effect.sync(() => e._tag === "State" && reasons.push(e.reason)))))
        .pipe(Effect.flip, Effect.forkChild)
      yield* eventually("the watch gives its wait reason", () => reasons.length > 0, 30)
      assert.deepStrictEqual(reasons, ["no free GPU: 0 of 1 free, 1 needed"])
      const pending = (yield* backend.list(run)).find((j) => j.ref.id === ref.id)
      assert.strictEqual(pending?.state, "Pending")
      yield* Effect.promise(() => holder.remove({ force: true }))
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "BackendError")
      assert.isFalse(error.retryable)
      assert.include(error.message, "NVIDIA Container Toolkit")
    }), 60_000)
})

const chattr = (args: ReadonlyArray<string>) => Effect.tryPromise(() => execFileAsync("chattr", [...args]))

/** A job that writes `/held` in its own file system, says `up`, then succeeds once its job directory has `go`. */
const HELD_JOB = `echo kept > /held; echo up; i=0; while [ ! -f go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo '{"metrics":{},"primary":1}' > result.json`

/**
 * A {@link HELD_JOB} that said `up` on `client`'s engine: its `/held` made immutable (a file of the container's own
 * layer, which the engine then cannot delete; mutable again when the scope ends), then the job let end. Its path.
 */
const holdThenEnd = (client: Docker, ref: ExperimentNode.JobRef) =>
  Effect.gen(function*() {
    const upper = ((yield* Effect.promise(() => client.getContainer(ref.id).inspect())).GraphDriver.Data as Record<string, string>)["UpperDir"]
    const held = Path.join(String(upper), "held")
    yield* Effect.acquireRelease(chattr(["+i", held]), () => Effect.ignore(chattr(["-i", held])))
    Fs.writeFileSync(Path.join(String(ref.data["jobDir"]), "go"), "")
    return held
  })

/** Until `line` is logged by the watch of `ref`: the watch, forked, and a signal that the line came. */
const watchUntil = (backend: Backend.BackendShape, ref: ExperimentNode.JobRef, line: string) =>
  Effect.gen(function*() {
    const seen = yield* Deferred.make<void>()
    const fiber = yield* Stream.runCollect(backend.watch(ref).pipe(Stream.tap((e) => (e._tag === "Log" && e.line === line ? Deferred.succeed(seen, undefined) : Effect.void))))
      .pipe(Effect.forkChild)
    yield* Deferred.await(seen)
    return fiber
  })

const DOCKERD_PID = "/var/run/docker.pid"
/** Where dockerd notes the containerd it started (under its exec root, /var/run/docker). */
const CONTAINERD_PID = "/var/run/docker/containerd/containerd.pid"
/** The pid a daemon's pid file names, if it is there. */
const pidIn = (file: string): number | undefined => {
  const pid = Fs.existsSync(file) ? Number(Fs.readFileSync(file, "utf8").trim()) : NaN
  return Number.isInteger(pid) && pid > 0 ? pid : undefined
}
/** Gone, or a zombie: killed, and not yet reaped (this machine's init reaps them a second or so later). */
const dead = (pid: number) => {
  try {
    return Fs.readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /s, "").startsWith("Z")
  } catch {
    return true
  }
}
/**
 * `effect` with dockerd SIGKILLed (its containers live on under their shims, as after a crash), then
 * dockerd started again whatever happened, by scripts/services/start-docker.sh.
 *
 * The containerd that dockerd started dies with it (SIGKILL on its parent's death) but stays a zombie until init
 * reaps it, 1 to 1.5 s later here. A dockerd started before that reads containerd's pid file, takes the zombie
 * (which `kill -0` still finds) for a containerd that is "still running", waits for its socket that no one serves,
 * and gives up ("timeout waiting for containerd to start"); start-docker.sh then waits its 30 tries a second
 * (2 to 3 minutes on a loaded machine) before trying again, past the tests' timeout. So both pid files are removed
 * once their daemons are dead, and the new dockerd starts a containerd of its own at once.
 */
const withDockerdKilled = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const pid = pidIn(DOCKERD_PID)!
    const containerd = pidIn(CONTAINERD_PID)
    process.kill(pid, "SIGKILL")
    return effect.pipe(Effect.ensuring(Effect.gen(function*() {
      // a killed dockerd not yet reaped makes the next one refuse to start ("pid file found")
      const gone = () => dead(pid) && (containerd === undefined || dead(containerd))
      for (let i = 0; i < 100 && !gone(); i++) yield* Effect.sleep("100 millis")
      Fs.rmSync(DOCKERD_PID, { force: true })
      if (containerd !== undefined && dead(containerd)) Fs.rmSync(CONTAINERD_PID, { force: true })
      yield* trying([]).pipe(Effect.retry({ times: 3, schedule: Schedule.spaced("2 seconds") }), Effect.orDie)
    })))
  })

const docker = (args: ReadonlyArray<string>) => Effect.promise(() => execFileAsync("docker", ["-H", `unix://${SOCKET}`, ...args]))

const misbehavingTests = () => describe("DockerBackend when the engine misbehaves", inOrder, () => {
  it.live("a watch waits for dockerd killed under it; a container its restart stopped (live-restore off) is lost to the engine, to run again", () =>
    Effect.gen(function*() {
      // retryFor is short: a watch that gave up with the engine's calls would fail within the outage
      const backend = yield* backendWith({ retryFor: "100 millis" })
      const impatient = yield* backendWith({ retryFor: "1 second", engineWait: "1 second" })
      const liveRestore = (yield* Effect.promise(() => engine.info() as Promise<{ LiveRestoreEnabled: boolean }>)).LiveRestoreEnabled
      const s = spec(`trap 'echo got-term; exit 143' TERM; echo up; while [ ! -f go ]; do sleep 0.2; done; echo '{"metrics":{},"primary":1}' > result.json`)
      const ref = yield* backend.submit(s)
      const outageSaid = yield* Deferred.make<void>()
      const said = (e: Backend.JobEvent) => e._tag === "State" && e.reason !== undefined ? Deferred.succeed(outageSaid, undefined) : Effect.void
      const fiber = yield* watchUntil({ ...backend, watch: (r) => backend.watch(r).pipe(Stream.tap(said)) }, ref, "up")
      const gaveUp = yield* Stream.runCollect(impatient.watch(ref)).pipe(Effect.flip, Effect.forkChild)
      // dockerd dies (its containers' shims live on) and is started again once the watch has said the outage and the
      // other controller's has given up (after its engineWait): with dockerd's own start, longer than retryFor
      yield* withDockerdKilled(Effect.andThen(Deferred.await(outageSaid), Fiber.await(gaveUp)))
      if (liveRestore) Fs.writeFileSync(Path.join(root, s.labels.node, "go"), "")
      const events = yield* Fiber.join(fiber)
      const exit = events.at(-1) as Backend.JobExit
      if (liveRestore) {
        assert.strictEqual(exit.outcome, "Succeeded", JSON.stringify(exit))
      } else {
        assert.deepStrictEqual([exit.outcome, exit.failureKind], ["Failed", "Infra"], JSON.stringify(exit))
        assert.include(exit.message, "the Docker engine restarted while the container ran")
        assert.include(exit.message, "live-restore")
      }
      const lines = events.flatMap((e) => (e._tag === "Log" ? [e.line] : []))
      assert.strictEqual(lines.filter((l) => l === "up").length, 1, JSON.stringify(lines))
      assertOutageTold(events)
      // the other controller's watch gave up after its engineWait, saying what to check and what to do
      const error = yield* Fiber.join(gaveUp)
      assert.isFalse(error.retryable)
      assert.include(error.message, "(engineWait)")
      assert.include(error.message, "docker info")
      assert.include(error.message, "trex resume")
    }), 60_000)

  it.live("a watch that begins while dockerd is down tells the outage at once, and counts it for a container started here", () =>
    Effect.gen(function*() {
      // retryFor is short: a watch that gave up with the engine's calls would fail within the outage
      const backend = yield* backendWith({ retryFor: "100 millis" })
      const liveRestore = (yield* Effect.promise(() => engine.info() as Promise<{ LiveRestoreEnabled: boolean }>)).LiveRestoreEnabled
      const ref = yield* backend.submit(spec(`trap 'exit 143' TERM; while [ ! -f go ]; do sleep 0.2; done; echo '{"metrics":{},"primary":1}' > result.json`))
      // the watch's first look finds the engine gone, and tells its consumer at once (as a job whose state is not yet
      // known); the restart stops the container (live-restore off)
      const reasons: Array<string> = []
      const fiber = yield* withDockerdKilled(Effect.gen(function*() {
        const fiber = yield* Stream.runCollect(backend.watch(ref).pipe(Stream.tap((e) => Effect.sync(() => e._tag === "State" && e.reason !== undefined && reasons.push(e.reason)))))
          .pipe(Effect.forkChild)
        // started again once the watch has said the outage (bounded: the engine is not left down when it never does)
        yield* eventually("the watch tells the outage", () => reasons.length > 0, 15)
        return fiber
      }))
      if (liveRestore) Fs.writeFileSync(Path.join(ref.data["jobDir"] as string, "go"), "")
      const events = yield* Fiber.join(fiber)
      const exit = events.at(-1) as Backend.JobExit
      if (liveRestore) assert.strictEqual(exit.outcome, "Succeeded", JSON.stringify(exit))
      else assert.deepStrictEqual([exit.outcome, exit.failureKind], ["Failed", "Infra"], JSON.stringify(exit))
      // told first, then ended by the state the first look found once the engine answered
      assertOutageTold(events)
      assert.isTrue(events[0]?._tag === "State" && events[0].reason !== undefined, JSON.stringify(events))
    }), 60_000)

  it.live("a job submitted while dockerd is down waits in the backend's queue (Pending, naming the engine) and starts when it answers", () =>
    Effect.gen(function*() {
      // retryFor is short: a submit that waited for the engine within its calls would fail within the outage
      const backend = yield* backendWith({ retryFor: "100 millis", slots: 8 })
      const reasons: Array<string> = []
      const { ref, fiber } = yield* withDockerdKilled(Effect.gen(function*() {
        // a submit that failed after retryFor here spent one of its trial's attempts
        const ref = yield* backend.submit(spec(`echo ran; echo '{"metrics":{},"primary":1}' > result.json`))
        const fiber = yield* Stream.runCollect(backend.watch(ref).pipe(Stream.tap((e) => Effect.sync(() => e._tag === "State" && e.reason !== undefined && reasons.push(e.reason)))))
          .pipe(Effect.forkChild)
        // started again once the watch has said why the job waits (bounded: the engine is not left down when it never does)
        yield* eventually("the watch says the job waits", () => reasons.length > 0, 15)
        return { ref, fiber }
      }))
      assert.strictEqual(ref.data["queued"], true)
      const exit = (yield* Fiber.join(fiber)).at(-1) as Backend.JobExit
      assert.strictEqual(exit.outcome, "Succeeded", JSON.stringify(exit))
      assert.include(exit.logTail, "ran")
      assert.match(reasons[0] ?? "", new RegExp(`^the Docker engine at ${SOCKET} does not answer \\(Docker engine unreachable: `), JSON.stringify(reasons))
    }), 60_000)

  it.live("a container an earlier start left `created` (the engine went away before answering its create) is removed when the job starts again", () =>
    Effect.gen(function*() {
      yield* engineUp
      const s = spec(`echo ran; echo '{"metrics":{},"primary":1}' > result.json`)
      const jobDir = Path.join(root, s.labels.node)
      const left = yield* Effect.promise(() =>
        engine.createContainer({ Image: IMAGE, Cmd: ["true"], Labels: { "trex.node": s.labels.node, "trex.run": run, "trex.jobdir": jobDir } })
      )
      const backend = yield* backendWith()
      const { exit } = yield* collect(backend, s)
      assert.strictEqual(exit.outcome, "Succeeded", JSON.stringify(exit))
      const gone = yield* Effect.promise(() => left.inspect().then(() => false, () => true))
      assert.isTrue(gone, "the container that would never start is removed")
    }), 60_000)

  it.live("a container killed, stopped or removed from outside is said so: neither an OOM nor the job's crash", () =>
    Effect.gen(function*() {
      const backend = yield* backendWith({ slots: 8 })
      const job = `trap 'exit 143' TERM; echo up; while true; do sleep 0.2; done`
      const killed = yield* backend.submit(spec(job))
      const stopped = yield* backend.submit(spec(job))
      const removed = yield* backend.submit(spec(job))
      const watches = yield* Effect.forEach([killed, stopped, removed], (ref) => watchUntil(backend, ref, "up"))
      yield* docker(["kill", killed.id])
      yield* docker(["stop", "-t", "5", stopped.id])
      yield* docker(["rm", "-f", removed.id])
      const [k, st, rm] = yield* Effect.forEach(watches, (f) => Effect.map(Fiber.join(f), (events) => events.at(-1) as Backend.JobExit))
      // docker kill: SIGKILL, exit 137, which is not an OOM (the engine did not flag OOMKilled, and it sent the signal)
      assert.deepStrictEqual([k!.outcome, k!.failureKind, k!.exitCode], ["Cancelled", "Cancelled", 137], JSON.stringify(k))
      assert.include(k!.message, "stopped from outside TREX: the Docker engine sent the container SIGKILL")
      assert.deepStrictEqual([st!.outcome, st!.failureKind, st!.exitCode], ["Cancelled", "Cancelled", 143], JSON.stringify(st))
      assert.include(st!.message, "SIGTERM")
      assert.deepStrictEqual([rm!.outcome, rm!.failureKind], ["Failed", "Infra"], JSON.stringify(rm))
      assert.include(rm!.message, "the container was removed from outside TREX")
      assert.include(rm!.logTail, "up")
    }), 60_000)

  it.live("a container whose removal the engine refuses: its watch ends with the job's exit and says the container and the fix; its slot goes to the queued job, another controller reads the same exit, a later end removes it", () => {
    const warned: Array<string> = []
    return Effect.gen(function*() {
      // an hour's poll: only the end of the first job's watch can start the queued one within the test
      const backend = yield* backendWith({ slots: 1 }).pipe(Effect.provideService(QueuePoll, "1 hour"))
      const ref = yield* backend.submit(spec(HELD_JOB))
      const queued = yield* backend.submit(spec("echo next"))
      assert.isTrue(queued.data["queued"] === true, JSON.stringify(queued))
      const watching = yield* watchUntil(backend, ref, "up")
      // a file of the container's own file system made immutable: the engine can delete neither it nor the container
      const held = yield* holdThenEnd(engine, ref)
      const exit = (yield* Fiber.join(watching)).at(-1) as Backend.JobExit
      assert.deepStrictEqual([exit._tag, exit.outcome, exit.result], ["Exit", "Succeeded", { metrics: {}, primary: 1 }], JSON.stringify(exit))
      assert.strictEqual(warned.length, 1, JSON.stringify(warned))
      for (const part of [`container ${ref.id.slice(0, 12)}`, "ended Succeeded and its exit was read", "failed to remove root filesystem", `docker rm -f ${ref.id}`]) {
        assert.include(warned[0], part)
      }
      // its slot is given back: the queued job starts (its end tries the removal again, refused again, quietly)
      const next = yield* Backend.awaitExit(backend, queued)
      assert.deepStrictEqual([next.outcome, next.logTail], ["Succeeded", ["next"]], JSON.stringify(next))
      assert.strictEqual(warned.length, 1, JSON.stringify(warned))
      // another controller (a resumed run) reads the job's exit, recorded, from the container left dead (and says it is left)
      const again = yield* Backend.awaitExit(yield* backendWith({ slots: 1 }), ref)
      assert.deepStrictEqual([again.outcome, again.result, again.logTail], [exit.outcome, exit.result, exit.logTail])
      assert.strictEqual(warned.length, 2, JSON.stringify(warned))
      // once the engine can remove it, the next job's end does
      yield* chattr(["-i", held])
      assert.strictEqual((yield* Backend.awaitExit(backend, yield* backend.submit(spec("echo last")))).outcome, "Succeeded")
      const gone = yield* Effect.promise(() => engine.getContainer(ref.id).inspect().then(() => false, () => true))
      assert.isTrue(gone, "removed after a later job's end")
    }).pipe(Effect.scoped, Effect.provide(Logger.layer([Logger.make((o) => void (o.logLevel === "Warn" && warned.push(String(o.message))))])))
  }, 60_000)

  it.live("a container left dead by a controller that stopped after reading its exit, its job then submitted again, is removed when a backend starts: of its root, or of another once its run has no container that has not ended; while its exit is not recorded it is left to its watch", () => {
    const warned: Array<string> = []
    const status = (id: string) => Effect.promise(() => engine.getContainer(id).inspect().then((i) => i.State.Status, () => "gone"))
    // a run of this test's own, with a container that runs until near the end (a run whose jobs still run, for
    // whichever controller starts meanwhile on this engine: only the last start below may remove the dead container)
    const own = `${run}-dead${++counter}`
    return Effect.gen(function*() {
      const starting = yield* Effect.forkChild(Effect.acquireRelease(
        Effect.promise(async () => {
          const c = await engine.createContainer({ Image: IMAGE, Cmd: ["sleep", "120"], Labels: { "trex.run": own, "trex.jobdir": Path.join(root, `running-${own}`) } })
          await c.start()
          return c
        }),
        (c) => Effect.promise(() => c.remove({ force: true }).catch(() => undefined))
      ))
      const s = spec(HELD_JOB, { labels: { run: own, node: `n${++counter}` } })
      // the first controller: the job's exit read and recorded, its removal refused (a file of the container made
      // immutable); then the job is submitted again (a trial's retry), into the same directory, and ends
      const [ref, running] = yield* Effect.scoped(Effect.gen(function*() {
        const first = yield* backendWith({ slots: 8 })
        const ref = yield* first.submit(s)
        const watching = yield* watchUntil(first, ref, "up")
        const running = yield* Fiber.join(starting)
        yield* holdThenEnd(engine, ref)
        assert.strictEqual(((yield* Fiber.join(watching)).at(-1) as Backend.JobExit).outcome, "Succeeded")
        assert.strictEqual(yield* status(ref.id), "dead")
        assert.strictEqual((yield* first.list(own)).find((j) => j.ref.id === ref.id)?.state, "Finished", "listed as ended (Docker 20.10 lists it `removing`)")
        // a submit again that fails halfway (the record cannot be written: a directory where its temporary file goes)
        // loses no record of the earlier job's exit
        const tmp = Path.join(String(ref.data["jobDir"]), `${Spec.RECORD.job}.tmp`)
        Fs.mkdirSync(tmp)
        assert.include((yield* first.submit({ ...s, argv: ["echo", "again"] }).pipe(Effect.flip)).message, "cannot prepare")
        Fs.rmdirSync(tmp)
        assert.strictEqual((yield* Backend.awaitExit(first, yield* first.submit({ ...s, argv: ["echo", "again"] }))).outcome, "Succeeded")
        assert.strictEqual(warned.length, 1, JSON.stringify(warned))
        // the directory's record keeps the earlier container while the engine has it (dead), and only it
        const kept = JSON.parse(Fs.readFileSync(Path.join(String(ref.data["jobDir"]), Spec.RECORD.job), "utf8")).ended
        assert.deepStrictEqual(kept, [{ container: ref.id, outcome: "Succeeded" }])
        // a backend that starts while the engine still cannot remove it says so, once, and leaves it (the directory's
        // record keeps that its exit was recorded)
        yield* backendWith({ slots: 1 })
        assert.strictEqual(warned.length, 2, JSON.stringify(warned))
        for (const part of [`container ${ref.id.slice(0, 12)}`, "under an earlier controller and its exit was read", `docker rm -f ${ref.id}`]) assert.include(warned[1], part)
        // the start of another backend of the process (a program that makes one a run) tries it again, quietly: said
        // once a process, not at each start
        yield* backendWith({ slots: 1 })
        assert.strictEqual(warned.length, 2, JSON.stringify(warned))
        assert.strictEqual(yield* status(ref.id), "dead")
        return [ref, running] as const
      }))
      // the file mutable again (the first controller gone): a backend of this root leaves it while its exit is not
      // recorded (a watch reads it); a backend of another root leaves it while its run has a container that runs, and
      // removes it once none has
      const record = Path.join(String(ref.data["jobDir"]), Spec.RECORD.job)
      const exitFile = Path.join(String(ref.data["jobDir"]), Spec.RECORD.exit)
      const written = Fs.readFileSync(record, "utf8")
      Fs.renameSync(record, `${record}.aside`)
      yield* backendWith({ slots: 1 })
      assert.strictEqual(yield* status(ref.id), "dead", "left while its directory has no record")
      Fs.renameSync(`${record}.aside`, record)
      const other = () => backendWith({ slots: 1, root: Fs.mkdtempSync(Path.join(root, "other-")) })
      yield* other()
      assert.strictEqual(yield* status(ref.id), "dead", "left by a backend of another root while its run has a container running")
      yield* Effect.promise(() => running.remove({ force: true }))
      // a run of the same id in a third root, running on (another root's controller: another run), keeps it no longer
      yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const c = await engine.createContainer({ Image: IMAGE, Cmd: ["sleep", "120"], Labels: { "trex.run": own, "trex.jobdir": Path.join(root, `third-${own}`, "n1") } })
          await c.start()
          return c
        }),
        (c) => Effect.promise(() => c.remove({ force: true }).catch(() => undefined))
      )
      // the record naming it as the directory's job, its exit not recorded (its controller stopped before it wrote it):
      // left to its watch by a backend of this root, and of another (its run not live)
      Fs.renameSync(exitFile, `${exitFile}.aside`)
      Fs.writeFileSync(record, JSON.stringify({ labels: s.labels, container: ref.id }))
      yield* backendWith({ slots: 1 })
      assert.strictEqual(yield* status(ref.id), "dead", "left by a backend of its root while its exit is not recorded")
      yield* other()
      assert.strictEqual(yield* status(ref.id), "dead", "left by a backend of another root while its exit is not recorded")
      // records of other shapes than written (a job directory is anyone's to edit): no backend's start fails for them,
      // and none reads as its exit recorded
      const shapes: ReadonlyArray<readonly [unknown, unknown]> = [
        [{ container: ref.id, ended: { container: ref.id, outcome: "Succeeded" } }, undefined],
        [{ container: "other", ended: [null, 5, { container: ref.id, outcome: 0 }, { container: ref.id }] }, undefined],
        [{ container: ref.id }, null],
        [{ container: ref.id }, ["Succeeded"]],
        [[ref.id], { outcome: "Succeeded" }]
      ]
      for (const [job, exit] of shapes) {
        Fs.writeFileSync(record, JSON.stringify(job))
        if (exit !== undefined) Fs.writeFileSync(exitFile, JSON.stringify(exit))
        yield* other()
        Fs.rmSync(exitFile, { force: true })
        assert.strictEqual(yield* status(ref.id), "dead", `left with ${JSON.stringify(job)} and the exit file ${JSON.stringify(exit)}`)
      }
      // nor a FIFO in their place (opening one for reading waits for a writer): never opened, the start goes on
      for (const fifo of [record, exitFile]) {
        Fs.writeFileSync(record, JSON.stringify({ container: ref.id }))
        Fs.rmSync(fifo, { force: true })
        yield* Effect.promise(() => execFileAsync("mkfifo", [fifo]))
        yield* other()
        Fs.rmSync(fifo)
        assert.strictEqual(yield* status(ref.id), "dead", `left with a FIFO as ${Path.basename(fifo)}`)
      }
      Fs.writeFileSync(record, written)
      Fs.renameSync(`${exitFile}.aside`, exitFile)
      // its job directory another user's (a run of theirs on this shared engine): theirs to remove
      const jobDir = String(ref.data["jobDir"])
      Fs.chownSync(jobDir, 65534, 65534)
      yield* other()
      Fs.chownSync(jobDir, process.getuid!(), process.getgid!())
      assert.strictEqual(yield* status(ref.id), "dead", "left by a backend of another user's")
      yield* other()
      assert.strictEqual(yield* status(ref.id), "gone", "removed as a backend of another root started")
      assert.strictEqual(warned.length, 2, JSON.stringify(warned))
    }).pipe(Effect.scoped, Effect.provide(Logger.layer([Logger.make((o) => void (o.logLevel === "Warn" && warned.push(String(o.message))))])))
  }, 60_000)

  it.live("an image the engine does not have and cannot pull is a clear error at once, naming the image and the fix", () =>
    Effect.gen(function*() {
      const backend = yield* backendWith()
      const error = yield* backend.submit(spec("true", { image: "local/trex-no-such-image:1" })).pipe(Effect.flip)
      assert.isFalse(error.retryable, error.message)
      assert.include(error.message, "image local/trex-no-such-image:1 is not on the engine and cannot be pulled")
      assert.include(error.message, "docker build -t local/trex-no-such-image:1")
      assert.include(error.message, "recipe.image")
    }), 60_000)
})

describe("DockerBackend.containerConfig", () => {
  const base = spec("python train.py", {
    env: { HF_TOKEN: Redacted.make("hf_secret"), MODE: "fast" },
    resources: { gpus: 2, cpus: 1.5, memoryMb: 2048, timeLimitSeconds: 60 }
  })

  it("asks for n GPUs by count, with limits, labels and the job dir mounted at its host path", () => {
    const c = DockerBackend.containerConfig(base, { network: "none" }, { jobDir: "/runs/a" }, 1_000)
    assert.deepStrictEqual(c.HostConfig?.DeviceRequests, [{ Driver: "", Count: 2, Capabilities: [["gpu"]] }])
    assert.strictEqual(c.HostConfig?.Memory, 2048 * 1024 * 1024)
    assert.strictEqual(c.HostConfig?.NanoCpus, 1.5e9)
    assert.strictEqual(c.HostConfig?.NetworkMode, "none")
    assert.deepStrictEqual(c.HostConfig?.Mounts, [{ Type: "bind", Source: "/runs/a", Target: "/runs/a", ReadOnly: false }])
    assert.include(c.Env ?? [], "TREX_JOB_DIR=/runs/a")
    assert.strictEqual(c.Labels?.["trex.run"], run)
    assert.strictEqual(c.Labels?.["trex.node"], base.labels.node)
    assert.strictEqual(c.Labels?.["trex.deadline"], String(61_000))
    assert.deepStrictEqual([c.Entrypoint, c.Cmd], [["sh"], ["-c", "python train.py"]])
    assert.isTrue(c.HostConfig?.Init)
  })

  it("uses explicit device ids when given, and mounts at mountAt", () => {
    const c = DockerBackend.containerConfig(
      base,
      { network: "host", mountAt: "/trex/job", shmSizeMb: 1024, mounts: [{ source: "/srv/hf", target: "/cache/huggingface", readOnly: true }] },
      { jobDir: "/runs/a", gpuIds: ["1", "3"] }
    )
    assert.deepStrictEqual(c.HostConfig?.Mounts?.[1], { Type: "bind", Source: "/srv/hf", Target: "/cache/huggingface", ReadOnly: true })
    assert.strictEqual(c.HostConfig?.ShmSize, 1024 * 1024 * 1024)
    assert.deepStrictEqual(c.HostConfig?.DeviceRequests, [{ Driver: "", DeviceIDs: ["1", "3"], Capabilities: [["gpu"]] }])
    assert.include(c.Env ?? [], "TREX_JOB_DIR=/trex/job")
    assert.strictEqual(c.WorkingDir, "/trex/job")
    assert.strictEqual(c.Labels?.["trex.gpuids"], "1,3")
  })

  it("asks for no device without GPUs; secrets only in Env, never in labels", () => {
    const c = DockerBackend.containerConfig({ ...base, resources: { gpus: 0, cpus: 1 } }, { network: "none" }, { jobDir: "/r" })
    assert.deepStrictEqual(c.HostConfig?.DeviceRequests, [])
    assert.include(c.Env ?? [], "HF_TOKEN=hf_secret")
    assert.notInclude(JSON.stringify(c.Labels), "hf_secret")
    assert.notInclude(JSON.stringify({ ...c, Env: [] }), "hf_secret")
  })
})

describe("DockerBackend's engine differences, pure", () => {
  it("a user who may not use the engine's socket is told to join the group that owns it, or to use an engine of its own", async () => {
    // (root may use any socket: the real refusal was seen with the CLI as the test sshd's user, finding BJ)
    const sock = Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-sock-")), "docker.sock")
    Fs.writeFileSync(sock, "")
    const group = (await promisify(execFile)("stat", ["-c", "%G", sock])).stdout.trim()
    assert.strictEqual(
      socketRefusal(`connect EACCES ${sock}`, "alice"),
      `this user (alice) may not use the engine's socket ${sock} (its group: ${group}). Add the user to that group (\`sudo usermod -aG ${group} alice\`, ` +
        "then log in again: `docker info` must answer as this user), or point TREX at an engine it may use (rootless Docker, Podman's user socket) " +
        "with DOCKER_HOST or backend.docker.host / socketPath"
    )
    assert.isUndefined(socketRefusal("connect ECONNREFUSED /var/run/docker.sock", "alice"))
  })

  it("a log read again from a whole second skips the entries of that second an earlier read took", () => {
    const cursor = new Spec.LogCursor()
    const frame = (t: string, text: string) => Buffer.from(`${t} ${text}`)
    const read = (frames: ReadonlyArray<Buffer>) => frames.flatMap((f) => cursor.take(f)?.toString() ?? [])
    assert.isUndefined(cursor.begin())
    assert.deepStrictEqual(read([frame("2026-12-05T03:00:00Z", "a"), frame("2026-12-05T03:00:01Z", "b"), frame("2026-12-05T03:00:01Z", "c")]), ["a", "b", "c"])
    // the engine gives all of second :01 again, and what came since
    assert.strictEqual(cursor.begin(), Date.parse("2026-12-05T03:00:01Z") / 1000)
    assert.deepStrictEqual(read([frame("2026-12-05T03:00:01Z", "b"), frame("2026-12-05T03:00:01Z", "c"), frame("2026-12-05T03:00:01Z", "d"), frame("2026-12-05T03:00:02.5Z", "e")]), ["d", "e"])
    assert.strictEqual(cursor.begin(), Date.parse("2026-12-05T03:00:02Z") / 1000)
    assert.deepStrictEqual(read([frame("2026-12-05T03:00:02.5Z", "e"), frame("2026-12-05T03:00:02.7Z", "f")]), ["f"])
  })

  it("names the engine and its version from the headers of its ping, when they say (else its version is asked)", () => {
    // what Podman 4.3.1's and Docker Engine 20.10's pings answered here
    assert.deepStrictEqual(Spec.engineFromPing({ "api-version": "1.41", "libpod-api-version": "4.3.1", server: "Libpod/4.3.1 (linux)" }), { kind: "podman", version: "4.3.1" })
    assert.deepStrictEqual(Spec.engineFromPing({ "api-version": "1.41", server: "Docker/20.10.24+dfsg1 (linux)", ostype: "linux" }), { kind: "docker", version: "20.10.24+dfsg1" })
    assert.deepStrictEqual(Spec.engineFromPing({ server: "Libpod/5.2.0 (linux)" }), { kind: "podman", version: "5.2.0" })
    // a proxy that dropped them, or an engine that does not say
    assert.isUndefined(Spec.engineFromPing({ "api-version": "1.41" }))
    assert.isUndefined(Spec.engineFromPing({ server: "nginx" }))
  })

  it("names the engine from its version, and explains a Podman without an init binary", () => {
    assert.strictEqual(Spec.engineKind({ Components: [{ Name: "Podman Engine" }, { Name: "Conmon" }] }), "podman")
    assert.strictEqual(Spec.engineKind({ Components: [{ Name: "Engine" }, { Name: "containerd" }] }), "docker")
    const why = Spec.explainStartError("container create: container-init binary not found on the host: stat /usr/libexec/podman/catatonit: no such file or directory")
    assert.include(why ?? "", "install catatonit")
    assert.include(why ?? "", "init: false")
    assert.isUndefined(Spec.explainStartError("no space left on device"))
  })

  it("says when Podman would ignore a job's limits: no cgroup controllers (rootless on cgroup v1, or v2 undelegated)", () => {
    // what /libpod/info said of this machine's rootless Podman, and of its rootful one
    const rootless = { rootless: true, cgroupVersion: "v1", controllers: [] }
    const rootful = { rootless: false, cgroupVersion: "v1", controllers: ["cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer", "pids"] }
    const why = Spec.podmanLimitWarning("4.3.1", rootless, { cpus: 1, memoryMb: 16 })
    assert.include(why ?? "", "Podman 4.3.1, rootless, on cgroup v1 with no cgroup controller")
    assert.include(why ?? "", "ignores a job's memory limit and CPU limit")
    assert.include(why ?? "", "Run rootful Podman")
    assert.include(Spec.podmanLimitWarning("4.3.1", { ...rootless, cgroupVersion: "v2", controllers: ["cpu", "pids"] }, { cpus: 1, memoryMb: 16 }) ?? "", "ignores a job's memory limit,")
    assert.isUndefined(Spec.podmanLimitWarning("4.3.1", rootful, { cpus: 1, memoryMb: 16 }))
    assert.isUndefined(Spec.podmanLimitWarning("4.3.1", rootless, { cpus: 0 }))
  })
})

// The engines' lanes: Docker Engine's tests and Podman's run side by side, each engine's one at a time. Neither lane stops
// or uses the other's engine (this file kills and restarts dockerd, and stops the Podman service), as two files would
// allow; one file, because vitest starts the largest files first on a clean clone, and Podman's half alone would be a
// small file, started last.
describe("on Docker Engine", { concurrent: true }, () => {
  engineTests(DOCKER)
  dockerOnlyTests()
  misbehavingTests()
})
if (PODMAN !== undefined) {
  describe("on Podman", { concurrent: true }, () => {
    engineTests(PODMAN)
    podmanTests(PODMAN)
  })
}
