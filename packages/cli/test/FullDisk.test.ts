// The real CLI, local backend and SQLite journal when the disk holding --out fills up (finding AQ).
// Each test mounts a small tmpfs of its own on a temporary directory (root, as CI runs) and
// unmounts it after.
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as RunDir from "../src/RunDir.ts"

const root = path.resolve(import.meta.dirname, "../../..")
const bin = path.join(root, "packages/cli/src/bin.ts")
const fixtures = path.join(import.meta.dirname, "fixtures")

const trex = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ["--conditions=@trex/source", bin, ...args], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, ...env },
    timeout: 120_000
  })

/** `f` with a fresh tmpfs of `size` mounted on a temporary directory, unmounted (and removed) after. */
const onSmallDisk = async <A>(size: string, f: (disk: string) => Promise<A>): Promise<A> => {
  const disk = fs.mkdtempSync(path.join(os.tmpdir(), "trex-disk-"))
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", disk])
  try {
    return await f(disk)
  } finally {
    execFileSync("umount", ["-l", disk])
    fs.rmSync(disk, { recursive: true, force: true })
  }
}

/** Each finished trial's outcome and score, from the journal. */
const finished = async (runDir: string) =>
  new Map(
    (await Effect.runPromise(RunDir.readEntries(runDir))).flatMap(({ event: e }) =>
      e._tag === "NodeFinished" ? [[e.nodeId, `${e.outcome} ${e.result?.score ?? e.result?.failure?.kind ?? ""}`] as const] : []
    )
  )

describe("trex CLI: the disk holding --out fills up", { timeout: 120_000 }, () => {
  it("a job fills it: the run stops, naming the folder and the fix; once space is freed, trex resume keeps every result and finishes", () =>
    onSmallDisk("8m", async (disk) => {
      const out = path.join(disk, "runs")
      const log = path.join(os.tmpdir(), `trex-disk-executions-${process.pid}.log`)
      fs.rmSync(log, { force: true })
      // n3 writes its checkpoint next to the runs until the disk is full; the journal is on the same disk
      const env = { TREX_TOY_LOG: log, TREX_TOY_MS: "600", TREX_TOY_FILL: "n3", TREX_TOY_FILL_DIR: disk }
      const run = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", out, "--max-trials", "6", "--seed", "1"], env)
      assert.strictEqual(run.status, 1, run.stdout + run.stderr)
      const runDir = run.stdout.match(/run directory: (.*)/)![1]!
      assert.strictEqual(
        run.stderr.trim().split("\n").at(-1),
        `trex: cannot write journal ${runDir}/journal.sqlite (no space left on device): the disk holding ${runDir} is full: free space there, then continue the run with \`trex resume ${runDir}\` (nothing journaled is lost)`
      )
      assert.notMatch(run.stderr, /\n\s+at /, "no stack trace")
      const before = await finished(runDir)
      // the trial whose job filled the disk was not blamed on its strategy (journaled, or not yet)
      assert.oneOf(before.get("n3"), [undefined, "Failed Infra"])
      // while the disk is full, status reads the run, and resume says the same as the run did
      const status = trex(["status", runDir])
      assert.strictEqual(status.status, 0, status.stderr)
      assert.match(status.stdout, /State: stopped before it finished/)
      const full = trex(["resume", runDir], { ...env, TREX_TOY_FILL: "" })
      assert.strictEqual(full.status, 1)
      assert.match(full.stderr, /the disk holding .* is full: free space there, then continue the run with `trex resume /)
      // space freed (the checkpoint moved elsewhere): the run goes on to its end
      fs.rmSync(path.join(disk, "checkpoint-n3.bin"))
      const resumed = trex(["resume", runDir], { ...env, TREX_TOY_FILL: "" })
      assert.strictEqual(resumed.status, 0, resumed.stdout + resumed.stderr)
      assert.match(resumed.stdout, /finished: budget: maxTrials/)
      const after = await finished(runDir)
      assert.strictEqual(after.size, 6)
      // every trial finished before the stop kept its outcome and score, and no succeeded job ran again
      const executions = fs.readFileSync(log, "utf8").trim().split("\n")
      for (const [node, outcome] of before) {
        assert.strictEqual(after.get(node), outcome, node)
        if (outcome.startsWith("Succeeded")) assert.strictEqual(executions.filter((n) => n === node).length, 1, node)
      }
      fs.rmSync(log, { force: true })
    }))

  it("reports cannot be written: each says so, naming the disk and the fix, and leaves no empty or cut file", () =>
    onSmallDisk("8m", async (disk) => {
      const run = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", disk, "--max-trials", "3"], { TREX_TOY_MS: "60" })
      assert.strictEqual(run.status, 0, run.stderr)
      const runDir = run.stdout.match(/run directory: (.*)/)![1]!
      fs.rmSync(path.join(runDir, "report.md"))
      assert.throws(() => fs.writeFileSync(path.join(disk, "fill"), Buffer.alloc(16 << 20)), /ENOSPC/)
      for (const [flags, file] of [[[], "report.md"], [["--html"], "report.html"]] as const) {
        const report = trex(["report", runDir, ...flags])
        assert.strictEqual(report.status, 2)
        assert.strictEqual(
          report.stderr.trim(),
          `trex: cannot write ${runDir}/${file} (no space left on device): the disk holding ${runDir} is full: free space there, then \`${["trex report", runDir, ...flags].join(" ")}\` writes it`
        )
        assert.isFalse(fs.existsSync(path.join(runDir, file)), `no empty ${file} left behind`)
      }
      // reading needs no room
      const status = trex(["status", runDir])
      assert.strictEqual(status.status, 0, status.stderr)
      assert.match(status.stdout, /State: finished/)
      fs.rmSync(path.join(disk, "fill"))
      assert.strictEqual(trex(["report", runDir, "--html"]).status, 0)
      assert.include(fs.readFileSync(path.join(runDir, "report.html"), "utf8"), "<html")
    }))

  it("a run started on a full disk is refused before anything runs, naming --out and the fix", () => {
    // a tmpfs of one inode: its root takes it, so no directory can be made there (ENOSPC), as on a full disk
    const disk = fs.mkdtempSync(path.join(os.tmpdir(), "trex-disk-"))
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m,nr_inodes=1", "tmpfs", disk])
    try {
      const run = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", path.join(disk, "runs")])
      assert.strictEqual(run.status, 2)
      assert.match(
        run.stderr,
        new RegExp(`^trex: cannot make the run directory .* under ${disk}/runs \\(--out\\): no space left on device: free space on the disk holding ${disk}/runs, or name a directory on another disk\n$`)
      )
    } finally {
      execFileSync("umount", ["-l", disk])
      fs.rmSync(disk, { recursive: true, force: true })
    }
  })
})
