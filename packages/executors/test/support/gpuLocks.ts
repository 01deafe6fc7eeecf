/**
 * What the tests of the Grid Engine job script's GPU locks share (GridEngineScript.test.ts, on the script alone, and
 * GridEngineBackend.test.ts, on the real Grid Engine): scratch directories, live processes no job started, and locks
 * planted as a job writes them. `cleanup` removes and ends them (each file calls it after its tests).
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"

/** A process's start time: field 22 of /proc/<pid>/stat, counted after the `comm` field's last ')' (a name may hold spaces and parens). */
export const startTime = (pid: number): string => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!
}
export const bootId = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim()

/** The directories the tests make (the locks they plant among them), and the processes they start. */
const made: Array<string> = []
const sleepers: Array<ChildProcess> = []
/** Ends the processes and removes the directories made so far. */
export const cleanup = () => {
  for (const p of sleepers.splice(0)) p.kill("SIGKILL")
  for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true })
}
/** A process to end at cleanup. */
export const kept = <P extends ChildProcess>(p: P): P => {
  sleepers.push(p)
  return p
}
export const tempDir = (prefix: string) => {
  const d = fs.mkdtempSync(`/tmp/${prefix}`)
  made.push(d)
  return d
}
export const lockDir = () => tempDir("trex-ge-locks-")
/** A live process that no job started: a pid a killed job's lock may come to name once pids wrap. */
export const sleeper = () => kept(spawn("sleep", ["600"], { stdio: "ignore" })).pid!
/**
 * Lock `gpu<i>` under `locks` as a job writes it: `owner` (pid, start time, boot id), and `pid` alone for the job
 * scripts of an earlier TREX. `start` omitted: the lock of an earlier TREX (`pid` only).
 */
export const plant = (locks: string, i: number, pid: number, start?: string) => {
  const dir = path.join(locks, `gpu${i}`)
  fs.mkdirSync(dir, { recursive: true })
  if (start !== undefined) fs.writeFileSync(path.join(dir, "owner"), `${pid} ${start} ${bootId}\n`)
  fs.writeFileSync(path.join(dir, "pid"), `${pid}\n`)
  return dir
}
