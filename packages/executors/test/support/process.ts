// Whether a process is gone: no such process, or a zombie nobody has reaped yet (a killed job
// whose supervisor has not collected it counts as gone). Used by the backends' and the CLI's tests.
import * as Fs from "node:fs"

export const gone = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch {
    return true
  }
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")
  } catch {
    return true
  }
}
