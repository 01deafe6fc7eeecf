// The trex CLI's resume and damaged journals, and runs that end early: every trial failing, a setup error, a refused key, a second controller.
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { DatabaseSync } from "node:sqlite"
import { assert, describe, it } from "@effect/vitest"
import { Cost, ExperimentTree, Journal, JournalEvent } from "@trex/core"
import { Effect } from "effect"
import * as RunDir from "../src/RunDir.ts"
import * as Fake from "../../agents/test/support/FakeAnthropicServer.ts"
import { gone } from "../../executors/test/support/process.ts"
import { bin, fixtures, root, tmp, trex, trexHere, writeTask } from "./support/cli.ts"

describe("trex CLI: resume, damaged journals and runs that end early", { timeout: 180_000 }, () => {
  it("resume refuses a run whose trainer code changed or whose task folder is gone, saying what to do", () => {
    const taskDir = tmp()
    for (const f of ["toy.task.yaml", "toy-job.mjs"]) fs.copyFileSync(path.join(fixtures, f), path.join(taskDir, f))
    const first = trex(["run", path.join(taskDir, "toy.task.yaml"), "--out", tmp(), "--max-trials", "2"], { TREX_TOY_MS: "30" })
    assert.strictEqual(first.status, 0, first.stderr)
    const runDir = first.stdout.match(/run directory: (.*)/)![1]!
    assert.strictEqual(trex(["resume", runDir], { TREX_TOY_MS: "30" }).status, 0, "unchanged: resumes")
    fs.writeFileSync(path.join(taskDir, "toy.task.yaml"), fs.readFileSync(path.join(taskDir, "toy.task.yaml"), "utf8").replace("maxTrials: 8", "maxTrials: 9"))
    assert.strictEqual(trex(["resume", runDir], { TREX_TOY_MS: "30" }).status, 0, "the task file is not trainer code")
    // nor is another task file put beside it (a variant to try), in YAML or JSON
    const variant = fs.readFileSync(path.join(taskDir, "toy.task.yaml"), "utf8").replace("name: toy", "name: toy-long").replace("maxTrials: 9", "maxTrials: 40")
    fs.writeFileSync(path.join(taskDir, "toy-long.task.yaml"), variant)
    fs.writeFileSync(path.join(taskDir, "toy-json.task.json"), JSON.stringify({ name: "toy-json", objective: "o", metric: { name: "score", direction: "maximize" } }))
    const besides = trex(["resume", runDir, "--max-trials", "3"], { TREX_TOY_MS: "30" })
    assert.strictEqual(besides.status, 0, `other task files are not trainer code: ${besides.stderr}`)
    // a configuration the trainer may read is: the run refuses to mix it in
    fs.writeFileSync(path.join(taskDir, "settings.yaml"), "learning_rate: 0.1\n")
    const configured = trex(["resume", runDir], { TREX_TOY_MS: "30" })
    assert.strictEqual(configured.status, 2, configured.stderr)
    assert.match(configured.stderr, /the trainer code under .* changed since this run started/)
    fs.rmSync(path.join(taskDir, "settings.yaml"))
    fs.appendFileSync(path.join(taskDir, "toy-job.mjs"), "\n// changed\n")
    const changed = trex(["resume", runDir], { TREX_TOY_MS: "30" })
    assert.strictEqual(changed.status, 2, changed.stderr)
    assert.match(changed.stderr, /the trainer code under .* changed since this run started \(a source file .* was edited, added or removed\): .*Restore the code to resume, or start a new run from the task file \(trex run .*toy\.task\.yaml\)/)
    fs.renameSync(taskDir, `${taskDir}-moved`)
    const gone = trex(["resume", runDir], { TREX_TOY_MS: "30" })
    assert.strictEqual(gone.status, 2, gone.stderr)
    assert.match(gone.stderr, /the task folder .* this run started from is gone \(moved or deleted\), and its trials run files from it: put it back, or start a new run/)
    assert.notMatch(gone.stderr, /\n\s+at /, "no stack trace")
  })

  it("a run whose journal is damaged says what still helps: a new run in the same folder reuses the results from before the damage", async () => {
    const out = tmp()
    const run = (...flags: ReadonlyArray<string>) => trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", out, "--seed", "4", ...flags], { TREX_TOY_MS: "30" })
    const first = run("--max-trials", "3")
    assert.strictEqual(first.status, 0, first.stderr)
    const runDir = first.stdout.match(/run directory: (.*)/)![1]!
    // damage the last entry (the run's end): everything before it is intact
    const db = new DatabaseSync(path.join(runDir, "journal.sqlite"))
    db.exec("UPDATE events SET payload = replace(payload, '\"at\"', '\"at \"') WHERE seq = (SELECT MAX(seq) FROM events)")
    const last = Number((db.prepare("SELECT MAX(seq) AS n FROM events").get() as { n: number }).n)
    db.close()
    const hint = `the results it journaled before entry ${last} are reused by a new run of the task in the same folder (trex run ${path.join(fixtures, "toy.task.yaml")} --out ${out})`
    // status shows what precedes the damage, and says where the damage is and what helps
    const status = await trexHere(["status", runDir])
    assert.strictEqual(status.status, 0, status.stderr)
    assert.include(status.stdout, `entry ${last} fails its checksum`)
    assert.include(status.stdout, hint)
    assert.include(status.stdout, `Shown below: the ${last - 1} entries before the damage`)
    const [, ok, failed] = status.stdout.match(/Trials: (\d+) succeeded, (\d+) failed/)!
    assert.strictEqual(Number(ok) + Number(failed), 3, "the three trials journaled before the damage")
    assert.match(status.stdout, /State: stopped before it finished — it cannot be resumed from its damaged journal/, "its end was in the damaged entry")
    assert.notInclude(status.stdout, "trex resume", "no resume hint for a run resume refuses")
    const json = JSON.parse((await trexHere(["status", runDir, "--json"])).stdout)
    assert.include(json.damage, `entry ${last} fails its checksum`)
    const report = trex(["report", runDir])
    assert.strictEqual(report.status, 0, report.stderr)
    assert.include(report.stderr, `The report shows the ${last - 1} entries before the damage`)
    assert.include(fs.readFileSync(path.join(runDir, "report.md"), "utf8"), `- Journal: `)
    // it cannot go on
    const resume = trex(["resume", runDir])
    assert.strictEqual(resume.status, 1)
    assert.include(resume.stderr, hint)
    const second = run("--max-trials", "1")
    assert.strictEqual(second.status, 0, second.stderr)
    const secondDir = second.stdout.match(/run directory: (.*)/)![1]!
    // (a damaged journal used to be passed over whole: nothing reused)
    assert.isAtLeast(JSON.parse((await trexHere(["status", secondDir, "--json"])).stdout).reused, 1)
  })

  it("resume of a simulated run whose recorded table is gone names the table, not a change of code", () => {
    const taskDir = tmp()
    fs.copyFileSync(path.join(root, "bench/data/nmthpo_scratch_final.csv"), path.join(taskDir, "table.csv"))
    const text = fs.readFileSync(path.join(root, "bench/tasks/nmthpo-en-ja.yaml"), "utf8").replace(/table: .*/, "table: table.csv")
    fs.writeFileSync(path.join(taskDir, "task.yaml"), text)
    const first = trex(["run", path.join(taskDir, "task.yaml"), "--out", tmp(), "--max-trials", "2"])
    assert.strictEqual(first.status, 0, first.stderr)
    const runDir = first.stdout.match(/run directory: (.*)/)![1]!
    fs.renameSync(path.join(taskDir, "table.csv"), path.join(taskDir, "table-old.csv"))
    const gone = trex(["resume", runDir, "--max-trials", "3"])
    assert.strictEqual(gone.status, 2, gone.stderr)
    assert.strictEqual(
      gone.stderr,
      `trex: the recorded table this run replays, ${path.join(taskDir, "table.csv")} (the task's backend.table), is gone (moved or deleted): ` +
        `put it back to resume, or start a new run from the task file (trex run ${path.join(taskDir, "task.yaml")})\n`
    )
    fs.renameSync(path.join(taskDir, "table-old.csv"), path.join(taskDir, "table.csv"))
    assert.strictEqual(trex(["resume", runDir, "--max-trials", "3"]).status, 0, "put back: resumes")
  })

  it("a journal damaged at its first entry, or truncated, is named once, with where the trials' files are", () => {
    const first = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", tmp(), "--max-trials", "2"], { TREX_TOY_MS: "30" })
    assert.strictEqual(first.status, 0, first.stderr)
    const runDir = first.stdout.match(/run directory: (.*)/)![1]!
    const copy = (name: string) => {
      const dir = path.join(tmp(), name)
      fs.cpSync(runDir, dir, { recursive: true })
      return dir
    }
    const atFirst = copy("first")
    const db = new DatabaseSync(path.join(atFirst, "journal.sqlite"))
    db.exec("UPDATE events SET payload = replace(payload, '\"at\"', '\"at \"') WHERE seq = 1")
    db.close()
    const truncated = copy("truncated")
    const file = path.join(truncated, "journal.sqlite")
    fs.truncateSync(file, 4096)
    for (const [dir, what] of [[atFirst, /entry 1 fails its checksum/], [truncated, /(malformed|not a readable trex journal|not a database)/]] as const) {
      for (const command of ["status", "report", "resume"]) {
        const r = trex([command, dir])
        assert.strictEqual(r.status, 1, `${command} ${dir}: ${r.stderr}`)
        assert.match(r.stderr, what)
        assert.include(r.stderr, `Nothing of the run can be read from it, so it cannot be shown or resumed; each trial's files (strategy.json, result.json, logs) are still in ${path.join(dir, "jobs")}`)
        assert.notMatch(r.stderr, /journal: journal|Error: |\n\s+at /, "said once, no stack trace")
      }
    }
    // a simulated run keeps no job folders: none are named
    const simulated = trex(["run", "bench/tasks/nmthpo-en-ja.yaml", "--out", tmp(), "--max-trials", "2"])
    assert.strictEqual(simulated.status, 0, simulated.stderr)
    const simulatedDir = simulated.stdout.match(/run directory: (.*)/)![1]!
    fs.truncateSync(path.join(simulatedDir, "journal.sqlite"), 4096)
    const noJobs = trex(["status", simulatedDir])
    assert.strictEqual(noJobs.status, 1, noJobs.stderr)
    assert.include(noJobs.stderr, "Nothing of the run can be read from it, so it cannot be shown or resumed, and it kept no job folders to read instead (a simulated run keeps none): start it again with `trex run`")
  })

  it("a search whose every trial fails exits 1 and says so", async () => {
    const taskDir = tmp()
    fs.copyFileSync(path.join(fixtures, "toy-job.mjs"), path.join(taskDir, "toy-job.mjs"))
    const task = fs.readFileSync(path.join(fixtures, "toy.task.yaml"), "utf8")
      .replace("values: [plain, reversed, broken]", "values: [broken]")
      .replace("format: plain }", "format: broken }")
    assert.include(task, "format: broken }")
    const r = trex(["run", writeTask(taskDir, "toy.task.yaml", task), "--out", tmp(), "--max-trials", "2"], { TREX_TOY_MS: "30" })
    assert.strictEqual(r.status, 1, r.stderr)
    assert.match(r.stdout, /FAILED Crash/)
    // why a trial failed, in full: its strategy, its failure and its job's last log lines, from the job's folder
    const runDir = r.stdout.match(/run directory: (.*)/)![1]!
    assert.include(r.stderr, `no trial succeeded (2 failed): their reasons are above and in ${path.join(runDir, "report.md")}; \`trex status ${runDir} --node <id>\` shows one in full`)
    const shown = await trexHere(["status", runDir, "--node", "n2"])
    assert.strictEqual(shown.status, 0, shown.stderr)
    assert.match(shown.stdout, /^Trial n2 of run \S+: failed \(Crash\)$/m)
    assert.match(shown.stdout, /^Changed from (n1|the task's default strategy): .*training\./m)
    assert.match(shown.stdout, /^  data\.format = "broken"$/m)
    assert.match(shown.stdout, /^Timeline: proposed \S+ · job local n2 submitted \S+ · finished /m)
    assert.match(shown.stdout, /^Failure: Crash \(exit code 3\): /m)
    assert.match(shown.stdout, new RegExp(`^Log tail \\(${path.join(runDir, "jobs", "n2").replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\):\n  \\| Traceback: the recipe cannot handle format=broken$`, "m"))
    const json = JSON.parse((await trexHere(["status", runDir, "--node", "n2", "--json"])).stdout)
    assert.strictEqual(json.state, "Failed")
    assert.strictEqual(json.result.failure.kind, "Crash")
    assert.deepStrictEqual(json.logs, { source: path.join(runDir, "jobs", "n2"), tail: ["Traceback: the recipe cannot handle format=broken"] })
    assert.strictEqual(json.jobs.length, 1)
    const missing = trex(["status", runDir, "--node", "n7"])
    assert.strictEqual(missing.status, 2)
    assert.match(missing.stderr, /^trex: run \S+ has no trial "n7": its trials are n1 to n2 \(`trex status .*` shows its tree\)$/m)
  })

  it("a setup error that fails every trial alike stops the run after 3 with exit 1, naming it, the trials and how to go on; once mended, resume runs those strategies again first", async () => {
    const log = path.join(tmp(), "executions.log")
    const module = path.join(tmp(), "transformerz.py")
    const env = { TREX_TOY_MS: "30", TREX_TOY_LOG: log, TREX_TOY_NEEDS: module }
    const r = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", tmp(), "--max-trials", "8", "--concurrency", "1"], env)
    assert.strictEqual(r.status, 1, r.stderr)
    const runDir = r.stdout.match(/run directory: (.*)/)![1]!
    assert.strictEqual(fs.readFileSync(log, "utf8").trim().split("\n").length, 3, "3 trials, not the budget's 8")
    assert.include(
      r.stderr,
      "trex: 3 trials (n1, n2, n3) failed the same way, and none succeeded: Crash: exited with code 1 (ModuleNotFoundError: No module named 'transformerz')."
    )
    assert.include(r.stderr, `(\`trex status ${runDir} --node n1\` shows n1 in full, with its job's last log lines). Once mended: trex resume ${runDir}`)
    assert.notMatch(r.stderr, /\n\s+at /, "no stack trace")
    const stopped = JSON.parse((await trexHere(["status", runDir, "--json"])).stdout) as { state: string; finishedReason?: string }
    assert.strictEqual(stopped.state, "finished")
    assert.match(stopped.finishedReason!, /^every trial failed the same way \(n1, n2, n3\): Crash: exited with code 1 \(ModuleNotFoundError/)
    // mended outside the task folder (a package installed): the same trainer code, so the run resumes
    fs.writeFileSync(module, "")
    const resumed = trex(["resume", runDir], env)
    assert.strictEqual(resumed.status, 0, resumed.stderr)
    const tree = ExperimentTree.fold((await Effect.runPromise(RunDir.readEntries(runDir))).map((e) => e.event))!.view
    const fingerprints = (ids: ReadonlyArray<string>) => ids.map((id) => tree.get(id)!.fingerprint)
    assert.deepStrictEqual(fingerprints(["n4", "n5", "n6"]), fingerprints(["n1", "n2", "n3"]), "their strategies again, first")
    assert.strictEqual(new Set(fingerprints(["n1", "n2", "n3"])).size, 3)
    assert.deepStrictEqual(["n4", "n5", "n6"].map((id) => tree.get(id)!.state._tag), ["Succeeded", "Succeeded", "Succeeded"])
    assert.strictEqual(tree.size, 8, "on to the budget")
    // --fail-fast 0 turns the stop off: the budget is spent, as before; a negative value is refused, naming the flag
    fs.rmSync(module)
    const off = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", tmp(), "--max-trials", "4", "--fail-fast", "0"], env)
    assert.strictEqual(off.status, 1, off.stderr)
    assert.match(off.stderr, /no trial succeeded \(4 failed\)/)
    const bad = trex(["run", path.join(fixtures, "toy.task.yaml"), "--fail-fast", "-1"])
    assert.strictEqual(bad.status, 2)
    assert.match(bad.stderr, /--fail-fast must be 0 \(off\) or more, got -1/)
    const badResume = trex(["resume", runDir, "--fail-fast", "-2"])
    assert.strictEqual(badResume.status, 2)
    assert.match(badResume.stderr, /--fail-fast must be 0 \(off\) or more, got -2/)
  })

  it("a setup that breaks under a working run (a package removed after 3 trials) stops it after 6 alike in a row with exit 1, its best kept and printed; once mended, resume runs those strategies again first", async () => {
    const log = path.join(tmp(), "executions.log")
    const module = path.join(tmp(), "transformerz.py")
    fs.writeFileSync(module, "")
    const env = { TREX_TOY_MS: "30", TREX_TOY_LOG: log, TREX_TOY_NEEDS: module, TREX_TOY_BREAKS: "n3" }
    const r = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", tmp(), "--max-trials", "16", "--concurrency", "1"], env)
    assert.strictEqual(r.status, 1, r.stderr)
    const runDir = r.stdout.match(/run directory: (.*)/)![1]!
    assert.strictEqual(fs.readFileSync(log, "utf8").trim().split("\n").length, 9, "3 that worked and 6 that failed, not the budget's 16")
    const stopped = JSON.parse((await trexHere(["status", runDir, "--json"])).stdout) as { state: string; finishedReason?: string; best?: { id: string; score: number } }
    assert.strictEqual(stopped.state, "finished")
    assert.strictEqual(
      stopped.finishedReason,
      "the latest trials all failed the same way (n4, n5, n6, n7, n8, n9): Crash: exited with code 1 (ModuleNotFoundError: No module named 'transformerz')"
    )
    const best = stopped.best!
    assert.include(r.stdout, `Best: ${best.id} score=`, "the run's summary, its best among it, printed")
    assert.include(
      r.stderr,
      "trex: the latest 6 trials (n4, n5, n6, n7, n8, n9) failed the same way, one after another, after 3 had worked: Crash: exited with code 1 (ModuleNotFoundError: No module named 'transformerz')."
    )
    assert.include(r.stderr, `its best so far (${best.id}, score ${Number(best.score.toPrecision(4))}) kept`)
    assert.include(r.stderr, `(\`trex status ${runDir} --node n4\` shows n4 in full, with its job's last log lines). Once mended: trex resume ${runDir}`)
    assert.notMatch(r.stderr, /\n\s+at /, "no stack trace")
    // mended (the package installed again): the six strategies run again first, then the search goes on to its budget
    fs.writeFileSync(module, "")
    const resumed = trex(["resume", runDir], env)
    assert.strictEqual(resumed.status, 0, resumed.stderr)
    const tree = ExperimentTree.fold((await Effect.runPromise(RunDir.readEntries(runDir))).map((e) => e.event))!.view
    const fingerprints = (ids: ReadonlyArray<string>) => ids.map((id) => tree.get(id)!.fingerprint)
    assert.deepStrictEqual(fingerprints(["n10", "n11", "n12", "n13", "n14", "n15"]), fingerprints(["n4", "n5", "n6", "n7", "n8", "n9"]))
    for (const id of ["n10", "n11", "n12", "n13", "n14", "n15"]) {
      const n = tree.get(id)!
      assert.notInclude(n.state._tag === "Failed" ? n.state.result.failure?.logTail.join("\n") ?? "" : "", "transformerz", id)
    }
    assert.strictEqual(tree.size, 16, "on to the budget")
  })

  it.live("a researcher whose model refuses the key stops the run with exit 1, nothing exhausted, and says how to go on", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make(() => Fake.error(401, "authentication_error", "invalid x-api-key"))
      const out = tmp()
      const r = yield* Effect.promise(() =>
        new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
          const child = spawn(process.execPath, ["--conditions=@trex/source", bin, "run", path.join(fixtures, "toy.task.yaml"), "--researcher", "claude", "--out", out], {
            cwd: root,
            stdio: ["ignore", "pipe", "pipe"],
            env: { ...process.env, ANTHROPIC_API_KEY: "sk-wrong", ANTHROPIC_BASE_URL: server.url }
          })
          let stdout = ""
          let stderr = ""
          child.stdout.on("data", (d) => (stdout += d))
          child.stderr.on("data", (d) => (stderr += d))
          child.once("exit", (status) => resolve({ status, stdout, stderr }))
        })
      )
      assert.strictEqual(r.status, 1, r.stderr)
      const runDir = r.stdout.match(/run directory: (.*)/)![1]!
      assert.match(r.stderr, new RegExp(`trex: the researcher failed: .*invalid x-api-key.*; once it is mended \\(its key, model or network\\), continue with: trex resume ${runDir}`))
      // a refused key is not asked again: one request for the analysis, one for the first proposal
      assert.strictEqual(server.requests.length, 2, r.stderr)
      assert.notInclude(r.stdout, "WARN")
      const events = yield* RunDir.readEntries(runDir)
      assert.notInclude(events.map((e) => e.event._tag), "NodeExhausted")
      assert.notInclude(events.map((e) => e.event._tag), "NodeProposed")
    }), { timeout: 120_000 })

  it("a second controller on the same run is refused with a clear message", async () => {
    const out = tmp()
    const first = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", out, "--max-trials", "2"], { TREX_TOY_MS: "30" })
    assert.strictEqual(first.status, 0, first.stderr)
    const runDir = first.stdout.match(/run directory: (.*)/)![1]!
    // hold the journal open for writing in this test process, as a running controller would
    const second = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function*() {
          const journal = yield* Journal.Journal
          // a trial whose job waits in its backend's queue, as the explorer journals it
          const proposed = (yield* journal.read()).map((e) => e.event).find((e) => e._tag === "NodeProposed")!
          const node = { ...proposed.node, id: "n9", fingerprint: `${proposed.node.fingerprint}-n9` }
          yield* journal.append([
            JournalEvent.make("NodeProposed", { node, at: 1 }),
            JournalEvent.make("NodeAdmitted", { nodeId: "n9", estimate: Cost.zero, at: 1 }),
            JournalEvent.make("JobSubmitted", { nodeId: "n9", job: { backend: "local", id: "n9", data: {} }, at: 1 }),
            JournalEvent.make("JobState", { nodeId: "n9", state: "Pending", reason: "Priority", at: 1 })
          ])
          // status tells a run being written from a stopped one, and why a trial waits
          const status = JSON.parse(trex(["status", runDir, "--json"]).stdout)
          assert.strictEqual(status.state, "running")
          assert.strictEqual(status.writerPid, process.pid)
          assert.strictEqual(status.nodes.find((n: { id: string }) => n.id === "n9")?.waiting, "Priority")
          // a live run's clock runs to now, not to its last event (these were stamped at the epoch)
          assert.isAbove(status.budget.elapsedSeconds, 0)
          const text = trex(["status", runDir]).stdout
          assert.strictEqual(status.writerHost, os.hostname())
          assert.include(text, `State: running (controller: process ${process.pid}; \`trex status ${runDir} --follow\` follows it, \`trex stop ${runDir}\` stops it)`)
          assert.include(text, "n9 waiting (Priority)")
          return yield* Effect.promise(() =>
            new Promise<{ status: number | null; stderr: string }>((resolve) => {
              const child = spawn(process.execPath, ["--conditions=@trex/source", bin, "resume", runDir], { cwd: root, stdio: ["ignore", "pipe", "pipe"] })
              let stderr = ""
              child.stderr.on("data", (d) => (stderr += d))
              child.once("exit", (status) => resolve({ status, stderr }))
            })
          )
        }).pipe(Effect.provide(Journal.Journal.layerSqlite(path.join(runDir, "journal.sqlite"))))
      )
    )
    assert.strictEqual(second.status, 2)
    assert.match(second.stderr, new RegExp(`run is in use by process ${process.pid}`))
    assert.notMatch(second.stderr, /\n\s+at /)
  })

  it("a run stopped before it was recorded (a journal with no events): status and resume say so and exit 2", () => {
    for (const setup of ["no table", "empty table"]) {
      const runDir = path.join(tmp(), "20261203-000000-stopped")
      fs.mkdirSync(runDir)
      const file = path.join(runDir, "journal.sqlite")
      if (setup === "no table") {
        // what a controller killed between creating the journal and its first migration leaves
        const db = new DatabaseSync(file)
        db.exec("PRAGMA journal_mode = WAL")
        db.close()
      } else {
        Effect.runSync(Effect.scoped(Effect.provide(Effect.asVoid(Journal.Journal), Journal.Journal.layerSqlite(file))))
      }
      for (const command of ["status", "resume"]) {
        const r = trex([command, runDir])
        assert.strictEqual(r.status, 2, `${setup}, ${command}: ${r.stderr}`)
        assert.match(r.stderr, /was stopped before it started \(its journal holds no events\).*start it again with `trex run`/)
        assert.notMatch(r.stderr, /\n\s+at /, "no stack trace")
      }
      // job folders beside an empty journal: it was emptied, not stopped early
      fs.mkdirSync(path.join(runDir, "jobs", "n1"), { recursive: true })
      const emptied = trex(["status", runDir])
      assert.strictEqual(emptied.status, 2, emptied.stderr)
      assert.match(emptied.stderr, /holds no events, yet .*jobs holds 1 job folder: the journal was emptied or replaced after the run started/)
    }
  })
})
