/**
 * The SSH backend's listing script (`Script.states`) run by the shells a host may log its user in with (dash is
 * Debian's /bin/sh, which `useradd` gives users by default; bash): one line per job, the job's record whole on it.
 * And its wrapper and kill script, run here in a directory of their own (what they do in a job directory).
 */
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { envFile, FILES, kill, markerOf, running, states, wrapper } from "../src/internal/sshScript.ts"

const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-ssh-script-"))
afterAll(() => Fs.rmSync(root, { recursive: true, force: true }))

describe("the SSH listing script", () => {
  it("puts each job's record on its own line under dash and bash, a name's \\n, \\t and \\\\ kept as JSON escapes", () => {
    const record = { spec: { name: "my\ttrial\nFinished n9 {}\\" }, host: "gpu1", submittedAt: 1 }
    Fs.mkdirSync(Path.join(root, "n1"))
    Fs.writeFileSync(Path.join(root, "n1", FILES.job), JSON.stringify(record) + "\n")
    Fs.writeFileSync(Path.join(root, "n1", FILES.exit), "0\n")
    for (const shell of ["dash", "bash"]) {
      // before, `echo` under dash turned the escapes into a tab and a line break: a second line, a forged job n9
      const lines = execFileSync(shell, ["-c", states(root)], { encoding: "utf8" }).split("\n").filter((l) => l !== "")
      assert.strictEqual(lines.length, 1, `${shell}: ${JSON.stringify(lines)}`)
      const [state, node, ...rest] = lines[0]!.split(" ")
      assert.deepStrictEqual([state, node], ["Finished", "n1"], shell)
      assert.deepStrictEqual(JSON.parse(rest.join(" ")), record, shell)
    }
  })
})

