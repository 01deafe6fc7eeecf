// The SSH command runner (ssh2 exec + SFTP) that the Slurm and Grid Engine backends share, against the real sshd
// that scripts/services/start-sshd.sh starts (user sdktest, key-only); the backends' own tests run their logic over it.
import { execFileSync, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import * as Runner from "../src/internal/commandRunner.ts"
import { ownSshd } from "./support/ownSshd.ts"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")

/** What the runner answers, or a failure after 20 s: a callback that never resumes fails the test there, not at its timeout. */
const bounded = <A, E>(effect: Effect.Effect<A, E>) => Effect.timeout(effect, "20 seconds")

let sshdStarted = false

/** A runner over SSH as `sdktest` to the test sshd's host key on `port`. */
const runnerOn = (port: number) => {
  const keyDir = process.env["SSH_KEY_DIR"] ?? "/var/lib/trex-test-ssh"
  const hostKey = fs.readFileSync(path.join(keyDir, "known_hosts"), "utf8").trim().split(/\s+/)[2]!
  return Runner.ssh({
    host: "127.0.0.1",
    port,
    username: "sdktest",
    privateKey: Redacted.make(fs.readFileSync(path.join(keyDir, "id_ed25519"), "utf8")),
    hostKeySha256: createHash("sha256").update(Buffer.from(hostKey, "base64")).digest("base64")
  }, "test")
}

/** A runner over SSH as `sdktest` (the sshd started once), and a directory it can read holding `hello` (5 bytes), removed with the scope. */
const sshRunner = Effect.gen(function*() {
  if (!sshdStarted) execFileSync("bash", [path.join(repoRoot, "scripts/services/start-sshd.sh")], { stdio: ["ignore", "ignore", "inherit"], timeout: 300_000 })
  sshdStarted = true
  const dir = yield* Effect.acquireRelease(Effect.sync(() => fs.mkdtempSync("/tmp/trex-runner-ssh-")), (d) => Effect.sync(() => fs.rmSync(d, { recursive: true, force: true })))
  fs.chmodSync(dir, 0o755)
  const file = path.join(dir, "hello")
  fs.writeFileSync(file, "hello", { mode: 0o644 })
  const runner = yield* runnerOn(Number(process.env["TREX_TEST_SSH_PORT"] ?? 2222))
  return { runner, dir, file }
})

/**
 * A runner as `sdktest` over an sshd of the test's own (support/ownSshd.ts) whose SFTP subsystem is OpenSSH's own
 * refusing `refused` requests (`internal-sftp -P`, as an admin may start it).
 */
const sshRunnerRefusing = (refused: string) =>
  Effect.gen(function*() {
    const { dir, file } = yield* sshRunner
    const { port } = yield* ownSshd(dir, `MaxSessions 100\nSubsystem sftp internal-sftp -P ${refused}`)
    return { runner: yield* runnerOn(port), dir, file }
  })

/**
 * `createFile` of `marker` in `dir` (made writable by `sdktest`) twice: the first creates it, its text and exact mode, the
 * second answers `false` and leaves it; no temporary file is left.
 */
const createsOnce = (runner: Runner.CommandRunner, dir: string) =>
  Effect.gen(function*() {
    fs.chmodSync(dir, 0o777)
    const file = path.join(dir, "marker")
    assert.isTrue(yield* bounded(runner.createFile(file, "first\n", 0o640)))
    assert.isFalse(yield* bounded(runner.createFile(file, "second\n", 0o644)))
    assert.strictEqual(fs.readFileSync(file, "utf8"), "first\n")
    assert.strictEqual(fs.statSync(file).mode & 0o777, 0o640)
    assert.strictEqual(fs.statSync(file).nlink, 1)
    assert.deepStrictEqual(fs.readdirSync(dir).filter((f) => f.startsWith("marker")), ["marker"], "no temporary file left")
  })

/**
 * Eight `createFile`s of `file` at once, of eight lengths, while another process reads it as fast as it can: one is
 * created (whole, and kept), and the texts the reader saw.
 */
const raceOn = (runner: Runner.CommandRunner, raced: string) =>
  Effect.gen(function*() {
    const reader = spawn(process.execPath, ["-e", `
      const fs = require("node:fs"); const seen = new Set(); const until = Date.now() + 20000
      // one read more once the creates are done: a reader that starts after them still sees the file as it is
      for (let last = false; !last;) {
        last = Date.now() >= until || fs.existsSync(process.argv[1] + ".done")
        try { seen.add(fs.readFileSync(process.argv[1], "utf8")) } catch (e) { if (e.code !== "ENOENT") throw e; seen.add(null) }
      }
      process.stdout.write(JSON.stringify([...seen]))`, raced], { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    reader.stdout.on("data", (d: Buffer) => (out += d.toString()))
    const texts = Array.from({ length: 8 }, (_, i) => `{"cancel":${i},"pad":"${"x".repeat(i * 9)}"}\n`)
    const created = yield* Effect.forEach(texts, (text) => bounded(runner.createFile(raced, text, 0o644)), { concurrency: "unbounded" })
    fs.writeFileSync(raced + ".done", "")
    yield* Effect.promise(() => new Promise((resolve) => reader.once("close", resolve)))
    assert.strictEqual(created.filter((c) => c).length, 1, String(created))
    const winner = texts[created.indexOf(true)]!
    assert.strictEqual(fs.readFileSync(raced, "utf8"), winner)
    const seen = JSON.parse(out) as Array<string | null>
    assert.include(seen, winner)
    return { winner, seen }
  })

describe("CommandRunner on this machine", () => {
  it.live("exists: a file or directory is there, a missing one is not; a path it cannot look at fails, naming it", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.acquireRelease(Effect.sync(() => fs.mkdtempSync("/tmp/trex-runner-local-")), (d) => Effect.sync(() => fs.rmSync(d, { recursive: true, force: true })))
      const file = path.join(dir, "hello")
      fs.writeFileSync(file, "hello")
      const runner = Runner.local("test")
      assert.isTrue(yield* runner.exists(file))
      assert.isTrue(yield* runner.exists(dir))
      assert.isFalse(yield* runner.exists(path.join(dir, "missing")))
      assert.isFalse(yield* runner.exists(path.join(dir, "missing", "deeper")))
      // not "absent": a path through a file (ENOTDIR) says the layout is wrong
      const refused = yield* Effect.flip(runner.exists(path.join(file, "inside")))
      assert.strictEqual(refused._tag, "BackendError", String(refused))
      assert.include(refused.message, `cannot look for ${path.join(file, "inside")}: Error: ENOTDIR`)
    }).pipe(Effect.scoped))
})

describe("CommandRunner on this machine", () => {
  it.live("createFile writes a file whole and never replaces one there: the second call answers false and the first's text stays", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.acquireRelease(Effect.sync(() => fs.mkdtempSync("/tmp/trex-runner-local-")), (d) => Effect.sync(() => fs.rmSync(d, { recursive: true, force: true })))
      const file = path.join(dir, "sub", "marker")
      const runner = Runner.local("test")
      assert.isTrue(yield* runner.createFile(file, "first\n", 0o640))
      assert.isFalse(yield* runner.createFile(file, "second\n", 0o644))
      assert.strictEqual(fs.readFileSync(file, "utf8"), "first\n")
      assert.strictEqual(fs.statSync(file).mode & 0o777, 0o640)
      assert.deepStrictEqual(fs.readdirSync(path.dirname(file)), ["marker"], "no temporary file left")
    }).pipe(Effect.scoped))
})

