// Vitest global setup: start the real engines the integration tests use (Docker Engine, sshd on 127.0.0.1:2222,
// a single-node Slurm cluster) and install Chromium for the HTML report tests, so that `npm test` on a fresh
// machine runs the whole suite, as CI does. Both scripts are idempotent: with everything up this takes about 2 s.
// They need root or passwordless sudo (they install Debian packages). When they cannot run, the suite still
// starts: the unit tests run, and each test that needs a missing engine fails, naming the script to run.
// TREX_TEST_SERVICES=0 skips this step (for a machine whose engines are managed otherwise).
import { spawnSync } from "node:child_process"
import * as os from "node:os"
import { fileURLToPath } from "node:url"

const script = (path: string) => fileURLToPath(new URL(`../../scripts/${path}`, import.meta.url))

const run = (what: string, file: string): void => {
  const root = os.userInfo().uid === 0
  const [cmd, args] = root ? ["bash", [file]] : ["sudo", ["-n", "bash", file]]
  const started = Date.now()
  const r = spawnSync(cmd, args, { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" })
  const seconds = ((Date.now() - started) / 1000).toFixed(1)
  if (r.status === 0) {
    if (Date.now() - started > 5000) process.stderr.write(`[test setup] ${what}: ready (${seconds} s)\n`)
    return
  }
  const tail = (r.stderr ?? String(r.error ?? "")).trim().split("\n").slice(-12).join("\n")
  process.stderr.write(
    `[test setup] ${what} failed (${root ? "" : "not root, and sudo -n was refused; "}exit ${r.status ?? r.error}):\n${tail}\n` +
      `[test setup] the tests that need it will fail; run \`sudo bash ${file}\` and try again\n`
  )
}

export default function setup(): void {
  if (process.env.TREX_TEST_SERVICES === "0") return
  run("Docker Engine, sshd and Slurm (scripts/services/start-all.sh)", script("services/start-all.sh"))
  run("Chromium (scripts/install-chromium.sh)", script("install-chromium.sh"))
}
