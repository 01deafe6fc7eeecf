// The real CLI given a folder for runs (--out) where no folder can be made: in /sys (sysfs, which makes
// none, as /proc's), on a read-only mount, in a folder made immutable (chattr +i), and in another user's
// folder (as `nobody` through setpriv, as root runs CI). Each exits 2 at once, before any trial, naming
// --out, the folder mkdir refused, why, and the fix (finding CV's Left: each said `<code>: name a
// directory you can write`, the same for all).
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"

const root = path.resolve(import.meta.dirname, "../../..")
const bin = path.join(root, "packages/cli/src/bin.ts")
const toyTask = path.join(import.meta.dirname, "fixtures", "toy.task.yaml")
const NOBODY = "65534"

/** `trex run` of the toy task into `out`, as root or as `nobody`. */
const run = (out: string, options: { readonly as?: "nobody"; readonly detach?: boolean } = {}) => {
  const command = [process.execPath, "--conditions=@trex/source", bin, "run", toyTask, "--out", out, "--max-trials", "1", ...(options.detach === true ? ["--detach"] : [])]
  const [file, ...rest] = options.as === "nobody" ? ["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", ...command] : command
  return spawnSync(file!, rest, { cwd: root, encoding: "utf8", env: { ...process.env, HOME: os.tmpdir() }, timeout: 60_000, killSignal: "SIGKILL" })
}

/** What trex run says when it cannot make its run directory under `out`: its lead, naming --out, then why. */
const refused = (r: ReturnType<typeof run>, out: string, why: string) => {
  assert.strictEqual(r.signal, null, "trex run hung")
  assert.strictEqual(r.status, 2, r.stdout + r.stderr)
  assert.strictEqual(r.stdout, "")
  const lead = `trex: cannot make the run directory ${out}/`
  assert.isTrue(r.stderr.startsWith(lead), r.stderr)
  assert.match(r.stderr.slice(lead.length), /^\d{8}-\d{6}-toy under /)
  assert.strictEqual(r.stderr.slice(r.stderr.indexOf(" under ")), ` under ${out} (--out): ${why}\n`)
}

const elsewhere = "name a folder on a disk you can write (e.g. trex-runs)"

describe("trex run: a folder for runs where no folder can be made", { timeout: 120_000 }, () => {
  it("in /sys, made or to make, as root or not, detached too: its filesystem makes no folders", () => {
    // sysfs answers EPERM, and EACCES to another user (EROFS to both where it is mounted read-only, as in some containers)
    const answer = (r: ReturnType<typeof run>, codes: ReadonlyArray<string>) => {
      const code = r.stderr.match(/mkdir answers (\w+) in \/sys/)?.[1]
      assert.include([...codes, "EROFS"], code, r.stderr)
      return code
    }
    const out = `/sys/trex-runs-${process.pid}`
    const sys = run(out)
    const code = answer(sys, ["EPERM"])
    refused(sys, out, `cannot make ${out}: mkdir answers ${code} in /sys: its filesystem (sysfs, the kernel's) makes no folders: ${elsewhere}`)
    // a folder of /sys that exists: the run directory is what mkdir refuses
    const kernel = run("/sys/kernel")
    const runDir = kernel.stderr.match(/^trex: cannot make the run directory (\S+) /)?.[1] ?? "?"
    refused(kernel, "/sys/kernel", `cannot make ${runDir}: mkdir answers ${code} in /sys/kernel: its filesystem (sysfs, the kernel's) makes no folders: ${elsewhere}`)
    // another user is refused by the permissions first (EACCES): still the filesystem, not the permission, is said
    const theirs = run(out, { as: "nobody" })
    refused(theirs, out, `cannot make ${out}: mkdir answers ${answer(theirs, ["EACCES"])} in /sys: its filesystem (sysfs, the kernel's) makes no folders: ${elsewhere}`)
    const detached = run(out, { detach: true })
    assert.strictEqual(detached.status, 2, detached.stdout + detached.stderr)
    assert.match(detached.stderr, new RegExp(`^trex: cannot write the detached controller's output to ${out}/\\.trex-detached-\\S+: `))
    assert.isTrue(detached.stderr.endsWith(`: cannot make ${out}: mkdir answers ${code} in /sys: its filesystem (sysfs, the kernel's) makes no folders: ${elsewhere}\n`), detached.stderr)
    assert.isFalse(fs.existsSync(out))
  })

  it("on a read-only mount, in an immutable folder, in another user's folder: each says why and its own fix", () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), "trex-out-"))
    fs.chmodSync(base, 0o755)
    const readOnly = path.join(base, "ro")
    const immutable = path.join(base, "frozen")
    const theirs = path.join(base, "theirs")
    for (const dir of [readOnly, immutable, theirs]) fs.mkdirSync(dir, { mode: 0o755 })
    execFileSync("mount", ["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", readOnly])
    execFileSync("chattr", ["+i", immutable])
    try {
      const nested = path.join(readOnly, "runs")
      refused(run(nested), nested, `cannot make ${nested}: ${readOnly} is on a read-only filesystem (EROFS): ${elsewhere}, or remount it read-write`)
      const frozen = run(immutable)
      const runDir = frozen.stderr.match(/^trex: cannot make the run directory (\S+) /)?.[1] ?? "?"
      refused(
        frozen,
        immutable,
        `cannot make ${runDir}: mkdir answers EPERM in ${immutable}: it is immutable (chattr +i: \`lsattr -d ${immutable}\` shows an i), ` +
          `or its filesystem forbids new folders: as root, chattr -i ${immutable}; or ${elsewhere}`
      )
      const mine = path.join(theirs, "runs")
      refused(
        run(mine, { as: "nobody" }),
        mine,
        `cannot make ${mine}: this user may not write ${theirs} (EACCES: owned by uid 0, this is uid ${NOBODY}): ` +
          `name a folder this user may write (e.g. trex-runs), or run trex as the user who owns it`
      )
      assert.deepStrictEqual([fs.readdirSync(readOnly), fs.readdirSync(immutable), fs.readdirSync(theirs)], [[], [], []])
    } finally {
      execFileSync("chattr", ["-i", immutable])
      execFileSync("umount", ["-l", readOnly])
      fs.rmSync(base, { recursive: true, force: true })
    }
  })
})
