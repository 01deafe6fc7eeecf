// `recipe.secretEnv`: the real CLI on a job that needs a token, on the local backend. The value comes
// from trex's environment, reaches every job, and is written nowhere (task, journal, report, status):
// what a job prints of it is replaced by its name.
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { trex } from "./support/cli.ts"

/** Every file under `dir`, read as bytes (journals included). */
const allText = (dir: string): string =>
  fs.readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => fs.readFileSync(path.join(e.parentPath, e.name), "latin1"))
    .join("\n")

// a job that needs its token: it prints it (as a careless trainer's debug line would), fails when it is not
// the one expected, and with format=reversed fails after printing it again
const JOB = `
import crypto from "node:crypto"
import fs from "node:fs"
const dir = process.env.TREX_JOB_DIR
const strategy = JSON.parse(fs.readFileSync(dir + "/strategy.json", "utf8"))
const token = process.env.TOY_HUB_TOKEN
console.log("logging in with " + token)
if (crypto.createHash("sha256").update(token ?? "").digest("hex") !== process.env.TOY_EXPECTED_SHA256) { console.error("401: bad token " + token); process.exit(1) }
if (strategy.data.format === "reversed") { console.error("Traceback: upload refused for token " + token); process.exit(1) }
const score = 1 / (1 + Math.abs(Math.log10(strategy.training.learningRate) + 3))
fs.writeFileSync(dir + "/result.json", JSON.stringify({ metrics: { score }, summary: "trained with " + token }))
`

const SECRET = "hf_T0k3nValue_42"

/** The files of a run directory that hold the secret, relative to it. */
const holdersOf = (runDir: string) =>
  fs.readdirSync(runDir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && fs.readFileSync(path.join(e.parentPath, e.name), "latin1").includes(SECRET))
    .map((e) => path.relative(runDir, path.join(e.parentPath, e.name)))

/** A job's own files: what it printed, and its result.json. */
const JOBS_OWN = /^jobs\/n\d+\/(stdout\.log|stderr\.log|result\.json)$/

const TASK = `name: secret-toy
objective: a job that needs a hub token
metric: { name: score, direction: maximize }
budget: { maxTrials: 4 }
recipe:
  command: ["{execPath}", "{taskDir}/job.mjs"]
  env: { TOY_EXPECTED_SHA256: "${crypto.createHash("sha256").update(SECRET).digest("hex")}" }
  secretEnv: [TOY_HUB_TOKEN]
searchSpace:
  parameters:
    - { path: training.learningRate, kind: log, values: [0.0001, 0.001, 0.01] }
    - { path: data.format, kind: categorical, values: [plain, reversed] }
defaultStrategy:
  data: { sources: [{ name: toy }], format: plain }
  training: { learningRate: 0.0001, epochs: 1, batchSize: 8 }
`

