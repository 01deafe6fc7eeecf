/**
 * scripts/services/lib.sh's `wait_for SECONDS CMD...`, which the start-*.sh scripts wait for their daemons with, run by
 * a real bash on shell functions as those scripts give it: a try that hangs (a daemon that takes the connection and
 * never answers) is killed, with the command it started, once the time is up, rather than hanging the script.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, assert, describe, it } from "vitest"

const lib = path.resolve(import.meta.dirname, "../scripts/services/lib.sh")
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-wait-for-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

/** `script` run by bash with lib.sh sourced, under `set -euo pipefail` as the start scripts run; a bash that has not ended in 30 s is killed. */
const bash = (script: string) => {
  const r = spawnSync("bash", ["-c", `set -euo pipefail\n. ${lib}\n${script}`], { cwd: dir, encoding: "utf8", timeout: 30_000 })
  assert.isNull(r.signal, `bash did not end in 30 s (killed by ${r.signal}): wait_for hung. stdout: ${r.stdout} stderr: ${r.stderr}`)
  return r
}

/** The process runs (a killed one may stay a zombie a moment, until whoever inherited it reaps it: not running). */
const alive = (pid: number) => {
  const stat = fs.existsSync(`/proc/${pid}/stat`) ? fs.readFileSync(`/proc/${pid}/stat`, "utf8") : ""
  return stat !== "" && !/^\d+ \(.*\) Z /.test(stat)
}

describe("wait_for", () => {
  it("kills a try that hangs, and the command it started, when the time is up, and fails", () => {
    const pidFile = path.join(dir, "hung.pid")
    try {
      // a shell function whose command never answers (as `curl` or `docker info` on a daemon that hangs)
      const r = bash(`hangs() { sh -c 'echo $$ > ${pidFile}; exec sleep 600'; }\nwait_for 1 hangs && echo "succeeded" || echo "failed: $?"`)
      assert.strictEqual(r.stdout, "failed: 137\n", r.stderr)
      assert.strictEqual(r.stderr, "")
      const pid = Number(fs.readFileSync(pidFile, "utf8"))
      assert.isFalse(alive(pid), `the hung command (process ${pid}) still runs`)
    } finally {
      if (fs.existsSync(pidFile)) {
        const pid = Number(fs.readFileSync(pidFile, "utf8"))
        if (alive(pid)) process.kill(pid, "SIGKILL")
      }
    }
  })

  it("retries a shell function until it succeeds, its output hidden, and gives the last try's status when none does", () => {
    const count = path.join(dir, "tries")
    const r = bash([
      `third() { n=$(( $(cat ${count} 2>/dev/null || echo 0) + 1 )); echo $n > ${count}; echo "try $n"; [ "$n" -ge 3 ]; }`,
      `wait_for 20 third && echo "succeeded at try $(cat ${count})"`,
      `fails() { echo no; return 3; }`,
      `wait_for 0 fails || echo "failed: $?"`,
      // the shell's job control is as it was
      `case $- in *m*) echo "job control on" ;; esac`
    ].join("\n"))
    assert.strictEqual(r.stdout, "succeeded at try 3\nfailed: 3\n", r.stderr)
    assert.strictEqual(r.stderr, "")
  })
})