describe("the SSH wrapper and kill script", () => {
  let n = 0
  /** A job directory holding `record` as its `.trex-job.json`, and `files`. */
  const jobDir = (record: object, files: Readonly<Record<string, string>> = {}) => {
    const dir = Path.join(root, `job${++n}`)
    Fs.mkdirSync(dir)
    Fs.writeFileSync(Path.join(dir, FILES.job), JSON.stringify(record))
    for (const [name, content] of Object.entries(files)) Fs.writeFileSync(Path.join(dir, name), content)
    return dir
  }
  const read = (dir: string, name: string) => Fs.existsSync(Path.join(dir, name)) ? Fs.readFileSync(Path.join(dir, name), "utf8") : undefined
  /** The wrapper of a job running `argv`, with token `bb`, run to its end in `dir`. */
  const runWrapper = (dir: string, argv: ReadonlyArray<string>) => {
    Fs.writeFileSync(Path.join(dir, FILES.script), wrapper({ jobDir: dir, argv, gpuIds: [], killGraceSeconds: 1, token: "bb" }))
    execFileSync("sh", [FILES.script], { cwd: dir })
  }

  it("writes the exit code, with its token, whatever the job's env names (a job's `rec` replaced the record the wrapper noted: no exit was written)", () => {
    const dir = jobDir({ host: "gpu1", token: "bb" }, { [FILES.env]: envFile({ rec: "x", code: "7", child: "1", watchdog: "1", term: "1" }) })
    runWrapper(dir, ["sh", "-c", `echo "$rec $code" > seen`])
    assert.match(read(dir, FILES.exit) ?? "(none)", /^0 \d+ bb\n$/)
    assert.strictEqual(read(dir, "seen"), "x 7\n", "the job gets its env as given")
    assert.throws(() => envFile({ __trex_rec: "x" }), /environment variable name "__trex_rec" is reserved \(names starting __trex_ are the SSH job wrapper's own\): rename it/)
  })

  it("a cancel marker of another record's token (a job that took the directory before) does not stop the job from starting; one without a token or with its own does", () => {
    const foreign = jobDir({ host: "gpu1", token: "bb" }, { [FILES.cancelled]: "1700000000 aa\n" })
    runWrapper(foreign, ["touch", "ran"])
    assert.isTrue(Fs.existsSync(Path.join(foreign, "ran")), "the job ran")
    assert.match(read(foreign, FILES.exit) ?? "(none)", /^0 \d+ bb\n$/)
    for (const marker of ["1700000000 bb\n", "1700000000\n"]) {
      const dir = jobDir({ host: "gpu1", token: "bb" }, { [FILES.cancelled]: marker })
      runWrapper(dir, ["touch", "ran"])
      assert.isFalse(Fs.existsSync(Path.join(dir, "ran")), marker)
      assert.match(read(dir, FILES.exit) ?? "(none)", /^143 \d+ bb\n$/, marker)
    }
  })

  it("the kill script marks the job cancelled with its record's token unless the record names another host of the pool or the job ended", () => {
    const run = (dir: string) => execFileSync("sh", ["-c", kill({ dir, grace: 1, others: ["gpu2", "gpu3"] })])
    // the record names a host outside the pool (the same machine, renamed in the configuration): its job is cancelled
    const renamed = jobDir({ host: "gpu1", token: "bb" })
    run(renamed)
    assert.match(read(renamed, FILES.cancelled) ?? "(none)", /^\d+ bb\n$/)
    // the record names another host of the pool: that host's job, left be
    const other = jobDir({ host: "gpu3", token: "bb" })
    run(other)
    assert.isUndefined(read(other, FILES.cancelled))
    // an exit of another record's token is not this job's end: it is cancelled; its own exit (or one of no token) is
    const foreignExit = jobDir({ host: "gpu1", token: "bb" }, { [FILES.exit]: "0 1700000000 aa\n" })
    run(foreignExit)
    assert.match(read(foreignExit, FILES.cancelled) ?? "(none)", /^\d+ bb\n$/)
    for (const exit of ["0 1700000000 bb\n", "0 1700000000\n"]) {
      const ended = jobDir({ host: "gpu1", token: "bb" }, { [FILES.exit]: exit })
      run(ended)
      assert.isUndefined(read(ended, FILES.cancelled), exit)
    }
    // a record of an earlier version (no token): marked as before
    const old = jobDir({ host: "gpu1" })
    run(old)
    assert.match(read(old, FILES.cancelled) ?? "(none)", /^\d+ \n$/)
  })

  it("lists a running job whose directory holds an exit of another record's token as running, not finished; one of its own token, or none, as finished", () => {
    const run = Path.join(root, "listing")
    const cases = { foreign: "0 1700000000 aa\n", own: "0 1700000000 bb\n", old: "0 1700000000\n" }
    for (const [node, exit] of Object.entries(cases)) {
      Fs.mkdirSync(Path.join(run, node), { recursive: true })
      Fs.writeFileSync(Path.join(run, node, FILES.job), JSON.stringify({ host: "gpu1", token: "bb" }))
      Fs.writeFileSync(Path.join(run, node, FILES.exit), exit)
      // its wrapper alive: this process
      Fs.writeFileSync(Path.join(run, node, FILES.pid), `${process.pid} 1700000000\n`)
    }
    const listed = execFileSync("sh", ["-c", states(run)], { encoding: "utf8" }).split("\n").filter((l) => l !== "").map((l) => l.split(" ").slice(0, 2).join(" "))
    assert.deepStrictEqual(listed.sort(), ["Finished old", "Finished own", "Running foreign"])
    const adopted = execFileSync("sh", ["-c", running(root)], { encoding: "utf8" }).split("\n").filter((l) => l.startsWith("listing/"))
    assert.deepStrictEqual(adopted.map((l) => l.split(" ")[0]), ["listing/foreign"])
  })

  it("reads a marker as the job's only if it has no token or the record's", () => {
    assert.isTrue(markerOf(FILES.exit, "0 1700000000\n", "bb"))
    assert.isTrue(markerOf(FILES.exit, "0 1700000000 bb\n", "bb"))
    assert.isFalse(markerOf(FILES.exit, "0 1700000000 aa\n", "bb"))
    assert.isFalse(markerOf(FILES.exit, "0 1700000000 aa\n", undefined))
    assert.isFalse(markerOf(FILES.cancelled, undefined, "bb"))
    assert.isTrue(markerOf(FILES.cancelled, "1700000000\n", undefined))
    assert.isFalse(markerOf(FILES.timeout, "1700000000 aa\n", "bb"))
  })
})
