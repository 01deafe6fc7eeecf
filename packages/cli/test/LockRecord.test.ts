// The run's lock record as `trex status` (text and --json), `trex list` and `trex stop` read it, against real
// processes holding a real run's lock: a controller on a machine whose name has a space, a `trex notify` on one
// whose name is empty, and a killed `trex notify`'s record left while the run's next controller takes the lock,
// held (by a file) between taking it and writing its own record; a host name of 300 characters; a real `trex run` in a
// pid namespace of its own, as in a container, found and stopped from this one.
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { ExperimentNode, Journal, JournalEvent } from "@trex/core"
import { TreeBuilder } from "@trex/core/testing"
import { Effect } from "effect"
import { type Child, innerPid, nodeBin, type PidNamespace, removeTempDirs, startChild, startOf, tempDir, unsharePid } from "../../core/test/support/journal.ts"
import * as RunDir from "../src/RunDir.ts"
import * as Runs from "../src/Runs.ts"
import * as Status from "../src/Status.ts"
import { bin, fixtures, root } from "./support/cli.ts"

afterAll(removeTempDirs)

/** A finished run (one trial) in a fresh folder, written as a controller writes it; its folder and journal file. */
const finishedRun = (name: string) =>
  Effect.gen(function*() {
    const runDir = path.join(tempDir(), name)
    const task = TreeBuilder.task({ budget: { maxTrials: 1 } })
    const b = new TreeBuilder.TreeBuilder(task)
    b.succeed(ExperimentNode.ROOT, { "training.learningRate": 0.01 }, 0.5)
    const [, ...rest] = b.events
    const events = [
      JournalEvent.make("RunStarted", { runId: name, task, seed: 0, options: {}, at: Date.UTC(2026, 11, 6, 9) }),
      ...rest,
      JournalEvent.make("RunFinished", { reason: "budget: maxTrials", at: Date.UTC(2026, 11, 6, 10) })
    ]
    yield* Effect.gen(function*() {
      yield* (yield* Journal.Journal).append(events)
    }).pipe(Effect.provide(Journal.Journal.layerSqlite(RunDir.journalFile(runDir))))
    return { runDir, file: RunDir.journalFile(runDir) }
  })

/** A child of the journal tests holding a lock, killed at the scope's end whatever happens. */
const child = (args: ReadonlyArray<string>, ready: string, options: { readonly hostname?: string; readonly pidNamespace?: PidNamespace } = {}) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const c: Child = startChild(args, options)
      await c.waitFor((l) => l === ready)
      return c
    }),
    (c) => Effect.promise(() => (c.proc.kill("SIGKILL"), c.exited))
  )

/**
 * A process of this pid namespace that prints `TERM` when sent SIGTERM and `WINCH` when sent SIGWINCH, killed at the
 * scope's end: SIGWINCH sent after a SIGTERM is handled after it, so a `WINCH` seen with no `TERM` before it shows that
 * no SIGTERM was sent.
 */
const bystander = Effect.acquireRelease(
  Effect.promise(() => {
    const proc = spawn(nodeBin, ["-e", `for (const s of ["SIGTERM", "SIGWINCH"]) process.on(s, () => console.log(s.slice(3))); setInterval(() => {}, 60000); console.log("up")`])
    const lines: Array<string> = []
    const seen = (line: string) => new Promise<void>((resolve) => proc.stdout.on("data", () => lines.includes(line) && resolve()))
    proc.stdout.setEncoding("utf8").on("data", (d: string) => lines.push(...d.split("\n").filter((l) => l !== "")))
    return seen("up").then(() => ({ proc, lines, seen }))
  }),
  ({ proc }) => Effect.sync(() => proc.kill("SIGKILL"))
)

/** `trex status --json` and its text, as the run stands. */
const status = (runDir: string) =>
  Effect.map(RunDir.load(runDir), (info) => ({ json: Status.toJson(info), text: Status.toText(info, runDir) }))

