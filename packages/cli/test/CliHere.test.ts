// The CLI run in the tests' process (support/cli.ts's trexHere, which the tests of `status`, `notify`, `run` and
// `resume` use instead of a process of their own) against the real `trex`, a child process: for each way a command
// fails, the same exit status and the same stderr.
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { DatabaseSync } from "node:sqlite"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { fixtures, root, tmp, trexAsync, trexHere } from "./support/cli.ts"

/** A process that holds the run's writer lock as its controller would: the lock's SQLite transaction, and its pid file. */
const HOLDER = `
import { DatabaseSync } from "node:sqlite"
import * as fs from "node:fs"
import * as os from "node:os"
const lock = process.argv[1]
new DatabaseSync(lock).exec("BEGIN EXCLUSIVE")
fs.writeFileSync(lock + ".pid", process.pid + " " + os.hostname() + "\\n")
process.stdout.write("held\\n")
setInterval(() => {}, 1000)
`

const holdLock = (lockFile: string) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<ReturnType<typeof spawn>>((resolve, reject) => {
        const child = spawn(process.execPath, ["--input-type=module", "-e", HOLDER, lockFile], { stdio: ["ignore", "pipe", "inherit"] })
        child.on("error", reject)
        child.stdout.on("data", () => resolve(child))
      })
    ),
    (child) => Effect.sync(() => child.kill("SIGKILL"))
  )

// a warning's time and fiber differ from one run to the next
const said = (r: { readonly status: number | null; readonly stderr: string }) => ({
  status: r.status,
  stderr: r.stderr.replace(/^\[[\d:.]+\] (\w+) \(#\d+\)/gm, "[time] $1")
})

describe("trex in the tests' process", () => {
  it.live("ends each way a command fails as the real trex process does: the same exit status, the same stderr", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = tmp()
      const task = path.join(root, "bench/tasks/nmthpo-en-ja.yaml")
      // a run of the simulator, one trial
      const made = yield* Effect.promise(() => trexHere(["run", task, "--max-trials", "1", "--out", path.join(dir, "made")]))
      assert.strictEqual(made.status, 0, made.stderr)
      const runDir = /run directory: (\S+)/.exec(made.stdout)![1]!
      // its journal damaged at its first entry
      const damaged = path.join(dir, "damaged")
      fs.cpSync(runDir, damaged, { recursive: true })
      const db = new DatabaseSync(path.join(damaged, "journal.sqlite"))
      db.exec("UPDATE events SET payload = replace(payload, '\"at\"', '\"at \"') WHERE seq = 1")
      db.close()
      // held by another process
      const held = path.join(dir, "held")
      fs.cpSync(runDir, held, { recursive: true })
      const holder = yield* holdLock(path.join(held, "journal.sqlite.lock"))
      // a Docker engine at an ssh:// address, without the ssh keys it needs: refused as the backend is made
      const docker = path.join(dir, "docker")
      fs.mkdirSync(docker)
      fs.copyFileSync(path.join(fixtures, "toy-job.mjs"), path.join(docker, "toy-job.mjs"))
      fs.writeFileSync(
        path.join(docker, "task.yaml"),
        `${fs.readFileSync(path.join(fixtures, "toy.task.yaml"), "utf8")}backend:\n  kind: docker\n  docker: { image: busybox, host: "ssh://root@127.0.0.1" }\n`
      )
      // each failure, with the exit status the real trex gives it; `out`: a folder of its own for each side
      const failures: ReadonlyArray<readonly [string, number, (out: string) => ReadonlyArray<string>]> = [
        ["a flag value that does not parse", 2, (out) => ["run", task, "--max-trials", "many", "--out", out]],
        ["a flag value out of range", 2, (out) => ["run", task, "--max-trials", "0", "--out", out]],
        ["no run directory", 2, () => ["status", path.join(dir, "nowhere")]],
        ["a journal damaged at its first entry", 1, () => ["status", damaged]],
        ["a run in use by another process", 2, () => ["resume", held]],
        ["a backend that cannot be made", 1, (out) => ["run", path.join(docker, "task.yaml"), "--out", out]]
      ]
      const here: Array<ReturnType<typeof said>> = []
      for (const [, , args] of failures) here.push(said(yield* Effect.promise(() => trexHere(args(path.join(dir, "here"))))))
      const real = yield* Effect.promise(() => Promise.all(failures.map(([, , args]) => trexAsync(args(path.join(dir, "real"))).then(said))))
      failures.forEach(([what, status], i) => {
        assert.strictEqual(real[i]!.status, status, `${what}: ${real[i]!.stderr}`)
        assert.notStrictEqual(real[i]!.stderr, "", what)
        assert.deepStrictEqual(here[i], real[i], what)
      })
      assert.include(real[4]!.stderr, `run is in use by process ${holder.pid}`)
      assert.match(real[5]!.stderr, /^trex: backend docker make: /)
    })), 120_000)
})
