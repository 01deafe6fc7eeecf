/**
 * The supervisor of a local job: a tiny detached Node process that runs the job's argv in its own
 * process group, enforces the time limit, forwards a cancel, and records `exit.json` when the job
 * ends. It outlives the controller, so a job started before a controller crash still gets its exit
 * recorded. It is plain CommonJS kept as a string and written next to the jobs, so it runs the same
 * from sources, from a bundle, and on any Node version the package supports.
 */
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"

/**
 * `process.argv[2]` is the job directory, holding `job.spec.json` (`argv`, `labels`, `gpuIds`,
 * `resources.timeLimitSeconds`, `killGraceMs`). Writes `pid` once the job runs, `exit.json`
 * (`{code, signal, startedAt, endedAt, reason?, message?}`) when it ends. SIGTERM = cancel.
 */
const SOURCE = String.raw`"use strict"
const fs = require("node:fs")
const path = require("node:path")
const { spawn } = require("node:child_process")
const dir = process.argv[2]
const spec = JSON.parse(fs.readFileSync(path.join(dir, "job.spec.json"), "utf8"))
const procStart = (pid) => {
  try {
    const stat = fs.readFileSync("/proc/" + pid + "/stat", "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null
  } catch {
    return null
  }
}
const startedAt = Date.now()
let reason = null
let message = null
let done = false
let child = null
// Room for the supervisor's two records, taken before the job starts: a disk already full starts no
// job (the controller reports why), and a job that fills the disk (a checkpoint written until ENOSPC)
// still gets its pid and exit recorded, written over the reserved bytes (no new blocks needed) and
// padded with spaces, which JSON ignores.
const ROOM = 4096
const reserve = (name) => {
  const tmp = path.join(dir, "." + name + "." + process.pid + ".tmp")
  fs.writeFileSync(tmp, Buffer.alloc(ROOM, 0x20))
  return (value) => {
    const text = Buffer.from(JSON.stringify(value))
    if (text.length <= ROOM) {
      const fd = fs.openSync(tmp, "r+")
      try {
        fs.writeSync(fd, Buffer.concat([text, Buffer.alloc(ROOM - text.length, 0x20)]), 0, ROOM, 0)
      } finally {
        fs.closeSync(fd)
      }
    } else {
      fs.writeFileSync(tmp, text)
    }
    fs.renameSync(tmp, path.join(dir, name))
  }
}
let writePid
let writeExit
try {
  writePid = reserve("pid")
  writeExit = reserve("exit.json")
} catch (e) {
  try { process.stderr.write("cannot write in " + dir + ": " + (e && e.message) + "\n") } catch {}
  process.exit(3)
}
const finish = (code, signal) => {
  if (done) return
  done = true
  const exit = { code, signal, startedAt, endedAt: Date.now() }
  if (reason !== null) exit.reason = reason
  if (message !== null) exit.message = message
  // No room even so (a quota, a filesystem that copies on write): the exit is kept here, and the job
  // reported running, until there is room; a supervisor that died instead would lose it.
  const record = () => {
    try {
      writeExit(exit)
    } catch {
      setTimeout(record, 1000)
      return
    }
    process.exit(0)
  }
  record()
}
const killGroup = (sig) => {
  if (child === null || child.pid === undefined) return
  try { process.kill(-child.pid, sig) } catch {}
}
const stop = (why) => {
  if (done) return
  if (reason === null) reason = why
  killGroup("SIGTERM")
  setTimeout(() => killGroup("SIGKILL"), spec.killGraceMs).unref()
}
process.on("SIGTERM", () => stop("cancel"))
process.on("SIGINT", () => stop("cancel"))
process.on("SIGHUP", () => {})
const out = fs.openSync(path.join(dir, "stdout.log"), "a")
const err = fs.openSync(path.join(dir, "stderr.log"), "a")
try {
  child = spawn(spec.argv[0], spec.argv.slice(1), { cwd: dir, env: process.env, stdio: ["ignore", out, err], detached: true })
} catch (e) {
  reason = "spawn-error"
  message = String(e && e.message)
  finish(127, null)
}
fs.closeSync(out)
fs.closeSync(err)
child.on("error", (e) => {
  reason = "spawn-error"
  message = "could not start " + JSON.stringify(spec.argv[0]) + ": " + e.message
  finish(127, null)
})
if (child.pid !== undefined) {
  writePid({
    pid: child.pid,
    procStart: procStart(child.pid),
    supervisorPid: process.pid,
    supervisorProcStart: procStart(process.pid),
    startedAt,
    labels: spec.labels,
    gpuIds: spec.gpuIds
  })
}
const limit = spec.resources.timeLimitSeconds
if (typeof limit === "number") setTimeout(() => stop("timeout"), limit * 1000).unref()
child.on("exit", (code, signal) => {
  // Reap whatever the job left behind in its group (background workers holding a GPU).
  killGroup("SIGKILL")
  finish(code, signal)
})
`

/** The supervisor's file name: versioned by content so two package versions never clash. */
const fileName = `.trex-supervisor-${createHash("sha256").update(SOURCE).digest("hex").slice(0, 12)}.cjs`

/** Write the supervisor script under `root` (once) and return its path. */
export const installSupervisor = (root: string): string => {
  const file = Path.join(root, fileName)
  if (!Fs.existsSync(file)) {
    const tmp = `${file}.${process.pid}.tmp`
    Fs.writeFileSync(tmp, SOURCE)
    Fs.renameSync(tmp, file)
  }
  return file
}
