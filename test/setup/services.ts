// Vitest global setup: start the real engines the integration tests use (Docker Engine, Podman's Docker-compatible
// API, sshd on 127.0.0.1:2222, a single-node Slurm cluster, a single-host Grid Engine cluster) with scripts/services/start-all.sh, so that `npm test` on a fresh machine runs the
// whole suite, as CI does. (Chromium for the report tests is installed by their own support,
// packages/cli/test/support/browser.ts, when it is missing.) The script is idempotent: with everything up it takes
// about 2 s. It needs root or passwordless sudo (it installs Debian packages). When it cannot run, the suite still
// starts: the unit tests run, and each test that needs a missing engine fails, naming the script to run.
// TREX_TEST_SERVICES=0 skips this step (for a machine whose engines are managed otherwise).
import { spawnSync } from "node:child_process"
import * as os from "node:os"
import { fileURLToPath } from "node:url"

const START_ALL = fileURLToPath(new URL("../../scripts/services/start-all.sh", import.meta.url))

export default function setup(): void {
  if (process.env.TREX_TEST_SERVICES === "0") return
  const root = os.userInfo().uid === 0
  const [cmd, args] = root ? ["bash", [START_ALL]] : ["sudo", ["-n", "bash", START_ALL]]
  const started = Date.now()
  const r = spawnSync(cmd, args, { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" })
  const seconds = (Date.now() - started) / 1000
  if (r.status === 0) {
    if (seconds > 5) process.stderr.write(`[test setup] Docker Engine, Podman, sshd, Slurm and Grid Engine ready (${seconds.toFixed(1)} s)\n`)
    return
  }
  const tail = (r.stderr ?? String(r.error ?? "")).trim().split("\n").slice(-12).join("\n")
  process.stderr.write(
    `[test setup] ${root ? "" : "sudo -n "}bash ${START_ALL} failed (exit ${r.status ?? r.error}):\n${tail}\n` +
      `[test setup] the tests that need Docker, Podman, sshd, Slurm or Grid Engine will fail; run \`sudo bash ${START_ALL}\` and try again\n`
  )
}
