/**
 * Against a real sshd on 127.0.0.1:2222: start it with `sudo scripts/services/start-all.sh sshd`
 * (or start-sshd.sh). Without it these tests fail, saying so. A pool with hosts that go down, and hosts
 * that misbehave under running jobs, are in SshPool.test.ts (support/sshTest.ts has what both use).
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Backend, JobProtocol } from "@trex/core"
// Until packages/core/package.json exports "./testing", import the suite by path.
import { BackendConformance } from "../../core/src/testing/index.ts"
import { Effect, Fiber, Redacted, Stream } from "effect"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { QueuePoll } from "../src/internal/admissionQueue.ts"
import * as Clients from "../src/internal/clients.ts"
import { Connection, type PreparedHost, prepare } from "../src/internal/sshConnection.ts"
import { ownSshd, sshKeys } from "./support/ownSshd.ts"
import { FILES, quote, quoteArgv } from "../src/internal/sshScript.ts"
import * as SshBackend from "../src/SshBackend.ts"
import { checkQueued, checkSlotReleases } from "./support/queued.ts"
import { eventually } from "./support/eventually.ts"
import { gone } from "./support/process.ts"
import { checkLoudWatch, loudScript } from "./support/loudLog.ts"
import { cleanUp, config, exitOf, host, local, remoteRoot, spec, sshdUp, untilGo, untilRunning } from "./support/sshTest.ts"

afterAll(cleanUp)

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

  it.live("a queued job starts as soon as the slot is given back, however the job that held it ended: succeeded, failed, cancelled (not at a poll)", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      // an hour's poll: only the slot's release can start the next job within this test
      const backend = yield* SshBackend.make({ ...config, hosts: [{ ...host, slots: 1 }] }).pipe(Effect.provideService(QueuePoll, "1 hour"))
      yield* checkSlotReleases(backend, (script) => spec(["sh", "-c", script]), (ref) => String(ref.data["dir"]))
    })), 60_000)

  it.live("a launch that fails while a job waits in the queue gives back its slot: the queued job starts at once (not at a poll)", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      // an hour's poll: only the failed launch's release can start the queued job within this test
      const backend = yield* SshBackend.make({ ...config, hosts: [{ ...host, slots: 1 }] }).pipe(Effect.provideService(QueuePoll, "1 hour"))
      // The first job's launch is held at the write of its file `hold`, a FIFO on the host (the test host is this
      // machine): its open waits for a reader. Its directory is there already, the SSH user's, with a job file of an
      // earlier try that the launch's first step removes (`rm -f` of its files) before its writes.
      const first = spec(["sh", "-c", "echo never"], { files: [{ path: "hold", content: "held\n" }] })
      const dir = Path.join(remoteRoot, first.labels.run, first.labels.node)
      const stale = Path.join(dir, FILES.job)
      Fs.mkdirSync(dir, { recursive: true })
      execFileSync("mkfifo", ["-m", "666", Path.join(dir, "hold")])
      Fs.writeFileSync(stale, "{}")
      execFileSync("chown", [`${host.username}:`, remoteRoot, Path.dirname(dir), dir, stale])
      const launching = yield* backend.submit(first).pipe(Effect.flip, Effect.forkChild)
      yield* eventually("the first job takes the only slot", Effect.map(backend.capacity, (c) => c.inUse === 1))
      const queued = yield* backend.submit(spec(["sh", "-c", "echo next"]))
      assert.strictEqual(queued.data["queued"], true, JSON.stringify(queued))
      const waits = yield* backend.watch(queued).pipe(Stream.take(1), Stream.runCollect)
      assert.deepStrictEqual(waits, [{ _tag: "State", state: "Pending", reason: "no free slot: 1 of 1 in use" }])
      // past its first step, the launch cannot pass the write of `hold` until the FIFO has a reader
      yield* eventually("the launch has made its directory ready", () => !Fs.existsSync(stale))
      // its directory goes away under the launch (a clean-up on the host), and the FIFO gets a reader (one that does
      // not wait for a writer, kept open until the launch ends): `hold`'s write, if its open waited, goes through and
      // the writes behind it fail; if it had not opened yet, it fails itself. Either way the launch fails
      Fs.renameSync(dir, `${dir}.moved`)
      const reader = Fs.openSync(Path.join(`${dir}.moved`, "hold"), Fs.constants.O_RDONLY | Fs.constants.O_NONBLOCK)
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.closeSync(reader)))
      const error = yield* Fiber.join(launching)
      assert.strictEqual(error._tag, "BackendError")
      // `hold`'s or one behind it, into the directory gone
      assert.match(error.message, /write \/tmp\/trex-ssh-test-\d+\/ssh-test\/n\d+\/\S+: No such file/)
      // its slot is given back, and the queued job starts on it
      const exit = yield* Backend.awaitExit(backend, queued)
      assert.deepStrictEqual([exit.outcome, exit.logTail], ["Succeeded", ["next"]], JSON.stringify(exit))
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
      const record = Path.join(dir, ".trex-job.json")
      Fs.writeFileSync(record, JSON.stringify({ name: s.name, labels: s.labels, host: hostName, gpuIds: [], ticket: ticket.id }))
      // written a minute ago, by a controller that stopped then
      const then = new Date(Date.now() - 60_000)
      Fs.utimesSync(record, then, then)
      Fs.chmodSync(remoteRoot, 0o777)
      execFileSync("chmod", ["-R", "a+rwX", remoteRoot])
      const events = yield* Stream.runCollect(backend.watch(ticket))
      // said lost at once (a record older than the launch grace): not shown Pending first, for another grace
      assert.deepStrictEqual(events.map((e) => e._tag), ["Exit"], JSON.stringify(events))
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

  it.live("a privateKeyPath naming no file is refused at make, naming the host, the field and how to make a key", () =>
    Effect.scoped(Effect.gen(function*() {
      const privateKeyPath = Path.join(local, "no_such_key")
      const error = yield* SshBackend.make({ ...config, hosts: [{ ...host, privateKeyPath }] }).pipe(Effect.flip)
      assert.strictEqual(error._tag, "BackendError")
      assert.isFalse(error.retryable)
      assert.include(error.message, `privateKeyPath ${privateKeyPath}: no such file: give the path of a private key`)
      assert.include(error.message, `ssh-keygen -t ed25519 -f ${privateKeyPath}`)
    })))

  it.live("a knownHostsPath naming no file is refused at make, naming the host, the field and ssh-keyscan", () =>
    Effect.scoped(Effect.gen(function*() {
      const knownHostsPath = Path.join(local, "no_such_known_hosts")
      const error = yield* SshBackend.make({ ...config, hosts: [{ ...host, knownHostsPath }] }).pipe(Effect.flip)
      assert.strictEqual(error._tag, "BackendError")
      assert.isFalse(error.retryable)
      assert.include(error.message, `${host.username}@${host.host}: knownHostsPath ${knownHostsPath}: no such file: give a known_hosts file`)
      assert.include(error.message, `ssh-keyscan -p ${host.port} ${host.host} >> ${knownHostsPath}`)
    })))

  it.live("the key is read once, at make: its file gone afterwards, jobs still run", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const privateKeyPath = Path.join(local, "key_read_once")
      Fs.copyFileSync(host.privateKeyPath, privateKeyPath)
      const backend = yield* SshBackend.make({ ...config, hosts: [{ ...host, privateKeyPath }] })
      Fs.rmSync(privateKeyPath)
      const exit = yield* Backend.awaitExit(backend, yield* backend.submit(spec(["sh", "-c", `echo '{"metrics":{},"primary":3}' > result.json`])))
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
    })))

  it.live("a host key marked @revoked in known_hosts is refused, whatever other lines say, and the message says @revoked", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const good = Fs.readFileSync(host.knownHostsPath, "utf8").trim()
      const key = good.split(/\s+/).slice(1, 3).join(" ")
      const revokedHosts = Path.join(local, "known_hosts_revoked")
      Fs.writeFileSync(revokedHosts, `${good}\n@revoked * ${key}\n`)
      const backend = yield* SshBackend.make({ ...config, hosts: [{ ...host, knownHostsPath: revokedHosts }] })
      const error = yield* backend.submit(spec(["true"])).pipe(Effect.flip)
      assert.isFalse(error.retryable, "a revoked host key is not retried")
      assert.include(error.message, `the host key offered is marked @revoked in ${revokedHosts}; refusing to connect`)
    })))

  it.live("an encrypted key: refused at make without passphraseEnv (naming it), or with a variable unset, empty or a wrong passphrase; with it, jobs run", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      // the test key, with a passphrase put on it
      const privateKeyPath = Path.join(local, "encrypted_key")
      Fs.copyFileSync(host.privateKeyPath, privateKeyPath)
      Fs.chmodSync(privateKeyPath, 0o600)
      execFileSync("ssh-keygen", ["-q", "-p", "-a", "1", "-P", "", "-N", "a pass phrase", "-f", privateKeyPath])
      const hostWith = (passphraseEnv?: string) => ({ ...config, hosts: [{ ...host, privateKeyPath, ...(passphraseEnv !== undefined ? { passphraseEnv } : {}) }] })
      const without = yield* SshBackend.make(hostWith()).pipe(Effect.flip)
      assert.include(without.message, `privateKeyPath ${privateKeyPath}: an encrypted key (it has a passphrase): set passphraseEnv to the name of an environment variable`)
      const unset = yield* SshBackend.make(hostWith("TREX_TEST_NO_SUCH_VARIABLE")).pipe(Effect.flip)
      assert.include(unset.message, "passphraseEnv TREX_TEST_NO_SUCH_VARIABLE: no such environment variable")
      const variable = `TREX_TEST_PASSPHRASE_${process.pid}`
      process.env[variable] = ""
      const empty = yield* SshBackend.make(hostWith(variable)).pipe(Effect.flip)
      assert.include(empty.message, `passphraseEnv ${variable} is empty: set it to the passphrase of ${privateKeyPath}`)
      process.env[variable] = "not it"
      const wrong = yield* SshBackend.make(hostWith(variable)).pipe(Effect.flip)
      assert.include(wrong.message, `the passphrase in passphraseEnv ${variable} does not decrypt it`)
      process.env[variable] = "a pass phrase"
      const backend = yield* SshBackend.make(hostWith(variable))
      delete process.env[variable]
      const exit = yield* Backend.awaitExit(backend, yield* backend.submit(spec(["sh", "-c", `echo '{"metrics":{},"primary":4}' > result.json`])))
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
    })))

  it.live("a host known only by its ECDSA or its RSA host key is reached: the known key types are asked for first", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const keyOf = (type: "ecdsa" | "rsa") => {
        const file = Path.join(local, `host_${type}_${process.pid}`)
        Fs.rmSync(file, { force: true })
        Fs.rmSync(`${file}.pub`, { force: true })
        execFileSync("ssh-keygen", ["-q", "-t", type, ...(type === "rsa" ? ["-b", "2048"] : []), "-N", "", "-f", file])
        return file
      }
      const ecdsa = keyOf("ecdsa")
      const rsa = keyOf("rsa")
      const ssh2 = yield* Effect.promise(Clients.ssh2)
      // the server has all three kinds (as a stock sshd does); each known_hosts knows one of them
      const sshd = yield* ownSshd(local, "MaxSessions 10", [ecdsa, "/etc/ssh/sdktest/host_ed25519", rsa])
      const rsaHosts = Path.join(local, "known_hosts_rsa")
      Fs.writeFileSync(rsaHosts, `[127.0.0.1]:${sshd.port} ${Fs.readFileSync(`${rsa}.pub`, "utf8").split(" ").slice(0, 2).join(" ")}\n`)
      for (const [knownHostsPath, by] of [[sshd.knownHosts, "ECDSA"], [rsaHosts, "RSA"]] as const) {
        const prepared = prepare({ host: "127.0.0.1", port: sshd.port, username: "root", privateKeyPath: `${sshKeys}/id_ed25519`, knownHostsPath }, ssh2)
        assert.isTrue("ok" in prepared)
        const conn = new Connection((prepared as { readonly ok: PreparedHost }).ok)
        const out = yield* Effect.promise(() => conn.exec("echo reached").then((r) => r.stdout, (e: unknown) => String(e)))
        conn.close()
        assert.strictEqual(out, "reached\n", `known by its ${by} key`)
      }
    })))
})
