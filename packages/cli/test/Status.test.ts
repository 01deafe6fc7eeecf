import * as fs from "node:fs"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { ExperimentNode, ExperimentTree, JournalEvent, Result } from "@trex/core"
import { TreeBuilder } from "@trex/core/testing"
import * as HtmlReport from "../src/HtmlReport.ts"
import * as Status from "../src/Status.ts"
import { readJournal, root, tmp, trex, trexHere } from "./support/cli.ts"
import { hostileRun, overriddenRun, recordTimeout } from "./support/settingsRun.ts"

describe("trex status, a best trial with a thousand metrics", () => {
  it("shows its first 12 metrics on one short line and says how many more --json has", () => {
    const b = new TreeBuilder.TreeBuilder(TreeBuilder.task({ budget: { maxTrials: 4 } }))
    const id = b.start(b.propose(ExperimentNode.ROOT, { "training.learningRate": 0.02 }))
    const metrics: Record<string, number> = { score: 0.9 }
    for (let i = 0; i < 1000; i++) metrics[`class_${i}_f1`] = i / 1000
    b.events.push(JournalEvent.make("NodeFinished", { nodeId: id, outcome: "Succeeded", result: Result.success(metrics, 0.9), at: 100 }))
    const tree = ExperimentTree.fold(b.events)!
    const info = { started: b.events[0] as JournalEvent.Of<"RunStarted">, finished: undefined, tree, entries: b.events.map((event, i) => ({ seq: i + 1, event })), writer: undefined }
    const best = Status.toText(info, "/runs/r").split("\n").find((l) => l.startsWith("Best: "))!
    assert.match(best, /^Best: n1 score=0\.9 \(score 0\.9, class_0_f1 0, class_1_f1 0\.001, .*class_10_f1 0\.01, and 989 more: trex status --json\)$/)
    assert.isBelow(best.length, 300)
    assert.strictEqual(Object.keys(Status.toJson(info).best!.metrics).length, 1001)
  })
})

