// The trex CLI's runs stopped: kill -9, Ctrl-C, `trex stop`, SIGTERM, output that goes away; then `trex resume`.
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { ExperimentNode, ExperimentTree } from "@trex/core"
import { gone } from "../../executors/test/support/process.ts"
import { bin, fixtures, readJournal, root, tmp, trex, trexHere, writeTask } from "./support/cli.ts"

describe("trex CLI: stopping a run", { timeout: 180_000 }, () => {
  it("kill -9 mid-run, then `trex resume`: finishes without repeating a finished trial", async () => {
    const out = tmp()
    const log = path.join(out, "executions.log")
    const child = spawn(process.execPath, ["--conditions=@trex/source", bin, "run", path.join(fixtures, "toy.task.yaml"), "--out", out, "--max-trials", "10"], {
      cwd: root,
      env: { ...process.env, TREX_TOY_LOG: log, TREX_TOY_MS: "600" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    child.stdout.on("data", (d) => (stdout += d))
    // wait until three trials have finished, then kill the controller outright
    const deadline = Date.now() + 60_000
    while ((stdout.match(/^done /gm) ?? []).length < 3) {
      if (Date.now() > deadline) throw new Error(`no progress: ${stdout}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    child.kill("SIGKILL")
    await new Promise((r) => child.once("exit", r))
    const runDir = stdout.match(/run directory: (.*)/)![1]!
    // what the controller printed as finished before it died: node id and what it reported
    const printed = new Map([...stdout.matchAll(/^done\s+(\S+) (.*?)  \| best/gm)].map((m) => [m[1]!, m[2]!]))
    assert.isAtLeast(printed.size, 3)
    const before = await readJournal(runDir)
    const finishedBefore = new Set(before.flatMap((e) => (e.event._tag === "NodeFinished" ? [e.event.nodeId] : [])))
    // finishes are journaled with a group commit (within 20 ms), so the journal holds those
    // printed, or all but the last few; none the controller did not print
    for (const id of finishedBefore) assert.isTrue(printed.has(id), `${id} journaled as finished but never printed`)
    assert.notInclude(before.map((e) => e.event._tag), "RunFinished")
    // a copy of the killed run that left its journal.sqlite-wal behind has none of its events (none were
    // folded into journal.sqlite yet): status names the file to copy back, and with it, shows the run
    const copy = path.join(tmp(), "copy")
    fs.mkdirSync(copy)
    for (const f of fs.readdirSync(runDir)) if (!f.startsWith("journal.sqlite-")) fs.cpSync(path.join(runDir, f), path.join(copy, f), { recursive: true })
    const walLeft = trex(["status", copy])
    assert.strictEqual(walLeft.status, 2, walLeft.stdout + walLeft.stderr)
    assert.include(
      walLeft.stderr,
      `or the run was copied or moved without its journal.sqlite-wal, where a controller that was killed (or is still running) keeps its latest events: ` +
        `if so, copy that file back beside journal.sqlite from where the run was, and \`trex status ${copy}\` shows the run. Else the run cannot be shown or resumed`
    )
    fs.copyFileSync(path.join(runDir, "journal.sqlite-wal"), path.join(copy, "journal.sqlite-wal"))
    const walBack = await trexHere(["status", copy])
    assert.strictEqual(walBack.status, 0, walBack.stderr)
    assert.match(walBack.stdout, /State: stopped before it finished/)

    const resumed = trex(["resume", runDir], { TREX_TOY_LOG: log, TREX_TOY_MS: "100" })
    assert.strictEqual(resumed.status, 0, resumed.stderr)
    const after = await readJournal(runDir)
    const tree = ExperimentTree.fold(after.map((e) => e.event))!
    assert.strictEqual(tree.view.size, 10)
    for (const n of tree.view.nodes()) assert.oneOf(n.state._tag, ["Succeeded", "Failed"])
    // the analysis journaled before the kill is the run's: the resumed controller did not analyse again
    assert.strictEqual(after.filter((e) => e.event._tag === "AnalysisCompleted").length, 1)
    const executed = fs.readFileSync(log, "utf8").trim().split("\n")
    assert.strictEqual(new Set(executed).size, executed.length, `a job ran twice: ${executed.join(",")}`)
    assert.strictEqual(executed.length, 10, `${executed.join(",")} vs ${[...tree.view.nodes()].map((n) => `${n.id}:${n.state._tag}:${JSON.stringify((n.state as any).result?.reusedFrom ?? (n.state as any).result?.failure?.message)}`).join(" ")}`)
    // every trial printed as finished before the kill (journaled or not yet) kept its outcome and
    // score: the ones not yet journaled were recovered from their job directories, not re-run
    for (const [id, what] of printed) {
      const node = tree.view.get(id)!
      if (what.startsWith("FAILED")) assert.strictEqual(node.state._tag, "Failed", id)
      else {
        assert.strictEqual(node.state._tag, "Succeeded", id)
        assert.strictEqual(`score=${Number(ExperimentNode.score(node)!.toPrecision(4))}`, what.split(" ")[0], id)
      }
    }
  })

  /**
   * `trex run` of the toy task (or `task`) in the background, until two trials are submitted and
   * `jobs` of their jobs have started (two, by default).
   */
  const runUntilTwoRunning = async (out: string, log: string, options: { readonly task?: string; readonly jobs?: number; readonly env?: Record<string, string> } = {}) => {
    const child = spawn(process.execPath, ["--conditions=@trex/source", bin, "run", options.task ?? path.join(fixtures, "toy.task.yaml"), "--out", out, "--max-trials", "6"], {
      cwd: root,
      env: { ...process.env, TREX_TOY_LOG: log, TREX_TOY_MS: "3000", ...options.env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    const output = { stdout: "", stderr: "" }
    child.stdout.on("data", (d) => (output.stdout += d))
    child.stderr.on("data", (d) => (output.stderr += d))
    const exited = new Promise<number | null>((r) => child.once("exit", (c) => r(c)))
    const deadline = Date.now() + 60_000
    const jobs = options.jobs ?? 2
    while ((output.stdout.match(/^start /gm) ?? []).length < 2 || !fs.existsSync(log) || fs.readFileSync(log, "utf8").trim().split("\n").length < jobs) {
      if (Date.now() > deadline) throw new Error(`no progress: ${output.stdout}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    return { child, output, exited }
  }
  const executions = (log: string) => fs.readFileSync(log, "utf8").trim().split("\n")
  /** Waits until the controller says on stderr that it took the first stop (it starts no new trial from then on). */
  const stopTaken = async (output: { readonly stderr: string }, signal: string) => {
    const deadline = Date.now() + 60_000
    while (!output.stderr.includes(`${signal}: stopping`)) {
      if (Date.now() > deadline) throw new Error(`the controller did not take the stop: ${output.stderr}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  it("Ctrl-C once: no new trial starts, the running ones finish and are kept; `trex resume` runs no trial twice", async () => {
    const out = tmp()
    const log = path.join(out, "executions.log")
    // the trials run until the test lets them end (TREX_TOY_HOLD): after the stop
    const hold = path.join(out, "hold")
    const { child, exited, output } = await runUntilTwoRunning(out, log, { env: { TREX_TOY_HOLD: hold, TREX_TOY_MS: "300" } })
    const running = executions(log)
    child.kill("SIGINT")
    await stopTaken(output, "Ctrl-C")
    fs.writeFileSync(hold, "")
    assert.strictEqual(await exited, 130, output.stderr)
    assert.match(output.stderr, /Ctrl-C: stopping\. No new trials start; the running ones finish and are kept \(those still waiting in the backend's queue are withdrawn: they run on resume\)\. Press Ctrl-C again to cancel them now/)
    assert.match(output.stdout, /stopped; continue with: trex resume /)
    const runDir = output.stdout.match(/run directory: (.*)/)![1]!
    // the two running trials finished with their results, and nothing else started
    assert.deepStrictEqual(executions(log), running)
    const stopped = ExperimentTree.fold((await readJournal(runDir)).map((e) => e.event))!
    for (const node of running) assert.strictEqual(stopped.view.get(node)?.state._tag, "Succeeded", node)
    assert.include((await trexHere(["status", runDir])).stdout, `State: finished (stopped by request) — \`trex resume ${runDir}\` continues it`)
    const resumed = trex(["resume", runDir], { TREX_TOY_LOG: log, TREX_TOY_MS: "50" })
    assert.strictEqual(resumed.status, 0, resumed.stderr)
    const all = executions(log)
    assert.strictEqual(new Set(all).size, all.length, `a trial ran twice: ${all.join(",")}`)
    const tree = ExperimentTree.fold((await readJournal(runDir)).map((e) => e.event))!
    assert.strictEqual(tree.view.size, 6)
    for (const n of tree.view.nodes()) assert.oneOf(n.state._tag, ["Succeeded", "Failed"])
  })

  it("`trex stop` from another shell stops a run as a first SIGTERM does (running trials finish); with --now --wait as a second (cancelled), then shows it; a run nobody runs, or a folder that is no run, is said so", async () => {
    const out = tmp()
    const log = path.join(out, "executions.log")
    // trials that run until the test lets them end (TREX_TOY_HOLD): none ends between the look at what runs and the stop
    const hold = path.join(out, "hold")
    const { exited, output } = await runUntilTwoRunning(out, log, { env: { TREX_TOY_HOLD: hold, TREX_TOY_MS: "300" } })
    const runDir = output.stdout.match(/run directory: (.*)/)![1]!
    const running = executions(log)
    const stop = trex(["stop", runDir])
    assert.strictEqual(stop.status, 0, stop.stderr)
    assert.match(stop.stdout, /^asked the run's controller \(process \d+\) to stop: it starts no new trial, and lets the running ones finish/)
    await stopTaken(output, "SIGTERM")
    fs.writeFileSync(hold, "")
    assert.strictEqual(await exited, 143, output.stderr)
    assert.match(output.stderr, /SIGTERM: stopping\. No new trials start/)
    // the running trials finished with their results, and nothing else started
    assert.deepStrictEqual(executions(log), running)
    const drained = ExperimentTree.fold((await readJournal(runDir)).map((e) => e.event))!
    for (const node of running) assert.strictEqual(drained.view.get(node)?.state._tag, "Succeeded", node)
    const idle = trex(["stop", runDir])
    assert.strictEqual(idle.status, 0, idle.stderr)
    assert.include(idle.stdout, `the run in ${runDir} is not running: it finished (stopped by request); nothing to stop`)
    // resumed, two trials running again: stopped now, waited for
    const resumed = spawn(process.execPath, ["--conditions=@trex/source", bin, "resume", runDir], {
      cwd: root,
      env: { ...process.env, TREX_TOY_LOG: log, TREX_TOY_MS: "20000" },
      stdio: ["ignore", "ignore", "pipe"]
    })
    const resumedExit = new Promise<number | null>((r) => resumed.once("exit", (c) => r(c)))
    const deadline = Date.now() + 60_000
    while (executions(log).length < running.length + 2) {
      if (Date.now() > deadline) throw new Error(`the resumed run started no trials: ${executions(log).join(",")}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    const now = trex(["stop", runDir, "--now", "--wait"])
    assert.strictEqual(now.status, 0, now.stderr)
    assert.match(now.stdout, /^the run's controller \(process \d+\) has stopped\./)
    assert.match(now.stdout, /State: stopped before it finished — `trex resume .*` continues it \(2 trials were in flight/)
    assert.strictEqual(await resumedExit, 143)
    const cancelled = ExperimentTree.fold((await readJournal(runDir)).map((e) => e.event))!
    assert.strictEqual([...cancelled.view.nodes()].filter((n) => !ExperimentNode.isFinished(n)).length, 2)
    const notARun = trex(["stop", tmp()])
    assert.strictEqual(notARun.status, 2)
    assert.match(notARun.stderr, /is not a trex run directory \(no journal\.sqlite\)/)
  })

  it("SIGTERM (as Ctrl-C once) withdraws a trial whose job waits for a GPU: it does not start, exit 143, and it runs on resume", async () => {
    const out = tmp()
    const log = path.join(out, "executions.log")
    // one GPU, two trials in flight that need one each: the second waits in the local backend's queue
    const taskDir = tmp()
    fs.copyFileSync(path.join(fixtures, "toy-job.mjs"), path.join(taskDir, "toy-job.mjs"))
    const text = fs.readFileSync(path.join(fixtures, "toy.task.yaml"), "utf8").replace("resources: { cpus: 1,", "resources: { cpus: 1, gpus: 1,")
    assert.include(text, "gpus: 1")
    const task = writeTask(taskDir, "toy.task.yaml", text)
    // the running trial runs until the test lets it end (TREX_TOY_HOLD): after the stop
    const hold = path.join(out, "hold")
    const { child, exited, output } = await runUntilTwoRunning(out, log, { task, jobs: 1, env: { CUDA_VISIBLE_DEVICES: "0", TREX_TOY_HOLD: hold, TREX_TOY_MS: "300" } })
    const running = executions(log)
    assert.strictEqual(running.length, 1)
    child.kill("SIGTERM")
    await stopTaken(output, "SIGTERM")
    fs.writeFileSync(hold, "")
    assert.strictEqual(await exited, 143, output.stderr)
    assert.match(output.stderr, /SIGTERM: stopping\. .* Signal again to cancel them now/)
    const runDir = output.stdout.match(/run directory: (.*)/)![1]!
    // the running trial finished; the waiting one never started and is left for resume
    assert.deepStrictEqual(executions(log), running)
    const stopped = ExperimentTree.fold((await readJournal(runDir)).map((e) => e.event))!
    assert.strictEqual(stopped.view.get(running[0]!)?.state._tag, "Succeeded")
    const waiting = [...stopped.view.nodes()].filter((n) => !ExperimentNode.isFinished(n)).map((n) => n.id)
    assert.strictEqual(waiting.length, 1, "one trial was withdrawn")
    assert.include(output.stdout, `wait   ${waiting[0]}: no free slot or GPU`, "the live view said why it waited")
    assert.include(output.stdout, `finished: stopped by request; in flight, to run on resume: ${waiting[0]}`)
    const status = (await trexHere(["status", runDir])).stdout
    assert.include(status, `State: finished (stopped by request) — \`trex resume ${runDir}\` continues it (it runs the trial withdrawn from the backend's queue first)`)
    // its withdrawal was journaled: the stopped run shows it, and `--json` says so
    assert.include(status, `${waiting[0]} withdrawn (runs on resume)`)
    const json = JSON.parse((await trexHere(["status", runDir, "--json"])).stdout) as { nodes: Array<{ id: string; waiting?: string; withdrawn?: boolean }> }
    const node = json.nodes.find((n) => n.id === waiting[0])!
    assert.isTrue(node.withdrawn)
    assert.isUndefined(node.waiting, "a stopped run's waits are not news")
    // the reports say so too: the Markdown one counts it and says how to go on; the HTML one draws it stopped
    const md = fs.readFileSync(path.join(runDir, "report.md"), "utf8")
    assert.match(md, /- State: finished — stopped by request \(`trex resume` on its run directory continues it\)/)
    assert.match(md, /- Trials: .*, 1 interrupted/)
    const html = fs.readFileSync(trex(["report", runDir, "--html"]).stdout.trim(), "utf8")
    assert.include(html, "finished: stopped by request (trex resume runs the trials it had in flight)")
    const start = html.indexOf(`id="trex-data">`) + `id="trex-data">`.length
    const drawn = JSON.parse(html.slice(start, html.indexOf("</script>", start))).nodes as Array<{ id: string; state: string }>
    assert.strictEqual(drawn.find((n) => n.id === waiting[0])?.state, "Interrupted")
    const resumed = trex(["resume", runDir], { TREX_TOY_LOG: log, TREX_TOY_MS: "50", CUDA_VISIBLE_DEVICES: "0" })
    assert.strictEqual(resumed.status, 0, resumed.stderr)
    const all = executions(log)
    assert.strictEqual(new Set(all).size, all.length, `a trial ran twice: ${all.join(",")}`)
    // the withdrawn trial is submitted afresh before any new one: it gets the GPU first
    assert.strictEqual(all[running.length], waiting[0], all.join(","))
    const tree = ExperimentTree.fold((await readJournal(runDir)).map((e) => e.event))!
    assert.strictEqual(tree.view.size, 6)
    for (const n of tree.view.nodes()) assert.oneOf(n.state._tag, ["Succeeded", "Failed"])
  })

  it("output that goes away (`trex run | head`) stops the run gently, as a first SIGTERM: exit 141, nothing lost, resumable", async () => {
    const out = tmp()
    const child = spawn(process.execPath, ["--conditions=@trex/source", bin, "run", path.join(fixtures, "toy.task.yaml"), "--out", out, "--max-trials", "6"], {
      cwd: root,
      env: { ...process.env, TREX_TOY_MS: "300" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stderr.on("data", (d) => (stderr += d))
    // the reader takes the first line, then goes away, as `head -1` does
    child.stdout.once("data", (d) => {
      stdout += d
      child.stdout.destroy()
    })
    const code = await new Promise<number | null>((r) => child.once("exit", (c) => r(c)))
    assert.strictEqual(code, 141, stderr)
    assert.notMatch(stderr, /EPIPE|\n\s+at /, "no stack trace")
    assert.match(stderr, /output closed: stopping\. No new trials start/)
    const runDir = stdout.match(/run directory: (.*)/)![1]!
    assert.include(stderr, `trex: stopped; continue with: trex resume ${runDir}`)
    assert.include((await trexHere(["status", runDir])).stdout, "State: finished (stopped by request)")
    const resumed = trex(["resume", runDir], { TREX_TOY_MS: "30" })
    assert.strictEqual(resumed.status, 0, resumed.stderr)
    assert.include(resumed.stdout, "State: finished (budget: maxTrials)")
  })

  it("output and errors that go away together (`trex run 2>&1 | head`) stop the run as gently: exit 141, lock released, resumable", async () => {
    const out = tmp()
    const cmd = `"${process.execPath}" --conditions=@trex/source "${bin}" run "${path.join(fixtures, "toy.task.yaml")}" --out "${out}" --max-trials 6 2>&1 | head -1; echo "exit \${PIPESTATUS[0]}" >&2`
    const r = spawnSync("bash", ["-c", cmd], { cwd: root, encoding: "utf8", env: { ...process.env, TREX_TOY_MS: "300" }, timeout: 60_000 })
    const runDir = r.stdout.match(/run directory: (.*)/)![1]!
    assert.strictEqual(r.stderr.trim(), "exit 141")
    assert.isFalse(fs.existsSync(path.join(runDir, "journal.sqlite.lock.pid")), "the controller closed its journal")
    assert.include((await trexHere(["status", runDir])).stdout, "State: finished (stopped by request)")
    assert.isTrue(fs.existsSync(path.join(runDir, "report.md")))
    const resumed = trex(["resume", runDir], { TREX_TOY_MS: "30" })
    assert.strictEqual(resumed.status, 0, resumed.stderr)
    assert.include(resumed.stdout, "State: finished (budget: maxTrials)")
  })

  it("Ctrl-C, then SIGTERM, stops at once: running jobs cancelled, exit 143, journal consistent, and `trex resume` carries on", async () => {
    const out = tmp()
    const log = path.join(out, "executions.log")
    const { child, exited, output } = await runUntilTwoRunning(out, log)
    child.kill("SIGINT")
    const deadline = Date.now() + 10_000
    while (!output.stderr.includes("Ctrl-C: stopping") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    child.kill("SIGTERM")
    const code = await exited
    assert.strictEqual(code, 143)
    const stdout = output.stdout
    assert.match(stdout, /stopped, running trials cancelled; continue with: trex resume /)
    const runDir = stdout.match(/run directory: (.*)/)![1]!
    // the running jobs were cancelled: no job process is left (a zombie its supervisor has not
    // reaped yet counts as gone; the kill may take a moment to land)
    let checked = 0
    for (const node of fs.readdirSync(path.join(runDir, "jobs"))) {
      const pidFile = path.join(runDir, "jobs", node, "pid")
      if (!fs.existsSync(pidFile)) continue
      const { pid } = JSON.parse(fs.readFileSync(pidFile, "utf8")) as { pid: number }
      const deadline = Date.now() + 15_000
      while (!gone(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      assert.isTrue(gone(pid), `job ${node} (pid ${pid}) still runs 15 s after Ctrl-C`)
      checked++
    }
    assert.isAbove(checked, 0, "jobs had started when Ctrl-C came")
    assert.isFalse(fs.existsSync(path.join(runDir, "journal.sqlite.lock.pid")), "the lock is released")
    // status shows the cancelled trials as interrupted (resume runs them again), not as running
    const status = await trexHere(["status", runDir])
    assert.strictEqual(status.status, 0, status.stderr)
    assert.match(status.stdout, /State: stopped before it finished — `trex resume .*` continues it \(2 trials were in flight: it reattaches to the jobs that still run, and runs the others again\)/)
    assert.match(status.stdout, /, 2 interrupted/)
    assert.strictEqual((status.stdout.match(/ interrupted \(running\)/g) ?? []).length, 2)
    assert.notMatch(status.stdout, / running$/m)
    assert.strictEqual(JSON.parse((await trexHere(["status", runDir, "--json"])).stdout).state, "stopped")
    const resumed = trex(["resume", runDir], { TREX_TOY_LOG: log, TREX_TOY_MS: "50" })
    assert.strictEqual(resumed.status, 0, resumed.stderr)
    const tree = ExperimentTree.fold((await readJournal(runDir)).map((e) => e.event))!
    assert.strictEqual(tree.view.size, 6)
    for (const n of tree.view.nodes()) assert.oneOf(n.state._tag, ["Succeeded", "Failed"])
  })
})
