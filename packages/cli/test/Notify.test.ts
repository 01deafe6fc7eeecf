// Webhooks (`--notify`, TREX_NOTIFY_URL, `Trex.start`'s `notify`): the real CLI on the toy task posts
// to a real HTTP server on loopback, which can answer as a webhook does, fail, or never answer.
import { execFileSync, spawn } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import { createRequire, syncBuiltinESMExports } from "node:module"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { assert, describe, it } from "@effect/vitest"
import { Cost, ExperimentNode, ExperimentTree, Journal, JournalEvent } from "@trex/core"
import { TreeBuilder } from "@trex/core/testing"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Cause, Effect, Exit, Fiber, Logger, Redacted } from "effect"
import { Command } from "effect/cli"
import * as Cli from "../src/Cli.ts"
import * as Notify from "../src/Notify.ts"
import * as RunDir from "../src/RunDir.ts"
import * as Trex from "../src/Trex.ts"

const root = path.resolve(import.meta.dirname, "../../..")
const bin = path.join(root, "packages/cli/src/bin.ts")
const fixtures = path.join(import.meta.dirname, "fixtures")

interface Received {
  readonly path: string
  readonly contentType: string | undefined
  /** The `webhook-id` header. */
  readonly id: string | undefined
  readonly body: Notify.Message
  /** The status answered (`"hang"`: none). */
  readonly status: number | "hang"
}

/**
 * A webhook on loopback: `answer(path, n, body)` gives the status of the n-th request (from 1) to a path,
 * or `"hang"` to never answer it, or a promise of the status to answer later. Every request that arrives is recorded
 * (one answered later, once answered).
 */
const webhook = (answer: (path: string, n: number, body: Notify.Message) => number | "hang" | Promise<number> = () => 200) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{ readonly url: string; readonly received: Array<Received>; readonly server: http.Server }>((resolve) => {
        const received: Array<Received> = []
        const counts = new Map<string, number>()
        const server = http.createServer((req, res) => {
          let text = ""
          req.on("data", (d) => text += d)
          req.on("end", () => {
            const p = req.url ?? "/"
            const n = (counts.get(p) ?? 0) + 1
            counts.set(p, n)
            const body = JSON.parse(text) as Notify.Message
            const answered = answer(p, n, body)
            const record = (status: number | "hang") =>
              received.push({ path: p, contentType: req.headers["content-type"], id: req.headers["webhook-id"] as string | undefined, body, status })
            // an answer given later (a promise): recorded once given
            if (typeof answered === "object") {
              void answered.then((status) => {
                record(status)
                res.writeHead(status).end(status === 200 ? "ok" : "no")
              })
              return
            }
            record(answered)
            if (answered !== "hang") res.writeHead(answered).end(answered === 200 ? "ok" : "no")
          })
        })
        server.listen(0, "127.0.0.1", () => resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received, server }))
      })
    ),
    ({ server }) => Effect.sync(() => server.closeAllConnections()).pipe(Effect.andThen(Effect.promise(() => new Promise<void>((r) => server.close(() => r())))))
  )

/** The CLI, run without blocking this process (its webhook server answers meanwhile). */
const trex = (
  args: ReadonlyArray<string>,
  env: Record<string, string> = {},
  onStdout?: (text: string, child: ReturnType<typeof spawn>) => void,
  onSpawn?: (child: ReturnType<typeof spawn>) => void
) =>
  Effect.promise(() =>
    new Promise<{ readonly status: number | null; readonly stdout: string; readonly stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ["--conditions=@trex/source", bin, ...args], {
        cwd: root,
        env: { ...process.env, TREX_NOTIFY_URL: "", ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      onSpawn?.(child)
      let stdout = ""
      let stderr = ""
      child.stdout.on("data", (d) => {
        stdout += d
        onStdout?.(stdout, child)
      })
      child.stderr.on("data", (d) => stderr += d)
      child.on("exit", (status) => resolve({ status, stdout, stderr }))
    })
  )

/**
 * The CLI in this process: for `trex status` and `trex notify` where a separate process is not the subject
 * (they read and change the run's folder), for bad input refused before anything runs, and for sessions
 * (`trex run`, `trex resume`) where what is checked is what they post and keep, not the process (no kill,
 * signal or exit of its own): a CLI start costs seconds, a session here a fraction of one. Its stdout, its
 * warnings (as the CLI writes them to stderr), and its exit status and stderr as the CLI's would be
 * (`trex: <message>`, 2 for bad input or a run in use, else 1; `process.exitCode` as the command set it).
 * `env` is set for the command (and its jobs) and put back after it; TREX_NOTIFY_URL is unset unless given.
 */
const inProcess = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.gen(function*() {
    let stdout = ""
    let stderr = ""
    const [write, writeErr] = [process.stdout.write, process.stderr.write]
    const code = process.exitCode
    const vars = { TREX_NOTIFY_URL: "", ...env }
    const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
    process.exitCode = undefined
    Object.assign(process.env, vars)
    process.stdout.write = ((chunk: string | Uint8Array) => {
      stdout += String(chunk)
      return true
    }) as typeof process.stdout.write
    process.stderr.write = ((chunk: string | Uint8Array) => {
      stderr += String(chunk)
      return true
    }) as typeof process.stderr.write
    // the warnings the CLI logs to stderr, as it words them
    const warnings = Logger.make(({ logLevel, message }) => {
      stderr += `${(Array.isArray(message) ? message : [message]).join(" ")} (${logLevel})\n`
    })
    let set: string | number | null | undefined
    const exit = yield* Effect.exit(
      Command.runWith(Cli.command, { version: "0.1.0" })(args).pipe(Effect.provide(NodeServices.layer), Effect.provideService(Logger.CurrentLoggers, new Set([warnings])))
    ).pipe(
      Effect.ensuring(Effect.sync(() => {
        process.stdout.write = write
        process.stderr.write = writeErr
        set = process.exitCode
        process.exitCode = code
        for (const [k, v] of Object.entries(saved)) {
          if (v === undefined) delete process.env[k]
          else process.env[k] = v
        }
      }))
    )
    const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) as { readonly _tag?: string; readonly reason?: string; readonly message?: string } : undefined
    if (error === undefined) return { status: Number(set ?? 0), stdout, stderr }
    return { status: error._tag === "InvalidInput" || error.reason === "Locked" ? 2 : 1, stdout, stderr: `${stderr}trex: ${error.message}\n` }
  })
const trexStatus = (args: ReadonlyArray<string>) => inProcess(["status", ...args])

/** The toy task in a folder of its own, with `maxTrials` trials. */
const toyTask = (maxTrials: number) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-notify-"))
  fs.copyFileSync(path.join(fixtures, "toy-job.mjs"), path.join(dir, "toy-job.mjs"))
  const text = fs.readFileSync(path.join(fixtures, "toy.task.yaml"), "utf8").replace("maxTrials: 8", `maxTrials: ${maxTrials}`)
  fs.writeFileSync(path.join(dir, "task.yaml"), text)
  return { dir, task: path.join(dir, "task.yaml"), out: path.join(dir, "runs") }
}

/** Every file under `dir`, read as text (journals included). */
const allText = (dir: string): string =>
  fs.readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => fs.readFileSync(path.join(e.parentPath, e.name), "latin1"))
    .join("\n")

const runDirOf = (stdout: string) => /run directory: (\S+)/.exec(stdout)![1]!

/** The messages a run keeps undelivered (`notify/` in its directory), in the order they were due. */
const outbox = (runDir: string): ReadonlyArray<{ readonly id: string; readonly message: Notify.Message; readonly delivered: ReadonlyArray<string> }> => {
  const dir = path.join(runDir, "notify")
  if (!fs.existsSync(dir)) return []
  return fs.readdirSync(dir).filter((f) => f.endsWith(".json")).map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as { id: string; at: number; message: Notify.Message; delivered: Array<string> })
    .sort((a, b) => a.at - b.at)
}

/**
 * Hold a controller at a file it writes, and kill it there with SIGKILL: once the run's directory is
 * printed, a FIFO is made where `place(runDir, pid)` says, its pipe filled (and never read), so that the
 * controller's write blocks with the file open; it is killed once it has the FIFO open. `finish()`
 * closes the test's ends, removes the FIFO and tells whether the controller got there.
 */
const killedAt = (place: (runDir: string, pid: number) => string) => {
  let fifo: string | undefined
  let reached = false
  const ends: Array<number> = []
  const onStdout = (text: string, child: ReturnType<typeof spawn>) => {
    if (fifo !== undefined || !/run directory: \S+\n/.test(text)) return
    fifo = place(runDirOf(text), child.pid!)
    execFileSync("mkfifo", [fifo])
    ends.push(fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK), fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK))
    for (;;) {
      try {
        fs.writeSync(ends[1]!, Buffer.alloc(65536))
      } catch {
        break // full
      }
    }
    const fds = `/proc/${child.pid}/fd`
    const watch = setInterval(() => {
      const open = fs.readdirSync(fds).some((fd) => {
        try {
          return fs.readlinkSync(path.join(fds, fd)) === fifo
        } catch {
          return false
        }
      })
      if (!open) return
      clearInterval(watch)
      reached = true
      child.kill("SIGKILL")
    }, 20)
    child.on("exit", () => clearInterval(watch))
  }
  const finish = () => {
    for (const fd of ends) fs.closeSync(fd)
    if (fifo !== undefined) fs.rmSync(fifo, { force: true })
    return reached
  }
  return { onStdout, finish }
}

/** A session of run `r` in `runDir` with the webhook `url`, that only ends, its end named `id`. */
const endSession = (url: string, runDir: string) => (id: string) =>
  Effect.scoped(Effect.gen(function*() {
    const notifier = yield* Notify.make({ urls: [url] }, { runId: "r", runDir })
    yield* notifier.end(Notify.endMessage({ runId: "r", runDir, task: "t" }, Exit.succeed({ reason: "budget" }), undefined, id))
  }))