describe("trex status --node: one trial in full", () => {
  const infoOf = (b: TreeBuilder.TreeBuilder, writer?: { pid: number }) => ({
    started: b.events[0] as JournalEvent.Of<"RunStarted">,
    finished: undefined,
    tree: ExperimentTree.fold(b.events)!,
    entries: b.events.map((event, i) => ({ seq: i + 1, event })),
    writer
  })

  it("a child's changes from its parent, path by path; a child of the root's from the task's default strategy", () => {
    const b = new TreeBuilder.TreeBuilder(TreeBuilder.task())
    const n1 = b.succeed(ExperimentNode.ROOT, { "training.learningRate": 0.001 }, 0.5)
    const n2 = b.succeed(n1, { "training.epochs": 3, "data.format": "reversed" }, 0.7)
    const info = infoOf(b)
    const first = Status.trialJson(info, n1)!
    assert.deepStrictEqual(first.changes, [{ path: "training.learningRate", from: 1e-4, to: 0.001 }])
    const second = Status.trialJson(info, n2)!
    assert.deepStrictEqual(second.changes, [{ path: "data.format", from: "plain", to: "reversed" }, { path: "training.epochs", from: 1, to: 3 }])
    assert.deepStrictEqual(second.jobs, [{ backend: "test", id: "job-n2", submittedAt: second.jobs[0]!.submittedAt }])
    assert.deepStrictEqual(Status.trialJson(info, n1)!.children, [n2])
    const text = Status.trialText(second, "score")
    assert.match(text, /^Trial n2 of run test: succeeded, score=0\.7$/m)
    assert.match(text, /^Changed from n1: data\.format "plain" -> "reversed"; training\.epochs 1 -> 3$/m)
    assert.match(text, /^  training\.learningRate = 0\.001$/m)
    assert.strictEqual(Status.trialJson(info, "n3"), undefined)
  })

  it("each job's folder, as its backend recorded it: a claim's folder, an SSH host's directory, a job directory; a local one's is its Files line", () => {
    const b = new TreeBuilder.TreeBuilder(TreeBuilder.task())
    const n1 = b.succeed(ExperimentNode.ROOT, { "training.learningRate": 0.001 }, 0.5)
    const submitted = (backend: string, id: string, data: Record<string, string>) => b.events.push(JournalEvent.make("JobSubmitted", { nodeId: n1, job: { backend, id, data }, at: 5 }))
    submitted("kubernetes", "trex-n1-a", { namespace: "ml", folder: "PersistentVolumeClaim trex-jobs in namespace ml, folder r/trex-n1-a" })
    submitted("ssh", "r/n1@gpu1", { host: "gpu1", dir: "/scratch/trex/r/n1" })
    submitted("slurm", "4242", { jobDir: "/shared/trex/r/n1-x" })
    submitted("local", "n1", { dir: "/runs/r/jobs/n1" })
    const trial = Status.trialJson(infoOf(b), n1, { dir: "/runs/r/jobs/n1", tail: [] })!
    assert.deepStrictEqual(trial.jobs.slice(1).map((j) => j.folder), [
      "PersistentVolumeClaim trex-jobs in namespace ml, folder r/trex-n1-a",
      "gpu1:/scratch/trex/r/n1",
      "/shared/trex/r/n1-x",
      "/runs/r/jobs/n1"
    ])
    const timeline = Status.trialText(trial, "score").split("\n").find((l) => l.startsWith("Timeline: "))!
    assert.include(timeline, "job kubernetes trex-n1-a submitted 1970-01-01T00:00:00Z (its folder: PersistentVolumeClaim trex-jobs in namespace ml, folder r/trex-n1-a)")
    assert.include(timeline, "(its folder: gpu1:/scratch/trex/r/n1)")
    assert.include(timeline, "(its folder: /shared/trex/r/n1-x)")
    assert.include(timeline, "job local n1 submitted 1970-01-01T00:00:00Z ·")
  })

  it("a running trial: its wait, progress and intermediate metrics while a controller runs it; interrupted when none does", () => {
    const b = new TreeBuilder.TreeBuilder(TreeBuilder.task())
    const n1 = b.start(b.propose(ExperimentNode.ROOT, { "training.epochs": 2 }))
    b.progress(n1, 10, 0.25, "loss", "train")
    b.progress(n1, 20, 0.125, "loss", "train")
    b.jobState(n1, "Pending", "Priority")
    const live = Status.trialJson(infoOf(b, { pid: 123 }), n1)!
    assert.strictEqual(live.waiting, "Priority")
    assert.strictEqual(live.interrupted, undefined)
    const text = Status.trialText(live, "score")
    assert.match(text, /^Trial n1 of run test: waiting \(Priority\)$/m)
    assert.match(text, /^Intermediate: train\/loss 0\.125 \(step 20\)$/m)
    const stopped = Status.trialJson(infoOf(b), n1)!
    assert.strictEqual(stopped.interrupted, true)
    assert.strictEqual(stopped.waiting, undefined)
    assert.match(Status.trialText(stopped, "score"), /^Trial n1 of run test: interrupted \(running\): the run stopped while it was in flight$/m)
  })

  it("a running trial whose backend does not answer: unreachable, and why, while a controller runs it; running again once the backend answers", () => {
    const b = new TreeBuilder.TreeBuilder(TreeBuilder.task())
    const n1 = b.start(b.propose(ExperimentNode.ROOT, { "training.epochs": 2 }))
    const outage = "the Docker engine at unix:///var/run/docker.sock does not answer since 10:03:12Z (connect ENOENT)"
    b.jobState(n1, "Running", outage)
    const live = infoOf(b, { pid: 123 })
    const trial = Status.trialJson(live, n1)!
    assert.strictEqual(trial.unreachable, outage)
    assert.match(Status.trialText(trial, "score"), /^Trial n1 of run test: unreachable \(the Docker engine at unix:\/\/\/var\/run\/docker\.sock does not answer since 10:03:12Z \(connect ENOENT\)\)$/m)
    assert.strictEqual(Status.toJson(live).nodes.find((n) => n.id === n1)?.unreachable, outage)
    assert.match(Status.toText(live, "/tmp/run"), /unreachable \(the Docker engine/)
    // a run that stopped (its controller killed) during the outage: the trial is interrupted, and says it was out of touch
    const stopped = infoOf(b)
    assert.strictEqual(Status.trialJson(stopped, n1)!.unreachable, outage)
    assert.match(Status.trialText(Status.trialJson(stopped, n1)!, "score"), /^Trial n1 of run test: interrupted \(running\): the run stopped while it was in flight, its backend not answering about its job \(the Docker engine .*\): `trex resume` follows the job again once it answers$/m)
    assert.match(Status.toText(stopped, "/tmp/run"), /n1 interrupted \(unreachable\)/)
    assert.strictEqual(Status.toJson(stopped).nodes.find((n) => n.id === n1)?.unreachable, undefined, "the run's summary gives no outage of a run nobody runs")
    b.jobState(n1, "Running")
    const after = infoOf(b, { pid: 123 })
    assert.strictEqual(Status.trialJson(after, n1)!.unreachable, undefined)
    assert.notMatch(Status.toText(after, "/tmp/run"), /unreachable/)
  })

  it("a failure: kind, exit code and message, and the log tail it carried when the job's folder has none; text from the job is shown inert", () => {
    const b = new TreeBuilder.TreeBuilder(TreeBuilder.task())
    const n1 = b.start(b.propose(ExperimentNode.ROOT, { "training.epochs": 4 }))
    const result = Result.failure("OOM", "CUDA out of memory\u001b[2J", { exitCode: 137, logTail: ["step 1", "RuntimeError: CUDA out of memory\u001b[31m"] })
    b.events.push(JournalEvent.make("NodeFinished", { nodeId: n1, outcome: "Failed", result, at: 100 }))
    const info = infoOf(b)
    const t = Status.trialJson(info, n1)!
    assert.deepStrictEqual(t.logs, { source: "as its failure recorded it", tail: ["step 1", "RuntimeError: CUDA out of memory\u001b[31m"] })
    const text = Status.trialText(t, "score")
    assert.notInclude(text, "\u001b")
    assert.match(text, /^Failure: OOM \(exit code 137\): CUDA out of memory\[2J$/m)
    assert.match(text, /^Log tail \(as its failure recorded it\):\n {2}\| step 1\n {2}\| RuntimeError: CUDA out of memory\[31m$/m)
    // the job's folder, when there is one, is where its logs are read from
    const withFiles = Status.trialJson(info, n1, { dir: "/runs/r/jobs/n1", tail: ["from the folder"] })!
    assert.deepStrictEqual(withFiles.logs, { source: "/runs/r/jobs/n1", tail: ["from the folder"] })
    assert.match(Status.trialText(withFiles, "score"), /^Files: \/runs\/r\/jobs\/n1$/m)
  })
})

describe("how a run that ended without finishing goes on, in each view", () => {
  const infoOf = (events: ReadonlyArray<JournalEvent.JournalEvent>) => {
    const finished = events.findLast((e) => e._tag === "RunFinished") as JournalEvent.Of<"RunFinished"> | undefined
    return {
      started: events[0] as JournalEvent.Of<"RunStarted">,
      finished,
      tree: ExperimentTree.fold(events)!,
      entries: events.map((event, i) => ({ seq: i + 1, event })),
      writer: undefined
    }
  }
  const hint = "(`trex resume` on its run directory continues it)"

  it("report.md and the HTML report say that trex resume continues a run stopped by request with nothing in flight, as trex status does; a run that finished on its budget has no such word", () => {
    const b = new TreeBuilder.TreeBuilder(TreeBuilder.task({ budget: { maxTrials: 4 } }))
    b.succeed(ExperimentNode.ROOT, { "training.learningRate": 0.01 }, 0.5)
    const stopped = infoOf([...b.events, JournalEvent.make("RunFinished", { reason: "stopped by request", at: 200 })])
    assert.include(Status.toText(stopped, "/runs/r"), "State: finished (stopped by request) — `trex resume /runs/r` continues it")
    assert.include(Status.toMarkdown(stopped), `- State: finished — stopped by request ${hint}`)
    assert.include(HtmlReport.render({ entries: stopped.entries, stopped: true }), "finished: stopped by request (trex resume continues it)")
    // with a trial in flight when it stopped: the same word, and the HTML says the trial runs on resume
    const open = new TreeBuilder.TreeBuilder(TreeBuilder.task({ budget: { maxTrials: 4 } }))
    open.succeed(ExperimentNode.ROOT, { "training.learningRate": 0.01 }, 0.5)
    open.start(open.propose(ExperimentNode.ROOT, { "training.learningRate": 0.02 }))
    const inFlight = infoOf([...open.events, JournalEvent.make("RunFinished", { reason: "stopped by request", at: 200 })])
    assert.include(Status.toMarkdown(inFlight), `- State: finished — stopped by request ${hint}`)
    assert.include(HtmlReport.render({ entries: inFlight.entries, stopped: true }), "finished: stopped by request (trex resume runs the trials it had in flight)")
    // a run that finished on its own is done
    const done = infoOf([...b.events, JournalEvent.make("RunFinished", { reason: "budget: maxTrials", at: 200 })])
    assert.notInclude(Status.toMarkdown(done), "trex resume")
    assert.notInclude(Status.toText(done, "/runs/r"), "trex resume")
    assert.notInclude(HtmlReport.render({ entries: done.entries, stopped: true }), "trex resume")
  })
})

describe("trex status, the settings a run takes", () => {
  it("--json gives them, the recorded ones with those a resume set for the run laid over; the text names each override and the resume that set it", async () => {
    // a short run on the simulator, then its journal's recorded model timeout made one this trex does not take
    // (3,000,000 s, as an older trex or an edited journal holds it), its checksum made anew: a sound entry
    const run = await trexHere(["run", path.join(root, "examples/recorded-table/task.yaml"), "--max-trials", "2", "--out", tmp()])
    assert.strictEqual(run.status, 0, run.stderr)
    const runDir = /run directory: (\S+)/.exec(run.stdout)![1]!
    const options = recordTimeout(runDir, 3_000_000)
    const before = JSON.parse((await trexHere(["status", runDir, "--json"])).stdout)
    assert.deepStrictEqual(before.settings, options, "never resumed: the settings it started with")
    assert.deepStrictEqual(before.settingOverrides, [])
    // the first resume gives the run another timeout (kept: RunResumed.settings); the second one for its session alone (not kept)
    const first = await trexHere(["resume", runDir, "--model-timeout", "60", "--max-trials", "3"])
    assert.strictEqual(first.status, 0, first.stderr)
    const second = await trexHere(["resume", runDir, "--model-timeout", "90", "--max-trials", "4"])
    assert.strictEqual(second.status, 0, second.stderr)
    const resumes = (await readJournal(runDir)).flatMap((e) => e.event._tag === "RunResumed" ? [e.event] : [])
    assert.deepStrictEqual(resumes.map((r) => r.settings), [{ modelTimeoutSeconds: 60 }, undefined])
    // the real CLI, as a script reads it
    const json = trex(["status", runDir, "--json"])
    assert.strictEqual(json.status, 0, json.stderr)
    const status = JSON.parse(json.stdout)
    assert.deepStrictEqual(status.settings, { ...options, modelTimeoutSeconds: 60 })
    assert.strictEqual(status.settings.backend, "simulator")
    assert.deepStrictEqual(status.settingOverrides, [{ key: "modelTimeoutSeconds", value: 60, from: 3_000_000, resume: 1, at: resumes[0]!.at }])
    assert.deepStrictEqual(Object.keys(status).slice(-3), ["settings", "settingOverrides", "webhooks"])
    // and as a user reads it: one line for the override, after the budget's
    const text = trex(["status", runDir])
    assert.strictEqual(text.status, 0, text.stderr)
    const at = new Date(resumes[0]!.at).toISOString().replace(/\.\d{3}Z$/, "Z")
    const lines = text.stdout.split("\n")
    assert.deepStrictEqual(lines.filter((l) => l.startsWith("Setting")), [`Setting: modelTimeoutSeconds 60 since resume 1 (${at}; the run started with 3000000)`])
    assert.match(lines[lines.findIndex((l) => l.startsWith("Setting:")) - 1]!, /^Budget: trials 4\/4 /)
  }, 120_000)
})

describe("trex report, the settings a run takes", () => {
  it("report.md gives them as trex status --json does, and each a resume set for the run in trex status's words", async () => {
    const { runDir } = await overriddenRun()
    const status = await trexHere(["status", runDir])
    const json = JSON.parse((await trexHere(["status", runDir, "--json"])).stdout)
    const report = trex(["report", runDir])
    assert.strictEqual(report.status, 0, report.stderr)
    const md = fs.readFileSync(path.join(runDir, "report.md"), "utf8").split("\n")
    // the override, in the run's summary after its trials, as trex status says it
    const said = status.stdout.split("\n").filter((l) => l.startsWith("Setting: "))
    assert.strictEqual(said.length, 1)
    const at = md.findIndex((l) => l.startsWith("- Setting: "))
    assert.deepStrictEqual(md.filter((l) => l.startsWith("- Setting: ")), said.map((l) => `- ${l}`))
    assert.match(md[at - 1]!, /^- Trials: /)
    // every setting, in trex status --json's order, with its value as JSON
    const table = md.slice(md.indexOf("## Settings"), md.indexOf("## Trials"))
    const rows = table.filter((l) => l.startsWith("| ") && !l.startsWith("| setting ")).map((l) => l.split(" | ").map((c) => c.replace(/^\| | \|$/g, "").replace(/\\(.)/g, "$1")))
    assert.deepStrictEqual(rows, Object.entries(json.settings).map(([k, v]) => [k, JSON.stringify(v)]))
    assert.deepStrictEqual(rows.find(([k]) => k === "modelTimeoutSeconds"), ["modelTimeoutSeconds", "60"])
  }, 120_000)

  it("report.md keeps an edited journal's settings as text: markup, | and line breaks escaped, each setting a row of two cells, long ones cut", async () => {
    const { options, runDir } = await hostileRun("<script>alert(1)</script>")
    const report = await trexHere(["report", runDir])
    assert.strictEqual(report.status, 0, report.stderr)
    const md = fs.readFileSync(path.join(runDir, "report.md"), "utf8").split("\n")
    const table = md.slice(md.indexOf("## Settings"), md.indexOf("## Trials"))
    const rows = table.filter((l) => l.startsWith("| ") && !l.startsWith("| setting "))
    // a row a setting, of two cells: no `|` but the cells' own (the others escaped), no line break, no raw markup
    assert.strictEqual(rows.length, Object.keys(options).length)
    for (const row of rows) {
      assert.lengthOf(row.split(/(?<!\\)\|/), 4, row)
      assert.isAtMost(row.length, 600, "cut")
      assert.notInclude(row, "<script>")
    }
    assert.isFalse(md.some((l) => l.includes("not a line of its own") && !l.startsWith("| ")), "a value's line break kept in its row")
  }, 120_000)
})
