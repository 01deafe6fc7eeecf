/**
 * Against a real sshd on 127.0.0.1:2222: start it with `sudo scripts/services/start-all.sh sshd`
 * (or start-sshd.sh). Without it these tests fail, saying so.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Backend, JobProtocol } from "@trex/core"
// Until packages/core/package.json exports "./testing", import the suite by path.
import { BackendConformance } from "../../core/src/testing/index.ts"
import { Deferred, Effect, Fiber, Redacted, Stream } from "effect"
import { execFileSync, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { quote, quoteArgv } from "../src/internal/sshScript.ts"
import * as SshBackend from "../src/SshBackend.ts"
import { checkQueued } from "./support/queued.ts"
import { eventually } from "./support/eventually.ts"
import { gone } from "./support/process.ts"
import { checkLoudWatch, loudScript } from "./support/loudLog.ts"

const env = (k: string, d: string) => process.env[k] ?? d
const keyDir = "/var/lib/trex-test-ssh"
const host: SshBackend.Host = {
  host: env("TREX_TEST_SSH_HOST", "127.0.0.1"),
  port: Number(env("TREX_TEST_SSH_PORT", "2222")),
  username: env("TREX_TEST_SSH_USER", "sdktest"),
  privateKeyPath: env("TREX_TEST_SSH_KEY", `${keyDir}/id_ed25519`),
  knownHostsPath: env("TREX_TEST_SSH_KNOWN_HOSTS", `${keyDir}/known_hosts`),
  gpus: ["0", "1"],
  slots: 2
}
const remoteRoot = `/tmp/trex-ssh-test-${process.pid}`
const local = Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-ssh-"))
afterAll(() => {
  Fs.rmSync(local, { recursive: true, force: true })
  Fs.rmSync(remoteRoot, { recursive: true, force: true }) // the test host is this machine
})
const config: SshBackend.Config = { hosts: [host], remoteRoot, pollInterval: "150 millis", killGraceSeconds: 2 }

/** Fail loudly, with the way out, when the test sshd is not there. */
const sshdUp = Effect.callback<void>((resume) => {
  const socket = Net.connect(host.port!, host.host, () => {
    socket.destroy()
    resume(Effect.void)
  })
  socket.once("error", (e) =>
    resume(Effect.die(new Error(`no sshd on ${host.host}:${host.port} (${e.message}): run \`sudo scripts/services/start-all.sh sshd\` first`)))
  )
})

let counter = 0
const spec = (argv: ReadonlyArray<string>, extra: Partial<Backend.JobSpec> = {}): Backend.JobSpec => ({
  name: "t",
  argv,
  env: {},
  files: [],
  resources: { gpus: 0, cpus: 1 },
  labels: { run: "ssh-test", node: `n${++counter}` },
  ...extra
})

/** A file the hostile arguments would create if a shell ran them (one per test process). */
const PWNED = `/tmp/trex-pwned-${process.pid}`
const HOSTILE = [
  "",
  " ",
  "'",
  "''",
  `"`,
  `it's "quoted"`,
  "$(touch " + PWNED + ")",
  "`touch " + PWNED + "`",
  "; touch " + PWNED + " #",
  "a\nb",
  "tab\there",
  "*",
  "$HOME",
  "${PATH}",
  "\\",
  "\\'",
  "-n",
  "!event",
  "ünïcødé ✓",
  "a'b'c\"d\"e$f`g`h\\i"
]

/** Watch a job until it reports a wait whose reason includes `text`: that reason, and the watch's fiber, collecting its events to the end. */
const untilWaiting = (backend: Backend.BackendShape, ref: Parameters<Backend.BackendShape["watch"]>[0], text: string) =>
  Effect.gen(function*() {
    const told = yield* Deferred.make<string>()
    const watching = yield* Stream.runCollect(backend.watch(ref).pipe(Stream.tap((e) =>
      e._tag === "State" && e.reason?.includes(text) === true ? Deferred.succeed(told, e.reason) : Effect.void
    ))).pipe(Effect.forkChild)
    return { reason: yield* Deferred.await(told), watching }
  })

/** Watch a job until it reports Running: the watch's fiber, collecting its events to the end. */
const untilRunning = (backend: Backend.BackendShape, ref: Parameters<Backend.BackendShape["watch"]>[0], seen: Array<Backend.JobEvent> = []) =>
  Effect.gen(function*() {
    const running = yield* Deferred.make<void>()
    const watching = yield* Stream.runCollect(backend.watch(ref).pipe(
      Stream.tap((e) => Effect.sync(() => void seen.push(e))),
      Stream.tap((e) => e._tag === "State" && e.state === "Running" ? Deferred.succeed(running, undefined) : Effect.void)
    )).pipe(Effect.forkChild)
    yield* Deferred.await(running)
    return watching
  })

describe("SshBackend quoting", () => {
  it("quote() gives one word whose value is the string, for hostile strings", () => {
    const out = execFileSync("sh", ["-c", `printf '%s\\0' ${quoteArgv(HOSTILE)}`]).toString("utf8")
    assert.deepStrictEqual(out.split("\0").slice(0, -1), HOSTILE)
    assert.strictEqual(quote("plain/path-1.txt"), "plain/path-1.txt")
    // a first word that looks like an assignment stays a command name
    const assign = execFileSync("sh", ["-c", `${quoteArgv(["X=1", "true"])} 2>&1; echo "rc=$?"`]).toString("utf8")
    assert.match(assign, /rc=127/)
    assert.isFalse(Fs.existsSync(PWNED))
  })
})

describe("SshBackend conformance", () => {
  const cases = BackendConformance.cases({
    command: (_, script) => ({ argv: ["sh", script] }),
    supportsOom: true,
    fresh: SshBackend.make(config)
  })
  for (const c of cases) {
    it.live(c.name, () => sshdUp.pipe(Effect.andThen(c.run), Effect.provide(SshBackend.layer(config))))
  }
})

