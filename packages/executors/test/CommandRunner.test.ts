// The SSH command runner (ssh2 exec + SFTP) that the Slurm and Grid Engine backends share, against the real sshd
// that scripts/services/start-sshd.sh starts (user sdktest, key-only); the backends' own tests run their logic over it.
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import * as Runner from "../src/internal/commandRunner.ts"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")

/** What the runner answers, or a failure after 20 s: a callback that never resumes fails the test there, not at its timeout. */
const bounded = <A, E>(effect: Effect.Effect<A, E>) => Effect.timeout(effect, "20 seconds")

describe("CommandRunner over SSH", () => {
  it.live("readFrom of 0 bytes (a look for a file) answers and keeps the connection; a read ssh2 or Node refuses by throwing fails, not hangs", () =>
    Effect.gen(function*() {
      execFileSync("bash", [path.join(repoRoot, "scripts/services/start-sshd.sh")], { stdio: ["ignore", "ignore", "inherit"], timeout: 300_000 })
      const keyDir = process.env["SSH_KEY_DIR"] ?? "/var/lib/trex-test-ssh"
      const hostKey = fs.readFileSync(path.join(keyDir, "known_hosts"), "utf8").trim().split(/\s+/)[2]!
      const dir = fs.mkdtempSync("/tmp/trex-runner-ssh-")
      fs.chmodSync(dir, 0o755)
      const file = path.join(dir, "hello")
      fs.writeFileSync(file, "hello", { mode: 0o644 })
      const runner = yield* Runner.ssh({
        host: "127.0.0.1",
        port: Number(process.env["TREX_TEST_SSH_PORT"] ?? 2222),
        username: "sdktest",
        privateKey: Redacted.make(fs.readFileSync(path.join(keyDir, "id_ed25519"), "utf8")),
        hostKeySha256: createHash("sha256").update(Buffer.from(hostKey, "base64")).digest("base64")
      }, "test")
      // before the fix, ssh2 threw "offset is out of bounds" inside the fstat callback: the connection closed, the read never answered
      assert.deepStrictEqual(yield* bounded(runner.readFrom(file, 0, 0)), new Uint8Array(0))
      assert.deepStrictEqual(yield* bounded(runner.readFrom(file, 2, 0)), new Uint8Array(0))
      assert.deepStrictEqual(yield* bounded(runner.readFrom(file, 5, 64)), new Uint8Array(0))
      assert.strictEqual(yield* bounded(runner.readFrom(file, 9, 0)), "truncated")
      assert.isUndefined(yield* bounded(runner.readFrom(path.join(dir, "missing"), 0, 0)))
      // a throw inside an ssh2 callback (here Node's Buffer.alloc refusing NaN) is the read's failure
      const refused = yield* Effect.flip(bounded(runner.readFrom(file, 0, Number.NaN)))
      assert.strictEqual(refused._tag, "BackendError", String(refused))
      assert.include(refused.message, `${file}: The value of "size" is out of range`)
      // the connection is still there
      assert.strictEqual(Buffer.from((yield* bounded(runner.readFrom(file, 1, 64))) as Uint8Array).toString(), "ello")
      assert.strictEqual((yield* bounded(runner.exec("cat", [file]))).stdout, "hello")
      fs.rmSync(dir, { recursive: true, force: true })
    }).pipe(Effect.scoped), { timeout: 60_000 })
})
