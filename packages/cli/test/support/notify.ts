// The webhooks of Notify.test.ts and NotifyKept.test.ts: a real HTTP server on loopback, which can answer as a
// webhook does, fail, or never answer; the real CLI on the toy task, or the CLI in this process.
import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import { createRequire, syncBuiltinESMExports } from "node:module"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { assert } from "@effect/vitest"
import { Effect, Exit } from "effect"
import * as Notify from "../../src/Notify.ts"
import { bin, fixtures, root, trexHere } from "./cli.ts"

export interface Received {
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
export const webhook = (answer: (path: string, n: number, body: Notify.Message) => number | "hang" | Promise<number> = () => 200) =>
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
export const trex = (
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

/** `trex <args>` in this process ({@link trexHere}), TREX_NOTIFY_URL unset unless `env` gives it. */
export const inProcess = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.promise((signal) => trexHere(args, { TREX_NOTIFY_URL: "", ...env }, signal))
export const trexStatus = (args: ReadonlyArray<string>) => inProcess(["status", ...args])

/** The toy task in a folder of its own, with `maxTrials` trials. */
export const toyTask = (maxTrials: number) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-notify-"))
  fs.copyFileSync(path.join(fixtures, "toy-job.mjs"), path.join(dir, "toy-job.mjs"))
  const text = fs.readFileSync(path.join(fixtures, "toy.task.yaml"), "utf8").replace("maxTrials: 8", `maxTrials: ${maxTrials}`)
  fs.writeFileSync(path.join(dir, "task.yaml"), text)
  return { dir, task: path.join(dir, "task.yaml"), out: path.join(dir, "runs") }
}

/** Every file under `dir`, read as text (journals included). */
export const allText = (dir: string): string =>
  fs.readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => fs.readFileSync(path.join(e.parentPath, e.name), "latin1"))
    .join("\n")

export const runDirOf = (stdout: string) => /run directory: (\S+)/.exec(stdout)![1]!

/** The messages a run keeps undelivered (`notify/` in its directory), in the order they were due. */
export const outbox = (runDir: string): ReadonlyArray<{ readonly id: string; readonly message: Notify.Message; readonly delivered: ReadonlyArray<string> }> => {
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
export const killedAt = (place: (runDir: string, pid: number) => string) => {
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
export const endSession = (url: string, runDir: string) => (id: string) =>
  Effect.scoped(Effect.gen(function*() {
    const notifier = yield* Notify.make({ urls: [url] }, { runId: "r", runDir })
    yield* notifier.end(Notify.endMessage({ runId: "r", runDir, task: "t" }, Exit.succeed({ reason: "budget" }), undefined, id))
  }))

/**
 * Every fsync this process makes while the scope is open, by the path of what it syncs (the real
 * fsync is made all the same).
 */
export const recordFsyncs = Effect.gen(function*() {
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
export const keptByRefusingWebhook = (args: ReadonlyArray<string>) =>
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