describe("SshBackend", () => {
  it.live("hostile argv reaches the remote job unchanged; GPUs per job; secrets only in the job's env", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const backend = yield* SshBackend.make(config)
      // both jobs hold their GPU until both have started (a barrier), so the second cannot take the
      // GPU the first freed: each must get its own
      const barrier = Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-ssh-barrier-"))
      Fs.chmodSync(barrier, 0o777)
      const wait = `touch "$B/$$"; i=0; while [ "$(ls "$B" | wc -l)" -lt 2 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done`
      const show = `${wait}; for a; do printf '%s' "$a" | od -An -tx1 | tr -d ' \\n'; echo; done; echo "gpus=$CUDA_VISIBLE_DEVICES secret=$TOKEN"; ls -a`
      const hex = (s: string) => Buffer.from(s, "utf8").toString("hex")
      const refs = yield* Effect.forEach([0, 1], () =>
        backend.submit(spec(["sh", "-c", show, "sh", ...HOSTILE], { env: { TOKEN: Redacted.make("t0k3n"), B: barrier }, resources: { gpus: 1, cpus: 1 } }))
      )
      const exits = yield* Effect.forEach(refs, (ref) => Stream.runCollect(backend.watch(ref)), { concurrency: "unbounded" })
      const gpus: Array<string> = []
      for (const events of exits) {
        const lines = events.flatMap((e) => (e._tag === "Log" && e.stream === "stdout" ? [e.line] : []))
        assert.deepStrictEqual(lines.slice(0, HOSTILE.length), HOSTILE.map(hex))
        const info = lines.find((l) => l.startsWith("gpus="))!
        assert.match(info, /^gpus=[01] secret=t0k3n$/)
        gpus.push(info.slice(5, 6))
        assert.notInclude(lines, ".trex-env", "the env file is deleted once read")
        assert.strictEqual((events.at(-1) as Backend.JobExit).outcome, "Succeeded")
      }
      assert.sameMembers(gpus, ["0", "1"], "each job got its own GPU")
      assert.isFalse(Fs.existsSync(PWNED))
    })))

  it.live("a job survives the controller's connection being dropped, and a new controller reattaches", () =>
    Effect.gen(function*() {
      yield* sshdUp
      // the job goes on once the test has seen it running from the second controller (it creates `go`)
      const s = spec(["sh", "-c", `echo before; i=0; while [ ! -f go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo after; echo '{"metrics":{},"primary":1}' > result.json`])
      const ref = yield* Effect.scoped(Effect.gen(function*() {
        const first = yield* SshBackend.make(config)
        const ref = yield* first.submit(s)
        const seen = yield* first.watch(ref).pipe(Stream.takeUntil((e) => e._tag === "Log" && e.line === "before"), Stream.runCollect)
        assert.isTrue(seen.some((e) => e._tag === "Log" && e.line === "before"))
        return ref
      })) // the scope closes: its SSH connections end while the job sleeps
      const exit = yield* Effect.scoped(Effect.gen(function*() {
        const second = yield* SshBackend.make(config)
        assert.strictEqual((yield* second.list("ssh-test")).find((j) => j.labels.node === s.labels.node)?.state, "Running")
        assert.strictEqual((yield* second.capacity).inUse, 1, "the running job holds its slot in the new controller")
        Fs.writeFileSync(Path.join(remoteRoot, "ssh-test", String(ref.data["dir"]).split("/").at(-1)!, "go"), "")
        const exit = yield* Backend.awaitExit(second, ref)
        assert.strictEqual((yield* second.capacity).inUse, 0)
        return exit
      }))
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
      assert.deepStrictEqual(exit.result, { metrics: {}, primary: 1 })
      assert.include(exit.logTail, "after")
    }))

  it.live("with every slot taken a job waits in the backend's queue (Pending, with why), starts in turn, and can be withdrawn until then", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const one = { ...config, hosts: [{ ...host, slots: 1 }] }
      const backend = yield* SshBackend.make(one)
      const first = spec(["sh", "-c", `echo up; i=0; while [ ! -f go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done`])
      const ref1 = yield* backend.submit(first)
      const ref2 = yield* backend.submit(spec(["sh", "-c", `echo second; echo '{"metrics":{},"primary":2}' > result.json`]))
      const ref3 = yield* backend.submit(spec(["sh", "-c", "echo third"]))
      assert.strictEqual(ref1.data["queued"], undefined)
      const second = yield* checkQueued(backend, "ssh-test", ref2, ref3)
      const firstEvents = yield* Stream.runCollect(backend.watch(ref1).pipe(
        Stream.tap((e) => e._tag === "Log" && e.line === "up" ? Effect.sync(() => Fs.writeFileSync(Path.join(String(ref1.data["dir"]), "go"), "")) : Effect.void)
      ))
      assert.strictEqual((firstEvents.at(-1) as Backend.JobExit).outcome, "Succeeded")
      const events = yield* Fiber.join(second)
      const states = events.flatMap((e) => (e._tag === "State" ? [`${e.state}${e.reason !== undefined ? `: ${e.reason}` : ""}`] : []))
      assert.strictEqual(states[0], "Pending: no free slot: 1 of 1 in use", JSON.stringify(states))
      assert.strictEqual(states.at(-1), "Running", JSON.stringify(states))
      const exit = events.at(-1) as Backend.JobExit
      assert.strictEqual(exit.outcome, "Succeeded", JSON.stringify(exit))
      assert.deepStrictEqual(exit.result, { metrics: {}, primary: 2 })
      assert.isFalse(yield* backend.withdraw!(ref2))
      // another controller finds where the ticket went from the job's record on the host
      const other = yield* SshBackend.make(one)
      const again = yield* Stream.runCollect(other.watch(ref2))
      assert.strictEqual((again.at(-1) as Backend.JobExit).outcome, "Succeeded")
      assert.include((again.at(-1) as Backend.JobExit).logTail, "second")
    })), 60_000)

  it.live("a job queued by a controller that stopped never started: another controller says so; cancel takes it out of the queue", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const one = { ...config, hosts: [{ ...host, slots: 1 }] }
      const backend = yield* SshBackend.make(one)
      const ref1 = yield* backend.submit(spec(["sleep", "30"]))
      const ref2 = yield* backend.submit(spec(["echo", "never"]))
      assert.strictEqual(ref2.data["queued"], true)
      const other = yield* SshBackend.make(one)
      const events = yield* Stream.runCollect(other.watch(ref2))
      assert.deepStrictEqual(events.map((e) => e._tag), ["Exit"])
      assert.deepStrictEqual([(events[0] as Backend.JobExit).outcome, (events[0] as Backend.JobExit).failureKind], ["Failed", "Infra"])
      assert.include((events[0] as Backend.JobExit).message, "never started")
      yield* backend.cancel(ref2)
      assert.isUndefined((yield* backend.list("ssh-test")).find((j) => j.ref.id === ref2.id))
      yield* backend.cancel(ref1)
      assert.strictEqual(((yield* Stream.runCollect(backend.watch(ref1))).at(-1) as Backend.JobExit).outcome, "Cancelled")
    })), 60_000)

  it.live("a job whose controller wrote it and stopped before launching it is reported lost (to run again), and cannot start later", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const backend = yield* SshBackend.make(config)
      // what a queued job's turn writes before the launch: the files and the record naming its ticket
      const s = spec(["sh", "-c", "echo never"])
      const dir = Path.join(remoteRoot, s.labels.run, s.labels.node)
      Fs.mkdirSync(dir, { recursive: true })
      Fs.writeFileSync(Path.join(dir, ".trex-run.sh"), "echo ran > ran\n")
      const ticket = { backend: "ssh", id: `${s.labels.run}/${s.labels.node}@queued-x-1`, data: { dir, rel: `${s.labels.run}/${s.labels.node}`, queued: true } }
      const hostName = `${host.username}@${host.host}:${host.port}`
      Fs.writeFileSync(Path.join(dir, ".trex-job.json"), JSON.stringify({ name: s.name, labels: s.labels, host: hostName, gpuIds: [], ticket: ticket.id }))
      Fs.chmodSync(remoteRoot, 0o777)
      execFileSync("chmod", ["-R", "a+rwX", remoteRoot])
      const events = yield* Stream.runCollect(backend.watch(ticket))
      const exit = events.at(-1) as Backend.JobExit
      assert.deepStrictEqual([exit.outcome, exit.failureKind], ["Failed", "Infra"], JSON.stringify(events))
      assert.include(exit.message, "before launching it")
      assert.isFalse(Fs.existsSync(Path.join(dir, ".trex-run.sh")), "its script is gone: a late launch cannot run it")
    })), 60_000)

  it.live("cancel kills the whole remote process group", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const backend = yield* SshBackend.make(config)
      // a grandchild that ignores nothing: it must die with the group
      const ref = yield* backend.submit(spec(["sh", "-c", `sleep 300 & echo $! > child.pid; echo started; wait`]))
      const fiber = yield* Stream.runCollect(backend.watch(ref)).pipe(Effect.forkChild)
      const pidFile = Path.join(remoteRoot, "ssh-test", String(ref.data["dir"]).split("/").at(-1)!, "child.pid")
      yield* eventually("the job started its grandchild", () => Fs.existsSync(pidFile) && /^\d+\s*$/.test(Fs.readFileSync(pidFile, "utf8")), 60)
      const pid = Number(Fs.readFileSync(pidFile, "utf8"))
      yield* backend.cancel(ref)
      const events = yield* Fiber.join(fiber)
      assert.strictEqual((events.at(-1) as Backend.JobExit).outcome, "Cancelled")
      yield* eventually("the grandchild is gone", () => gone(pid))
    })))

  it.live("a job past its time limit that ignores SIGTERM is killed after killGraceSeconds; a job that ends first leaves no timer behind", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const backend = yield* SshBackend.make(config)
      // the test host is this machine: the processes whose command line is `sleep <seconds>`
      const sleeping = (seconds: number) =>
        Fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
          try {
            return Fs.readFileSync(`/proc/${p}/cmdline`, "latin1") === `sleep\0${seconds}\0`
          } catch {
            return false
          }
        })
      const stubborn = yield* backend.submit(spec(["sh", "-c", "trap '' TERM; echo $$ > job.pid; while :; do sleep 0.2; done"], {
        resources: { gpus: 0, cpus: 1, timeLimitSeconds: 1 }
      }))
      const exit = yield* Backend.awaitExit(backend, stubborn)
      assert.strictEqual(exit.outcome, "Failed")
      assert.strictEqual(exit.failureKind, "Timeout", exit.message)
      const pid = Number(Fs.readFileSync(Path.join(remoteRoot, "ssh-test", String(stubborn.data["dir"]).split("/").at(-1)!, "job.pid"), "utf8"))
      yield* eventually("the job that ignored SIGTERM is gone", () => gone(pid))
      // a time limit no other test uses: its timer is this job's
      const quick = yield* backend.submit(spec(["sh", "-c", "echo done"], { resources: { gpus: 0, cpus: 1, timeLimitSeconds: 287 } }))
      assert.strictEqual((yield* Backend.awaitExit(backend, quick)).outcome, "Succeeded")
      yield* eventually("the job's timer ended with it", () => sleeping(287).length === 0)
    })))

  it.live("a log of tens of megabytes reaches a slow consumer in bounded chunks: every line in order, \\r as shown, the right tail", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const backend = yield* SshBackend.make(config)
      // ~20 MB at once, more than a slice (4 MiB) a poll reads: the watch must read on to the end after the exit
      const ref = yield* backend.submit(spec(["sh", "-c", loudScript.join("; ")]))
      yield* checkLoudWatch(backend.watch(ref))
    })))

  it.live("result.json is read up to JobProtocol.MAX_RESULT_BYTES, as the local backend reads it; a bigger one fails naming its size", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const backend = yield* SshBackend.make(config)
      // 5 MiB of summary: more than the 4 MiB a log slice is, well under the cap
      const big = `printf '{"metrics":{"score":0.5},"primary":0.5,"summary":"'; head -c 5242880 /dev/zero | tr '\\0' a; printf '"}'`
      const [ok, over] = yield* Effect.forEach([
        ["sh", "-c", `{ ${big}; } > result.json`],
        ["sh", "-c", `truncate -s ${JobProtocol.MAX_RESULT_BYTES + 1024 * 1024} result.json`]
      ], (argv) => Effect.flatMap(backend.submit(spec(argv)), (ref) => Backend.awaitExit(backend, ref)), { concurrency: "unbounded" })
      assert.strictEqual(ok.outcome, "Succeeded", JSON.stringify({ ...ok, result: undefined }))
      assert.isUndefined(ok.resultError)
      const result = ok.result as { primary: number; summary: string }
      assert.deepStrictEqual([result.primary, result.summary.length], [0.5, 5242880])
      assert.strictEqual(over.resultError, "result.json is 65 MB, more than the 64 MB the controller reads (keep its metrics and a short summary in it; put bulk data in an artifact)")
      assert.isUndefined(over.result)
    })), 60_000)

  it.live("a host that reboots and clears its job directories: the job's watch, and a resumed controller's, report it lost (to run again), naming the directory", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const backend = yield* SshBackend.make(config)
      const ref = yield* backend.submit(spec(untilGo))
      const dir = String(ref.data["dir"])
      const watching = yield* untilRunning(backend, ref)
      const pgid = Number(Fs.readFileSync(Path.join(dir, ".trex-pid"), "utf8").split(" ")[0])
      // the reboot: the job's processes killed, its directory (under /tmp) cleared
      process.kill(-pgid, "SIGKILL")
      Fs.rmSync(dir, { recursive: true, force: true })
      const named = `its job directory ${host.username}@${host.host}:${host.port}:${dir} is gone`
      const exit = exitOf(yield* Fiber.join(watching))
      assert.deepStrictEqual([exit.outcome, exit.failureKind], ["Failed", "Infra"], JSON.stringify(exit))
      assert.include(exit.message, named)
      // a controller started after the reboot (a resumed run) says the same, instead of failing the watch (the trial not run again)
      const resumed = yield* SshBackend.make(config)
      const again = exitOf(yield* Stream.runCollect(resumed.watch(ref)))
      assert.deepStrictEqual([again.outcome, again.failureKind], ["Failed", "Infra"], JSON.stringify(again))
      assert.include(again.message, named)
      assert.strictEqual((yield* resumed.capacity).inUse, 0)
    })), 60_000)

  it.live("a host that rebooted and kept its job directories: a pid of an earlier boot is not taken for the job's (not followed, listed as running, or signalled)", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const backend = yield* SshBackend.make(config)
      const s = spec(untilGo)
      const ref = yield* backend.submit(s)
      const dir = String(ref.data["dir"])
      const watching = yield* untilRunning(backend, ref)
      const pidFile = Path.join(dir, ".trex-pid")
      const [pgid, started, boot] = Fs.readFileSync(pidFile, "utf8").trim().split(" ")
      assert.strictEqual(boot, Fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim(), "the wrapper records the boot")
      yield* Effect.addFinalizer(() => Effect.sync(() => gone(Number(pgid)) || process.kill(-Number(pgid), "SIGKILL")))
      // what the directory says after a reboot: a pid of another boot. (Its process here stands for whichever
      // process got that number since: it must be neither followed nor signalled.)
      Fs.writeFileSync(pidFile, `${pgid} ${started} 00000000-0000-4000-8000-000000000000\n`)
      const exit = exitOf(yield* Fiber.join(watching))
      assert.deepStrictEqual([exit.outcome, exit.failureKind], ["Failed", "Infra"], JSON.stringify(exit))
      assert.include(exit.message, `rebooted after the job started`)
      assert.strictEqual((yield* backend.list(s.labels.run)).find((j) => j.labels.node === s.labels.node)?.state, "Finished")
      yield* backend.cancel(ref)
      assert.isFalse(gone(Number(pgid)), "a process group of an earlier boot's number is not signalled")
    })), 60_000)

  it.live("a host key that does not match known_hosts is refused, clearly and without retrying", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const other = Path.join(local, "other_key")
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", other])
      const wrongHosts = Path.join(local, "known_hosts_wrong")
      Fs.writeFileSync(wrongHosts, `[${host.host}]:${host.port} ${Fs.readFileSync(`${other}.pub`, "utf8").split(" ").slice(0, 2).join(" ")}\n`)
      const wrong = yield* SshBackend.make({ ...config, hosts: [{ ...host, knownHostsPath: wrongHosts }] })
      const error = yield* wrong.submit(spec(["true"])).pipe(Effect.flip)
      assert.strictEqual(error._tag, "BackendError")
      assert.isFalse(error.retryable, "a wrong host key is not retried")
      assert.include(error.message, "HOST KEY MISMATCH")

      const emptyHosts = Path.join(local, "known_hosts_empty")
      Fs.writeFileSync(emptyHosts, "")
      const unknown = yield* SshBackend.make({ ...config, hosts: [{ ...host, knownHostsPath: emptyHosts }] })
      const error2 = yield* unknown.list("ssh-test").pipe(Effect.flip)
      assert.isFalse(error2.retryable)
      assert.include(error2.message, "host key not in")
    })))
})

