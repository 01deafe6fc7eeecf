// The real CLI on a run directory this user may not read or write (finding BT): another user's run
// (the commands run as `nobody` through setpriv, as root runs CI), and a run made immutable
// (`chattr +i`, which stops root too). Each is said as such, naming the path and the fix (exit 2),
// not as a folder that is no run, a damaged journal or a failed lock; nothing of the run changes. fsck's
// lost+found, closed to all but root at the root of a disk mounted for runs (a loop-mounted ext4 image),
// holds no run, and is not said; nor is a desktop's trash there (.Trash-<uid>, closed to all but that user), nor
// any closed folder at a filesystem's root not named as a run (snapper's .snapshots and a NAS's #recycle on btrfs).
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as RunDir from "../src/RunDir.ts"

const root = path.resolve(import.meta.dirname, "../../..")
const bin = path.join(root, "packages/cli/src/bin.ts")
const toyTask = path.join(import.meta.dirname, "fixtures", "toy.task.yaml")
const NOBODY = "65534"
const INSTALL = path.join(root, "scripts", "install-debian.sh")

/**
 * A compile cache of nobody's own for the CLI's starts as nobody, who may not write root's (NODE_COMPILE_CACHE, set by vitest.config.ts): each start
 * after the first compiles nothing again, as root's do.
 */
const nobodyCache = fs.mkdtempSync(path.join(os.tmpdir(), "trex-access-cache-"))
fs.chownSync(nobodyCache, Number(NOBODY), Number(NOBODY))
afterAll(() => fs.rmSync(nobodyCache, { recursive: true, force: true }))

/** The CLI as root, or with `as: "nobody"` as that user (setpriv). */
const trex = (args: ReadonlyArray<string>, options: { readonly as?: "nobody"; readonly home?: string } = {}) => {
  const command = [process.execPath, "--conditions=@trex/source", bin, ...args]
  const [file, ...rest] = options.as === "nobody"
    ? ["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", ...command]
    : command
  return spawnSync(file!, rest, {
    cwd: root,
    encoding: "utf8",
    env: {
      ...process.env,
      TREX_TOY_MS: "30",
      ...(options.home !== undefined ? { HOME: options.home } : {}),
      ...(options.as === "nobody" ? { NODE_COMPILE_CACHE: nobodyCache } : {})
    },
    timeout: 120_000
  })
}

/** A real run of the toy task, finished, in a folder every user may enter. */
const finishedRun = () => {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), "trex-access-"))
  fs.chmodSync(folder, 0o755)
  const run = trex(["run", toyTask, "--out", folder, "--max-trials", "2", "--concurrency", "1"])
  assert.strictEqual(run.status, 0, run.stdout + run.stderr)
  return { folder, runDir: run.stdout.match(/run directory: (.*)/)![1]! }
}

/**
 * A disk mounted for runs: a 16 MiB ext4 image (mkfs.ext4), or a 128 MiB btrfs one (mkfs.btrfs, its least; btrfs-progs
 * installed first when missing), sparse, loop-mounted at `<base>/runs`, its root open to all; `umount -l` it after.
 */
const mountedDisk = (kind: "ext4" | "btrfs" = "ext4") => {
  if (kind === "btrfs") execFileSync("sh", [INSTALL, "/usr/bin/btrfs", "btrfs-progs"], { stdio: "inherit" })
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "trex-disk-"))
  fs.chmodSync(base, 0o755)
  const image = path.join(base, "disk.img")
  const disk = path.join(base, "runs")
  fs.mkdirSync(disk)
  fs.writeFileSync(image, Buffer.alloc(0))
  fs.truncateSync(image, (kind === "ext4" ? 16 : 128) * 1024 * 1024)
  execFileSync(`mkfs.${kind}`, ["-q", ...(kind === "ext4" ? ["-F"] : []), image], { env: { ...process.env, PATH: `${process.env["PATH"]}:/usr/sbin:/sbin` } })
  execFileSync("mount", ["-o", "loop", image, disk])
  fs.chmodSync(disk, 0o755)
  return { base, disk }
}

const entries = (runDir: string) => Effect.runPromise(RunDir.readEntries(runDir)).then((e) => e.length)