describe("the run's lock record, as trex status, list and stop read it", () => {
  it.live("a host name with a space, or an empty one, is kept whole: the controller stays a controller, trex notify a trex notify", () =>
    Effect.scoped(Effect.gen(function*() {
      const spaced = yield* finishedRun("spaced")
      const empty = yield* finishedRun("empty")
      const controller = yield* child(["lock", spaced.file], "ready", { hostname: "a b" })
      const notify = yield* child(["lock", empty.file, RunDir.NOTIFY_HOLDER], "ready", { hostname: "" })

      const running = yield* status(spaced.runDir)
      assert.strictEqual(running.json.state, "running")
      assert.strictEqual(running.json.writerPid, controller.proc.pid)
      assert.strictEqual(running.json.writerHost, "a b")
      assert.isUndefined(running.json.heldBy)
      assert.include(running.text, `\nState: running (controller: process ${controller.proc.pid} on this machine (its host name "a b"); `)
      const [listed] = yield* Runs.list(path.dirname(spaced.runDir))
      assert.strictEqual(listed?.state, "running")
      assert.include(Runs.toText(path.dirname(spaced.runDir), [listed!]), `running (process ${controller.proc.pid} on "a b", this machine)`)
      // `trex status --follow` names it as `trex status` does (killed once it has)
      const follow = yield* Effect.acquireRelease(
        Effect.promise(() => {
          const proc = spawn(process.execPath, ["--conditions=@trex/source", bin, "status", spaced.runDir, "--follow"], { cwd: root, stdio: ["ignore", "pipe", "pipe"] })
          let out = ""
          return new Promise<{ readonly proc: typeof proc; readonly line: string }>((resolve, reject) => {
            proc.stdout.setEncoding("utf8").on("data", (d: string) => {
              out += d
              if (out.includes("\n")) resolve({ proc, line: out.split("\n")[0]! })
            })
            proc.once("exit", (code) => reject(new Error(`trex status --follow exited (${code}): ${out}`)))
          })
        }),
        ({ proc }) => Effect.sync(() => proc.kill("SIGKILL"))
      )
      assert.include(follow.line, `(controller: process ${controller.proc.pid} on this machine (its host name "a b")); Ctrl-C stops following`)
      // (its boot id this one's: on this machine, under a host name of its own, as a container can be; stopped from here)
      assert.deepStrictEqual(yield* RunDir.stopController(spaced.runDir, { wait: "20 seconds" }), { _tag: "Asked", pid: controller.proc.pid!, now: false, exited: true })

      const held = yield* status(empty.runDir)
      assert.strictEqual(held.json.state, "finished")
      assert.isUndefined(held.json.writerPid)
      assert.deepStrictEqual(held.json.heldBy, { by: RunDir.NOTIFY_HOLDER, pid: notify.proc.pid!, host: "" })
      assert.include(held.text, `\nLock: held by a \`trex notify\` session (process ${notify.proc.pid} on this machine (its host name "")), which posts or drops the run's expired webhook messages`)
      assert.deepStrictEqual(yield* RunDir.stopController(empty.runDir), { _tag: "NotRunning", held: { pid: notify.proc.pid!, host: "", by: RunDir.NOTIFY_HOLDER, thisMachine: true } })
    })), 60_000)

  it.live("a killed trex notify's record, read while the next controller takes the lock, is not taken for the holder", () =>
    Effect.scoped(Effect.gen(function*() {
      const { file, runDir } = yield* finishedRun("window")
      const go = path.join(path.dirname(runDir), "go")
      const notify = yield* child(["lock", file, RunDir.NOTIFY_HOLDER], "ready")
      const pid = notify.proc.pid!
      assert.deepStrictEqual((yield* status(runDir)).json.heldBy, { by: RunDir.NOTIFY_HOLDER, pid, host: os.hostname() })
      notify.proc.kill("SIGKILL")
      yield* Effect.promise(() => notify.exited)
      assert.strictEqual((yield* status(runDir)).json.state, "finished")
      assert.isUndefined((yield* status(runDir)).json.heldBy)

      // the run's next controller has taken the lock and is held before it writes its record
      const next = yield* child(["take", file, go], "locked")
      const meanwhile = yield* status(runDir)
      assert.strictEqual(meanwhile.json.state, "running", "something holds the lock: not the killed trex notify")
      assert.isUndefined(meanwhile.json.heldBy)
      assert.isUndefined(meanwhile.json.writerPid)
      assert.notInclude(meanwhile.text, "trex notify")
      const unknown = yield* Effect.flip(RunDir.stopController(runDir))
      assert.include(
        unknown.message,
        `a process holds the run's lock (${file}.lock), but its record ${file}.lock.pid names trex notify (process ${pid}), which has exited: ` +
          "its holder took the lock since, and has not yet written its own record: try again in a moment if it has just taken the lock"
      )
      // written: the controller is named, and stopped
      fs.writeFileSync(go, "")
      yield* Effect.promise(() => next.waitFor((l) => l === "recorded"))
      assert.strictEqual((yield* status(runDir)).json.writerPid, next.proc.pid)
      assert.deepStrictEqual(yield* RunDir.stopController(runDir, { wait: "20 seconds" }), { _tag: "Asked", pid: next.proc.pid!, now: false, exited: true })
      assert.strictEqual(yield* Effect.promise(() => next.exited), "SIGTERM")
    })), 60_000)

  it.live("a host name of 300 characters is shown cut to 80, by trex status, list and stop", () =>
    Effect.scoped(Effect.gen(function*() {
      const { file, runDir } = yield* finishedRun("long")
      const controller = yield* child(["lock", file], "ready")
      const pid = controller.proc.pid!
      fs.writeFileSync(`${file}.lock.pid`, JSON.stringify({ pid, host: "h".repeat(300), by: "controller" }))
      const shown = `"${"h".repeat(78)}…`
      const running = yield* status(runDir)
      assert.strictEqual(running.json.writerHost, "h".repeat(300), "kept whole in --json")
      assert.include(running.text, `\nState: running (controller: process ${pid} on host ${shown}; `)
      const [listed] = yield* Runs.list(path.dirname(runDir))
      const list = Runs.toText(path.dirname(runDir), [listed!])
      assert.include(list, `running (process ${pid} on ${shown})`)
      const elsewhere = yield* Effect.flip(RunDir.stopController(runDir))
      assert.include(elsewhere.message, `the run's controller is process ${pid} on host ${shown}, not this one (${os.hostname()}): run \`trex stop ${runDir}\` on ${shown}`)
      for (const text of [running.text, list, elsewhere.message]) assert.notInclude(text, "h".repeat(79))
    })), 60_000)

  it.live("a controller in another pid namespace (a container's) is found by its pid here: trex status names it, trex stop stops it; a record naming no process there signals none of this namespace", () =>
    Effect.scoped(Effect.gen(function*() {
      const out = tempDir()
      const hold = path.join(out, "hold")
      // a real `trex run` as process 1 of its own pid namespace, its trials held (TREX_TOY_HOLD) until the test lets them end
      const controller = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const proc = spawn("unshare", [...unsharePid(true), process.execPath, "--conditions=@trex/source", bin, "run", path.join(fixtures, "toy.task.yaml"), "--out", out, "--max-trials", "2"], {
            cwd: root,
            env: { ...process.env, TREX_TOY_HOLD: hold, TREX_TOY_MS: "30" },
            stdio: ["ignore", "pipe", "pipe"]
          })
          const output = { stdout: "", stderr: "" }
          proc.stdout.setEncoding("utf8").on("data", (d: string) => (output.stdout += d))
          proc.stderr.setEncoding("utf8").on("data", (d: string) => (output.stderr += d))
          const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)))
          return { proc, output, exited }
        }),
        ({ proc }) => Effect.sync(() => proc.kill("SIGKILL"))
      )
      const until = (what: string, done: () => boolean) =>
        Effect.promise(async () => {
          const deadline = Date.now() + 60_000
          while (!done()) {
            if (Date.now() > deadline || controller.proc.exitCode !== null) throw new Error(`${what}: ${JSON.stringify(controller.output)}`)
            await new Promise((r) => setTimeout(r, 50))
          }
        })
      // a trial started: the controller runs (its signals handled)
      yield* until("no trial started", () => /^start /m.test(controller.output.stdout))
      const runDir = /run directory: (.*)/.exec(controller.output.stdout)![1]!
      const file = RunDir.journalFile(runDir)
      const pid = innerPid(controller.proc.pid!)
      const record = JSON.parse(fs.readFileSync(`${file}.lock.pid`, "utf8")) as Record<string, unknown>
      assert.strictEqual(record["pid"], 1, "process 1 of its namespace")
      assert.notStrictEqual(record["pidns"], fs.readlinkSync("/proc/self/ns/pid"))
      const running = yield* status(runDir)
      assert.strictEqual(running.json.state, "running")
      assert.strictEqual(running.json.writerPid, pid, "its pid here")
      assert.include(running.text, `\nState: running (controller: process ${pid}; `)

      // its record naming a living process of this namespace, with that one's start time: no process of that namespace
      // has that pid there, so none is named and none signalled
      const local = yield* bystander
      fs.writeFileSync(`${file}.lock.pid`, JSON.stringify({ ...record, pid: local.proc.pid, start: startOf(local.proc.pid!) }))
      const refused = yield* Effect.flip(RunDir.stopController(runDir))
      assert.include(refused.message, `but its record ${file}.lock.pid names process ${local.proc.pid} of another pid namespace (${record["pidns"]}, this process's `)
      assert.include(refused.message, `a container's, where no process this one can read is process ${local.proc.pid} with the recorded start time`)
      assert.include(refused.message, `find the holder with \`fuser ${file}.lock\` (run as root, it sees every process of this pid namespace and those within it) and stop it with \`kill -TERM <pid>\``)
      assert.notInclude(refused.message, "(which sees this pid namespace", "said once")
      assert.notInclude(refused.message, "try again in a moment", "waiting shows the same holder")
      local.proc.kill("SIGWINCH")
      yield* Effect.promise(() => local.seen("WINCH"))
      assert.deepStrictEqual(local.lines, ["up", "WINCH"], "no SIGTERM before the SIGWINCH sent after trex stop")

      // its own record, read by `trex stop` in a sibling pid namespace (another container), which cannot see it: refused,
      // saying where it can be stopped
      fs.writeFileSync(`${file}.lock.pid`, `${JSON.stringify(record)}\n`)
      const sibling = spawnSync("unshare", [...unsharePid(true), process.execPath, "--conditions=@trex/source", bin, "stop", runDir], { cwd: root, encoding: "utf8" })
      assert.notStrictEqual(sibling.status, 0, sibling.stdout)
      assert.include(sibling.stderr, `names process 1 of another pid namespace (${record["pidns"]}, this process's `)
      assert.include(sibling.stderr, "another container's on this machine, which this process's container cannot see or signal, nor can `fuser` here: not this namespace's process 1; " +
        "run the command on the machine, outside containers (it finds the holder by its namespace), or in the holder's container")
      assert.notInclude(sibling.stderr, "kill -TERM")

      // its own record, read by `trex stop` in the holder's mount namespace only (`nsenter --mount`: its container's /proc,
      // which does not show the reader, whose pid 1 is the machine's init): refused, saying where it can be stopped. The
      // same look, read only, first: were it to name a pid there, the stop would signal this machine's init
      const underNsenter = (...args: Array<string>) =>
        spawnSync("nsenter", ["--target", String(pid), "--mount", `--wd=${root}`, "--", process.execPath, "--conditions=@trex/source", bin, ...args], { cwd: root, encoding: "utf8" })
      const looked = underNsenter("status", runDir, "--json")
      assert.strictEqual(looked.status, 0, looked.stderr)
      assert.isUndefined((JSON.parse(looked.stdout) as { writerPid?: number }).writerPid, "a pid named where none can be verified")
      const mounted = underNsenter("stop", runDir)
      assert.notStrictEqual(mounted.status, 0, mounted.stdout)
      assert.include(mounted.stderr, "names process 1, which this process cannot verify: the /proc mounted here is of another pid namespace than this process's")
      assert.include(mounted.stderr, `run \`trex stop ${runDir}\` on the machine, outside containers, or in the holder's container, ` +
        `or find the holder with \`fuser ${file}.lock\` (run as root on the machine, outside containers, it sees every process)`)

      // its own record: trex stop asks it to stop (a SIGTERM to its pid here), and it drains
      assert.deepStrictEqual(yield* RunDir.stopController(runDir), { _tag: "Asked", pid, now: false, exited: false })
      yield* until("the stop was not taken", () => controller.output.stderr.includes("SIGTERM: stopping"))
      fs.writeFileSync(hold, "")
      assert.strictEqual(yield* Effect.promise(() => controller.exited), 143, controller.output.stderr)
      assert.deepInclude((yield* status(runDir)).json, { state: "finished", finishedReason: "stopped by request" })
    })), 120_000)
})