/**
 * A second "host" of the pool: a TCP relay to the test sshd that can be taken down (listener closed,
 * connections cut: what a stopped sshd or a dropped network looks like from the controller) and
 * brought back on the same port. Jobs keep running on the machine behind it, as on a real host
 * whose network dropped.
 */
const relayTo = (upstreamPort: number) => Effect.acquireRelease(
  Effect.promise(async () => {
    const sockets = new Set<Net.Socket>()
    const server = Net.createServer((client) => {
      const upstream = Net.connect(upstreamPort, host.host)
      sockets.add(client).add(upstream)
      const end = () => {
        client.destroy()
        upstream.destroy()
        sockets.delete(client)
        sockets.delete(upstream)
      }
      for (const s of [client, upstream]) s.on("error", end).on("close", end)
      client.pipe(upstream).pipe(client)
    })
    let port = 0
    const up = () => new Promise<void>((resolve) => server.listen(port, "127.0.0.1", () => {
      port = (server.address() as Net.AddressInfo).port
      resolve()
    }))
    await up()
    return {
      port,
      up: Effect.promise(up),
      down: Effect.promise(() => new Promise<void>((resolve) => {
        server.close(() => resolve())
        for (const s of sockets) s.destroy()
      }))
    }
  }),
  (r) => r.down
)
const relay = relayTo(host.port!)

