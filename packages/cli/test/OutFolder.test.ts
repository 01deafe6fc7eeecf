// The real CLI given a folder for runs (--out) where no folder can be made: in /sys (sysfs, which makes
// none, as /proc's), on a read-only mount, in a folder made immutable (chattr +i), and in another user's
// folder (as `nobody` through setpriv, as root runs CI). Each exits 2 at once, before any trial, naming
// --out, the folder mkdir refused, why, and the fix (finding CV's Left: each said `<code>: name a
// directory you can write`, the same for all). In a cgroup filesystem (the real /sys/fs/cgroup), where
// root's mkdir makes a control group, and on bpf, nothing is tried: each is named, nothing is made; in a
// cgroup delegated to the user too (its own to make groups in), where no file can be made all the same.
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import * as RunDir from "../src/RunDir.ts"

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

  it("in a cgroup filesystem (the real /sys/fs/cgroup), and on bpf, as root or not, detached too: nothing is made, the filesystem is named", () => {
    // the cgroup2 (unified) and cgroup v1 hierarchies mounted here, as /proc/self/mountinfo lists them: their first of each
    const mounts = new Map<string, string>()
    for (const line of fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
      const [fields, after] = line.split(" - ")
      const type = after?.split(" ")[0]
      if ((type === "cgroup" || type === "cgroup2") && !mounts.has(type)) mounts.set(type, fields!.split(" ")[4]!)
    }
    assert.isAbove(mounts.size, 0, "no cgroup filesystem mounted")
    // and a bpf filesystem, mounted for the test (mkdir makes folders there, for root and for others)
    const bpf = fs.mkdtempSync(path.join(os.tmpdir(), "trex-bpf-"))
    fs.chmodSync(bpf, 0o755)
    execFileSync("mount", ["-t", "bpf", "bpf", bpf])
    const before = new Map([...mounts.values(), bpf].map((mount) => [mount, fs.readdirSync(mount)]))
    try {
      const why = (type: string) => type === "bpf" ? "its folders hold pinned BPF objects, not files" : "its folders are control groups, which hold no files"
      for (const [type, mount] of [...mounts, ["bpf", bpf] as const]) {
        for (const as of [undefined, "nobody"] as const) {
          // the folder itself: the run directory is what would be made
          const inside = run(mount, as !== undefined ? { as } : {})
          const runDir = inside.stderr.match(/^trex: cannot make the run directory (\S+) /)?.[1] ?? "?"
          refused(inside, mount, `cannot make ${runDir}: ${mount} is on ${type}, the kernel's: ${why(type)}: ${elsewhere}`)
          // a folder in it, to make
          const out = path.join(mount, `trex-runs-${process.pid}`)
          refused(run(out, as !== undefined ? { as } : {}), out, `cannot make ${out}: ${mount} is on ${type}, the kernel's: ${why(type)}: ${elsewhere}`)
        }
        const detached = run(mount, { detach: true })
        assert.strictEqual(detached.status, 2, detached.stdout + detached.stderr)
        assert.match(detached.stderr, new RegExp(`^trex: cannot write the detached controller's output to ${mount}/\\.trex-detached-\\S+: ${mount} is on ${type}, `))
        // no control group (or folder) made
        assert.deepStrictEqual(fs.readdirSync(mount), before.get(mount) ?? [], type)
      }
    } finally {
      // a control group made (by a trex that tried) is removed, as rmdir removes one
      for (const [mount, names] of before) {
        if (mount !== bpf) for (const name of fs.readdirSync(mount)) if (!names.includes(name)) fs.rmdirSync(path.join(mount, name))
      }
      execFileSync("umount", ["-l", bpf])
      fs.rmSync(bpf, { recursive: true, force: true })
    }
  })

  it("in a cgroup delegated to this user (its own to make groups in, as systemd's Delegate= hands one over): refused as any, nothing made", () => {
    const unified = fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n").find((l) => l.split(" - ")[1]?.startsWith("cgroup2 "))?.split(" ")[4]
    assert.isDefined(unified, "no cgroup2 mounted")
    const group = path.join(unified!, `trex-delegated-${process.pid}`)
    fs.mkdirSync(group)
    try {
      execFileSync("chown", ["-R", `${NOBODY}:${NOBODY}`, group])
      // delegated: nobody makes a control group there itself
      execFileSync("setpriv", [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", "mkdir", path.join(group, "probe")])
      fs.rmdirSync(path.join(group, "probe"))
      const before = fs.readdirSync(group)
      for (const out of [group, path.join(group, "runs")]) {
        const r = run(out, { as: "nobody" })
        const made = out === group ? r.stderr.match(/^trex: cannot make the run directory (\S+) /)?.[1] ?? "?" : out
        refused(r, out, `cannot make ${made}: ${group} is on cgroup2, the kernel's: its folders are control groups, which hold no files: ${elsewhere}`)
      }
      assert.deepStrictEqual(fs.readdirSync(group), before)
    } finally {
      for (const name of fs.readdirSync(group)) if (fs.statSync(path.join(group, name)).isDirectory()) fs.rmdirSync(path.join(group, name))
      fs.rmdirSync(group)
    }
  })

  it("RunDir.makeFolders names each of the kernel's other filesystems (mounted for the test), trying mkdir only where the kernel refuses it", () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), "trex-kernel-"))
    const refusal = (out: string) => {
      try {
        RunDir.makeFolders(out)
        return "made"
      } catch (e) {
        return (e as Error).message
      }
    }
    try {
      // those this kernel has (/proc/filesystems), tracefs among them
      const known = new Set(fs.readFileSync("/proc/filesystems", "utf8").split("\n").map((l) => l.split("\t").at(-1)))
      const types = ["tracefs", "mqueue", "binfmt_misc", "fusectl", "debugfs", "securityfs", "pstore"].filter((t) => known.has(t))
      assert.include(types, "tracefs")
      for (const type of types) {
        const mount = path.join(base, type)
        fs.mkdirSync(mount)
        execFileSync("mount", ["-t", type, type, mount])
        try {
          const out = path.join(mount, "trex-runs")
          assert.strictEqual(
            refusal(out),
            type === "tracefs"
              ? `cannot make ${out}: ${mount} is on tracefs, the kernel's: its folders are trace instances, which hold no files: ${elsewhere}`
              : `cannot make ${out}: mkdir answers EPERM in ${mount}: its filesystem (${type}, the kernel's) makes no folders: ${elsewhere}`
          )
        } finally {
          execFileSync("umount", ["-l", mount])
        }
      }
    } finally {
      fs.rmSync(base, { recursive: true, force: true })
    }
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