describe("CommandRunner over SSH", () => {
  it.live("writeFile, chmod and createFile over SFTP: a file written whole, never replaced by createFile; a failure names the file", () =>
    Effect.gen(function*() {
      const { runner, dir } = yield* sshRunner
      yield* createsOnce(runner, dir)
      // root's directory that sdktest may not search
      const closed = path.join(dir, "closed")
      fs.mkdirSync(closed, { mode: 0o700 })
      for (const write of [runner.writeFile(path.join(closed, "f"), "x", 0o644), runner.createFile(path.join(closed, "f"), "x", 0o644)]) {
        const refused = yield* Effect.flip(bounded(write))
        assert.strictEqual(refused._tag, "BackendError", String(refused))
        // before the fix: "Permission denied" alone
        assert.include(refused.message, `cannot write ${path.join(closed, "f")}: Permission denied`)
      }
      // root's file that anyone may write but only root chmod
      const shared = path.join(dir, "shared")
      fs.writeFileSync(shared, "", { mode: 0o666 })
      fs.chmodSync(shared, 0o666)
      const chmod = yield* Effect.flip(bounded(runner.writeFile(shared, "x", 0o644)))
      assert.include(chmod.message, `cannot chmod ${shared}: Permission denied`)
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("createFile over an SFTP server that refuses hardlink@openssh.com and rename: created in place, whole, never replaced; of eight at once one wins and no reader sees part of it; over 4096 bytes refused", () =>
    Effect.gen(function*() {
      const { runner, dir } = yield* sshRunnerRefusing("hardlink,fsync,rename")
      // before the fallback: `cannot write <file>: Server does not support this extended request` (OpenSSH does not offer
      // a request it refuses)
      yield* createsOnce(runner, dir)
      // the reader sees no file, an empty one (between the create and the write) or the winner's text, never part of one
      const { winner, seen } = yield* raceOn(runner, path.join(dir, "raced"))
      for (const text of seen) assert.include([null, "", winner], text)
      // more than one write request (ssh2 splits one of over ~34,000 bytes) could be seen in part: refused, nothing left
      const big = path.join(dir, "big")
      const refused = yield* Effect.flip(bounded(runner.createFile(big, "x".repeat(5000), 0o644)))
      assert.include(refused.message, `cannot write ${big}: 5000 bytes, over the 4096 written in place`)
      assert.isFalse(fs.existsSync(big))
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("createFile over OpenSSH's SFTP server that refuses hardlink@openssh.com (not rename): renamed into place, whole at once, never replaced", () =>
    Effect.gen(function*() {
      // fsetstat refused too: the in-place create (its fchmod) fails there, so a created file was renamed into place
      const { runner, dir } = yield* sshRunnerRefusing("hardlink,fsync,fsetstat")
      // before the rename: `cannot write <file>: Permission denied` (the in-place create's fchmod)
      yield* createsOnce(runner, dir)
      // never seen empty: no create in place
      const { winner, seen } = yield* raceOn(runner, path.join(dir, "raced"))
      for (const text of seen) assert.include([null, winner], text)
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("createFile in place whose mode cannot be set (fsetstat refused) fails naming the file and leaves the empty file it made, not removing it by name", () =>
    Effect.gen(function*() {
      const { runner, dir } = yield* sshRunnerRefusing("hardlink,fsync,rename,fsetstat")
      fs.chmodSync(dir, 0o777)
      const file = path.join(dir, "marker")
      const failed = yield* Effect.flip(bounded(runner.createFile(file, "first\n", 0o640)))
      assert.include(failed.message, `cannot write ${file}`)
      // before the fix it was unlinked by name: by then perhaps another's (a cleaner of empty files, then another create)
      assert.strictEqual(fs.readFileSync(file, "utf8"), "")
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("readFrom of 0 bytes (a look for a file) answers and keeps the connection; a read ssh2 or Node refuses by throwing fails, not hangs", () =>
    Effect.gen(function*() {
      const { runner, dir, file } = yield* sshRunner
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
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("exists over SFTP: a file or directory is there, a missing one is not; one the user may not look at fails, naming it, and the connection stays", () =>
    Effect.gen(function*() {
      const { runner, dir, file } = yield* sshRunner
      assert.isTrue(yield* bounded(runner.exists(file)))
      assert.isTrue(yield* bounded(runner.exists(dir)))
      assert.isFalse(yield* bounded(runner.exists(path.join(dir, "missing"))))
      assert.isFalse(yield* bounded(runner.exists(path.join(dir, "missing", "deeper"))))
      // unlike this machine's runner: OpenSSH's sftp-server reports a path through a file (ENOTDIR) and a symbolic link
      // loop (ELOOP) as NO_SUCH_FILE, which cannot be told from absence (the runner's doc says so)
      fs.symlinkSync("loop", path.join(dir, "loop"))
      for (const odd of [path.join(file, "inside"), path.join(dir, "loop")]) {
        assert.isFalse(yield* bounded(runner.exists(odd)), odd)
        assert.isUndefined(yield* bounded(runner.readFrom(odd, 0, 64)), odd)
      }
      // root's directory that sdktest may not search: PERMISSION_DENIED, not "absent"
      const closed = path.join(dir, "closed")
      fs.mkdirSync(closed, { mode: 0o700 })
      fs.writeFileSync(path.join(closed, "secret"), "x")
      const refused = yield* Effect.flip(bounded(runner.exists(path.join(closed, "secret"))))
      assert.strictEqual(refused._tag, "BackendError", String(refused))
      assert.include(refused.message, `cannot look for ${path.join(closed, "secret")}: Permission denied`)
      assert.isTrue(yield* bounded(runner.exists(file)))
    }).pipe(Effect.scoped), { timeout: 60_000 })
})