describe("trex CLI: a run directory this user may not read or write", { timeout: 120_000 }, () => {
  it("another user's run folder, or its journal, that this user may not read: status, report, resume and stop say so, naming the path and the fix", async () => {
    const { folder, runDir } = finishedRun()
    const journal = RunDir.journalFile(runDir)
    for (const [what, made, denied] of [
      ["the folder", () => fs.chmodSync(runDir, 0o700), runDir],
      ["the journal", () => fs.chmodSync(journal, 0o600), journal]
    ] as const) {
      made()
      for (const command of ["status", "report", "resume", "stop"]) {
        const r = trex([command, runDir], { as: "nobody", home: folder })
        assert.strictEqual(r.status, 2, `${what}, ${command}: ${r.stdout}${r.stderr}`)
        assert.strictEqual(
          r.stderr,
          `trex: cannot read the run in ${runDir}: this user may not read ${denied} (EACCES: owned by uid 0, this is uid ${NOBODY}): ` +
            `run trex as the user who owns it, or give this one access (as its owner: chmod -R a+rX ${runDir})\n`,
          `${what}, ${command}`
        )
      }
      fs.chmodSync(runDir, 0o755)
      fs.chmodSync(journal, 0o644)
    }
    // readable by all, as it was: nobody reads it
    const status = trex(["status", runDir], { as: "nobody", home: folder })
    assert.strictEqual(status.status, 0, status.stderr)
    assert.match(status.stdout, /State: finished/)
  })

  it("trex list of a folder with another user's runs says which folder or journal this user may not read, why and the fix, and lists the rest; a folder of runs it may not read is refused so", async () => {
    const { folder, runDir } = finishedRun()
    // another user's run folder, another whose journal alone is closed, and a folder that may be no run at all
    const closed = path.join(folder, "theirs")
    const journalClosed = path.join(folder, "their-journal")
    const notes = path.join(folder, "notes")
    fs.cpSync(runDir, closed, { recursive: true })
    fs.cpSync(runDir, journalClosed, { recursive: true })
    fs.mkdirSync(notes)
    fs.chmodSync(closed, 0o700)
    fs.chmodSync(RunDir.journalFile(journalClosed), 0o600)
    fs.chmodSync(notes, 0o700)
    const fix = (dir: string) => `run trex as the user who owns it, or give this one access (as its owner: chmod -R a+rX ${dir})`
    const owner = `EACCES: owned by uid 0, this is uid ${NOBODY}`
    const listed = trex(["list", folder], { as: "nobody", home: folder })
    assert.strictEqual(listed.status, 0, listed.stdout + listed.stderr)
    const lines = listed.stdout.split("\n")
    assert.strictEqual(lines[0], `1 run in ${folder}, and 3 folders this user may not read:`)
    assert.match(lines.find((l) => l.startsWith(path.basename(runDir))) ?? "", / toy +- +finished: budget: maxTrials /)
    assert.include(lines, `notes: cannot tell whether ${notes} holds a run: this user may not read ${notes} (${owner}): ${fix(notes)}`)
    assert.include(lines, `their-journal: cannot read the run in ${journalClosed}: this user may not read ${RunDir.journalFile(journalClosed)} (${owner}): ${fix(journalClosed)}`)
    assert.include(lines, `theirs: cannot tell whether ${closed} holds a run: this user may not read ${closed} (${owner}): ${fix(closed)}`)
    // as JSON: each with its state and why, as trex status says it
    const json = JSON.parse(trex(["list", folder, "--json"], { as: "nobody", home: folder }).stdout) as ReadonlyArray<{ runId: string; state: string; unreadable?: string }>
    assert.deepStrictEqual(json.map((r) => [r.runId, r.state]), [[path.basename(runDir), "finished"], ["notes", "unreadable"], ["their-journal", "unreadable"], ["theirs", "unreadable"]])
    assert.strictEqual(json.find((r) => r.runId === "their-journal")?.unreadable, trex(["status", journalClosed], { as: "nobody", home: folder }).stderr.replace(/^trex: /, "").trimEnd())
    // the folder of runs itself
    fs.chmodSync(folder, 0o700)
    const refused = trex(["list", folder], { as: "nobody", home: os.tmpdir() })
    assert.strictEqual(refused.status, 2, refused.stdout + refused.stderr)
    assert.strictEqual(refused.stderr, `trex: cannot list the runs in ${folder}: this user may not read ${folder} (${owner}): ${fix(folder)}\n`)
    // as root, who may read them all: three runs (notes holds none), none said unreadable
    const all = trex(["list", folder])
    assert.strictEqual(all.status, 0, all.stderr)
    assert.match(all.stdout, new RegExp(`^3 runs in ${folder}:`))
  })

  it("trex list of a disk mounted for runs passes over fsck's lost+found at its root (root's, closed), and names a closed lost+found elsewhere, which may hold a run", async () => {
    // a real ext4 filesystem, as mke2fs makes it (its lost+found: mode 700, root's), on a loop device
    const { base, disk } = mountedDisk()
    try {
      const lostFound = path.join(disk, "lost+found")
      assert.strictEqual(fs.statSync(lostFound).mode & 0o777, 0o700)
      const run = trex(["run", toyTask, "--out", disk, "--max-trials", "1"])
      assert.strictEqual(run.status, 0, run.stdout + run.stderr)
      const listed = trex(["list", disk], { as: "nobody", home: base })
      assert.strictEqual(listed.status, 0, listed.stdout + listed.stderr)
      assert.strictEqual(listed.stdout.split("\n")[0], `1 run in ${disk}:`)
      assert.notInclude(listed.stdout, "lost+found")
      const json = JSON.parse(trex(["list", disk, "--json"], { as: "nobody", home: base }).stdout) as ReadonlyArray<{ state: string }>
      assert.deepStrictEqual(json.map((r) => r.state), ["finished"])
      // a closed lost+found of root's below the filesystem's root is no fsck's: it may be a run named so
      const below = path.join(disk, "more")
      fs.mkdirSync(path.join(below, "lost+found"), { recursive: true })
      fs.chmodSync(path.join(below, "lost+found"), 0o700)
      const named = trex(["list", below], { as: "nobody", home: base })
      assert.strictEqual(named.status, 0, named.stdout + named.stderr)
      assert.strictEqual(named.stdout.split("\n")[0], `no runs in ${below} that this user may read, and 1 folder this user may not read:`)
      assert.match(named.stdout, /^lost\+found: cannot tell whether \S+ holds a run: /m)
    } finally {
      execFileSync("umount", ["-l", disk])
      fs.rmSync(base, { recursive: true, force: true })
    }
  })

  it("trex list of a disk mounted for runs passes over a desktop's trash at its root (.Trash-<uid>, closed), and names one elsewhere", async () => {
    const { base, disk } = mountedDisk()
    /** A trash as a file manager makes it for `uid` (freedesktop.org's): closed to all but its owner, with files and info. */
    const trash = (dir: string, owner: number) => {
      for (const sub of ["files", "info"]) fs.mkdirSync(path.join(dir, sub), { recursive: true })
      fs.writeFileSync(path.join(dir, "info", "notes.txt.trashinfo"), "[Trash Info]\nPath=/media/runs/notes.txt\n")
      execFileSync("chown", ["-R", `${owner}:${owner}`, dir])
      fs.chmodSync(dir, 0o700)
    }
    try {
      const run = trex(["run", toyTask, "--out", disk, "--max-trials", "1"])
      assert.strictEqual(run.status, 0, run.stdout + run.stderr)
      trash(path.join(disk, ".Trash-1000"), 1000)
      const listed = trex(["list", disk], { as: "nobody", home: base })
      assert.strictEqual(listed.status, 0, listed.stdout + listed.stderr)
      assert.strictEqual(listed.stdout.split("\n")[0], `1 run in ${disk}:`)
      assert.notInclude(listed.stdout, ".Trash")
      const json = JSON.parse(trex(["list", disk, "--json"], { as: "nobody", home: base }).stdout) as ReadonlyArray<{ state: string }>
      assert.deepStrictEqual(json.map((r) => r.state), ["finished"])
      // one of another user's at the root too (no run is named so there); one below the filesystem's root may be a run named so
      trash(path.join(disk, ".Trash-1001"), 1000)
      const below = path.join(disk, "more")
      trash(path.join(below, ".Trash-1000"), 1000)
      fs.chmodSync(below, 0o755)
      const other = trex(["list", disk], { as: "nobody", home: base })
      assert.strictEqual(other.stdout.split("\n")[0], `1 run in ${disk}:`, other.stdout + other.stderr)
      const named = trex(["list", below], { as: "nobody", home: base })
      assert.strictEqual(named.stdout.split("\n")[0], `no runs in ${below} that this user may read, and 1 folder this user may not read:`, named.stdout + named.stderr)
      assert.match(named.stdout, /^\.Trash-1000: cannot tell whether \S+ holds a run: /m)
    } finally {
      execFileSync("umount", ["-l", disk])
      fs.rmSync(base, { recursive: true, force: true })
    }
  })

  it("trex list passes over what holds no run: closed folders at a filesystem's root not named as runs (snapper's .snapshots, a NAS's #recycle, on btrfs), and a folder it may enter that holds no journal; it names the closed ones that may be runs", async () => {
    // a real btrfs filesystem (mkfs.btrfs) on a loop device: its root and a shared folder in it (a subvolume, as a NAS makes
    // one), each snapshotted by snapper (.snapshots, a subvolume of root's, mode 750) or with a NAS's recycle bin (#recycle, closed)
    const { base, disk } = mountedDisk("btrfs")
    try {
      const btrfs = (...args: ReadonlyArray<string>) => execFileSync("btrfs", ["-q", ...args])
      const share = path.join(disk, "share")
      btrfs("subvolume", "create", share)
      const run = trex(["run", toyTask, "--out", share, "--max-trials", "1"])
      assert.strictEqual(run.status, 0, run.stdout + run.stderr)
      const runDir = run.stdout.match(/run directory: (.*)/)![1]!
      fs.cpSync(runDir, path.join(disk, path.basename(runDir)), { recursive: true })
      for (const at of [disk, share]) {
        btrfs("subvolume", "create", path.join(at, ".snapshots"))
        fs.mkdirSync(path.join(at, ".snapshots", "1"))
        btrfs("subvolume", "snapshot", "-r", at, path.join(at, ".snapshots", "1", "snapshot"))
        fs.chmodSync(path.join(at, ".snapshots"), 0o750)
      }
      fs.mkdirSync(path.join(share, "#recycle"), 0o700)
      for (const at of [disk, share]) {
        const listed = trex(["list", at], { as: "nobody", home: base })
        assert.strictEqual(listed.status, 0, listed.stdout + listed.stderr)
        assert.strictEqual(listed.stdout.split("\n")[0], `1 run in ${at}:`, listed.stdout)
        assert.notMatch(listed.stdout, /snapshots|recycle/)
      }
      // closed, the run at the disk's root (named as a run), and a closed folder below the roots (a run may be named so): said;
      // but not a folder there that nobody may enter but not list (mode 711): its journal would be seen, and it has none
      fs.chmodSync(path.join(disk, path.basename(runDir)), 0o700)
      const below = path.join(share, "more")
      fs.mkdirSync(path.join(below, ".snapshots"), { recursive: true })
      fs.chmodSync(path.join(below, ".snapshots"), 0o700)
      fs.mkdirSync(path.join(below, "scratch"))
      fs.chmodSync(path.join(below, "scratch"), 0o711)
      const closedRun = trex(["list", disk], { as: "nobody", home: base })
      assert.strictEqual(closedRun.stdout.split("\n")[0], `no runs in ${disk} that this user may read, and 1 folder this user may not read:`, closedRun.stdout)
      assert.match(closedRun.stdout, new RegExp(`^${path.basename(runDir)}: cannot tell whether \\S+ holds a run: this user may not read `, "m"))
      const named = trex(["list", below], { as: "nobody", home: base })
      assert.strictEqual(named.stdout.split("\n")[0], `no runs in ${below} that this user may read, and 1 folder this user may not read:`, named.stdout)
      assert.match(named.stdout, /^\.snapshots: cannot tell whether \S+ holds a run: /m)
      assert.notInclude(named.stdout, "scratch")
      assert.isTrue(RunDir.isRunId(path.basename(runDir)) && RunDir.isRunId(`${RunDir.newRunId("A task, v2!", new Date(0))}-12`))
      assert.isFalse([".snapshots", "#recycle", "lost+found", ".Trash-1000", "notes", "20261206-0400-x"].some(RunDir.isRunId))
    } finally {
      execFileSync("umount", ["-l", disk])
      fs.rmSync(base, { recursive: true, force: true })
    }
  })

  it("resume of a run this user may not write (another user's, or immutable) refuses before it opens the journal, naming the path and the fix; the run is unchanged", async () => {
    const { folder, runDir } = finishedRun()
    const before = await entries(runDir)
    const theirs = trex(["resume", runDir, "--max-trials", "3"], { as: "nobody", home: folder })
    assert.strictEqual(theirs.status, 2, theirs.stdout + theirs.stderr)
    assert.strictEqual(theirs.stdout, "")
    assert.strictEqual(
      theirs.stderr,
      `trex: cannot resume the run in ${runDir}: a resumed run writes its journal and its trials' files there, and this user may not write ${runDir} ` +
        `(EACCES: owned by uid 0, this is uid ${NOBODY}; resume it as the user who owns it, or make it writable for this one (as root: chown -R <user> ${runDir})). ` +
        `\`trex status ${runDir}\` shows the run as it is\n`
    )
    const chattr = spawnSync("chattr", ["+i", runDir], { encoding: "utf8" })
    assert.strictEqual(chattr.status, 0, chattr.stderr)
    try {
      const immutable = trex(["resume", runDir, "--max-trials", "3"])
      assert.strictEqual(immutable.status, 2, immutable.stdout + immutable.stderr)
      assert.strictEqual(immutable.stdout, "")
      assert.strictEqual(
        immutable.stderr,
        `trex: cannot resume the run in ${runDir}: a resumed run writes its journal and its trials' files there, and this user may not write ${runDir} ` +
          `(EPERM: it is immutable (chattr +i), or its filesystem forbids writes; chattr -i it, as root). \`trex status ${runDir}\` shows the run as it is\n`
      )
    } finally {
      spawnSync("chattr", ["-i", runDir])
    }
    assert.strictEqual(await entries(runDir), before)
    // writable again: the resume runs its third trial
    const resumed = trex(["resume", runDir, "--max-trials", "3"])
    assert.strictEqual(resumed.status, 0, resumed.stdout + resumed.stderr)
    assert.match(resumed.stdout, /trials 3\/3/)
  })
})
