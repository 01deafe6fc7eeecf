// A long search from a terminal that may go away: `trex status --follow` (the run's live view from
// another shell), `trex run --detach` (a controller in a session of its own) and a closed terminal
// (a real pseudo-terminal's hangup). Real CLI processes on the toy task, local backend.
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { DatabaseSync } from "node:sqlite"
import { ExperimentNode, ExperimentTree, Journal, JournalEvent } from "@trex/core"
import { TreeBuilder } from "@trex/core/testing"
import { Effect, Fiber } from "effect"
import * as Follow from "../src/Follow.ts"
import * as RunDir from "../src/RunDir.ts"
import { trexHere } from "./support/cli.ts"

const root = path.resolve(import.meta.dirname, "../../..")
const bin = path.join(root, "packages/cli/src/bin.ts")
const toyTask = path.join(import.meta.dirname, "fixtures", "toy.task.yaml")
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "trex-follow-"))

const trex = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ["--conditions=@trex/source", bin, ...args], { cwd: root, encoding: "utf8", env: { ...process.env, ...env }, timeout: 120_000 })

/** A CLI process in the background, its output gathered, and its exit code (or the signal's 128 + n). */
const background = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const child = spawn(process.execPath, ["--conditions=@trex/source", bin, ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] })
  const output = { stdout: "", stderr: "" }
  child.stdout.on("data", (d) => (output.stdout += d))
  child.stderr.on("data", (d) => (output.stderr += d))
  const exited = new Promise<number | null>((r) => child.once("exit", (c) => r(c)))
  return { child, output, exited }
}

