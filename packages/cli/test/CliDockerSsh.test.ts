// `trex run` on a Docker engine reached over ssh:// (the real Docker Engine through an sshd of the test's own): the
// process ends when its run does, its SSH connections closed with the backend rather than left to their idle times.
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { eventually } from "../../executors/test/support/eventually.ts"
import { gone } from "../../executors/test/support/process.ts"
import { logins, ownSshd, sshKeys } from "../../executors/test/support/ownSshd.ts"
import { bin, root, tmp, writeTask } from "./support/cli.ts"

const IMAGE = process.env["TREX_TEST_DOCKER_IMAGE"] ?? "local/busybox:latest"

describe("trex CLI on an ssh:// Docker engine", () => {
  it.live("`trex run` with DOCKER_HOST=ssh://... runs its trial through one SSH login, and its process exits as the run ends", () =>
    Effect.gen(function*() {
      const dir = tmp()
      const sshd = yield* ownSshd(dir, "MaxSessions 100")
      const task = writeTask(dir, "task.yaml", [
        "name: over-ssh",
        "objective: one trial on a Docker engine reached over ssh://",
        "metric: { name: score, direction: maximize }",
        "budget: { maxTrials: 1 }",
        "recipe:",
        `  command: ["sh", "-c", "echo '{\\"metrics\\":{\\"score\\":1},\\"primary\\":1}' > \\"$TREX_JOB_DIR/result.json\\""]`,
        `  image: ${IMAGE}`,
        "  resources: { cpus: 1, timeLimitSeconds: 60 }",
        "searchSpace:",
        "  parameters:",
        "    - { path: training.epochs, kind: ordinal, values: [1, 2] }",
        "defaultStrategy:",
        "  data: { sources: [{ name: toy }] }",
        "  training: { learningRate: 0.0001, epochs: 1, batchSize: 8 }",
        "backend:",
        "  kind: docker",
        `  docker: { ssh: { privateKeyPath: ${sshKeys}/id_ed25519, knownHostsPath: ${sshd.knownHosts} } }`,
        ""
      ].join("\n"))
      const child = spawn(process.execPath, ["--conditions=@trex/source", bin, "run", task, "--out", path.join(dir, "out")], {
        cwd: root,
        env: { ...process.env, DOCKER_HOST: `ssh://root@127.0.0.1:${sshd.port}` },
        stdio: ["ignore", "pipe", "pipe"]
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL")))
      let stdout = ""
      let stderr = ""
      child.stdout.on("data", (d) => (stdout += d))
      child.stderr.on("data", (d) => (stderr += d))
      const status = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
      // the run's last line (its report), then the process's end: a failure guard, far above the ~0.1 s it takes, and
      // below the 25 s that the pool's idle times (a session 15 s, then its connection 10 s) would hold the process
      yield* eventually(`the run ends (its report is said): ${stdout}${stderr}`, () => /^report: /m.test(stdout) || child.exitCode !== null, 120)
      yield* eventually(`the trex process exits once its run ended (an SSH connection holding it?): ${stdout}${stderr}`, () => gone(child.pid!) && child.exitCode !== null, 20)
      assert.strictEqual(yield* Effect.promise(() => status), 0, stderr)
      assert.match(stdout, /^Trials: 1 succeeded, 0 failed/m)
      const runDir = /run directory: (.*)/.exec(stdout)![1]!
      assert.isTrue(fs.existsSync(path.join(runDir, "jobs", "n1", "result.json")), "the container wrote its result")
      // the run's requests (ping, create, start, logs, inspects, removal...) through one login of the pool
      assert.strictEqual(logins(sshd.log), 1, fs.readFileSync(sshd.log, "utf8"))
    }).pipe(Effect.scoped), 180_000)
})