/** known_hosts for the test sshd reached on other ports of 127.0.0.1. */
const knownHostsFor = (...ports: ReadonlyArray<number>) => {
  const key = Fs.readFileSync(host.knownHostsPath, "utf8").trim().split(/\s+/).slice(1, 3).join(" ")
  const file = Path.join(local, `known_hosts_${ports.join("_")}`)
  Fs.writeFileSync(file, ports.map((p) => `[127.0.0.1]:${p} ${key}\n`).join(""))
  return file
}

/** A port of 127.0.0.1 where nothing listens (a host that is off). */
const deadPort = Effect.promise(() => new Promise<number>((resolve) => {
  const s = Net.createServer().listen(0, "127.0.0.1", () => {
    const port = (s.address() as Net.AddressInfo).port
    s.close(() => resolve(port))
  })
}))

const exitOf = (events: ReadonlyArray<Backend.JobEvent>) => events.at(-1) as Backend.JobExit

const listening = (port: number) =>
  Effect.callback<boolean>((resume) => {
    const socket = Net.connect(port, "127.0.0.1", () => {
      socket.destroy()
      resume(Effect.succeed(true))
    })
    socket.once("error", () => resume(Effect.succeed(false)))
  })

/**
 * A host with a file system of its own: a second sshd (the test one's configuration, another port)
 * in a mount namespace of its own with a fresh tmpfs over /tmp, where `remoteRoot` is, so its job
 * directories are not the test host's (two hosts of a pool do not share files). The test reads its
 * files through /proc/<pid>/root; its processes are this machine's.
 */
