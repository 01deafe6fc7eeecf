/**
 * The SSH backend's pool against real sshd servers: hosts that are down or go down (a relay to the test sshd that the
 * test takes down), and hosts that misbehave under running jobs (an sshd of this file's own in a mount namespace, whose
 * key is taken out or whose disk fills). The shared sshd on 127.0.0.1:2222 (`sudo scripts/services/start-all.sh sshd`)
 * is never stopped, so this file runs beside SshBackend.test.ts; the relays and sshds here need root (as in CI).
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import type { Backend } from "@trex/core"
import { Deferred, Effect, Fiber, Stream } from "effect"
import { execFileSync, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { quote } from "../src/internal/sshScript.ts"
import * as SshBackend from "../src/SshBackend.ts"
import { eventually } from "./support/eventually.ts"
import { gone } from "./support/process.ts"
import { cleanUp, config, exitOf, host, local, remoteRoot, spec, sshdUp, untilGo, untilRunning } from "./support/sshTest.ts"

afterAll(cleanUp)

/** Watch a job until it reports a wait whose reason includes `text`: that reason, and the watch's fiber, collecting its events to the end. */
const untilWaiting = (backend: Backend.BackendShape, ref: Parameters<Backend.BackendShape["watch"]>[0], text: string) =>
  Effect.gen(function*() {
    const told = yield* Deferred.make<string>()
    const watching = yield* Stream.runCollect(backend.watch(ref).pipe(Stream.tap((e) =>
      e._tag === "State" && e.reason?.includes(text) === true ? Deferred.succeed(told, e.reason) : Effect.void
    ))).pipe(Effect.forkChild)
    return { reason: yield* Deferred.await(told), watching }
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

describe("SshBackend, a node's jobs on several hosts", () => {
  const fast = { retryFor: "1 second", pollInterval: "150 millis", killGraceSeconds: 2 } as const

  it.live("a node's job on one host and its next job on another are both listed, each under its host with its submission time; on hosts sharing files, under the host its record names", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const other = yield* island
      const live: SshBackend.Host = { ...host, name: "live", slots: 1 }
      const own: SshBackend.Host = { ...host, name: "own", port: other.port, knownHostsPath: knownHostsFor(other.port), slots: 1 }
      const backend = yield* SshBackend.make({ ...config, ...fast, hosts: [live, own] })
      // job 1 runs on `live` (its one slot taken), job 2 of the same node (its retry, say) on `own`, whose files are its own
      const s = spec(untilGo)
      const ref1 = yield* backend.submit(s)
      const ref2 = yield* backend.submit(s)
      assert.deepStrictEqual([ref1.data["host"], ref2.data["host"]], ["live", "own"])
      yield* eventually("job 2 runs", () => Fs.existsSync(other.root(Path.join(String(ref2.data["dir"]), ".trex-pid"))), 30)
      const listed = (yield* SshBackend.make({ ...config, ...fast, hosts: [live, own] })).list(s.labels.run)
      const jobs = (yield* listed).filter((j) => j.labels.node === s.labels.node)
      assert.deepStrictEqual(jobs.map((j) => [j.ref.id, j.state]), [[ref1.id, "Running"], [ref2.id, "Running"]], JSON.stringify(jobs))
      const [at1, at2] = jobs.map((j) => j.submittedAt)
      assert.isTrue(at1 !== undefined && at2 !== undefined && at1 <= at2, JSON.stringify(jobs))
      Fs.writeFileSync(Path.join(String(ref1.data["dir"]), "go"), "")
      Fs.writeFileSync(other.root(Path.join(String(ref2.data["dir"]), "go")), "")
      for (const ref of [ref1, ref2]) assert.strictEqual(exitOf(yield* Stream.runCollect(backend.watch(ref))).outcome, "Succeeded")

      // two names of one host (one file system): a node's job that ran on `a`, then its next on `b` in the same directory
      const a: SshBackend.Host = { ...host, name: "a", slots: 1 }
      const b: SshBackend.Host = { ...host, name: "b", slots: 1 }
      const shared = yield* SshBackend.make({ ...config, ...fast, hosts: [a, b] })
      const t = spec(untilGo)
      const first = yield* shared.submit({ ...t, argv: ["sh", "-c", `echo '{"metrics":{},"primary":1}' > result.json`] })
      assert.strictEqual(first.data["host"], "a")
      assert.strictEqual(exitOf(yield* Stream.runCollect(shared.watch(first))).outcome, "Succeeded")
      const busy = yield* shared.submit(spec(untilGo))
      const next = yield* shared.submit(t)
      assert.strictEqual(next.data["host"], "b")
      const sharedJobs = (yield* shared.list(t.labels.run)).filter((j) => j.labels.node === t.labels.node)
      assert.deepStrictEqual(sharedJobs.map((j) => j.ref.id), [next.id], "the directory's job, under the host that runs it")
      for (const ref of [busy, next]) Fs.writeFileSync(Path.join(String(ref.data["dir"]), "go"), "")
      for (const ref of [busy, next]) assert.strictEqual(exitOf(yield* Stream.runCollect(shared.watch(ref))).outcome, "Succeeded")
    })), 60_000)

  /** `then`, once a file `go` (or `file`) is in the job's directory (at most a minute). */
  const goThen = (then: string, file = "go") => ["sh", "-c", `i=0; while [ ! -f ${file} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; ${then}`]

  it.live("on hosts sharing files, a job whose directory the node's next job on another host took reads none of its files: its watch ends lost, its cancel and its end leave that job's files be; a ticket is found under the host its record names", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      // two names of one host: one file system, so a node's directory is one for both
      const a: SshBackend.Host = { ...host, name: "a", slots: 1 }
      const b: SshBackend.Host = { ...host, name: "b", slots: 1 }
      const shared = yield* SshBackend.make({ ...config, ...fast, hosts: [a, b] })
      const t = spec([])
      // job 1 runs on `a` (its one slot taken), followed; job 2 of the node (its retry, say) goes to `b`, into the same
      // directory: job 1 runs on (its host given up on, say), job 2 clears the files and writes its record
      const first = yield* shared.submit({ ...t, argv: goThen("exit 3", "go1") })
      const dir = String(first.data["dir"])
      const watching = yield* Stream.runCollect(shared.watch(first)).pipe(Effect.forkChild)
      yield* eventually("job 1 runs", () => Fs.existsSync(Path.join(dir, ".trex-pid")), 30)
      const pid1 = Number(Fs.readFileSync(Path.join(dir, ".trex-pid"), "utf8").split(" ")[0])
      const second = yield* shared.submit({ ...t, argv: goThen(`echo second-line; echo '{"metrics":{},"primary":2}' > result.json`) })
      assert.deepStrictEqual([first.data["host"], second.data["host"]], ["a", "b"])
      yield* eventually("job 2 runs", () => Fs.existsSync(Path.join(dir, ".trex-pid")), 30)
      // a cancel of job 1 from another controller (a resumed one, say) neither marks job 2 cancelled nor signals it
      const resumed = yield* SshBackend.make({ ...config, ...fast, hosts: [a, b] })
      yield* resumed.cancel(first)
      assert.isFalse(Fs.existsSync(Path.join(dir, ".trex-cancelled")), "job 2's directory got job 1's cancel marker")
      Fs.writeFileSync(Path.join(dir, "go"), "")
      const events = yield* Fiber.join(watching)
      const exit1 = exitOf(events)
      assert.deepStrictEqual([exit1.outcome, exit1.failureKind], ["Failed", "Infra"], JSON.stringify(exit1))
      assert.include(exit1.message, "was given to a newer job of the node, on host b")
      assert.notInclude(JSON.stringify(events), "second-line")
      const exit2 = exitOf(yield* Stream.runCollect(shared.watch(second)))
      assert.deepStrictEqual([exit2.outcome, exit2.result], ["Succeeded", { metrics: {}, primary: 2 }], JSON.stringify(exit2))
      // job 1 ends after job 2 (exit code 3): its wrapper leaves job 2's exit record as it was
      const recorded = Fs.readFileSync(Path.join(dir, ".trex-exit"), "utf8")
      Fs.writeFileSync(Path.join(dir, "go1"), "")
      yield* eventually("job 1's wrapper ends", () => gone(pid1), 30)
      assert.strictEqual(Fs.readFileSync(Path.join(dir, ".trex-exit"), "utf8"), recorded, "job 2's exit record is kept")
      // once both ended, the other controller's watch of job 1 reads it lost too, not as job 2's end
      const again = exitOf(yield* Stream.runCollect(resumed.watch(first)))
      assert.deepStrictEqual([again.outcome, again.failureKind, again.result], ["Failed", "Infra", undefined], JSON.stringify(again))

      // a ticket queued while both hosts were busy starts on `b`; the other controller finds it there (each host reads its record)
      const busyA = yield* shared.submit(spec(untilGo))
      const busyB = yield* shared.submit(spec(untilGo))
      assert.deepStrictEqual([busyA.data["host"], busyB.data["host"]], ["a", "b"])
      const ticket = yield* shared.submit(spec(["sh", "-c", `echo '{"metrics":{},"primary":3}' > result.json`]))
      assert.isTrue(ticket.data["queued"], JSON.stringify(ticket))
      Fs.writeFileSync(Path.join(String(busyB.data["dir"]), "go"), "")
      yield* eventually("the ticket's job starts", () => Fs.existsSync(Path.join(String(ticket.data["dir"]), ".trex-exit")), 30)
      const exit3 = exitOf(yield* Stream.runCollect(resumed.watch(ticket)))
      assert.deepStrictEqual([exit3.outcome, exit3.result], ["Succeeded", { metrics: {}, primary: 3 }], JSON.stringify(exit3))
      Fs.writeFileSync(Path.join(String(busyA.data["dir"]), "go"), "")
    })), 60_000)

  it.live("a host renamed between controllers (one machine, another name): the resumed controller lists, follows and cancels its jobs, which hold its slots; an exit or cancel marker of another record's token is not the job's", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const first = yield* SshBackend.make({ ...config, ...fast, hosts: [{ ...host, name: "gpu1", slots: 2 }] })
      const ref1 = yield* first.submit(spec(goThen("echo after-go; exit 3")))
      const ref2 = yield* first.submit(spec(goThen("exit 0")))
      const [dir1, dir2] = [ref1, ref2].map((r) => String(r.data["dir"]))
      yield* eventually("both jobs run", () => [dir1, dir2].every((d) => Fs.existsSync(Path.join(d, ".trex-pid"))), 30)
      // resumed with the host renamed in the configuration (a ~/.ssh/config alias, a `hosts` entry)
      const resumed = yield* SshBackend.make({ ...config, ...fast, hosts: [{ ...host, name: "gpu1.example", slots: 2 }] })
      assert.isAtLeast((yield* resumed.capacity).inUse, 2, "its running jobs hold its slots")
      const all = yield* resumed.list(String(ref1.id.split("/")[0]))
      const listed = [dir1, dir2].flatMap((d) => all.filter((j) => j.ref.data["dir"] === d))
      assert.deepStrictEqual(listed.map((j) => [j.ref.data["dir"], j.ref.data["host"], j.state]), [[dir1, "gpu1.example", "Running"], [dir2, "gpu1.example", "Running"]], JSON.stringify(listed))
      const [job1, job2] = listed.map((j) => j.ref)
      // markers another job of the directory wrote (another record's token: written after a newer job took it) are not job 1's
      Fs.writeFileSync(Path.join(dir1, ".trex-exit"), "0 1700000000 0123abcd\n")
      Fs.writeFileSync(Path.join(dir1, ".trex-cancelled"), "1700000000 0123abcd\n")
      const watching = yield* Stream.runCollect(resumed.watch(job1!)).pipe(Effect.forkChild)
      // job 2 cancelled: its marker written (with its record's token), its process group stopped
      const watching2 = yield* Stream.runCollect(resumed.watch(job2!)).pipe(Effect.forkChild)
      yield* resumed.cancel(job2!)
      assert.match(Fs.readFileSync(Path.join(dir2, ".trex-cancelled"), "utf8"), /^\d+ [0-9a-f]{16}\n$/)
      const exit2 = exitOf(yield* Fiber.join(watching2))
      assert.deepStrictEqual([exit2.outcome, exit2.failureKind], ["Cancelled", "Cancelled"], JSON.stringify(exit2))
      // job 1 followed to its own end
      Fs.writeFileSync(Path.join(dir1, "go"), "")
      const events = yield* Fiber.join(watching)
      const exit1 = exitOf(events)
      assert.deepStrictEqual([exit1.outcome, exit1.failureKind, exit1.exitCode], ["Failed", "Crash", 3], JSON.stringify(exit1))
      assert.include(JSON.stringify(events), "after-go")
    })), 60_000)
})