describe("recipe.secretEnv", () => {
  it("jobs get the secret from trex's environment; no file of the run holds it, and what a job prints of it reads <secret NAME>", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-secret-"))
    fs.writeFileSync(path.join(dir, "job.mjs"), JOB)
    // the task file holds the secret's hash (the job's stand-in for a hub that checks it); the secret is only in trex's environment
    fs.writeFileSync(path.join(dir, "task.yaml"), TASK)
    const out = path.join(dir, "runs")

    const unset = trex(["run", path.join(dir, "task.yaml"), "--out", out], { TOY_HUB_TOKEN: undefined })
    assert.strictEqual(unset.status, 2, unset.stderr)
    assert.include(unset.stderr, "the task's recipe.secretEnv names TOY_HUB_TOKEN, which is not set in trex's environment: set it before `trex run` or `trex resume` (`export TOY_HUB_TOKEN=...`)")
    assert.isFalse(fs.existsSync(out), "nothing was started")

    const r = trex(["run", path.join(dir, "task.yaml"), "--out", out, "--max-trials", "4", "--seed", "3"], { TOY_HUB_TOKEN: SECRET })
    assert.strictEqual(r.status, 0, r.stderr)
    const runDir = /run directory: (\S+)/.exec(r.stdout)![1]!
    const status = JSON.parse(trex(["status", runDir, "--json"], {}).stdout) as { counts: { Succeeded: number; Failed: number }; nodes: ReadonlyArray<{ id: string; state: string }> }
    assert.isAtLeast(status.counts.Succeeded, 1, "the jobs got the secret")
    const failed = status.nodes.find((n) => n.state === "Failed")
    assert.isDefined(failed, "a format=reversed trial failed after printing the token")
    // the log tail is read from the job's own files: the values of the task's secretEnv in this shell's environment are taken out
    const trial = trex(["status", runDir, "--node", failed!.id], { TOY_HUB_TOKEN: SECRET })
    assert.include(trial.stdout, "Traceback: upload refused for token <secret TOY_HUB_TOKEN>")
    const html = trex(["report", runDir, "--html"], { TOY_HUB_TOKEN: SECRET })
    assert.strictEqual(html.status, 0, html.stderr)
    assert.match(fs.readFileSync(path.join(runDir, "report.html"), "utf8"), /upload refused for token (\\u003c|&lt;)secret TOY_HUB_TOKEN/)

    // from a shell without the secret, no line of the jobs' own logs is shown (they could hold it, and nothing here can take
    // it out), and each command says why; the failure's own tail, taken out when it was journaled, still is
    const bare = trex(["status", runDir, "--node", failed!.id], { TOY_HUB_TOKEN: undefined })
    assert.strictEqual(bare.status, 0, bare.stderr)
    assert.include(bare.stdout, "Logs: lines from the jobs' logs are left out: the task's recipe.secretEnv names TOY_HUB_TOKEN, not set in this shell")
    assert.include(bare.stdout, "Log tail (as its failure recorded it):")
    assert.include(bare.stdout, "upload refused for token <secret TOY_HUB_TOKEN>")
    const bareHtml = trex(["report", runDir, "--html"], { TOY_HUB_TOKEN: undefined })
    assert.strictEqual(bareHtml.status, 0, bareHtml.stderr)
    assert.include(bareHtml.stderr, "trex: lines from the jobs' logs are left out: the task's recipe.secretEnv names TOY_HUB_TOKEN, not set in this shell")
    const barePage = fs.readFileSync(path.join(runDir, "report.html"), "utf8")
    assert.include(barePage, "lines from the jobs&#39; logs are left out")
    assert.notInclude(barePage, '"logs":', "no node carries lines of its job's logs")
    for (const text of [bare.stdout, bare.stderr, bareHtml.stdout, bareHtml.stderr, barePage]) assert.notInclude(text, SECRET)

    // the jobs' own files (stdout.log, stderr.log, result.json) hold what they wrote; nothing trex wrote does
    const holders = holdersOf(runDir)
    assert.isAtLeast(holders.length, 1, "the jobs printed it")
    for (const f of holders) assert.match(f, JOBS_OWN)
    assert.isTrue(fs.existsSync(path.join(runDir, "report.html")), "report.html was looked at too")
    assert.include(allText(runDir), "TOY_HUB_TOKEN", "the name is recorded, with the task")
    assert.include(allText(runDir), "trained with <secret TOY_HUB_TOKEN>", "a summary's copy is taken out too")
    for (const text of [r.stdout, r.stderr, trial.stdout]) assert.notInclude(text, SECRET)

    // a resume reads it again from its own environment
    const resumedUnset = trex(["resume", runDir, "--max-trials", "5"], { TOY_HUB_TOKEN: undefined })
    assert.strictEqual(resumedUnset.status, 2)
    assert.include(resumedUnset.stderr, "recipe.secretEnv names TOY_HUB_TOKEN")
    const resumed = trex(["resume", runDir, "--max-trials", "5"], { TOY_HUB_TOKEN: SECRET })
    assert.strictEqual(resumed.status, 0, resumed.stderr)
    for (const f of holdersOf(runDir)) assert.match(f, JOBS_OWN)
  }, 180_000)
})