const islandWith = (options: {
  /** Its own authorized_keys (outside /tmp, which it covers), so that a test can take the key out. */
  readonly authorizedKeys?: string
  /** The size of its /tmp (a disk that fills). */
  readonly tmpSize?: string
} = {}) => Effect.acquireRelease(
  Effect.gen(function*() {
    const port = yield* deadPort
    const keys = options.authorizedKeys !== undefined ? ` -o AuthorizedKeysFile=${quote(options.authorizedKeys)} -o StrictModes=no` : ""
    const size = options.tmpSize !== undefined ? ` -o size=${options.tmpSize}` : ""
    const child = spawn("unshare", [
      "-m",
      "--propagation",
      "private",
      "sh",
      "-c",
      `mount -t tmpfs${size} island /tmp && chmod 1777 /tmp && exec /usr/sbin/sshd -D -e -f /etc/ssh/sdktest/sshd_config.${host.port} -o Port=${port} -o PidFile=none${keys}`
    ], { stdio: "ignore" })
    yield* eventually(`a second sshd listens on ${port} (unshare and mount need root)`, listening(port), 15)
    return {
      port,
      root: (p: string) => `/proc/${child.pid}/root${p}`,
      child,
      /** Every connection to it cut (its sessions killed; it listens on): what a restarted sshd does to a client. */
      cut: () => {
        // each session is a privileged monitor and the user's own sshd under it: both go, so the TCP connection closes
        const sessions = execFileSync("sh", ["-c", `for p in $(pgrep -P ${child.pid}); do echo $p; pgrep -P $p; done`]).toString("utf8").split("\n").filter((l) => l !== "")
        for (const pid of sessions) process.kill(Number(pid), "SIGKILL")
      }
    }
  }),
  ({ child }) => Effect.sync(() => child.kill())
)
const island = islandWith()

/** A job that runs until a file `go` appears in its directory (at most a minute), then reports 1. */
const untilGo = ["sh", "-c", `i=0; while [ ! -f go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo '{"metrics":{},"primary":1}' > result.json`]