/**
 * Every fsync this process makes while the scope is open, by the path of what it syncs (the real
 * fsync is made all the same).
 */
const recordFsyncs = Effect.gen(function*() {
  const nodeFs = createRequire(import.meta.url)("node:fs") as typeof fs
  const fsync = nodeFs.fsyncSync
  const synced: Array<string> = []
  yield* Effect.acquireRelease(
    Effect.sync(() => {
      nodeFs.fsyncSync = (fd) => {
        synced.push(fs.readlinkSync(`/proc/self/fd/${fd}`))
        fsync(fd)
      }
      syncBuiltinESMExports()
    }),
    () => Effect.sync(() => {
      nodeFs.fsyncSync = fsync
      syncBuiltinESMExports()
    })
  )
  return synced
})

/**
 * A toy run of 2 trials told to a webhook that refuses everything (404: not tried again), with
 * `--notify-best` and `args`: its new best and its end are kept in notify/ (`file`: the best's).
 */
const keptByRefusingWebhook = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const refusing = yield* webhook(() => 404)
    // the run without `args` is made once and copied for each test (which changes its copy): the same folder, read alike
    const copied = (once: NonNullable<typeof keptOnce>) => {
      const runDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "trex-notify-")), "runs", path.basename(once.runDir))
      fs.cpSync(once.runDir, runDir, { recursive: true })
      return { refusing, runDir, kept: once.kept, best: once.best, file: path.join(runDir, "notify", `best-${once.best}.json`) }
    }
    if (args.length === 0 && keptOnce !== undefined) return copied(keptOnce)
    const { out, task } = toyTask(2)
    const first = yield* inProcess(["run", task, "--out", out, "--notify", `${refusing.url}/gone`, "--notify-best", ...args], { TREX_TOY_MS: "30" })
    assert.strictEqual(first.status, 0, first.stderr)
    const runDir = runDirOf(first.stdout)
    const kept = outbox(runDir)
    assert.deepStrictEqual(kept.map((e) => e.message.trex.kind), ["best", "end"])
    const best = (kept[0]!.message.trex as { best: { id: string } }).best.id
    if (args.length > 0) return { refusing, runDir, kept, best, file: path.join(runDir, "notify", `best-${best}.json`) }
    // kept aside, untouched, for the next test; this one gets a copy
    keptOnce = { runDir, kept, best }
    return copied(keptOnce)
  })
let keptOnce: { readonly runDir: string; readonly kept: ReturnType<typeof outbox>; readonly best: string } | undefined