const until = async (what: string, ok: () => boolean, ms = 60_000) => {
  const deadline = Date.now() + ms
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
const lines = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim().split("\n").filter((l) => l !== "") : [])
const treeOf = async (runDir: string) => ExperimentTree.fold((await Effect.runPromise(RunDir.readEntries(runDir))).map((e) => e.event))!
const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe("a run followed, detached, or left by its terminal", { timeout: 180_000 }, () => {
  it("`trex status --follow` shows what a run another process runs does until its controller exits; with --json every journal entry as a line; Ctrl-C stops following, not the run", async () => {
    const out = tmp()
    const log = path.join(out, "executions.log")
    // its trials hold until `go` exists: the followers begin while the first ones run, however slow the machine
    const go = path.join(out, "go")
    const run = background(["run", toyTask, "--out", out, "--max-trials", "6"], { TREX_TOY_LOG: log, TREX_TOY_MS: "300", TREX_TOY_HOLD: go })
    await until("the run's first trials", () => lines(log).length >= 2)
    const runDir = run.output.stdout.match(/run directory: (.*)/)![1]!
    // followed as text, and as JSON, side by side; a third follower is stopped early
    const text = background(["status", runDir, "--follow"])
    const json = background(["status", runDir, "--follow", "--json"])
    const early = background(["status", runDir, "-f"])
    await until("the early follower to begin", () => early.output.stdout.includes("following run"))
    early.child.kill("SIGINT")
    assert.strictEqual(await early.exited, 0, early.output.stderr)
    assert.match(early.output.stdout, /stopped following; the run goes on \(`trex status .* --follow` follows it again, `trex stop .*` stops it\)/)
    assert.match(early.output.stdout, /State: running \(controller: process \d+/)
    await until("the followers to begin", () => text.output.stdout.includes("following run") && json.output.stdout.includes("\n"))
    fs.writeFileSync(go, "")
    assert.strictEqual(await text.exited, 0, text.output.stderr)
    assert.strictEqual(await json.exited, 0, json.output.stderr)
    assert.strictEqual(await run.exited, 0, run.output.stderr)

    const tree = await treeOf(runDir)
    assert.strictEqual(tree.view.size, 6)
    // the follower began while the first trials ran, and saw every trial that finished after: the
    // same lines the controller printed for them, in the same order
    assert.match(text.output.stdout, new RegExp(`^following run ${path.basename(runDir)} \\(controller: process ${run.child.pid}\\); Ctrl-C stops following, not the run`))
    assert.match(text.output.stdout, /^run on task toy: trials \d\/6, best score .*; in flight: n\d/m)
    const doneLines = (s: string) => s.split("\n").filter((l) => l.startsWith("done "))
    const followed = doneLines(text.output.stdout)
    assert.isAtLeast(followed.length, 4, text.output.stdout)
    assert.deepStrictEqual(followed, doneLines(run.output.stdout).slice(-followed.length))
    assert.include(text.output.stdout, "finished: budget: maxTrials")
    assert.include(text.output.stdout, "the run's controller has exited")
    assert.match(text.output.stdout, /State: finished \(budget: maxTrials\)/)
    // --json: the whole journal, an entry a line, each decodable, in order, ending where the run did
    const entries = json.output.stdout.trim().split("\n").map((l) => JSON.parse(l) as { seq: number; event: unknown })
    const journal = await Effect.runPromise(RunDir.readEntries(runDir))
    assert.deepStrictEqual(entries.map((e) => e.seq), journal.map((e) => e.seq))
    assert.deepStrictEqual(entries.map((e) => JournalEvent.decodeSync(e.event)._tag), journal.map((e) => e.event._tag))
    assert.strictEqual(entries.at(-1) && JournalEvent.decodeSync(entries.at(-1)!.event)._tag, "RunFinished")

    // a run nobody runs: said, with the run as it stands
    const idle = trex(["status", runDir, "--follow"])
    assert.strictEqual(idle.status, 0, idle.stderr)
    assert.match(idle.stdout, /^nobody is running this run now: nothing to follow\n\nRun /)
    const both = trex(["status", runDir, "--follow", "--node", "n1"])
    assert.strictEqual(both.status, 2)
    assert.match(both.stderr, /--follow follows the whole run, --node shows one trial: use one of them/)
  })

  it("`trex run --detach` returns once the run has started; its controller runs in a session of its own, its output in controller.log, and ends the run alone; what fails before is said by the launcher", async () => {
    const out = tmp()
    const log = path.join(out, "executions.log")
    // its trials hold until `go` exists: the run is surely running while it is looked at
    const go = path.join(out, "go")
    const launched = trex(["run", toyTask, "--out", out, "--max-trials", "4", "--detach"], { TREX_TOY_LOG: log, TREX_TOY_MS: "300", TREX_TOY_HOLD: go })
    assert.strictEqual(launched.status, 0, launched.stderr)
    const runDir = launched.stdout.match(/^run directory: (.*)$/m)![1]!
    const pid = Number(launched.stdout.match(/running in the background: controller process (\d+), its output in (.*)$/m)![1])
    assert.include(launched.stdout, `its output in ${path.join(runDir, "controller.log")}`)
    assert.include(launched.stdout, `follow it:  trex status ${runDir} --follow`)
    assert.include(launched.stdout, `stop it:    trex stop ${runDir}`)
    // the launcher has exited and the run goes on: its controller leads a session with no terminal
    assert.isTrue(alive(pid))
    const ps = spawnSync("ps", ["-o", "sid=,tty=", "-p", String(pid)], { encoding: "utf8" }).stdout.trim().split(/\s+/)
    assert.deepStrictEqual(ps, [String(pid), "?"])
    const status = await trexHere(["status", runDir])
    assert.match(status.stdout, new RegExp(`State: running \\(controller: process ${pid};`))
    fs.writeFileSync(go, "")
    await until("the detached controller to end", () => !alive(pid))
    const tree = await treeOf(runDir)
    assert.strictEqual(tree.view.size, 4)
    for (const n of tree.view.nodes()) assert.strictEqual(n.state._tag, "Succeeded", n.id)
    assert.strictEqual(lines(log).length, 4)
    // everything the controller printed is in its log, the new run's output moved into the run's folder
    const printed = fs.readFileSync(path.join(runDir, "controller.log"), "utf8")
    assert.match(printed, /^run directory: /)
    assert.strictEqual((printed.match(/^done /gm) ?? []).length, 4)
    assert.include(printed, "finished: budget: maxTrials")
    assert.deepStrictEqual(fs.readdirSync(out).filter((f) => f.startsWith(".trex-detached-")), [])

    // resumed detached with more trials; a second resume while it runs: the run is held, said by the launcher, exit 2
    const goAgain = path.join(out, "go-again")
    const resumed = trex(["resume", runDir, "--max-trials", "6", "--detach"], { TREX_TOY_LOG: log, TREX_TOY_MS: "300", TREX_TOY_HOLD: goAgain })
    assert.strictEqual(resumed.status, 0, resumed.stderr)
    const second = Number(resumed.stdout.match(/controller process (\d+)/)![1])
    const held = trex(["resume", runDir, "--detach"])
    assert.strictEqual(held.status, 2, held.stdout)
    assert.match(held.stderr, new RegExp(`trex: run is in use by process ${second} .*; stop that controller first`))
    assert.notMatch(held.stdout, /running in the background/)
    fs.writeFileSync(goAgain, "")
    await until("the resumed controller to end", () => !alive(second))
    assert.strictEqual((await treeOf(runDir)).view.size, 6)
    assert.strictEqual(new Set(lines(log)).size, 6, "no trial ran twice")
    // the log keeps both sessions
    const both = fs.readFileSync(path.join(runDir, "controller.log"), "utf8")
    assert.strictEqual((both.match(/^done /gm) ?? []).length, 6)
    assert.include(both, "resumed run on task toy")

    // bad input: the launcher says what the controller said, with its exit code, and leaves no log
    const missing = trex(["run", "/nonexistent/task.yaml", "--out", out, "--detach"])
    assert.strictEqual(missing.status, 2)
    assert.match(missing.stderr, /task file \/nonexistent\/task.yaml does not exist/)
    assert.deepStrictEqual(fs.readdirSync(out).filter((f) => f.startsWith(".trex-detached-")), [])
    const notARun = trex(["resume", path.join(out, "nope"), "--detach"])
    assert.strictEqual(notARun.status, 2)
    assert.match(notARun.stderr, /is not a trex run directory/)
  })

  it("a closed terminal (the hangup of a real pseudo-terminal) stops a run as a first SIGTERM does: its running trials finish and are kept, and resume goes on", async () => {
    const out = tmp()
    const log = path.join(out, "executions.log")
    // `script` runs the controller on a pseudo-terminal of its own; killing it closes the terminal
    // (the kernel then sends the controller SIGHUP, and its writes to the terminal fail)
    // (its stderr to a file, to see when it has had the hangup; its stdout stays on the terminal)
    const err = path.join(out, "err")
    const command = [process.execPath, "--conditions=@trex/source", bin, "run", toyTask, "--out", out, "--max-trials", "6"].map((a) => `'${a}'`).join(" ") + ` 2>'${err}'`
    const terminal = spawn("script", ["-qfec", command, path.join(out, "typescript")], {
      cwd: root,
      // the trials hold until `go` exists: the hangup comes while the first two surely run
      env: { ...process.env, TREX_TOY_LOG: log, TREX_TOY_MS: "300", TREX_TOY_HOLD: path.join(out, "go") },
      stdio: ["pipe", "ignore", "ignore"]
    })
    await until("two trials running", () => lines(log).length >= 2)
    const running = lines(log)
    const runDir = path.join(out, fs.readdirSync(out).find((f) => /^\d{8}-/.test(f))!)
    const controller = (await Effect.runPromise(Journal.writer(RunDir.journalFile(runDir))))!.pid!
    terminal.kill("SIGKILL")
    // the controller has had the hangup (it drains: it starts no trial) before the running ones may end
    await until("the terminal to close", () => terminal.signalCode !== null || terminal.exitCode !== null)
    await until("the controller to have the hangup", () => fs.existsSync(err) && fs.readFileSync(err, "utf8").includes("terminal closed (SIGHUP): stopping"))
    fs.writeFileSync(path.join(out, "go"), "")
    await until("the controller to drain and exit", () => !alive(controller))
    // the trials that were running finished with their results; none started after the hangup
    assert.deepStrictEqual(lines(log), running)
    const drained = await treeOf(runDir)
    for (const id of running) assert.strictEqual(drained.view.get(id)?.state._tag, "Succeeded", id)
    assert.match((await trexHere(["status", runDir])).stdout, /State: finished \(stopped by request\)/)
    const resumed = trex(["resume", runDir], { TREX_TOY_LOG: log, TREX_TOY_MS: "50" })
    assert.strictEqual(resumed.status, 0, resumed.stderr)
    const all = lines(log)
    assert.strictEqual(new Set(all).size, all.length, `a trial ran twice: ${all.join(",")}`)
    const tree = await treeOf(runDir)
    assert.strictEqual(tree.view.size, 6)
    for (const n of tree.view.nodes()) assert.isTrue(ExperimentNode.isFinished(n), n.id)
  })
})

describe("Follow.follow", () => {
  it.live("hands over each entry its controller journals, in order, with the tree; a damaged entry ends the follow with the damage, naming the last entry handed over", () =>
    Effect.gen(function*() {
      const runDir = tmp()
      const b = new TreeBuilder.TreeBuilder(TreeBuilder.task({ budget: { maxTrials: 4 } }))
      const file = RunDir.journalFile(runDir)
      const seen: Array<string> = []
      let sizeAtStart = -1
      yield* Effect.scoped(Effect.gen(function*() {
        // this process is the run's controller: it holds the lock and appends
        const journal = yield* Journal.Journal
        yield* journal.append([b.events[0]!])
        const following = yield* Effect.forkChild(
          Follow.follow(runDir, {
            onStart: (info) => void (sizeAtStart = info.entries.length),
            onEntry: (entry, tree) => void seen.push(`${entry.seq}:${entry.event._tag}:${tree.size}`)
          }, { pollMs: 20 })
        )
        // begun (the run as it stood handed over) before anything more is journaled
        const deadline = Date.now() + 30_000
        while (sizeAtStart === -1 && Date.now() < deadline) yield* Effect.sleep("10 millis")
        const n1 = b.start(b.propose(ExperimentNode.ROOT, { "training.learningRate": 0.02 }))
        yield* journal.append(b.events.slice(1))
        while (seen.length < b.events.length - 1 && Date.now() < deadline) yield* Effect.sleep("10 millis")
        // the trial's proposal, admission, submit and start, each with the tree that holds its one trial
        assert.deepStrictEqual(seen, b.events.slice(1).map((e, i) => `${i + 2}:${e._tag}:1`))
        assert.isAtLeast(seen.length, 3)
        const before = b.events.length
        b.succeed(n1, {}, 0.5)
        const from = b.events.length
        // the trial's end, journaled and damaged on disk in one step (the follower, a fiber of this process, reads it after)
        yield* Effect.sync(() => {
          Effect.runSync(journal.append(b.events.slice(before)))
          const db = new DatabaseSync(file)
          db.exec(`UPDATE events SET crc = crc + 1 WHERE seq = ${from}`)
          db.close()
        })
        const failed = yield* Effect.flip(Fiber.join(following))
        assert.strictEqual(failed._tag, "JournalError")
        assert.match(failed.message, new RegExp(`; the run was followed up to entry ${from - 1} \\(\`trex status ${runDir.replace(/[/.]/g, "\\$&")}\` shows it up to its damage\\)$`))
      }).pipe(Effect.provide(Journal.Journal.layerSqlite(file))))
      assert.strictEqual(sizeAtStart, 1)
      // followed again once its controller has gone: the damage at once, as `trex status` says it
      const again = yield* Effect.flip(Follow.follow(runDir, { onStart: () => assert.fail("a damaged run is not started on"), onEntry: () => {} }))
      assert.match(again.message, /entry \d+ fails its checksum/)
    }))
})