describe("SshBackend, a pool with a host down", () => {
  const live: SshBackend.Host = { ...host, name: "live", slots: 1 }
  const fast = { retryFor: "1 second", pollInterval: "150 millis", killGraceSeconds: 2 } as const
  /** A pool of `flaky` (one slot, reached through a relay the test takes down and brings back) then `live`. */
  const flakyPool = (extra: Partial<SshBackend.Config> = {}, r0?: Effect.Success<typeof relay>) =>
    Effect.gen(function*() {
      yield* sshdUp
      const r = r0 ?? (yield* relay)
      const flaky: SshBackend.Host = { ...host, name: "flaky", port: r.port, knownHostsPath: knownHostsFor(r.port), slots: 1 }
      /** Another controller of the same pool (a resumed run's). */
      const again = () => SshBackend.make({ ...config, ...fast, hostRetryAfter: "1 second", ...extra, hosts: [flaky, live] })
      const backend = yield* again()
      return { r, backend, again }
    })

  it.live("a host that is down before the first job gets none: every job runs on the others; capacity counts the reachable hosts", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const port = yield* deadPort
      const dead: SshBackend.Host = { ...host, name: "dead", port, knownHostsPath: knownHostsFor(port), slots: 2 }
      const backend = yield* SshBackend.make({ ...config, ...fast, hostRetryAfter: "1 hour", hosts: [dead, live] })
      const hosts: Array<unknown> = []
      for (let i = 0; i < 3; i++) {
        const ref = yield* backend.submit(spec(["sh", "-c", "echo ok"]))
        const exit = exitOf(yield* Stream.runCollect(backend.watch(ref)))
        assert.strictEqual(exit.outcome, "Succeeded", JSON.stringify(exit))
        hosts.push(ref.data["host"])
      }
      assert.deepStrictEqual(hosts, ["live", "live", "live"], "no job was sent to the dead host")
      assert.deepStrictEqual(yield* backend.capacity, { slots: 1, gpus: 2, inUse: 0 }, "only the reachable host's slots and GPUs")
    })), 60_000)

  it.live("a host that goes down gets no new jobs, and takes them again once it is back", () =>
    Effect.scoped(Effect.gen(function*() {
      const { r, backend } = yield* flakyPool()
      const run = (argv: ReadonlyArray<string>) =>
        Effect.flatMap(backend.submit(spec(argv)), (ref) =>
          Effect.map(Stream.runCollect(backend.watch(ref)), (events) => ({ host: ref.data["host"], outcome: exitOf(events).outcome })))
      assert.deepStrictEqual(yield* run(["true"]), { host: "flaky", outcome: "Succeeded" }, "the first host takes the first job")
      yield* r.down
      const during = yield* Effect.forEach([0, 1, 2], () => run(["true"]))
      assert.deepStrictEqual(during, [0, 1, 2].map(() => ({ host: "live", outcome: "Succeeded" })), "while it is down, jobs go to the other host")
      assert.strictEqual((yield* backend.capacity).slots, 1)
      // past its hostRetryAfter (1 s) it may be tried again, but it has not been reached: it still counts for nothing
      // (it counted again once its wait was over, whether it answered or not: a CI run under load saw 2)
      yield* Effect.sleep("1500 millis")
      assert.strictEqual((yield* backend.capacity).slots, 1)
      yield* r.up
      // tried again once its wait is over: the job goes to it (the first host with room) again
      yield* eventually("the host that came back takes a job", Effect.map(run(["true"]), (x) => x.host === "flaky" && x.outcome === "Succeeded"), 30)
      assert.strictEqual((yield* backend.capacity).slots, 2)
    })), 90_000)

  it.live("a queued job offered a host that is still down (its wait over) waits again, and starts when another host frees", () =>
    Effect.scoped(Effect.gen(function*() {
      const { r, backend } = yield* flakyPool()
      const before = yield* backend.submit(spec(["true"]))
      assert.strictEqual(before.data["host"], "flaky")
      assert.strictEqual(exitOf(yield* Stream.runCollect(backend.watch(before))).outcome, "Succeeded")
      yield* r.down
      const first = yield* backend.submit(spec(["sh", "-c", `i=0; while [ ! -f go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done`]))
      assert.strictEqual(first.data["host"], "live")
      const queued = yield* backend.submit(spec(["sh", "-c", `echo '{"metrics":{},"primary":3}' > result.json`]))
      assert.strictEqual(queued.data["queued"], true)
      const watching = yield* Stream.runCollect(backend.watch(queued)).pipe(Effect.forkChild)
      // meanwhile the queue offers it the down host each time that host's wait is over: it is tried, and the job waits again
      yield* Effect.sleep("4 seconds")
      Fs.writeFileSync(Path.join(String(first.data["dir"]), "go"), "")
      const exit = exitOf(yield* Fiber.join(watching))
      assert.strictEqual(exit.outcome, "Succeeded", JSON.stringify(exit))
      assert.deepStrictEqual(exit.result, { metrics: {}, primary: 3 })
    })), 60_000)

  it.live("a running job whose host is unreachable for a while is said out of touch, then followed on to its end once the host answers", () =>
    Effect.scoped(Effect.gen(function*() {
      const { r, backend } = yield* flakyPool({ hostLostAfter: "1 minute" })
      const s = spec(["sh", "-c", `echo up; i=0; while [ ! -f go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo '{"metrics":{},"primary":1}' > result.json`])
      const ref = yield* backend.submit(s)
      assert.strictEqual(ref.data["host"], "flaky")
      const seen: Array<Backend.JobEvent> = []
      const watching = yield* untilRunning(backend, ref, seen)
      yield* r.down
      // the host back once the watch has said it out of touch
      yield* eventually("the watch says the host does not answer", () =>
        seen.some((e) => e._tag === "State" && /^host flaky does not answer since /.test(e.reason ?? "")), 30)
      yield* r.up
      Fs.writeFileSync(Path.join(String(ref.data["dir"]), "go"), "")
      const events = yield* Fiber.join(watching)
      assert.strictEqual(exitOf(events).outcome, "Succeeded", JSON.stringify(exitOf(events)))
      const states = [...events].flatMap((e) => (e._tag === "State" ? [e] : []))
      const told = states.findIndex((e) => e.state === "Running" && /^host flaky does not answer since /.test(e.reason ?? ""))
      assert.isAtLeast(told, 0, JSON.stringify(states))
      assert.deepStrictEqual(states.slice(told + 1), [{ _tag: "State", state: "Running" }])
    })), 60_000)

  it.live("a running job whose host stays unreachable is reported lost (to run again), and its copy is stopped when the host comes back", () =>
    Effect.scoped(Effect.gen(function*() {
      const { r, backend } = yield* flakyPool({ hostLostAfter: "3 seconds" })
      const s = spec(["sh", "-c", `echo up; i=0; while [ ! -f go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo '{"metrics":{},"primary":1}' > result.json`])
      const ref = yield* backend.submit(s)
      assert.strictEqual(ref.data["host"], "flaky")
      const dir = String(ref.data["dir"])
      const watching = yield* untilRunning(backend, ref)
      const pgid = Number(Fs.readFileSync(Path.join(dir, ".trex-pid"), "utf8").split(" ")[0])
      yield* r.down
      const events = yield* Fiber.join(watching)
      const exit = exitOf(events)
      assert.deepStrictEqual([exit.outcome, exit.failureKind], ["Failed", "Infra"], JSON.stringify(exit))
      assert.include(exit.message, "host flaky was unreachable")
      // meanwhile the trial was said out of touch (for `trex status`), once
      const told = [...events].filter((e) => e._tag === "State" && e.reason !== undefined)
      assert.strictEqual(told.length, 1, JSON.stringify(told))
      assert.match((told[0] as { reason: string }).reason, /^host flaky does not answer since \d\d:\d\d:\d\dZ \(.*\); the job is taken to run on, and counts as lost \(run again elsewhere\) after 3s \(hostLostAfter\)$/)
      assert.isFalse(gone(pgid), "the job itself still runs on the host cut off")
      // the trial runs again: on the other host
      const again = yield* backend.submit({ ...s, labels: { run: s.labels.run, node: `${s.labels.node}-again` } })
      assert.strictEqual(again.data["host"], "live")
      Fs.writeFileSync(Path.join(String(again.data["dir"]), "go"), "")
      assert.strictEqual(exitOf(yield* Stream.runCollect(backend.watch(again))).outcome, "Succeeded")
      // the host is back: the copy given up on is stopped (not left to run twice)
      yield* r.up
      yield* eventually("the host answers again", Effect.map(Effect.result(backend.list(s.labels.run)), (x) => x._tag === "Success"), 30)
      yield* eventually("the abandoned copy is stopped", () => gone(pgid), 30)
      assert.isTrue(Fs.existsSync(Path.join(dir, ".trex-cancelled")))
    })), 90_000)

  it.live("a resumed controller listing a run's jobs waits for a host that is down, and finds the job there when it answers", () =>
    Effect.scoped(Effect.gen(function*() {
      const { r, backend, again } = yield* flakyPool({ hostLostAfter: "1 minute" })
      const s = spec(untilGo)
      const ref = yield* backend.submit(s)
      assert.strictEqual(ref.data["host"], "flaky")
      yield* eventually("the job runs", () => Fs.existsSync(Path.join(String(ref.data["dir"]), ".trex-pid")), 30)
      yield* r.down
      const resumed = yield* again()
      const listing = yield* Effect.forkChild(resumed.list(s.labels.run))
      // longer than `retryFor` (1 s), after which the listing used to fail: the job there cannot be ruled out
      yield* Effect.sleep("3 seconds")
      yield* r.up
      const jobs = yield* Fiber.join(listing)
      const found = jobs.find((j) => j.labels.node === s.labels.node)
      assert.deepStrictEqual([found?.ref.data["host"], found?.state], ["flaky", "Running"], JSON.stringify(jobs))
      Fs.writeFileSync(Path.join(String(ref.data["dir"]), "go"), "")
      assert.strictEqual(exitOf(yield* Stream.runCollect(resumed.watch(found!.ref))).outcome, "Succeeded")
    })), 60_000)

  it.live("a host down for longer than hostLostAfter is left out of a resumed controller's listing; when it answers, its copy of a job since started elsewhere is stopped", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const other = yield* island
      const { r, backend, again } = yield* flakyPool({ hostLostAfter: "3 seconds" }, yield* relayTo(other.port))
      const s = spec(untilGo)
      const ref = yield* backend.submit(s)
      assert.strictEqual(ref.data["host"], "flaky")
      const pidFile = other.root(Path.join(String(ref.data["dir"]), ".trex-pid"))
      yield* eventually("the job runs on the host with its own files", () => Fs.existsSync(pidFile), 30)
      const pgid = Number(Fs.readFileSync(pidFile, "utf8").split(" ")[0])
      yield* r.down
      // a resumed controller: the host stays down past hostLostAfter, so its jobs count as lost
      const resumed = yield* again()
      const jobs = yield* resumed.list(s.labels.run)
      assert.isUndefined(jobs.find((j) => j.labels.node === s.labels.node), JSON.stringify(jobs))
      // the trial runs again, on the other host
      const moved = yield* resumed.submit(s)
      assert.strictEqual(moved.data["host"], "live")
      assert.isFalse(gone(pgid), "the first copy still runs on the host cut off")
      yield* r.up
      yield* eventually("the host answers again", Effect.map(Effect.result(resumed.list(s.labels.run)), (x) => x._tag === "Success"), 30)
      yield* eventually("its copy of the job started again elsewhere is stopped", () => gone(pgid), 30)
      assert.isTrue(Fs.existsSync(other.root(Path.join(String(ref.data["dir"]), ".trex-cancelled"))))
      Fs.writeFileSync(Path.join(String(moved.data["dir"]), "go"), "")
      assert.strictEqual(exitOf(yield* Stream.runCollect(resumed.watch(moved))).outcome, "Succeeded", "the copy on the other host runs on")
    })), 90_000)
})