describe("Notify: webhooks told of a run", () => {
  it.live("the real CLI posts each new best (better each time) and, before it exits, the run's end; the address's secret path is written nowhere", () =>
    Effect.scoped(Effect.gen(function*() {
      const hook = yield* webhook()
      const { out, task } = toyTask(6)
      const secret = "T0001/B0001/s3cr3tT0k3n"
      const r = yield* trex(["run", task, "--out", out, "--notify", `${hook.url}/services/${secret}`, "--notify-best"], { TREX_TOY_MS: "60" })
      assert.strictEqual(r.status, 0, r.stderr)
      assert.isTrue(hook.received.every((m) => m.path === `/services/${secret}` && m.contentType === "application/json"))
      // each message's id, in its header and its body, is its own
      assert.isTrue(hook.received.every((m) => m.id !== undefined && m.id === m.body.trex.id))
      assert.strictEqual(new Set(hook.received.map((m) => m.id)).size, hook.received.length)
      const kinds = hook.received.map((m) => m.body.trex.kind)
      assert.strictEqual(kinds.at(-1), "end", "the end is posted last, before the CLI exits")
      assert.strictEqual(kinds.filter((k) => k === "end").length, 1)
      const bests = hook.received.filter((m) => m.body.trex.kind === "best").map((m) => m.body.trex as Extract<Notify.Payload, { kind: "best" }>)
      assert.isAtLeast(bests.length, 1)
      for (let i = 1; i < bests.length; i++) assert.isAbove(bests[i]!.best.score, bests[i - 1]!.best.score)
      const end = hook.received.at(-1)!.body
      assert.strictEqual(end.trex.kind, "end")
      if (end.trex.kind !== "end") return
      assert.strictEqual(end.trex.outcome, "finished")
      assert.strictEqual(end.trex.reason, "budget: maxTrials")
      const runDir = runDirOf(r.stdout)
      assert.strictEqual(end.trex.runDir, runDir)
      // the summary and report.md say the run finished, though the session holds the run's lock until its end is posted
      assert.include(r.stdout, "State: finished (budget: maxTrials)")
      assert.include(fs.readFileSync(path.join(runDir, "report.md"), "utf8"), "- State: finished — budget: maxTrials")
      // the end's best is the run's, as trex status tells it, and the last best posted
      const status = JSON.parse((yield* trexStatus([runDir, "--json"])).stdout)
      assert.deepStrictEqual(end.trex.status?.best, status.best)
      assert.deepStrictEqual(end.trex.status?.counts, status.counts)
      assert.strictEqual(status.counts.Succeeded + status.counts.Failed, 6)
      assert.strictEqual(bests.at(-1)!.best.id, status.best.id)
      assert.match(end.text, new RegExp(`^trex · toy finished: budget: maxTrials · best score [0-9.]+ \\(${status.best.id}\\) · \\d+ succeeded, \\d+ failed · `))
      assert.notInclude(allText(runDir), secret)
      assert.deepStrictEqual(outbox(runDir), [], "every message delivered: nothing waits")
      assert.notInclude(r.stdout + r.stderr, secret)
    })), 120_000)

  it.live("a webhook that fails for a while gets the message once it answers; one that keeps failing is a warning naming its origin only, and the run ends as it would", () =>
    Effect.scoped(Effect.gen(function*() {
      // /flaky answers 503 to its first request, then 200; /gone answers 404 (a revoked webhook) to every request
      const hook = yield* webhook((p, n) => (p === "/flaky" && n === 1 ? 503 : p === "/gone" ? 404 : 200))
      const { out, task } = toyTask(2)
      const r = yield* trex(["run", task, "--out", out, "--notify", `${hook.url}/flaky`], { TREX_TOY_MS: "30", TREX_NOTIFY_URL: ` ${hook.url}/gone ` })
      assert.strictEqual(r.status, 0, r.stderr)
      assert.deepStrictEqual(hook.received.map((m) => `${m.path} ${m.body.trex.kind}`).sort(), ["/flaky end", "/flaky end", "/gone end"])
      assert.include(r.stdout + r.stderr, `notify: the end message of ${runDirOf(r.stdout)} was not delivered to ${hook.url}/…: HTTP 404 (the webhook's address is wrong, or it was revoked) (1 attempt)`)
      assert.notInclude(r.stdout + r.stderr, `${hook.url}/gone`)
      // tried again under the same id; the message /gone never got is kept for the next session
      const flaky = hook.received.filter((m) => m.path === "/flaky")
      assert.strictEqual(flaky[0]!.id, flaky[1]!.id)
      const runDir = runDirOf(r.stdout)
      assert.include(r.stderr, `notify: a message of ${runDir} (end) was not delivered to every webhook: kept in ${path.join(runDir, "notify")}`)
      assert.deepStrictEqual(outbox(runDir).map((e) => e.id), [flaky[0]!.id])
    })), 120_000)

  it.live("kill -9 while a new best's message is being retried: trex resume posts it under the same id, then the run's end", () =>
    Effect.scoped(Effect.gen(function*() {
      // the first best's post is refused (503); its retry, a second later, arrives as the controller is
      // killed (it never gets an answer); after the kill the webhook takes everything
      let controller: ReturnType<typeof spawn> | undefined
      let killed = false
      const hook = yield* webhook((_p, n) => {
        if (killed) return 200
        if (n === 1) return 503
        killed = true
        controller!.kill("SIGKILL")
        return "hang"
      })
      const { out, task } = toyTask(3)
      // one trial at a time, each 2.5 s: no second best is found before the retry
      const first = yield* trex(["run", task, "--out", out, "--concurrency", "1", "--notify", `${hook.url}/h`, "--notify-best"], { TREX_TOY_MS: "2500" }, (_text, child) => {
        controller = child
      })
      assert.isTrue(killed, first.stdout + first.stderr)
      assert.strictEqual(first.status, null, "killed")
      const before = hook.received.map((m) => `${m.status} ${m.id}`)
      const runDir = runDirOf(first.stdout)
      const due = hook.received[0]!.body.trex
      assert.strictEqual(due.kind, "best")
      assert.deepStrictEqual(before, [`503 ${due.id}`, `hang ${due.id}`])
      assert.deepStrictEqual(outbox(runDir).map((e) => e.id), [due.id], "kept in the run directory")

      // the resume is given the webhook, not --notify-best: the message was due all the same
      const resumed = yield* inProcess(["resume", runDir, "--notify", `${hook.url}/h`], { TREX_TOY_MS: "30" })
      assert.strictEqual(resumed.status, 0, resumed.stderr)
      const after = hook.received.slice(2)
      assert.deepStrictEqual(after.map((m) => `${m.status} ${m.body.trex.kind}`), ["200 best", "200 end"])
      assert.strictEqual(after[0]!.id, due.id)
      assert.deepStrictEqual(after[0]!.body, hook.received[0]!.body, "the message as it was due")
      const end = after[1]!.body.trex
      assert.strictEqual(end.kind === "end" && end.outcome, "finished")
      assert.deepStrictEqual(outbox(runDir), [], "nothing left to post")
    })), 120_000)

  it.live("kill -9 while the end's message is being retried: the next session posts it under the same id, once; messages delivered are not posted again", () =>
    Effect.scoped(Effect.gen(function*() {
      // every best is taken; the end's post is refused, and its retry arrives as the controller is killed
      let controller: ReturnType<typeof spawn> | undefined
      let killed = false
      const hook = yield* webhook((_p, _n, body) => {
        if (killed || body.trex.kind === "best") return 200
        if (hook.received.some((m) => m.body.trex.kind === "end")) {
          killed = true
          controller!.kill("SIGKILL")
          return "hang"
        }
        return 503
      })
      const { out, task } = toyTask(3)
      const first = yield* trex(["run", task, "--out", out, "--notify", `${hook.url}/h`, "--notify-best"], { TREX_TOY_MS: "30" }, (_text, child) => {
        controller = child
      })
      assert.isTrue(killed, first.stdout + first.stderr)
      const runDir = runDirOf(first.stdout)
      const ends = hook.received.filter((m) => m.body.trex.kind === "end")
      assert.deepStrictEqual(ends.map((m) => m.status), [503, "hang"])
      assert.strictEqual(ends[0]!.id, ends[1]!.id)
      const bests = hook.received.filter((m) => m.body.trex.kind === "best")
      assert.isTrue(bests.length >= 1 && bests.every((m) => m.status === 200))

      // the run had finished: its resume starts nothing and ends as the run had, the same end: it posts
      // the message that was lost, under its id, and no second end of its own
      assert.match(ends[0]!.id!, /\/end-\d+$/, "named after the journal's entry")
      const n = hook.received.length
      yield* inProcess(["resume", runDir, "--notify", `${hook.url}/h`], { TREX_TOY_MS: "30" })
      const after = hook.received.slice(n)
      assert.deepStrictEqual(after.map((m) => `${m.status} ${m.body.trex.kind}`), ["200 end"], "no best again, no second end")
      assert.strictEqual(after[0]!.id, ends[0]!.id)
      assert.deepStrictEqual(after[0]!.body, ends[0]!.body)
      assert.deepStrictEqual(outbox(runDir), [])
    })), 120_000)

  it.live("kill -9 after the run's end is journaled, before its message is kept or posted: the next session posts that end under its id, once", () =>
    Effect.scoped(Effect.gen(function*() {
      const hook = yield* webhook()
      const { out, task } = toyTask(2)
      // the report is written (report.md.<pid>.tmp, then renamed) after the journal's last entry and
      // before the end's message is posted: a FIFO in its place, whose pipe the test filled (and never
      // reads), holds the controller there, its file open, until the test kills it
      const held = killedAt((runDir, pid) => path.join(runDir, `report.md.${pid}.tmp`))
      const first = yield* trex(["run", task, "--out", out, "--notify", `${hook.url}/h`], { TREX_TOY_MS: "400" }, held.onStdout)
      assert.isTrue(held.finish(), first.stdout + first.stderr)
      assert.strictEqual(first.status, null, "killed")
      const runDir = runDirOf(first.stdout)
      assert.deepStrictEqual(hook.received, [], "nothing was posted")
      // the journal has the run's end, and the run directory its message, named after the journal's entry
      const kept = outbox(runDir)
      assert.strictEqual(kept.length, 1)
      const end = kept[0]!.message.trex
      assert.strictEqual(end.kind === "end" && `${end.outcome}: ${end.reason}`, "finished: budget: maxTrials")
      assert.match(end.id, /\/end-\d+$/)
      const status = yield* trexStatus([runDir])
      assert.include(status.stdout, "finished")
      assert.include(status.stdout, "\nWebhooks: a webhook message of an earlier session (end) was not delivered")

      // the resume runs nothing and ends as the run had: the same end, posted once, as it was kept
      const resumed = yield* inProcess(["resume", runDir, "--notify", `${hook.url}/h`], { TREX_TOY_MS: "30" })
      assert.strictEqual(resumed.status, 0, resumed.stderr)
      assert.deepStrictEqual(hook.received.map((m) => `${m.status} ${m.id}`), [`200 ${end.id}`])
      assert.deepStrictEqual(hook.received[0]!.body, kept[0]!.message)
      assert.deepStrictEqual(outbox(runDir), [])
    })), 120_000)

  it.live("an end kept before it was journaled, whose entry the journal never got (a kill between the two), is never posted", () =>
    Effect.scoped(Effect.gen(function*() {
      const { out, task } = toyTask(2)
      const first = yield* inProcess(["run", task, "--out", out], { TREX_TOY_MS: "30" })
      assert.strictEqual(first.status, 0, first.stderr)
      const runDir = runDirOf(first.stdout)
      const runId = path.basename(runDir)
      // as the notifier keeps an end at its RunFinished, for an entry past the journal's last
      const lost = Notify.endMessage({ runId, runDir, task: "toy" }, Exit.succeed({ reason: "budget: maxTrials" }), undefined, `${runId}/end-999`)
      fs.mkdirSync(path.join(runDir, "notify"))
      fs.writeFileSync(path.join(runDir, "notify", "end-999.json"), JSON.stringify({ id: lost.trex.id, at: Date.now(), message: lost, delivered: [], end: { seq: 999, at: Date.now() } }))
      assert.notInclude((yield* trexStatus([runDir])).stdout, "Webhooks:")
      const hook = yield* webhook()
      yield* inProcess(["resume", runDir, "--notify", `${hook.url}/h`], { TREX_TOY_MS: "30" })
      // only the resume's end (the run's, which its first session had no webhook to post)
      assert.deepStrictEqual(hook.received.map((m) => m.body.trex.kind), ["end"])
      assert.notStrictEqual(hook.received[0]!.id, lost.trex.id)
      assert.deepStrictEqual(outbox(runDir), [])
    })), 120_000)

  it.live("a kept message due longer ago than --notify-max-age is not posted: said, moved to notify/expired, and shown by trex status", () =>
    Effect.scoped(Effect.gen(function*() {
      // a run whose webhook refused its new best and its end: both kept
      const { runDir, kept } = yield* keptByRefusingWebhook([])
      assert.deepStrictEqual(outbox(runDir).map((e) => e.message.trex.kind), ["best", "end"])
      // as if the best had waited 100 hours, the end 10
      const hours = (h: number) => Date.now() - h * 3_600_000
      for (const [e, h] of [[kept[0]!, 100], [kept[1]!, 10]] as const) {
        const file = path.join(runDir, "notify", `${e.id.slice(e.id.lastIndexOf("/") + 1)}.json`)
        fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, "utf8")), at: hours(h) }))
      }
      const hook = yield* webhook()
      const resumed = yield* inProcess(["resume", runDir, "--notify", `${hook.url}/h`, "--notify-max-age", "50"], { TREX_TOY_MS: "30" })
      assert.strictEqual(resumed.status, 0, resumed.stderr)
      // the end (10 hours old) is posted; the best (100 hours old) is not
      assert.deepStrictEqual(hook.received.map((m) => m.id), [kept[1]!.id])
      const best = (kept[0]!.message.trex as { best: { id: string } }).best.id
      assert.include(resumed.stderr, `notify: a webhook message of an earlier session (new best (${best})) was due more than 50 hours ago (the oldest at `)
      assert.include(resumed.stderr, `too old to post (notify.maxAgeHours, --notify-max-age): not posted, and moved to ${path.join(runDir, "notify", "expired")}`)
      assert.deepStrictEqual(outbox(runDir), [], "nothing waits")
      const expired = fs.readdirSync(path.join(runDir, "notify", "expired"))
      assert.deepStrictEqual(expired, [`best-${best}.json`])
      const status = yield* trexStatus([runDir])
      assert.include(status.stdout, `\nWebhooks: a message of an earlier session (new best (${best})) was never posted: found 100 hours after it was due, too old to post; kept in ${path.join(runDir, "notify", "expired")}`)
      assert.notInclude(status.stdout, "not delivered")
      // a bad age is refused, naming the flag
      const bad = yield* inProcess(["resume", runDir, "--notify", `${hook.url}/h`, "--notify-max-age", "0"])
      assert.strictEqual(bad.status, 2)
      assert.include(bad.stderr, "--notify-max-age is in hours and must be more than 0, got 0")
    })), 120_000)

  it.live("trex status and status --json list the messages waiting, those the next session will expire (past 72 hours), and those expired", () =>
    Effect.scoped(Effect.gen(function*() {
      const { runDir, kept, best, file } = yield* keptByRefusingWebhook([])
      // as if the best had waited 100 hours
      const aged = Date.now() - 100 * 3_600_000
      fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, "utf8")), at: aged }))
      const endAt = (JSON.parse(fs.readFileSync(path.join(runDir, "notify", `${kept[1]!.id.slice(kept[1]!.id.lastIndexOf("/") + 1)}.json`), "utf8")) as { at: number }).at

      // a session without webhooks expires nothing: status says which one the next session with them will
      const text = (yield* trexStatus([runDir])).stdout
      assert.include(text, `\nWebhooks: 2 webhook messages of an earlier session (new best (${best}), end) were not delivered`)
      assert.include(text, `; 1 of them (new best (${best})) was due more than 72 hours ago (the --notify-max-age of the session that kept it): a session with webhooks and that age will not post it, but move it to ${path.join(runDir, "notify", "expired")}; give it a longer --notify-max-age to post it`)
      const json = JSON.parse((yield* trexStatus([runDir, "--json"])).stdout)
      assert.deepStrictEqual(json.webhooks, {
        waiting: [
          { id: kept[0]!.id, kind: "best", due: new Date(aged).toISOString(), maxAgeHours: 72, pastMaxAge: true },
          { id: kept[1]!.id, kind: "end", due: new Date(endAt).toISOString(), maxAgeHours: 72, pastMaxAge: false }
        ],
        expired: []
      })

      // the next session with webhooks (the default age) posts the end and expires the best, as said
      const hook = yield* webhook()
      const resumed = yield* inProcess(["resume", runDir, "--notify", `${hook.url}/h`], { TREX_TOY_MS: "30" })
      assert.strictEqual(resumed.status, 0, resumed.stderr)
      assert.deepStrictEqual(hook.received.map((m) => m.id), [kept[1]!.id])
      const after = JSON.parse((yield* trexStatus([runDir, "--json"])).stdout)
      assert.deepStrictEqual(after.webhooks.waiting, [])
      assert.deepStrictEqual(after.webhooks.expired.map((e: { id: string; kind: string; due: string }) => [e.id, e.kind, e.due]), [[kept[0]!.id, "best", new Date(aged).toISOString()]])
      assert.isAtLeast(Date.parse(after.webhooks.expired[0].expired), Date.parse(json.webhooks.waiting[1].due))
    })), 120_000)

  it.live("trex status judges a waiting message by the --notify-max-age of the session that kept it, and says which age that is", () =>
    Effect.scoped(Effect.gen(function*() {
      const { refusing, runDir, kept, best, file } = yield* keptByRefusingWebhook(["--notify-max-age", "168"])
      const age = (h: number) => fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, "utf8")), at: Date.now() - h * 3_600_000 }))
      // 100 hours: past the default, not past the 168 the run was started with
      age(100)
      const text = (yield* trexStatus([runDir])).stdout
      assert.include(text, "to post them (within 168 hours of when they were due, or --notify-max-age)")
      assert.notInclude(text, "due more than")
      const json = JSON.parse((yield* trexStatus([runDir, "--json"])).stdout)
      assert.deepStrictEqual(json.webhooks.waiting.map((w: { maxAgeHours: number; pastMaxAge: boolean }) => [w.maxAgeHours, w.pastMaxAge]), [[168, false], [168, false]])
      // 200 hours: past it, and the line says which age
      age(200)
      assert.include((yield* trexStatus([runDir])).stdout, `; 1 of them (new best (${best})) was due more than 168 hours ago (the --notify-max-age of the session that kept it)`)
      // a resume with another age (still refused) keeps what waits with its own: the best (200 hours) is expired, the end kept with 24
      const resumed = yield* inProcess(["resume", runDir, "--notify", `${refusing.url}/gone`, "--notify-max-age", "24"], { TREX_TOY_MS: "30" })
      assert.strictEqual(resumed.status, 0, resumed.stderr)
      const after = JSON.parse((yield* trexStatus([runDir, "--json"])).stdout)
      assert.deepStrictEqual(after.webhooks.waiting.map((w: { id: string; maxAgeHours: number }) => [w.id, w.maxAgeHours]), [[kept[1]!.id, 24]])
      assert.deepStrictEqual(after.webhooks.expired.map((w: { id: string }) => w.id), [kept[0]!.id])
    })), 120_000)

  it.live("trex notify --retry-expired posts the expired messages now to the webhooks that lack them, keeping those not delivered; --drop-expired removes them", () =>
    Effect.scoped(Effect.gen(function*() {
      // /gone refuses everything (404, not tried again); /b refuses until it is up
      let up = false
      const hook = yield* webhook((p) => (p === "/gone" || (p === "/b" && !up) ? 404 : 200))
      const { out, task } = toyTask(2)
      const first = yield* inProcess(["run", task, "--out", out, "--notify", `${hook.url}/gone`, "--notify-best"], { TREX_TOY_MS: "30" })
      assert.strictEqual(first.status, 0, first.stderr)
      const runDir = runDirOf(first.stdout)
      const kept = outbox(runDir)
      assert.deepStrictEqual(kept.map((e) => e.message.trex.kind), ["best", "end"])
      const [best, end] = [kept[0]!.id, kept[1]!.id]
      for (const e of kept) {
        const file = path.join(runDir, "notify", `${e.id.slice(e.id.lastIndexOf("/") + 1)}.json`)
        fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, "utf8")), at: Date.now() - 100 * 3_600_000 }))
      }
      // the resume (default age) expires both, and tells the run's end again, under its id, to /h
      const resumed = yield* inProcess(["resume", runDir, "--notify", `${hook.url}/h`], { TREX_TOY_MS: "30" })
      assert.strictEqual(resumed.status, 0, resumed.stderr)
      const expiredDir = path.join(runDir, "notify", "expired")
      assert.deepStrictEqual(fs.readdirSync(expiredDir).length, 2)
      assert.include((yield* trexStatus([runDir])).stdout, `kept in ${expiredDir}: trex notify ${runDir} --retry-expired --notify <url> posts them now, --drop-expired removes them`)
      const posts = () => hook.received.filter((m) => m.path !== "/gone").map((m) => `${m.path} ${m.id} ${m.status}`)
      assert.deepStrictEqual(posts(), [`/h ${end} 200`])

      // bad input: no webhook, neither or both ways, not a run directory
      const none = yield* inProcess(["notify", runDir, "--retry-expired"])
      assert.strictEqual(none.status, 2)
      assert.include(none.stderr, "--retry-expired posts to the webhooks of --notify or TREX_NOTIFY_URL, and none is given")
      const neither = yield* inProcess(["notify", runDir, "--notify", `${hook.url}/h`])
      assert.strictEqual(neither.status, 2)
      assert.include(neither.stderr, "give --retry-expired (post them now) or --drop-expired (remove them)")
      const both = yield* inProcess(["notify", runDir, "--retry-expired", "--drop-expired"])
      assert.strictEqual(both.status, 2)
      assert.include(both.stderr, "--retry-expired and --drop-expired are two ways to deal with the same messages: give one")
      const notRun = yield* inProcess(["notify", out, "--drop-expired"])
      assert.strictEqual(notRun.status, 2)
      assert.include(notRun.stderr, `${out} is not a run directory`)

      // /b refuses: the best reaches /h only, the end (which /h has) nothing; both are kept, exit 1
      const refused = yield* inProcess(["notify", runDir, "--retry-expired", "--notify", `${hook.url}/h`, "--notify", `${hook.url}/b`])
      assert.strictEqual(refused.status, 1, refused.stderr)
      assert.deepStrictEqual(posts(), [`/h ${end} 200`, `/h ${best} 200`, `/b ${best} 404`, `/b ${end} 404`])
      assert.include(refused.stdout, `kept ${best} in ${expiredDir}: ${hook.url}/…: HTTP 404`)
      assert.include(refused.stdout, `try again (trex notify ${runDir} --retry-expired --notify <url>)`)
      assert.strictEqual(fs.readdirSync(expiredDir).length, 2)

      // /b is up: each goes to /b only, and is removed
      up = true
      const retried = yield* inProcess(["notify", runDir, "--retry-expired", "--json", "--notify", `${hook.url}/h`], { TREX_NOTIFY_URL: `${hook.url}/b` })
      assert.strictEqual(retried.status, 0, retried.stderr)
      assert.deepStrictEqual(JSON.parse(retried.stdout), { posted: [best, end], kept: [], dropped: [], unreadable: [] })
      assert.deepStrictEqual(posts().slice(4), [`/b ${best} 200`, `/b ${end} 200`])
      assert.isFalse(fs.existsSync(expiredDir))
      const json = JSON.parse((yield* trexStatus([runDir, "--json"])).stdout)
      assert.deepStrictEqual(json.webhooks, { waiting: [], expired: [] })
      // the end /b got is recorded: a resume that tells it again posts it to neither
      yield* inProcess(["resume", runDir, "--notify", `${hook.url}/h`, "--notify", `${hook.url}/b`], { TREX_TOY_MS: "30" })
      assert.strictEqual(posts().length, 6)
      const nothing = yield* inProcess(["notify", runDir, "--retry-expired", "--notify", `${hook.url}/h`])
      assert.strictEqual(nothing.status, 0)
      assert.include(nothing.stdout, `no message of ${runDir} was found too old to post`)

      // --drop-expired: a best expired by a resume whose webhook refuses it all is removed unposted
      const second = toyTask(2)
      const run2 = yield* inProcess(["run", second.task, "--out", second.out, "--notify", `${hook.url}/gone`, "--notify-best"], { TREX_TOY_MS: "30" })
      const runDir2 = runDirOf(run2.stdout)
      const best2 = outbox(runDir2)[0]!
      const file2 = path.join(runDir2, "notify", `${best2.id.slice(best2.id.lastIndexOf("/") + 1)}.json`)
      fs.writeFileSync(file2, JSON.stringify({ ...JSON.parse(fs.readFileSync(file2, "utf8")), at: Date.now() - 100 * 3_600_000 }))
      yield* inProcess(["resume", runDir2, "--notify", `${hook.url}/gone`], { TREX_TOY_MS: "30" })
      const withHook = yield* inProcess(["notify", runDir2, "--drop-expired", "--notify", `${hook.url}/h`])
      assert.strictEqual(withHook.status, 2)
      assert.include(withHook.stderr, "--drop-expired posts nothing, and a webhook is given")
      const dropped = yield* inProcess(["notify", runDir2, "--drop-expired", "--json"])
      assert.strictEqual(dropped.status, 0, dropped.stderr)
      assert.deepStrictEqual(JSON.parse(dropped.stdout), { posted: [], kept: [], dropped: [best2.id], unreadable: [] })
      const after = JSON.parse((yield* trexStatus([runDir2, "--json"])).stdout)
      assert.deepStrictEqual(after.webhooks.expired, [])
      // the end /gone refused still waits for a session with webhooks
      assert.deepStrictEqual(after.webhooks.waiting.map((w: { kind: string }) => w.kind), ["end"])
      assert.strictEqual(posts().length, 6, "dropping posts nothing")
    })), 180_000)

  it.live("a kept message is written durably: its file and its folder are fsync'd before it is posted", () =>
    Effect.scoped(Effect.gen(function*() {
      const synced = yield* recordFsyncs
      let syncedBeforePost: ReadonlyArray<string> = []
      const hook = yield* webhook(() => {
        syncedBeforePost = [...synced]
        return 200
      })
      const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-notify-"))
      yield* Effect.scoped(Effect.gen(function*() {
        const notifier = yield* Notify.make({ urls: [`${hook.url}/h`] }, { runId: "r", runDir })
        yield* notifier.end(Notify.endMessage({ runId: "r", runDir, task: "t" }, Exit.succeed({ reason: "budget" }), undefined, "r/end-7"))
      }))
      assert.strictEqual(hook.received.length, 1)
      const notify = path.join(runDir, "notify")
      // the folder made (its parent synced), the file written (synced before its rename), the folder synced after it
      assert.deepStrictEqual(syncedBeforePost, [runDir, path.join(notify, `end-7.json.${process.pid}.tmp`), notify])
      assert.deepStrictEqual(outbox(runDir), [])
    })), 30_000)

  it.live("what a webhook got is recorded durably (file and folder fsync'd), and holds the latest end only", () =>
    Effect.scoped(Effect.gen(function*() {
      const synced = yield* recordFsyncs
      const hook = yield* webhook()
      const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-notify-"))
      const session = endSession(`${hook.url}/h`, runDir)
      yield* session("r/end-7")
      const delivered = path.join(runDir, "notify", "delivered")
      const [name] = fs.readdirSync(delivered)
      const record = path.join(delivered, name!)
      // the message kept (as above), then the record: its folder made (its parent synced), the record written
      // (synced before its rename), its folder synced after it
      const notify = path.join(runDir, "notify")
      assert.deepStrictEqual(synced, [runDir, path.join(notify, `end-7.json.${process.pid}.tmp`), notify, notify, `${record}.${process.pid}.tmp`, delivered])
      assert.deepStrictEqual(JSON.parse(fs.readFileSync(record, "utf8")), { ends: ["r/end-7"] })
      // a later end replaces it; told again, it is not posted again
      yield* session("r/end-9")
      yield* session("r/end-9")
      assert.deepStrictEqual(JSON.parse(fs.readFileSync(record, "utf8")), { ends: ["r/end-9"] })
      assert.deepStrictEqual(hook.received.map((m) => m.id), ["r/end-7", "r/end-9"])
    })), 30_000)

  it.live("an end id of random hex digits that are all decimal is not taken for a journal position: the record holds the latest end", () =>
    Effect.scoped(Effect.gen(function*() {
      const hook = yield* webhook()
      const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-notify-"))
      const session = endSession(`${hook.url}/h`, runDir)
      // a session that ended without RunFinished, its 12 random hex digits all decimal (1 in 282), then
      // the run's end the journal records, told again by a resume that runs nothing
      yield* session("r/end-123456789012")
      yield* session("r/end-9")
      yield* session("r/end-9")
      assert.deepStrictEqual(hook.received.map((m) => m.id), ["r/end-123456789012", "r/end-9"], "the end the webhook has is not posted again")
      const delivered = path.join(runDir, "notify", "delivered")
      const [name] = fs.readdirSync(delivered)
      const record = path.join(delivered, name!)
      assert.deepStrictEqual(JSON.parse(fs.readFileSync(record, "utf8")), { ends: ["r/end-9"] })
      // a record an older trex wrote with such an id is replaced by the journal's end
      fs.writeFileSync(record, JSON.stringify({ ends: ["r/end-023456789012"] }))
      yield* session("r/end-11")
      yield* session("r/end-11")
      assert.deepStrictEqual(JSON.parse(fs.readFileSync(record, "utf8")), { ends: ["r/end-11"] })
      assert.deepStrictEqual(hook.received.map((m) => m.id).slice(2), ["r/end-11"])
    })), 30_000)

  it.live("kill -9 between a webhook's 2xx to the end and the record that it got it: the resume posts that end once more, under its id, and then never again", () =>
    Effect.scoped(Effect.gen(function*() {
      const hook = yield* webhook()
      const url = `${hook.url}/h`
      const key = crypto.createHash("sha256").update(new URL(url).href).digest("hex").slice(0, 16)
      const { out, task } = toyTask(2)
      // the record is written to <key>.json.<pid>.tmp, then renamed: a FIFO in its place, its pipe filled
      // (and never read), holds the controller there, after the webhook's 200, until the test kills it
      const held = killedAt((runDir, pid) => {
        const delivered = path.join(runDir, "notify", "delivered")
        fs.mkdirSync(delivered, { recursive: true })
        return path.join(delivered, `${key}.json.${pid}.tmp`)
      })
      const first = yield* trex(["run", task, "--out", out, "--notify", url], { TREX_TOY_MS: "30" }, held.onStdout)
      assert.isTrue(held.finish(), first.stdout + first.stderr)
      assert.strictEqual(first.status, null, "killed")
      const runDir = runDirOf(first.stdout)
      // the webhook got the end (200), and the controller died before it recorded so: the end is still kept
      assert.deepStrictEqual(hook.received.map((m) => `${m.status} ${m.body.trex.kind}`), ["200 end"])
      const end = hook.received[0]!
      assert.match(end.id!, /\/end-\d+$/)
      assert.deepStrictEqual(outbox(runDir).map((e) => e.id), [end.id])
      assert.include((yield* trexStatus([runDir])).stdout, "\nWebhooks: a webhook message of an earlier session (end) was not delivered")

      // at least once: the resume (which runs nothing) posts it again, as it was, under the same id (by
      // which a receiver drops it), and records it; a later resume posts nothing
      for (let i = 0; i < 2; i++) {
        const resumed = yield* inProcess(["resume", runDir, "--notify", url], { TREX_TOY_MS: "30" })
        assert.strictEqual(resumed.status, 0, resumed.stderr)
      }
      assert.deepStrictEqual(hook.received.map((m) => `${m.status} ${m.id}`), [`200 ${end.id}`, `200 ${end.id}`], "posted exactly once more")
      assert.deepStrictEqual(hook.received[1]!.body, end.body)
      assert.deepStrictEqual(outbox(runDir), [])
      assert.deepStrictEqual(JSON.parse(fs.readFileSync(path.join(runDir, "notify", "delivered", `${key}.json`), "utf8")), { ends: [end.id] })
    })), 120_000)

  it.live("kill -9 between a new best's 2xx and its file's update: the resume posts it once more, under its id, and then never again", () =>
    Effect.scoped(Effect.gen(function*() {
      // one trial: its best is the run's only one (a later best, kept meanwhile, would replace it)
      const { out, task } = toyTask(1)
      // /b never answers, so after /a's 200 the best is kept again (delivered to /a), to <name>.json.<pid>.tmp
      // then renamed: a FIFO in its place, made when /a gets the best (its first keeping done), holds the
      // controller there, the 200 in hand, until the test kills it: the state a kill between a best's 2xx
      // and its file's removal leaves (the file as it was before the post)
      let stdout = ""
      let controller: ReturnType<typeof spawn> | undefined
      let name: string | undefined
      const held = killedAt((runDir, pid) => path.join(runDir, "notify", `${name}.${pid}.tmp`))
      const hook = yield* webhook((p, _n, body) => {
        if (p === "/a" && body.trex.kind === "best" && name === undefined) {
          name = `${body.trex.id.slice(body.trex.id.lastIndexOf("/") + 1)}.json`
          held.onStdout(stdout, controller!)
        }
        return p === "/b" ? "hang" : 200
      })
      const first = yield* trex(["run", task, "--out", out, "--notify", `${hook.url}/a`, "--notify", `${hook.url}/b`, "--notify-best"], { TREX_TOY_MS: "30" }, (text, child) => {
        stdout = text
        controller = child
      })
      assert.isTrue(held.finish(), first.stdout + first.stderr)
      assert.strictEqual(first.status, null, "killed")
      const runDir = runDirOf(first.stdout)
      const best = hook.received.filter((m) => m.path === "/a")
      assert.deepStrictEqual(best.map((m) => `${m.status} ${m.body.trex.kind}`), ["200 best"])
      // kept still, as before its post (with what the run kept meanwhile, posted after it)
      const kept = outbox(runDir)
      assert.strictEqual(kept[0]!.id, best[0]!.id)
      assert.deepStrictEqual(kept[0]!.delivered, [])

      // at least once: the resume posts it to /a again, as it was, under the same id, then never again
      for (let i = 0; i < 2; i++) {
        const resumed = yield* inProcess(["resume", runDir, "--notify", `${hook.url}/a`, "--notify-best"], { TREX_TOY_MS: "30" })
        assert.strictEqual(resumed.status, 0, resumed.stderr)
      }
      const again = hook.received.filter((m) => m.path === "/a" && m.id === best[0]!.id)
      assert.deepStrictEqual(again.map((m) => m.status), [200, 200], "posted exactly once more")
      assert.deepStrictEqual(again[1]!.body, best[0]!.body)
      assert.deepStrictEqual(outbox(runDir), [])
    })), 120_000)

  it.live("trex notify is refused while a controller runs the run, and holds the run's lock while it posts: a resume meanwhile is refused before it posts anything", () =>
    Effect.scoped(Effect.gen(function*() {
      const { runDir, best, file } = yield* keptByRefusingWebhook([])
      fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, "utf8")), at: Date.now() - 100 * 3_600_000 }))
      const lock = path.join(runDir, "journal.sqlite")
      // /x: while trex notify waits for its answer, `during` runs
      let during: (() => Promise<void>) | undefined
      // (once: a post that timed out meanwhile, on a loaded machine, is tried again and answered once `during` is done)
      let done: Promise<void> | undefined
      const hook = yield* webhook((p) => (p === "/x" && during !== undefined ? (done ??= during()).then(() => 200) : 200))
      const expired = path.join(runDir, "notify", "expired", `best-${best}.json`)

      // a real controller: a resume with one more trial, held running until `hold` exists; at its start it
      // expires the best (100 hours old) and posts the end its first session kept
      const hold = path.join(path.dirname(runDir), "hold")
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.writeFileSync(hold, "")))
      let controller: ReturnType<typeof spawn> | undefined
      const running = yield* Effect.forkChild(trex(["resume", runDir, "--max-trials", "3", "--notify", `${hook.url}/h`], { TREX_TOY_MS: "30", TREX_TOY_HOLD: hold }, (_text, child) => {
        controller = child
      }))
      const until = Date.now() + 60_000
      while (!(controller !== undefined && (yield* Journal.writer(lock))?.pid === controller.pid && fs.existsSync(expired) && hook.received.length > 0)) {
        assert.isBelow(Date.now(), until, "the resume holds the run and has expired the best")
        yield* Effect.sleep("50 millis")
      }
      const drop = yield* inProcess(["notify", runDir, "--drop-expired"])
      assert.strictEqual(drop.status, 2, drop.stderr)
      assert.include(drop.stderr, `the run in ${runDir} is in use by process ${controller!.pid}, its controller, which posts and expires the run's webhook messages itself`)
      assert.include(drop.stderr, `Wait for it to end, or stop it (trex stop ${runDir} --wait), then run trex notify again`)
      const retry = yield* inProcess(["notify", runDir, "--retry-expired", "--notify", `${hook.url}/x`])
      assert.strictEqual(retry.status, 2, retry.stderr)
      assert.include(retry.stderr, `is in use by process ${controller!.pid}`)
      assert.isTrue(fs.existsSync(expired), "not dropped")
      assert.deepStrictEqual(hook.received.filter((m) => m.path === "/x"), [], "not posted")
      fs.writeFileSync(hold, "")
      const resumed = yield* Fiber.join(running)
      assert.strictEqual(resumed.status, 0, resumed.stderr)
      const posted = hook.received.length

      // trex notify holds the run while it posts: a resume then is refused, and posts nothing (no kept
      // message, no failed end of its own); it is told what holds the run (a trex notify, its pid and host)
      // and to wait. trex status shows the run as its journal ended it (no controller), held by that trex
      // notify; trex stop has nothing to stop, and says what holds the run; a second trex notify is told so too
      type Said = { readonly status: number | null; readonly stdout?: string; readonly stderr: string }
      let meanwhile: { refused: Said; status: Said; json: Record<string, unknown>; stop: Said; again: Said } | undefined
      during = () =>
        Effect.runPromise(Effect.gen(function*() {
          const refused = yield* trex(["resume", runDir, "--notify", `${hook.url}/h`], { TREX_TOY_MS: "30" })
          const status = yield* trexStatus([runDir])
          const json = JSON.parse((yield* trexStatus([runDir, "--json"])).stdout) as Record<string, unknown>
          meanwhile = { refused, status, json, stop: yield* inProcess(["stop", runDir]), again: yield* inProcess(["notify", runDir, "--drop-expired"]) }
        }))
      let notifier: ReturnType<typeof spawn> | undefined
      const retried = yield* trex(["notify", runDir, "--retry-expired", "--json", "--notify", `${hook.url}/x`], {}, undefined, (child) => {
        notifier = child
      })
      assert.strictEqual(retried.status, 0, retried.stderr)
      assert.deepStrictEqual(JSON.parse(retried.stdout).posted, [`${path.basename(runDir)}/best-${best}`])
      const { again, json, refused, status, stop } = meanwhile!
      const holder = `held by a \`trex notify\` session (process ${notifier!.pid} on this host, ${os.hostname()}), which posts or drops the run's expired webhook messages: ` +
        "it lets go of the run once done, within seconds (up to 33 s for each message a webhook does not answer). Wait for it to finish, then "
      assert.strictEqual(refused.status, 2, refused.stderr)
      assert.include(refused.stderr, `trex: the run's lock (${lock}.lock) is ${holder}try again`)
      assert.notInclude(refused.stderr, "controller")
      assert.include(status.stdout, "\nState: finished (budget: maxTrials)\n")
      assert.include(status.stdout, `\nLock: ${holder}\`trex resume ${runDir}\` or \`trex notify\` can take the run\n`)
      assert.notInclude(status.stdout, "running (controller")
      assert.strictEqual(json.state, "finished")
      assert.isUndefined(json.writerPid)
      assert.deepStrictEqual(json.heldBy, { by: "trex notify", pid: notifier!.pid, host: os.hostname() })
      assert.strictEqual(stop.status, 0, stop.stderr)
      assert.include(stop.stdout, `the run in ${runDir} is not running: it finished (budget: maxTrials); nothing to stop. It is ${holder}trex resume can take it`)
      assert.strictEqual(again.status, 2, again.stderr)
      assert.include(again.stderr, `the run in ${runDir} is ${holder}run trex notify again`)
      assert.deepStrictEqual([...new Set(hook.received.slice(posted).map((m) => `${m.path} ${m.body.trex.kind}`))], ["/x best"], "the refused resume posted nothing")
      assert.isFalse(fs.existsSync(expired))
    })), 120_000)

  it.live("two resumes started together: the one the run's lock refuses posts nothing, the other posts each kept message once", () =>
    Effect.scoped(Effect.gen(function*() {
      const { runDir, kept } = yield* keptByRefusingWebhook([])
      const hook = yield* webhook()
      // a FIFO among the kept messages, its write end held by the test: a session whose notifier starts
      // blocks reading it (after its lock, before its journal opens) until the test lets go of that end
      const fifo = path.join(runDir, "notify", "0-held.json")
      execFileSync("mkfifo", [fifo])
      const writeEnd = fs.openSync(fifo, fs.constants.O_RDWR)
      const reading = (child: ReturnType<typeof spawn> | undefined) => {
        if (child?.pid === undefined) return false
        try {
          return fs.readdirSync(`/proc/${child.pid}/fd`).some((fd) => {
            try {
              return fs.readlinkSync(`/proc/${child.pid}/fd/${fd}`) === fifo
            } catch {
              return false
            }
          })
        } catch {
          return false
        }
      }
      const children: Array<ReturnType<typeof spawn> | undefined> = [undefined, undefined]
      const resume = (i: number) =>
        Effect.forkChild(trex(["resume", runDir, "--notify", `${hook.url}/h`], { TREX_TOY_MS: "30" }, undefined, (child) => {
          children[i] = child
        }))
      const first = yield* resume(0)
      const until = Date.now() + 60_000
      while (!reading(children[0])) {
        assert.isBelow(Date.now(), until, "the first resume's notifier reads the kept messages")
        yield* Effect.sleep("20 millis")
      }
      // the second starts while the first is between its start and its journal: refused by the lock the
      // first holds, it exits; without that lock it reaches its notifier too
      const second = yield* resume(1)
      while (!(children[1]?.exitCode !== null && children[1]?.exitCode !== undefined) && !reading(children[1])) {
        assert.isBelow(Date.now(), until, "the second resume is refused or reads the kept messages")
        yield* Effect.sleep("20 millis")
      }
      fs.closeSync(writeEnd)
      const results = [yield* Fiber.join(first), yield* Fiber.join(second)]
      fs.rmSync(fifo)
      assert.deepStrictEqual(results.map((r) => r.status), [0, 2], results.map((r) => r.stderr).join("\n"))
      assert.include(results[1]!.stderr, "run is in use by process ")
      // each kept message posted once, by the first: nothing by the refused one (no kept message, no end of its own)
      assert.deepStrictEqual(hook.received.map((m) => `${m.status} ${m.id}`), kept.map((e) => `200 ${e.id}`))
      assert.deepStrictEqual(outbox(runDir), [])
    })), 120_000)

  it.live("the temporary files a kill mid-write left in notify/ are removed when a notifier starts on a run nobody else holds, and only then", () =>
    Effect.scoped(Effect.gen(function*() {
      const hook = yield* webhook()
      const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-notify-"))
      const file = RunDir.journalFile(runDir)
      fs.writeFileSync(file, "")
      const notify = path.join(runDir, "notify")
      const stale = [path.join(notify, "best-n1.json.4000001.tmp"), path.join(notify, "delivered", "0123456789abcdef.json.4000002.tmp"), path.join(notify, "expired", "end-7.json.4000003.tmp")]
      // not of its kind (a file of someone else's), or this process's own (being written now): left
      const others = [path.join(notify, "notes.tmp"), path.join(notify, "delivered", "x.json.tmp"), path.join(notify, `best-n2.json.${process.pid}.tmp`)]
      for (const f of [...stale, ...others]) {
        fs.mkdirSync(path.dirname(f), { recursive: true })
        fs.writeFileSync(f, "{\"id\":")
      }
      const start = Effect.scoped(Notify.make({ urls: [`${hook.url}/h`] }, { runId: "r", runDir }))
      // another process holds the run (a controller, which may be writing them): left
      const script = `const { DatabaseSync } = require("node:sqlite"); const db = new DatabaseSync(${JSON.stringify(`${file}.lock`)}); ` +
        `db.exec("BEGIN EXCLUSIVE"); console.log("ready"); setInterval(() => {}, 1000)`
      const holder = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] })
      const exited = new Promise<void>((r) => holder.once("exit", () => r()))
      yield* Effect.addFinalizer(() => Effect.sync(() => holder.kill("SIGKILL")))
      yield* Effect.promise(() => new Promise<void>((resolve) => holder.stdout.on("data", (d) => String(d).includes("ready") && resolve())))
      yield* start
      assert.deepStrictEqual([...stale, ...others].filter((f) => !fs.existsSync(f)), [], "nothing removed while another process holds the run")
      holder.kill("SIGKILL")
      yield* Effect.promise(() => exited)
      // nobody holds it: its kind, of other processes, removed
      yield* start
      assert.deepStrictEqual(stale.filter((f) => fs.existsSync(f)), [])
      assert.deepStrictEqual(others.filter((f) => !fs.existsSync(f)), [])
      assert.deepStrictEqual(hook.received, [])
    })), 60_000)

  it.live("a webhook down for the whole run: bounded tries, the run ends as it would, what was not delivered is said and kept until a session with webhooks posts it", () =>
    Effect.scoped(Effect.gen(function*() {
      // an address nothing listens on: every post is refused
      const down = yield* webhook()
      const downUrl = `${down.url}/down`
      yield* Effect.promise(() => new Promise<void>((r) => down.server.close(() => r())))
      const { out, task } = toyTask(2)
      const first = yield* trex(["run", task, "--out", out, "--notify", downUrl, "--notify-best"], { TREX_TOY_MS: "30" })
      assert.strictEqual(first.status, 0, first.stderr)
      const runDir = runDirOf(first.stdout)
      assert.match(first.stderr, /notify: the end message of .* was not delivered to http:\/\/127\.0\.0\.1:\d+\/…: fetch failed \(connect ECONNREFUSED [^)]*\) \(3 attempts\)/)
      assert.match(first.stderr, /notify: 2 messages of .* \(new best \(n\d+\), end\) were not delivered to every webhook: kept in .*notify, and posted by the run's next session with webhooks/)
      const kept = outbox(runDir)
      assert.deepStrictEqual(kept.map((e) => e.message.trex.kind), ["best", "end"])
      assert.notInclude(allText(path.join(runDir, "notify")), "/down", "the address is not written")

      // a session without webhooks says what waits, and leaves it
      const quiet = yield* inProcess(["resume", runDir])
      assert.include(quiet.stderr, `notify: 2 webhook messages of an earlier session (new best (${(kept[0]!.message.trex as { best: { id: string } }).best.id}), end) were not delivered: kept in ${path.join(runDir, "notify")}; give this session webhooks`)
      assert.strictEqual(outbox(runDir).length, 2)
      // trex status says so too
      const waiting = yield* trexStatus([runDir])
      assert.include(waiting.stdout, `\nWebhooks: 2 webhook messages of an earlier session (new best (`)
      assert.include(waiting.stdout, `end) were not delivered: kept in ${path.join(runDir, "notify")}; give the run's next session webhooks (--notify, TREX_NOTIFY_URL, notify) to post them`)

      // one with a webhook that answers posts them, in the order they were due; the run had finished, and
      // this resume (as the quiet one) ran nothing and ended as it had: the kept end tells its end too
      const hook = yield* webhook()
      yield* inProcess(["resume", runDir], { TREX_NOTIFY_URL: `${hook.url}/up` })
      assert.deepStrictEqual(hook.received.map((m) => m.id), kept.map((e) => e.id))
      assert.deepStrictEqual(outbox(runDir), [])
      assert.notInclude((yield* trexStatus([runDir])).stdout, "Webhooks:")
      // a later one tells that end again, under its id, but /up has it: nothing is posted, and no best
      yield* inProcess(["resume", runDir], { TREX_NOTIFY_URL: `${hook.url}/up` })
      assert.deepStrictEqual(hook.received.slice(2).map((m) => m.id), [])
    })), 120_000)

  it.live("of two webhooks, the one that got a message is not posted it again: the next session posts it to the other only", () =>
    Effect.scoped(Effect.gen(function*() {
      // /down answers 503 (retryable) until it is back up
      let up = false
      const hook = yield* webhook((p) => (p === "/down" && !up ? 503 : 200))
      const { out, task } = toyTask(2)
      const first = yield* inProcess(["run", task, "--out", out, "--notify", `${hook.url}/up`, "--notify", `${hook.url}/down`], { TREX_TOY_MS: "30" })
      assert.strictEqual(first.status, 0, first.stderr)
      const runDir = runDirOf(first.stdout)
      const end = hook.received.find((m) => m.path === "/up")!
      assert.deepStrictEqual(outbox(runDir).map((e) => e.id), [end.id])
      up = true
      const n = hook.received.length
      yield* inProcess(["resume", runDir, "--notify", `${hook.url}/up`, "--notify", `${hook.url}/down`], { TREX_TOY_MS: "30" })
      const after = hook.received.slice(n)
      // the first session's end to /down only: the resume ran nothing and ended as the run had (the same end)
      assert.deepStrictEqual(after.map((m) => `${m.path} ${m.status} ${m.id === end.id}`), ["/down 200 true"])
      assert.deepStrictEqual(outbox(runDir), [])
    })), 120_000)

  it.live("a resume that runs nothing does not post the end again to a webhook that got it; a webhook it never reached gets it, under its id", () =>
    Effect.scoped(Effect.gen(function*() {
      const hook = yield* webhook()
      const { out, task } = toyTask(2)
      const first = yield* inProcess(["run", task, "--out", out, "--notify", `${hook.url}/a`], { TREX_TOY_MS: "30" })
      assert.strictEqual(first.status, 0, first.stderr)
      const runDir = runDirOf(first.stdout)
      assert.deepStrictEqual(hook.received.map((m) => `${m.path} ${m.body.trex.kind}`), ["/a end"])
      const end = hook.received[0]!
      assert.match(end.id!, /\/end-\d+$/)
      assert.deepStrictEqual(outbox(runDir), [], "nothing waits")
      assert.notInclude((yield* trexStatus([runDir])).stdout, "Webhooks:")

      // the run had finished: each resume runs nothing and tells the same end, which /a has
      for (let i = 0; i < 2; i++) {
        const again = yield* inProcess(["resume", runDir, "--notify", `${hook.url}/a`], { TREX_TOY_MS: "30" })
        assert.strictEqual(again.status, 0, again.stderr)
      }
      assert.deepStrictEqual(hook.received.map((m) => m.path), ["/a"], "the end is not posted again to /a")
      // what /a got is recorded by a hash of its address, never the address
      const delivered = path.join(runDir, "notify", "delivered")
      assert.strictEqual(fs.readdirSync(delivered).length, 1)
      assert.notInclude(allText(delivered), "/a")
      // a webhook added later gets that end, under its id, and /a still nothing
      const added = yield* inProcess(["resume", runDir, "--notify", `${hook.url}/a`, "--notify", `${hook.url}/b`], { TREX_TOY_MS: "30" })
      assert.strictEqual(added.status, 0, added.stderr)
      assert.deepStrictEqual(hook.received.slice(1).map((m) => `${m.path} ${m.id === end.id}`), ["/b true"])
      assert.strictEqual(fs.readdirSync(delivered).length, 2)
      assert.deepStrictEqual(outbox(runDir), [])
    })), 120_000)

  it.live("a setup error ends the run failed, with its cause; a run stopped by Ctrl-C ends stopped, saying how to continue; its resume posts to the webhooks it is given", () =>
    Effect.scoped(Effect.gen(function*() {
      const hook = yield* webhook()
      const { dir, out, task } = toyTask(6)
      const failed = yield* inProcess(["run", task, "--out", out, "--notify", `${hook.url}/a`], { TREX_TOY_MS: "30", TREX_TOY_NEEDS: path.join(dir, "missing-module") })
      assert.strictEqual(failed.status, 1)
      const first = hook.received.at(-1)!.body
      assert.strictEqual(first.trex.kind === "end" && first.trex.outcome, "failed")
      assert.match(first.text, /^trex · toy failed: every trial failed the same way \([n\d, ]+\): Crash: exited with code 1 \(ModuleNotFoundError: No module named 'transformerz'\) · 0 succeeded, \d failed/)

      // Ctrl-C once the first trial has started: the run drains, and is not finished
      let signalled = false
      const stopped = yield* trex(["run", task, "--out", out, "--no-reuse", "--notify", `${hook.url}/b`], { TREX_TOY_MS: "1500" }, (text, child) => {
        if (!signalled && text.includes("start  n1")) {
          signalled = true
          child.kill("SIGINT")
        }
      })
      assert.isTrue(signalled, stopped.stdout)
      const runDir = runDirOf(stopped.stdout)
      const second = hook.received.at(-1)!
      assert.strictEqual(second.path, "/b")
      assert.strictEqual(second.body.trex.kind === "end" && second.body.trex.outcome, "stopped")
      assert.include(second.body.text, `continue with: trex resume ${runDir}`)

      // a resume is told nothing of the first session's webhook: it posts to its own
      const resumed = yield* inProcess(["resume", runDir, "--notify", `${hook.url}/c`], { TREX_TOY_MS: "30" })
      assert.strictEqual(resumed.status, 0, resumed.stderr)
      assert.deepStrictEqual(hook.received.slice(2).map((m) => m.path), ["/c"])
      assert.strictEqual(hook.received.at(-1)!.body.trex.kind === "end" && (hook.received.at(-1)!.body.trex as { outcome: string }).outcome, "finished")
    })), 120_000)

  it.live("bad addresses are refused before anything runs, naming where they were given and never showing them", () =>
    Effect.gen(function*() {
      const { out, task } = toyTask(2)
      const ftp = yield* inProcess(["run", task, "--out", out, "--notify", "ftp://hooks.example/s3cr3t"])
      assert.strictEqual(ftp.status, 2)
      assert.include(ftp.stderr, "--notify is a ftp: address: a webhook takes http: or https:")
      const env = yield* inProcess(["run", task, "--out", out], { TREX_NOTIFY_URL: "https://ok.example/x hooks.example/s3cr3t" })
      assert.strictEqual(env.status, 2)
      assert.include(env.stderr, "TREX_NOTIFY_URL (its address 2) is not a URL (20 characters): give the webhook's full address")
      const best = yield* inProcess(["run", task, "--out", out, "--notify-best"])
      assert.strictEqual(best.status, 2)
      assert.include(best.stderr, "--notify-best posts to the webhooks of --notify or TREX_NOTIFY_URL, and none is given")
      for (const r of [ftp, env, best]) assert.notInclude(r.stdout + r.stderr, "s3cr3t")
      assert.isFalse(fs.existsSync(out), "nothing was started")
      const e = yield* Effect.flip(Effect.tryPromise({
        try: () => Trex.start({ taskFile: task, out, notify: { urls: "https://hooks.example/x" as never, attempts: 0 } }),
        catch: (e) => e as { readonly message: string }
      }))
      assert.include(e.message, "notify.urls: expected a list of webhook addresses")
      assert.include(e.message, "put it in a list")
      assert.include(e.message, "notify.attempts")
    }), 120_000)

  it.live("Notify.post: a webhook that never answers is given up on after its attempts, each bounded by timeoutMs", () =>
    Effect.scoped(Effect.gen(function*() {
      const hook = yield* webhook(() => "hang")
      const message: Notify.Message = { text: "t", trex: { kind: "end", id: "x/end-1", at: "2026-12-05T00:00:00.000Z", outcome: "stopped", reason: "r", runId: "x", runDir: "d", status: undefined } }
      const e = yield* Effect.flip(Notify.post(Redacted.make(`${hook.url}/slow`), message, { timeoutMs: 300, attempts: 2 }))
      assert.strictEqual(e.message, "no answer within 300 ms (2 attempts)")
      assert.strictEqual(hook.received.length, 2)
    })), 30_000)

  it.live("the run's end waits for a webhook that never answers as long as one message's tries, however many are queued before it; the rest is kept", () =>
    Effect.scoped(Effect.gen(function*() {
      const hook = yield* webhook(() => "hang")
      // three ends an earlier session left undelivered, as it keeps them
      const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-notify-"))
      fs.mkdirSync(path.join(runDir, "notify"))
      const earlier = [1, 2, 3].map((i) => Notify.endMessage({ runId: "r", runDir, task: "t" }, Exit.succeed({ reason: `session ${i}` }), undefined))
      earlier.forEach((message, i) =>
        fs.writeFileSync(path.join(runDir, "notify", `${message.trex.id.slice(2)}.json`), JSON.stringify({ id: message.trex.id, at: Date.now() - 1000 + i, message, delivered: [] }))
      )
      // each message's tries: 2 answers of 200 ms at most, 1 s apart
      yield* Effect.scoped(Effect.gen(function*() {
        const notifier = yield* Notify.make({ urls: [`${hook.url}/slow`], timeoutMs: 200, attempts: 2 }, { runId: "r", runDir })
        yield* notifier.end(Notify.endMessage({ runId: "r", runDir, task: "t" }, Exit.succeed({ reason: "budget" }), undefined))
      }))
      // the first kept message had its tries, the second one perhaps its first; the end was never tried
      assert.deepStrictEqual(hook.received.slice(0, 2).map((m) => m.id), [earlier[0]!.trex.id, earlier[0]!.trex.id])
      assert.isAtMost(hook.received.length, 3)
      assert.strictEqual(outbox(runDir).length, 4, "every message kept")
      assert.deepStrictEqual(outbox(runDir).slice(0, 3).map((e) => e.id), earlier.map((m) => m.trex.id))
    })), 30_000)

  it.effect("the end a notifier keeps when the run's end comes is the one its whole journal makes, named after the end a resume that ran nothing told again", () =>
    Effect.scoped(Effect.gen(function*() {
      // three sessions (the second with a new budget), then one that ran nothing and ended as the third had
      const b = new TreeBuilder.TreeBuilder(TreeBuilder.task({ name: "kept", budget: { maxTrials: 2 } }))
      const events: Array<JournalEvent.JournalEvent> = []
      const take = () => events.push(...b.events.splice(0))
      const trial = (score: number) => {
        const id = b.succeed(ExperimentNode.ROOT, { "training.learningRate": score / 100 }, score)
        take()
        events.push(JournalEvent.make("BudgetCharged", { nodeId: id, cost: Cost.make({ gpuSeconds: 60, dollars: 0.5 }), reason: "trial", at: 1_000 * events.length }))
      }
      take()
      trial(0.4)
      trial(0.6)
      events.push(JournalEvent.make("RunFinished", { reason: "budget: maxTrials", at: 60_000 }))
      events.push(JournalEvent.make("RunResumed", { at: 3_600_000, budget: { maxTrials: 4 } }))
      trial(0.5)
      events.push(JournalEvent.make("RunFinished", { reason: "budget: maxTrials", at: 3_700_000 }))
      events.push(JournalEvent.make("RunResumed", { at: 7_200_000 }))
      events.push(JournalEvent.make("RunFinished", { reason: "budget: maxTrials", at: 7_200_010 }))
      const entries = events.map((event, i) => ({ seq: i + 1, event }))
      const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-notify-kept-"))
      const kept = (journaled: number) =>
        Effect.gen(function*() {
          fs.rmSync(path.join(runDir, "notify"), { recursive: true, force: true })
          const notifier = yield* Notify.make({ urls: ["http://127.0.0.1:9/hook"] }, { runId: "r", runDir, journaled: entries.slice(0, journaled) })
          for (const entry of entries.slice(journaled)) notifier.onEvent(entry, ExperimentTree.fold(events.slice(0, entry.seq))!.view)
          return outbox(runDir).map((e) => e.message)
        })
      const last = events.at(-1) as JournalEvent.Of<"RunFinished">
      const whole = { started: events[0] as JournalEvent.Of<"RunStarted">, finished: last, tree: ExperimentTree.fold(events)!, entries, writer: undefined }
      const told = entries.length - 2
      const expected = Notify.endMessage({ runId: "r", runDir, task: "kept" }, Exit.succeed({ reason: last.reason }), whole, `r/end-${told}`)
      // the budget used across the sessions, as `trex status` tells it
      assert.deepStrictEqual(expected.trex.kind === "end" && expected.trex.status?.budget, { limits: { maxTrials: 4 }, trials: 3, spent: Cost.make({ gpuSeconds: 180, dollars: 1.5 }), elapsedSeconds: 160.01 })
      // the last session: the run's journal before it, then its own entries
      assert.deepStrictEqual(yield* kept(entries.length - 2), [expected])
      // a session that saw every entry keeps each end it saw come: the last, named after the one it tells again
      const all = yield* kept(0)
      assert.deepStrictEqual(all.map((m) => m.trex.id), ["r/end-" + (entries.findIndex((e) => e.event._tag === "RunFinished") + 1), `r/end-${told}`])
      assert.deepStrictEqual(all[1], expected)
      // a journal that does not start at 1 makes no end (it is not the whole run)
      fs.rmSync(path.join(runDir, "notify"), { recursive: true, force: true })
      const notifier = yield* Notify.make({ urls: ["http://127.0.0.1:9/hook"] }, { runId: "r", runDir, journaled: entries.slice(1, -1) })
      notifier.onEvent(entries.at(-1)!, ExperimentTree.fold(events)!.view)
      assert.deepStrictEqual(outbox(runDir), [])
    })))

  it.live("a notifier holds no reference to the journal entries it was given: they are freed while it runs", () =>
    Effect.scoped(Effect.gen(function*() {
      v8.setFlagsFromString("--expose-gc")
      const gc = vm.runInNewContext("gc") as () => void
      const b = new TreeBuilder.TreeBuilder(TreeBuilder.task({ name: "held", budget: { maxTrials: 2 } }))
      b.succeed(ExperimentNode.ROOT, { "training.learningRate": 0.01 }, 0.5)
      const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-notify-held-"))
      const hook = yield* webhook()
      // the entries a resumed run's prepare read, given to the notifier and dropped by their caller
      const { notifier, entries } = yield* Effect.suspend(() => {
        const journaled = b.events.splice(0).map((event, i) => ({ seq: i + 1, event }))
        return Notify.make({ urls: [`${hook.url}/h`] }, { runId: "r", runDir, journaled }).pipe(Effect.map((notifier) => ({ notifier, entries: new WeakRef(journaled) })))
      })
      // a WeakRef's target stays until the job that made (or read) it ends
      yield* Effect.promise(() => new Promise<void>((r) => setImmediate(r)))
      gc()
      assert.isUndefined(entries.deref(), "the entries are freed while the notifier runs")
      yield* notifier.end(Notify.endMessage({ runId: "r", runDir, task: "held" }, Exit.succeed({ reason: "budget" }), undefined))
      assert.strictEqual(hook.received.length, 1)
    })), 30_000)

  it("text from the run (an error's message, a task name) makes no mention, link or markup in a chat", () => {
    const m = Notify.endMessage({ runId: "r", runDir: "runs/r", task: "<!channel> & co" }, Exit.fail(new Error("loss is NaN, @here <https://x.example|click>")), undefined)
    assert.strictEqual(m.text, "trex · &lt;!channel&gt; &amp; co failed: loss is NaN, @\u200Bhere &lt;https://x.example|click&gt; · runs/r")
    assert.strictEqual(m.trex.kind === "end" && m.trex.reason, "loss is NaN, @here <https://x.example|click>", "the JSON keeps the text as it is")
  })
})
