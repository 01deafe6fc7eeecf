// `RunDir.stopController` (`trex stop`) against a real process holding a run's writer lock: which
// controllers it refuses to signal, and why (the whole command on a real run is in Cli.test.ts).
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Journal } from "@trex/core"
import { Effect } from "effect"
import { startOf } from "../../core/test/support/journal.ts"
import * as RunDir from "../src/RunDir.ts"

/** A process holding `file`'s writer lock as a controller does (an exclusive SQLite transaction on `<file>.lock`), until a signal ends it. */
const holdLock = async (file: string) => {
  const script = `const { DatabaseSync } = require("node:sqlite"); const db = new DatabaseSync(${JSON.stringify(`${file}.lock`)}); ` +
    `db.exec("BEGIN EXCLUSIVE"); console.log("ready"); setInterval(() => {}, 1000)`
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] })
  await new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (d) => String(d).includes("ready") && resolve())
    child.once("exit", (code) => reject(new Error(`the lock holder exited (${code})`)))
  })
  const exited = new Promise<NodeJS.Signals | null>((r) => child.once("exit", (_code, signal) => r(signal)))
  return { pid: child.pid!, child, exited }
}

describe("RunDir.stopController", () => {
  it.live("signals only a controller it can reach: not one on another machine, nor one whose pid file is gone; a run nobody holds is NotRunning", () =>
    Effect.scoped(Effect.gen(function*() {
      const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-stop-"))
      const file = RunDir.journalFile(runDir)
      fs.writeFileSync(file, "")
      assert.deepStrictEqual(yield* RunDir.stopController(runDir), { _tag: "NotRunning" })
      // killed at the end whatever happens (a failed assertion included)
      const holder = yield* Effect.acquireRelease(Effect.promise(() => holdLock(file)), (h) => Effect.sync(() => h.child.kill("SIGKILL")))
      // a run directory on a shared filesystem, its controller on another host: a signal would reach the wrong process
      fs.writeFileSync(`${file}.lock.pid`, `${holder.pid} gpu-login-2\n`)
      const elsewhere = yield* Effect.flip(RunDir.stopController(runDir))
      assert.strictEqual(elsewhere._tag, "InvalidInput")
      assert.include(elsewhere.message, `the run's controller is process ${holder.pid} on host gpu-login-2, not this one (${os.hostname()}): run \`trex stop ${runDir}\` on gpu-login-2`)
      fs.rmSync(`${file}.lock.pid`)
      const unknown = yield* Effect.flip(RunDir.stopController(runDir))
      assert.include(unknown.message, `but its record ${file}.lock.pid is gone: try again in a moment if it has just taken the lock, or find the holder with \`fuser ${file}.lock\` (run as root, it sees every process of this pid namespace and those within it)`)
      // this host's name, another boot's id: another machine of this name on a shared file system; waiting shows the same
      fs.writeFileSync(`${file}.lock.pid`, JSON.stringify({ pid: holder.pid, host: os.hostname(), by: "controller", boot: "00000000-0000-0000-0000-000000000000" }))
      const otherBoot = yield* Effect.flip(RunDir.stopController(runDir))
      assert.include(otherBoot.message, `of another boot (boot id 00000000-0000-0000-0000-000000000000, this machine's `)
      assert.include(otherBoot.message, `another machine of this host name, sharing this file system, holds it: run \`trex stop ${runDir}\` on that machine`)
      assert.notInclude(otherBoot.message, "try again in a moment")
      // another host name and another boot id: another machine, refused; another host name and this boot id: this
      // machine (a container with a host name of its own, as Docker's), whose pid is signalled here (below)
      const boot = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim()
      fs.writeFileSync(`${file}.lock.pid`, JSON.stringify({ pid: holder.pid, host: "c0ffee", by: "controller", boot: "00000000-0000-0000-0000-000000000000" }))
      assert.include((yield* Effect.flip(RunDir.stopController(runDir))).message, `the run's controller is process ${holder.pid} on host c0ffee, not this one`)
      // (signalled only with its start time matched: one without is refused, and not signalled)
      const pidns = fs.readlinkSync("/proc/self/ns/pid")
      // this boot id, another host name, both in the machine's UTS namespace: a clone of this machine's snapshot (its boot id
      // and pid namespace the same), another machine, even with the start time of a process here
      for (const uts of [{ uts: "uts:[4026531838]" }, {}]) {
        fs.writeFileSync(`${file}.lock.pid`, JSON.stringify({ pid: holder.pid, host: "c0ffee", by: "controller", boot, pidns, start: startOf(holder.pid), ...uts }))
        assert.include((yield* Effect.flip(RunDir.stopController(runDir))).message, `the run's controller is process ${holder.pid} on host c0ffee, not this one`)
      }
      fs.writeFileSync(`${file}.lock.pid`, JSON.stringify({ pid: holder.pid, host: "c0ffee", by: "controller", boot, uts: "uts:[4026532999]", pidns }))
      const noStart = yield* Effect.flip(RunDir.stopController(runDir))
      assert.include(noStart.message, `names process ${holder.pid} on this machine (its host name c0ffee), which this process cannot verify: ` +
        `the record has no start time to compare with that pid's here: run \`trex stop ${runDir}\` on the machine, outside containers, ` +
        `or in the holder's container, or find the holder with \`fuser ${file}.lock\` (run as root on the machine, outside containers, it sees every process) and stop it with \`kill -TERM <pid>\``)
      // an older trex's record without a start time naming process 1, of this host name: the pid 1 of a container that
      // shares it, never this machine's init, which no controller is. Looked at read-only first (were it named, the stop
      // would signal init)
      fs.writeFileSync(`${file}.lock.pid`, JSON.stringify({ pid: 1, host: os.hostname(), by: "controller" }))
      assert.deepInclude(yield* Journal.writer(file), { elsewhere: "unverifiable" })
      assert.include((yield* Effect.flip(RunDir.stopController(runDir))).message, "names process 1")
      // an older trex's in a container (no pid namespace recorded): its pid is likely its container's, not looked up here
      fs.writeFileSync(`${file}.lock.pid`, JSON.stringify({ pid: holder.pid, host: "c0ffee", by: "controller", boot, uts: "uts:[4026532999]", start: startOf(holder.pid) }))
      const older = yield* Effect.flip(RunDir.stopController(runDir))
      assert.include(older.message, `names process ${holder.pid} on this machine (its host name c0ffee), written by an older trex that did not record its pid namespace: ` +
        `that pid is likely its container's, and another process's here; run the command (\`trex stop\`) in that container`)
      assert.notInclude(older.message, "try again in a moment")
      // a second controller refused is told where to stop it, not by `trex stop` here (said whole: the reason before it is cut)
      const second = yield* Effect.flip(Effect.scoped(RunDir.holdRun(runDir)))
      // (its pid namespace not recorded: the machine does not find it by its namespace)
      assert.include(second.message, `; stop that controller from where it can be seen: run \`trex stop ${runDir} --wait\` on the machine, outside containers, ` +
        `or in the holder's container, or find the holder with \`fuser ${file}.lock\` (run as root on the machine, outside containers, it sees every process) ` +
        `and stop it with \`kill -TERM <pid>\`; or wait for it to end`)
      fs.writeFileSync(`${file}.lock.pid`, JSON.stringify({ pid: holder.pid, host: "c0ffee", by: "controller", boot, uts: "uts:[4026532999]", pidns, start: startOf(holder.pid) }))
      const here = yield* RunDir.stopController(runDir, { wait: "10 seconds" })
      assert.deepStrictEqual(here, { _tag: "Asked", pid: holder.pid, now: false, exited: true })
      assert.strictEqual(yield* Effect.promise(() => holder.exited), "SIGTERM")
      assert.deepStrictEqual(yield* RunDir.stopController(runDir), { _tag: "NotRunning" })
    })))

  it.live("an older controller's pid file, the pid alone, is taken to be on this machine", () =>
    Effect.scoped(Effect.gen(function*() {
      const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-stop-"))
      const file = RunDir.journalFile(runDir)
      fs.writeFileSync(file, "")
      const holder = yield* Effect.acquireRelease(Effect.promise(() => holdLock(file)), (h) => Effect.sync(() => h.child.kill("SIGKILL")))
      fs.writeFileSync(`${file}.lock.pid`, `${holder.pid}\n`)
      const stopped = yield* RunDir.stopController(runDir, { wait: "10 seconds" })
      assert.deepStrictEqual(stopped, { _tag: "Asked", pid: holder.pid, now: false, exited: true })
      assert.strictEqual(yield* Effect.promise(() => holder.exited), "SIGTERM")
      assert.deepStrictEqual(yield* RunDir.stopController(runDir), { _tag: "NotRunning" })
      const notARun = yield* Effect.flip(RunDir.stopController(path.join(runDir, "nope")))
      assert.include(notARun.message, "is not a trex run directory (no journal.sqlite)")
    })))
})