describe("SshBackend, a host that misbehaves under running jobs", () => {
  const fast = { retryFor: "1 second", hostRetryAfter: "1 second", pollInterval: "150 millis", killGraceSeconds: 2 } as const
  /** A job's own file on an island host. */
  const fileOn = (other: { root: (p: string) => string }, ref: { data: Record<string, unknown> }, name: string) => other.root(Path.join(String(ref.data["dir"]), name))

  it.live("a host that stops accepting the key: its running job is followed on, new jobs wait saying which key, user and host and the fix; both end well once the key is back", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const keysDir = Fs.mkdtempSync("/var/tmp/trex-ssh-keys-")
      Fs.chmodSync(keysDir, 0o755) // sshd reads authorized_keys as the user
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(keysDir, { recursive: true, force: true })))
      const keys = Path.join(keysDir, "authorized_keys")
      const pub = Fs.readFileSync(`${host.privateKeyPath}.pub`, "utf8")
      Fs.writeFileSync(keys, pub)
      const other = yield* islandWith({ authorizedKeys: keys })
      const keyed: SshBackend.Host = { ...host, name: "keyed", port: other.port, knownHostsPath: knownHostsFor(other.port), slots: 1 }
      const backend = yield* SshBackend.make({ ...config, ...fast, hostLostAfter: "1 minute", hosts: [keyed] })
      const ref = yield* backend.submit(spec(["sh", "-c", `echo up; ${untilGo[2]}`]))
      const watching = yield* untilRunning(backend, ref)
      // the key taken out of authorized_keys, and the connection cut (sshd restarted): every new connection is refused
      Fs.writeFileSync(keys, "")
      other.cut()
      const second = yield* backend.submit(spec(["sh", "-c", `echo '{"metrics":{},"primary":2}' > result.json`]))
      assert.strictEqual(second.data["queued"], true, "no new job goes to a host that refuses the key")
      const { reason: keyReason, watching: secondWatch } = yield* untilWaiting(backend, second, "authorized_keys")
      assert.include(keyReason, `sdktest@127.0.0.1:${other.port}: the key ${host.privateKeyPath} was not accepted for user sdktest`)
      assert.include(keyReason, `add its public key (${host.privateKeyPath}.pub) to ~sdktest/.ssh/authorized_keys on 127.0.0.1`)
      // fixed: the running job was never given up on, and the waiting one starts after it
      Fs.writeFileSync(keys, pub)
      Fs.writeFileSync(fileOn(other, ref, "go"), "")
      const events = yield* Fiber.join(watching)
      const exit = exitOf(events)
      assert.deepStrictEqual([exit.outcome, exit.result], ["Succeeded", { metrics: {}, primary: 1 }], JSON.stringify(exit))
      // followed on from where it was, its output not replayed; meanwhile said out of touch (the host refused the key), then in touch again
      assert.deepStrictEqual(events.flatMap((e) => e._tag === "Log" ? [e.line] : []), ["up"])
      const states = events.flatMap((e) => e._tag === "State" ? [e.reason === undefined ? e.state : `${e.state}: ${e.reason}`] : [])
      assert.deepStrictEqual(states.map((s) => s.replace(/: host keyed does not answer since .*/, ": out of touch")), ["Running", "Running: out of touch", "Running"], states.join("\n"))
      assert.include(states[1], "was not accepted for user sdktest")
      const exit2 = exitOf(yield* Fiber.join(secondWatch))
      assert.deepStrictEqual([exit2.outcome, exit2.result], ["Succeeded", { metrics: {}, primary: 2 }], JSON.stringify(exit2))
    })), 60_000)

  it.live("a host whose disk fills: new jobs wait (saying where, and the fix) and start once it has room; a job whose exit code, or pid, cannot be written fails as Infra saying so", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const other = yield* islandWith({ tmpSize: "4m" })
      const small: SshBackend.Host = { ...host, name: "small", port: other.port, knownHostsPath: knownHostsFor(other.port), slots: 2 }
      const backend = yield* SshBackend.make({ ...config, ...fast, hosts: [small] })
      const fill = other.root("/tmp/fill")
      /** The disk filled, but for `kb` KB. */
      const fillBut = (kb: number) => execFileSync("sh", ["-c", `dd if=/dev/zero of=${fill} bs=64k 2>/dev/null; truncate -s -${kb}K ${fill}; true`])
      const running = yield* backend.submit(spec(untilGo))
      const watching = yield* untilRunning(backend, running)
      fillBut(0)
      // a new job: its files cannot be written, so it waits for room (as for a host that is down), saying why
      const waiting = yield* backend.submit(spec(["sh", "-c", `echo '{"metrics":{},"primary":2}' > result.json`]))
      assert.strictEqual(waiting.data["queued"], true)
      const { reason: fullReason, watching: waitingWatch } = yield* untilWaiting(backend, waiting, "is full")
      assert.include(fullReason, `no host with room on its disk: small: the disk of small:${remoteRoot}/ssh-test/`)
      assert.match(fullReason, /is full \(\/tmp has \d+ KB free\): free space there/)
      // the running job ends: its wrapper cannot write the exit code
      Fs.writeFileSync(fileOn(other, running, "go"), "")
      const exit = exitOf(yield* Fiber.join(watching))
      assert.deepStrictEqual([exit.outcome, exit.failureKind], ["Failed", "Infra"], JSON.stringify(exit))
      assert.include(exit.message, `the job's exit code could not be written: the disk of small:${String(running.data["dir"])} is full`)
      // room again: the waiting job starts
      Fs.rmSync(fill)
      const exit2 = exitOf(yield* Fiber.join(waitingWatch))
      assert.deepStrictEqual([exit2.outcome, exit2.result], ["Succeeded", { metrics: {}, primary: 2 }], JSON.stringify(exit2))
      // room for a job's files (two pages) but not for its pid: the wrapper does not start the job, and the watch says why
      fillBut(8)
      const unstarted = yield* backend.submit(spec(["sh", "-c", "touch ran"]))
      const exit3 = exitOf(yield* Stream.runCollect(backend.watch(unstarted)))
      assert.deepStrictEqual([exit3.outcome, exit3.failureKind], ["Failed", "Infra"], JSON.stringify(exit3))
      assert.include(exit3.message, `the job could not start: the disk of small:`)
      assert.isFalse(Fs.existsSync(fileOn(other, unstarted, "ran")))
    })), 60_000)
})
