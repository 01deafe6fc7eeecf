// Text that models, jobs and backends write, shown by the CLI: on a terminal (status, the live view) it
// cannot recolour, move or reverse what follows nor start lines of its own; in report.md it renders as
// the text it is.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { ExperimentNode, ExperimentTree, JournalEvent } from "@trex/core"
import { TreeBuilder } from "@trex/core/testing"
import * as LiveView from "../src/LiveView.ts"
import * as Status from "../src/Status.ts"
import * as Untrusted from "../src/internal/untrusted.ts"
import { trex } from "./support/cli.ts"

const HOSTILE = "red \x1b[31mALERT\x1b[0m\x00 gnp\u202E.exe\r\n\n## Injected heading\n- [click](javascript:alert(1)) <iframe src=x></iframe> | col | back\\|slash"

describe("untrusted text", () => {
  it("on a terminal: controls and bidi overrides removed, one line, cut", () => {
    const shown = Untrusted.line(HOSTILE)
    assert.notMatch(shown, /[\x00-\x1f\x7f\u202e]/)
    assert.strictEqual(shown, "red [31mALERT[0m gnp.exe ## Injected heading - [click](javascript:alert(1)) <iframe src=x></iframe> | col | back\\|slash")
    assert.strictEqual(Untrusted.line("x".repeat(50), 10), `${"x".repeat(9)}…`)
  })

  it("in Markdown: no heading, list, link, HTML or table cell of its own", () => {
    assert.strictEqual(Untrusted.markdown("## Injected"), "\\## Injected")
    assert.strictEqual(Untrusted.markdown("1. first"), "\\1. first")
    assert.strictEqual(
      Untrusted.markdown("[click](javascript:alert(1)) <iframe> a|b back\\|slash *x* `y`"),
      "\\[click\\](javascript:alert(1)) \\<iframe\\> a\\|b back\\\\\\|slash \\*x\\* \\`y\\`"
    )
  })
})

describe("the CLI's views of a run whose model and jobs wrote hostile text", () => {
  const b = new TreeBuilder.TreeBuilder(TreeBuilder.task({ budget: { maxTrials: 4 } }))
  b.fail(ExperimentNode.ROOT, { "training.learningRate": 0.02 })
  b.events.push(
    JournalEvent.make("AnalysisCompleted", { analysis: { summary: HOSTILE, metricNotes: "", dataNotes: "", risks: [HOSTILE], notes: {} }, at: 1 }),
    JournalEvent.make("InsightsDistilled", { insights: [{ id: "i1", text: HOSTILE, evidence: ["n1"], createdAt: 1, data: {} }], at: 2 }),
    JournalEvent.make("RunFinished", { reason: HOSTILE, at: 3 })
  )
  const tree = ExperimentTree.fold(b.events)!
  const info = {
    started: b.events[0] as JournalEvent.Of<"RunStarted">,
    finished: b.events.at(-1) as JournalEvent.Of<"RunFinished">,
    tree,
    entries: b.events.map((event, i) => ({ seq: i + 1, event })),
    writer: undefined
  }

  it("trex status prints no control character, and no line of the model's own", () => {
    const text = Status.toText(info, "/runs/r")
    assert.notMatch(text, /[\x00-\x08\x0b-\x1f\x7f\u202e]/)
    assert.notInclude(text.split("\n"), "## Injected heading")
    assert.include(text, "## Injected heading")
  })

  it("report.md: the model's text is text (no heading, link, HTML or extra table cell)", () => {
    const md = Status.toMarkdown(info)
    const lines = md.split("\n")
    assert.notInclude(lines, "## Injected heading")
    assert.isFalse(lines.some((l) => l.startsWith("## Injected")))
    assert.notMatch(md, /[^\\]\]\(javascript/, "no link: its bracket is escaped")
    assert.notMatch(md, /[^\\]<iframe/, "no HTML: its angle bracket is escaped")
    assert.notMatch(md, /[\x00-\x08\x0b-\x1f\x7f\u202e]/)
    // the failed trial's row keeps its five cells
    const row = lines.find((l) => l.startsWith("| n1 |"))!
    assert.strictEqual(row.split(/(?<!\\)\|/).length - 2, 5, row)
  })

  it("the live view prints no control character and one line per event", () => {
    let out = ""
    const view = LiveView.make({ tty: false, write: (s) => void (out += s) })
    for (const [i, event] of b.events.entries()) view.onEvent({ seq: i + 1, event }, tree.view)
    view.close()
    assert.notMatch(out, /[\x00-\x08\x0b-\x1f\x7f\u202e]/)
    assert.notInclude(out.split("\n"), "## Injected heading")
  })
})

describe("trex run whose trainer writes escape sequences and fails every trial alike", () => {
  it("names the failure on stderr without a control character of the trainer's (the terminal is not cleared nor retitled)", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-untrusted-"))
    // the last line of its log, which the stop quotes: clear the screen, set the window's title, ring the bell
    const printed = String.raw`printf '\033[2J\033]0;pwned\007ModuleNotFoundError: x\r\n' >&2; exit 1`
    fs.writeFileSync(path.join(dir, "task.yaml"), [
      "name: hostile-log",
      "objective: a trainer whose log is hostile",
      "metric: { name: score, direction: maximize }",
      `recipe: { command: ["sh", "-c", ${JSON.stringify(printed)}], resources: { timeLimitSeconds: 30 } }`,
      "searchSpace:",
      "  parameters:",
      "    - { path: training.learningRate, kind: log, values: [0.0001, 0.001, 0.01] }",
      "defaultStrategy: { data: { sources: [{ name: toy }] }, training: { learningRate: 0.001, epochs: 1, batchSize: 8 } }"
    ].join("\n"))
    const r = trex(["run", path.join(dir, "task.yaml"), "--out", path.join(dir, "runs"), "--max-trials", "4", "--concurrency", "1"])
    assert.strictEqual(r.status, 1, r.stderr)
    assert.include(r.stderr, "failed the same way, and none succeeded: Crash: exited with code 1 ([2J]0;pwnedModuleNotFoundError: x)")
    assert.notMatch(r.stderr, /[\x00-\x08\x0b-\x1f\x7f]/)
    assert.notMatch(r.stdout, /[\x00-\x08\x0b-\x1f\x7f]/)
  })
})
