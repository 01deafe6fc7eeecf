// The Kubernetes job's container command (`wrapperScript`), run by the machine's /bin/sh on no cluster: what it prints
// when the cancel's SIGTERM comes before the job's command has started. The backend against the fake API is
// KubernetesBackend.test.ts.
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as K8sJob from "../src/internal/k8sJob.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-k8s-wrapper-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

/** The pids of the processes whose parent is `pid`. */
const childrenOf = (pid: number): Array<{ pid: number; comm: string }> =>
  fs.readdirSync("/proc").filter((e) => /^\d+$/.test(e)).flatMap((e) => {
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, "utf8")
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      return ppid === pid ? [{ pid: Number(e), comm }] : []
    } catch {
      return []
    }
  })

describe("the Kubernetes job's wrapper", () => {
  it("marks a SIGTERM that comes while the job's files are copied, and never runs the command to its own end", async () => {
    // the job's one file is a FIFO, so the copy (`cat`) waits on it until the test opens it: the signal comes then
    const spec = fs.mkdtempSync(path.join(dir, "spec-"))
    const job = path.join(dir, "job")
    const fifo = path.join(spec, "f0")
    assert.strictEqual(spawnSync("mkfifo", [fifo]).status, 0)
    const ran = path.join(dir, "ran")
    const command = `sleep 0.3; echo ran > '${ran}'; echo '{"metrics":{}}' > result.json`
    const sh = spawn("/bin/sh", ["-c", K8sJob.wrapperScript([{ path: "train.py" }]), "trex-job", "sh", "-c", command], {
      env: { ...process.env, TREX_JOB_DIR: job, TREX_SPEC_DIR: spec },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let out = ""
    sh.stdout.on("data", (b: Buffer) => out += b.toString())
    const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      sh.on("exit", (code, signal) => resolve({ code, signal }))
    )
    try {
      for (let i = 0; !childrenOf(sh.pid!).some((c) => c.comm === "cat"); i++) {
        assert.isBelow(i, 400, `the copy never started: ${out}`)
        await new Promise((r) => setTimeout(r, 50))
      }
      sh.kill("SIGTERM")
      // the copy ends (a writer opens the FIFO and closes it), and the shell goes on: its trap has the signal
      fs.closeSync(fs.openSync(fifo, "w"))
      const end = await ended
      // before, the trap was set only once the command had started: a SIGTERM here killed this shell (as pid 1 of a
      // container, the kernel dropped it, and the command ran to its own end with no mark in the log)
      assert.deepStrictEqual(end, { code: 143, signal: null }, out)
      assert.include(out, `\n${K8sJob.TERM_MARKER}\n`)
      assert.notInclude(out, K8sJob.RESULT_MARKER)
      await new Promise((r) => setTimeout(r, 500))
      assert.isFalse(fs.existsSync(ran), "the command ran")
    } finally {
      sh.kill("SIGKILL")
    }
  })
})
