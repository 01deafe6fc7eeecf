// The live view on a terminal: a message printed while it redraws stays on screen.
import { execFileSync, spawnSync } from "node:child_process"
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { gunzipSync } from "node:zlib"
import { assert, describe, it } from "@effect/vitest"
import { ExperimentNode, ExperimentTree, JournalEvent, Result } from "@trex/core"
import { TreeBuilder } from "@trex/core/testing"
import { Effect } from "effect"
import * as LiveView from "../src/LiveView.ts"
import * as Tmux from "../src/internal/tmux.ts"
import * as Status from "../src/Status.ts"

/** The screen a terminal shows for `output`: lines, with "cursor up N, clear to the end" and "clear the line" applied (no wrapping). */
const screen = (output: string): Array<string> => wrappedScreen(output, Infinity)

describe("LiveView on a terminal", () => {
  it("a note printed above the live frame survives the next redraw; the frame is drawn once below it", () => {
    let out = ""
    const write = (s: string) => void (out += s)
    const view = LiveView.make({ tty: true, write, intervalMs: 60_000 })
    const b = new TreeBuilder.TreeBuilder(TreeBuilder.task({ budget: { maxTrials: 4 } }))
    view.onEvent({ seq: 1, event: b.events[0]! }, b.view)
    const finished = b.succeed(ExperimentNode.ROOT, {}, 0.5)
    for (const [i, event] of b.events.slice(1).entries()) view.onEvent({ seq: i + 2, event }, b.view)
    const running = b.start(b.propose(ExperimentNode.ROOT, { "training.learningRate": 0.02 }))
    view.note("Ctrl-C: stopping.\n", write)
    view.close()
    const shown = screen(out)
    assert.include(shown, "Ctrl-C: stopping.", shown.join("\n"))
    assert.strictEqual(shown.filter((l) => l.startsWith("TREX ")).length, 1, shown.join("\n"))
    // the note is above the frame, and the finished trial's line above the note
    assert.isBelow(shown.findIndex((l) => l.includes(`done   ${finished}`)), shown.indexOf("Ctrl-C: stopping."))
    assert.isBelow(shown.indexOf("Ctrl-C: stopping."), shown.findIndex((l) => l.startsWith("TREX ")))
    assert.isString(running)
  })
})

describe("LiveView: trials waiting in the backend's queue", () => {
  const setup = (tty: boolean) => {
    let out = ""
    const view = LiveView.make({ tty, write: (s) => void (out += s), intervalMs: 60_000 })
    const b = new TreeBuilder.TreeBuilder(TreeBuilder.task({ budget: { maxTrials: 4 } }))
    view.onEvent({ seq: 1, event: b.events[0]! }, b.view)
    const a = b.start(b.propose(ExperimentNode.ROOT, { "training.learningRate": 0.02 }))
    const c = b.start(b.propose(ExperimentNode.ROOT, { "training.learningRate": 0.03 }))
    for (const [i, event] of b.events.slice(1).entries()) view.onEvent({ seq: i + 2, event }, b.view)
    // a job state as the explorer journals it, folded and shown
    const state = (id: string, st: "Pending" | "Running" | "Withdrawn" | "Pruning", reason?: string) => {
      b.jobState(id, st, reason)
      view.onEvent({ seq: b.events.length, event: b.events.at(-1)! }, b.view)
    }
    return { a, b, c, out: () => out, view, state }
  }

  it("on a terminal, a waiting trial says why in the frame, until it runs", () => {
    const { a, b, c, out, view, state } = setup(true)
    state(a, "Running")
    state(c, "Pending", "no free slot or GPU")
    view.close()
    const frame = screen(out())
    assert.isTrue(frame.some((l) => l.includes(c) && l.endsWith("waiting (no free slot or GPU)")), frame.join("\n"))
    // a wait without a reason says just that
    state(a, "Pending")
    view.close()
    assert.isTrue(screen(out()).some((l) => l.includes(a) && l.endsWith(" waiting")), screen(out()).join("\n"))
    state(a, "Running")
    assert.isTrue(frame.some((l) => l.includes(a) && l.endsWith("running")), frame.join("\n"))
    state(c, "Running")
    view.close()
    const later = screen(out()).slice(-2)
    assert.isTrue(later.every((l) => l.endsWith("running")), later.join("\n"))
    // the run ended with both still in flight (a drain withdrew them): they are not shown running
    state(c, "Pending", "no free slot or GPU")
    view.onEvent({ seq: 99, event: JournalEvent.make("RunFinished", { reason: "stopped by request", at: 0 }) }, b.view)
    view.close()
    const last = screen(out()).slice(-2)
    assert.isTrue(last.every((l) => l.endsWith("stopped (runs on resume)")), last.join("\n"))
  })

  it("in plain output, one line when a trial starts waiting or its reason changes (each journaled once)", () => {
    const { c, out, view, state } = setup(false)
    state(c, "Pending", "Priority")
    state(c, "Pending", "Resources")
    state(c, "Running")
    state(c, "Withdrawn")
    assert.deepStrictEqual(out().split("\n").filter((l) => /^(wait|run|stop) /.test(l)), [
      `wait   ${c}: Priority`,
      `wait   ${c}: Resources`,
      `run    ${c}: left the backend's queue`,
      `stop   ${c}: withdrawn from the backend's queue (runs on resume)`
    ])
  })

  it("a running trial whose backend stops answering: a line when it starts and when the backend answers again; unreachable in the frame meanwhile", () => {
    const plain = setup(false)
    plain.state(plain.a, "Running", "Slurm does not answer since 10:03:12Z")
    plain.state(plain.a, "Running")
    plain.state(plain.c, "Pending", "Priority")
    plain.state(plain.c, "Running")
    assert.deepStrictEqual(plain.out().split("\n").filter((l) => /^(wait|run|lost) /.test(l)), [
      `lost   ${plain.a}: its backend cannot be asked about its job now: Slurm does not answer since 10:03:12Z`,
      `run    ${plain.a}: its backend answers again`,
      `wait   ${plain.c}: Priority`,
      `run    ${plain.c}: left the backend's queue`
    ])
    const tty = setup(true)
    tty.state(tty.a, "Running", "Slurm does not answer since 10:03:12Z")
    tty.view.close()
    const frame = screen(tty.out())
    assert.isTrue(frame.some((l) => l.includes(tty.a) && l.endsWith("unreachable (Slurm does not answer since 10:03:12Z)")), frame.join("\n"))
    tty.state(tty.a, "Running")
    tty.view.close()
    const later = screen(tty.out()).slice(-2)
    assert.isTrue(later.every((l) => l.endsWith("running")), later.join("\n"))
  })

  it("a prune is shown when it is journaled, before the trial's end: a line in plain output, its state in the frame", () => {
    const plain = setup(false)
    plain.state(plain.a, "Pruning", "stopped early by the scheduler (asha) at step 3: eval/bleu 12.5")
    assert.include(plain.out(), `prune  ${plain.a}: stopped early by the scheduler (asha) at step 3: eval/bleu 12.5; its job is cancelled\n`)
    const tty = setup(true)
    tty.state(tty.a, "Pruning", "stopped early by the scheduler (asha) at step 3: eval/bleu 12.5")
    tty.view.close()
    const frame = screen(tty.out())
    assert.isTrue(frame.some((l) => l.includes(tty.a) && l.endsWith("pruning (job cancelled)")), frame.join("\n"))
    assert.isTrue(frame.some((l) => l.includes(tty.c) && l.endsWith("running")), frame.join("\n"))
  })
})

describe("LiveView in plain output", () => {
  it("a resumed run names the trials it found in flight (they get no start line of their own)", () => {
    let out = ""
    const view = LiveView.make({ tty: false, write: (s) => void (out += s) })
    const b = new TreeBuilder.TreeBuilder(TreeBuilder.task({ budget: { maxTrials: 4 } }))
    b.succeed(ExperimentNode.ROOT, {}, 0.5)
    const open = b.start(b.propose(ExperimentNode.ROOT, { "training.learningRate": 0.02 }))
    view.onEvent({ seq: 1, event: JournalEvent.make("RunResumed", { at: 0 }) }, b.view)
    assert.strictEqual(out, `resumed run on task ${b.view.task.name}; in flight when it stopped (reattached, or run again): ${open}\n`)
  })
})

describe("trex status of a trial being pruned", () => {
  it("shows it pruning, with the scheduler's reason in --json, until its end is journaled", () => {
    const b = new TreeBuilder.TreeBuilder(TreeBuilder.task({ budget: { maxTrials: 4 } }))
    const id = b.start(b.propose(ExperimentNode.ROOT, { "training.learningRate": 0.02 }))
    b.progress(id, 3, 12.5)
    b.jobState(id, "Pruning", "stopped early by the scheduler (asha) at step 3: eval/score 12.5")
    const tree = ExperimentTree.fold(b.events)!
    const info = {
      started: b.events[0] as JournalEvent.Of<"RunStarted">,
      finished: undefined,
      tree,
      entries: b.events.map((event, i) => ({ seq: i + 1, event })),
      writer: undefined
    }
    assert.include(Status.treeLines(tree.view), `└─ ${id} pruning (its job is cancelled)`)
    assert.strictEqual(Status.toJson(info).nodes.find((n) => n.id === id)?.pruning, "stopped early by the scheduler (asha) at step 3: eval/score 12.5")
    b.finish(id, 12.5)
    assert.notInclude(Status.treeLines(ExperimentTree.fold(b.events)!.view).join("\n"), "pruning")
  })
})

describe("LiveView: the budget of a resumed run", () => {
  it("counts the wall clock of the run's earlier sessions, as its budget does", () => {
    let out = ""
    const view = LiveView.make({ tty: true, write: (s) => void (out += s), intervalMs: 60_000 })
    const b = new TreeBuilder.TreeBuilder(TreeBuilder.task({ budget: { maxTrials: 4, wallClockHours: 2 } }))
    b.succeed(ExperimentNode.ROOT, {}, 0.5)
    // the first session: from its start (at 0) to its last event, 90 minutes later
    const entries = [...b.events, JournalEvent.make("InsightsDistilled", { insights: [], at: 90 * 60_000 })].map((event, i) => ({ seq: i + 1, event }))
    view.prime(entries, b.view.task.budget)
    view.onEvent({ seq: entries.length + 1, event: JournalEvent.make("RunResumed", { at: Date.now() }) }, b.view)
    view.close()
    const line = screen(out).find((l) => l.startsWith("budget "))
    assert.include(line, "wall 1h30m/2h00m", line)
  })
})

describe("LiveView on a terminal, in a long run", () => {
  it("a redraw looks at the trials in flight, not the whole tree: the nodes it reads grow linearly with the trials", () => {
    const trials = 3000
    let out = ""
    const view = LiveView.make({ tty: true, write: (s) => void (out += s), intervalMs: 60_000 })
    const b = new TreeBuilder.TreeBuilder(TreeBuilder.task({ budget: { maxTrials: trials } }))
    // every node the view reads through the tree's `nodes()` is counted
    let read = 0
    const counted = new Proxy(b.view, {
      get: (target, key) =>
        key === "nodes"
          ? () => {
            const all = [...target.nodes()]
            read += all.length
            return all
          }
          : Reflect.get(target, key)
    })
    let seq = 0
    const feed = () => {
      for (; seq < b.events.length; seq++) view.onEvent({ seq: seq + 1, event: b.events[seq]! }, counted)
    }
    feed()
    // two trials in flight at every moment, one finishing as the next starts
    let running = b.start(b.propose(ExperimentNode.ROOT, { "training.learningRate": 0 }))
    for (let i = 1; i < trials; i++) {
      const next = b.start(b.propose(ExperimentNode.ROOT, { "training.learningRate": i }))
      b.finish(running, i)
      running = next
      feed()
    }
    view.close()
    // the frame still shows the trial in flight
    assert.include(screen(out).join("\n"), `  ${running} `)
    // a walk over the whole tree per finished trial reads about trials² / 2 = 4,500,000 nodes
    assert.isBelow(read, 10 * trials, `read ${read} nodes for ${trials} trials`)
  })
})

describe("LiveView: a failed trial's line", () => {
  it("names its log's last line when the message does not (the trainer's own error), and only then", () => {
    let out = ""
    const view = LiveView.make({ tty: false, write: (s) => void (out += s), intervalMs: 60_000 })
    const b = new TreeBuilder.TreeBuilder(TreeBuilder.task({ budget: { maxTrials: 4 } }))
    view.onEvent({ seq: 1, event: b.events[0]! }, b.view)
    const finish = (failure: Result.Result) => {
      const id = b.start(b.propose(ExperimentNode.ROOT, { "training.learningRate": 0.01 * (b.view.size + 1) }))
      view.onEvent({ seq: 2, event: JournalEvent.make("NodeFinished", { nodeId: id, outcome: "Failed", result: failure, at: 1 }) }, b.view)
    }
    finish(Result.failure("Crash", "exited with code 1", { logTail: ["Traceback (most recent call last):", "ModuleNotFoundError: No module named 'transformers'", ""] }))
    finish(Result.failure("Infra", "docker submit: image x is not on the engine", { logTail: ["docker submit: image x is not on the engine"] }))
    finish(Result.failure("OOM", "exit code 137: out of memory"))
    const done = out.split("\n").filter((l) => l.startsWith("done "))
    assert.match(done[0]!, /^done {3}n1 FAILED Crash: exited with code 1 \(ModuleNotFoundError: No module named 'transformers'\) {2}\| /)
    assert.match(done[1]!, /^done {3}n2 FAILED Infra: docker submit: image x is not on the engine {2}\| /)
    assert.match(done[2]!, /^done {3}n3 FAILED OOM: exit code 137: out of memory {2}\| /)
  })
})

describe("LiveView attached to a run under way (trex status --follow)", () => {
  it("on a terminal, draws the run as it stands at once: its trials in flight and its best, before any new event", () => {
    let out = ""
    const view = LiveView.make({ tty: true, write: (s) => void (out += s), intervalMs: 60_000 })
    const b = new TreeBuilder.TreeBuilder(TreeBuilder.task({ budget: { maxTrials: 4 } }))
    const best = b.succeed(ExperimentNode.ROOT, {}, 0.5)
    const running = b.start(b.propose(ExperimentNode.ROOT, { "training.learningRate": 0.02 }))
    const entries = b.events.map((event, i) => ({ seq: i + 1, event }))
    view.prime(entries, b.view.task.budget)
    view.attach(b.view)
    view.close()
    const shown = screen(out)
    assert.match(shown[0]!, new RegExp(`^TREX .* best .*: 0\\.5 \\(${best}\\)$`), shown.join("\n"))
    assert.match(shown[1]!, /^budget trials 2\/4/, shown.join("\n"))
    assert.match(shown.find((l) => l.trim().startsWith(running)) ?? "", /running/, shown.join("\n"))
  })
})

/** `screen`, on a terminal `width` columns wide: a longer line wraps to the next row, and "cursor up N" counts rows. */
const wrappedScreen = (output: string, width: number): Array<string> => {
  const rows: Array<string> = [""]
  for (const token of output.split(/(\x1b\[\d+A\x1b\[0J|\x1b\[K|\n)/)) {
    const up = /^\x1b\[(\d+)A\x1b\[0J$/.exec(token)
    if (up !== null) {
      rows.splice(Math.max(0, rows.length - 1 - Number(up[1])))
      rows.push("")
    } else if (token === "\n") rows.push("")
    else if (token !== "\x1b[K") {
      for (const ch of token) {
        if (rows[rows.length - 1]!.length === width) rows.push("")
        rows[rows.length - 1] += ch
      }
    }
  }
  return rows.filter((l, i) => l !== "" || i < rows.length - 1)
}

describe("LiveView on a narrow terminal", () => {
  it("cuts each line of the frame to the terminal's width, so a redraw clears the whole of the last frame", () => {
    const width = 60
    let out = ""
    const view = LiveView.make({ tty: true, write: (s) => void (out += s), intervalMs: 60_000, columns: () => width })
    const b = new TreeBuilder.TreeBuilder(
      TreeBuilder.task({ name: "a-task-name-long-enough-to-fill-most-of-a-line", budget: { maxTrials: 40, gpuHours: 10, dollars: 50, tokens: 100_000, wallClockHours: 2 } })
    )
    view.onEvent({ seq: 1, event: b.events[0]! }, b.view)
    const waiting = b.start(b.propose(ExperimentNode.ROOT, { "training.learningRate": 0.02 }))
    for (const [i, event] of b.events.slice(1).entries()) view.onEvent({ seq: i + 2, event }, b.view)
    b.jobState(waiting, "Pending", "Resources: the partition gpu-a100-80gb has no node free for 4 GPUs and 64 CPUs")
    view.onEvent({ seq: b.events.length, event: b.events.at(-1)! }, b.view)
    for (let i = 0; i < 3; i++) {
      b.succeed(ExperimentNode.ROOT, { "training.learningRate": 0.001 * (i + 1) }, 0.5 + i / 10)
      view.onEvent({ seq: b.events.length, event: b.events.at(-1)! }, b.view)
    }
    view.close()
    const shown = wrappedScreen(out, width)
    assert.strictEqual(shown.filter((l) => l.startsWith("TREX ")).length, 1, shown.join("\n"))
    assert.strictEqual(shown.filter((l) => l.startsWith("budget ")).length, 1, shown.join("\n"))
    const frame = shown.slice(shown.findIndex((l) => l.startsWith("TREX ")))
    for (const l of frame) assert.isBelow(l.length, width, l)
    assert.isTrue(frame.some((l) => l.includes(waiting) && l.endsWith("…")), frame.join("\n"))
  })
})

const TMUX = "/usr/bin/tmux"
const INSTALL = path.join(import.meta.dirname, "..", "..", "..", "scripts", "install-debian.sh")

/**
 * The screen of a real terminal (tmux, `columns` wide, UTF-8) on which support/liveFrame.ts drew its
 * frame for a task named `name`: its rows, as the terminal lays out wide characters and marks.
 */
const terminalScreen = async (
  name: string,
  columns: number,
  options: { readonly terminal?: Record<string, string>; readonly env?: Record<string, string>; readonly outsideTmux?: boolean; readonly tmuxOf?: string } = {}
): Promise<Array<string>> => {
  const server = `trex-live-${process.pid}`
  // the terminal's own environment (its locale: how wide it draws each character), given when it starts
  const tmux = (...args: ReadonlyArray<string>) => spawnSync(TMUX, ["-L", server, "-f", "/dev/null", ...args], { encoding: "utf8", env: { ...process.env, ...options.terminal } })
  const script = path.join(import.meta.dirname, "support", "liveFrame.ts")
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
  // with `outsideTmux`, the frame is drawn as in a terminal that is not tmux (without TMUX, which tmux sets in its panes)
  // with `tmuxOf`, as in a terminal window opened from a pane of another tmux (that TMUX, inherited)
  const command = `${options.outsideTmux === true ? "env -u TMUX " : options.tmuxOf !== undefined ? `env TMUX=${quote(options.tmuxOf)} ` : ""}${quote(process.execPath)} --conditions=@trex/source ${quote(script)} ${quote(name)}; sleep 120`
  // Debian's tmux installed first when it is missing, as the browser tests install chromium
  if (!existsSync(TMUX)) execFileSync("sh", [INSTALL, TMUX, "tmux"], { stdio: "inherit" })
  const env = Object.entries({ LANG: "C.UTF-8", ...options.env }).flatMap(([k, v]) => ["-e", `${k}=${v}`])
  const started = tmux("new-session", "-d", "-x", String(columns), "-y", "40", ...env, command)
  assert.strictEqual(started.status, 0, `tmux did not start: ${started.error ?? started.stderr}`)
  try {
    for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
      const rows = tmux("capture-pane", "-p", "-t", "0").stdout.split("\n")
      const end = rows.indexOf("END")
      if (end >= 0) return rows.slice(0, end)
      await new Promise((r) => setTimeout(r, 100))
    }
    throw new Error(`the frame was not drawn: ${tmux("capture-pane", "-p", "-t", "0").stdout}`)
  } finally {
    tmux("kill-server")
  }
}

describe("LiveView on a real terminal, with wide characters", { timeout: 90_000 }, () => {
  it("cuts a line of CJK and emoji (two columns each) to the terminal's width, so a redraw clears the whole of the last frame", async () => {
    const rows = await terminalScreen("多言語モデルの微調整タスク😀多言語モデルの微調整", 60)
    // the three finished trials' lines above one frame: its first line once, not once per redraw
    assert.deepStrictEqual(rows.filter((r) => r.startsWith("TREX ")).length, 1, rows.join("\n"))
    assert.deepStrictEqual(rows.filter((r) => r.startsWith("done ")).length, 3, rows.join("\n"))
    const frame = rows.slice(rows.findIndex((r) => r.startsWith("TREX ")))
    assert.deepStrictEqual(frame.map((r) => r.slice(0, 6)), ["TREX  ", "budget", "  n1  "], rows.join("\n"))
    assert.match(frame[0]!, /^TREX  多言語モデルの微調整タスク😀多言語モデルの微調整 .*…$/)
  })

  it("keeps a line whose combining marks take no column whole where it fits", async () => {
    // 10 letters, four accents as marks of their own: 14 UTF-16 units, 10 columns (the line is 38 of the 40)
    const name = "Re\u0301sume\u0301-e\u0301te\u0301"
    const rows = await terminalScreen(name, 40)
    const first = rows.find((r) => r.startsWith("TREX "))!
    assert.strictEqual(first.normalize("NFC"), `TREX  ${name.normalize("NFC")}  best score: 0.7 (n4)`, rows.join("\n"))
  })
})

const CHARMAP = "/usr/share/i18n/charmaps/UTF-8.gz"

/**
 * A terminal's environment in which tmux draws `wide` two columns, as a CJK user's terminal set to draw
 * East Asian Ambiguous characters wide does. tmux counts a character's columns with glibc's wcwidth in
 * the locale it sets for characters whatever the user's (en_US.UTF-8, else C.UTF-8), so that locale is
 * compiled (localedef) from the UTF-8 character map whose WIDTH table also gives those characters 2, into
 * a folder of its own that glibc looks in first (LOCPATH).
 */
const wideTerminal = (wide: string): { readonly LOCPATH: string } => {
  // the character maps are Debian's locales package (its locale-gen, installed first when missing)
  if (!existsSync(CHARMAP)) execFileSync("sh", [INSTALL, "/usr/sbin/locale-gen", "locales"], { stdio: "inherit" })
  const dir = mkdtempSync(path.join(os.tmpdir(), "trex-locale-"))
  const charmap = gunzipSync(readFileSync(CHARMAP)).toString("utf8")
  // <UXXXX> in the basic plane, <UXXXXXXXX> beyond it (planes 15 and 16's private use)
  const hex = (ch: string) => ch.codePointAt(0)!.toString(16).toUpperCase().padStart(ch.codePointAt(0)! > 0xffff ? 8 : 4, "0")
  const widths = [...new Set(wide)].map((ch) => `<U${hex(ch)}>\t2\n`).join("")
  writeFileSync(path.join(dir, "UTF-8-WIDE"), charmap.replace(/^END WIDTH$/m, `${widths}END WIDTH`))
  execFileSync("localedef", ["-c", "-f", path.join(dir, "UTF-8-WIDE"), "-i", "C", path.join(dir, "C.UTF-8")])
  // and the user's: the shell of the terminal's window sets it (trex reads its name)
  cpSync(path.join(dir, "C.UTF-8"), path.join(dir, "ja_JP.UTF-8"), { recursive: true })
  return { LOCPATH: dir }
}

describe("LiveView on a real terminal that draws East Asian Ambiguous characters wide", { timeout: 120_000 }, () => {
  // Greek letters, ±, § (the task's name), · (the budget line) and … (where a line is cut): each ambiguous (UAX #11)
  const name = "αβγδεζηθικλμνξοπρστυφχψω±§αβγδεζηθικλμν"
  /** The screen of a terminal that draws them wide, the frame drawn with `env` (as in another terminal than tmux: `outsideTmux`). */
  const wideScreen = async (env: Record<string, string>, outsideTmux = false) => {
    const terminal = wideTerminal(`${name}·…`)
    try {
      return await terminalScreen(name, 60, { terminal, env, outsideTmux })
    } finally {
      rmSync(terminal.LOCPATH, { recursive: true, force: true })
    }
  }
  const oneFrame = (rows: ReadonlyArray<string>) => {
    assert.strictEqual(rows.filter((r) => r.startsWith("TREX ")).length, 1, rows.join("\n"))
    assert.strictEqual(rows.filter((r) => r.startsWith("done ")).length, 3, rows.join("\n"))
    const frame = rows.slice(rows.findIndex((r) => r.startsWith("TREX ")))
    // no line of the frame wrapped: each row is one of its lines
    assert.deepStrictEqual(frame.map((r) => r.slice(0, 6)), ["TREX  ", "budget", "  n1  "], rows.join("\n"))
    assert.match(frame[0]!, /^TREX  αβγδεζηθικλμνξ.*…$/)
  }

  it("counts them two columns in a ja, zh or ko locale (in a terminal that is not tmux), so a redraw clears the whole of the last frame", async () => {
    // tmux here stands for a CJK user's terminal set to draw them wide: the frame is drawn without TMUX
    oneFrame(await wideScreen({ LC_ALL: "ja_JP.UTF-8" }, true))
  })

  it("counts them as TREX_AMBIGUOUS_WIDTH says, whatever the locale", async () => {
    oneFrame(await wideScreen({ LC_ALL: "C.UTF-8", TREX_AMBIGUOUS_WIDTH: "2" }))
  })
})

describe("LiveView in tmux, which counts East Asian Ambiguous characters one column whatever the locale", { timeout: 90_000 }, () => {
  it("counts them one column in a ja locale, so a line takes the whole width and none wraps", async () => {
    // tmux as installed: its own locale (en_US.UTF-8 or C.UTF-8) counts Greek, ±, §, · and … one column each
    const name = "αβγδεζηθικλμνξοπρστυφχψω±§αβγδεζηθικλμν"
    const rows = await terminalScreen(name, 60, { env: { LC_ALL: "ja_JP.UTF-8" } })
    assert.strictEqual(rows.filter((r) => r.startsWith("TREX ")).length, 1, rows.join("\n"))
    const frame = rows.slice(rows.findIndex((r) => r.startsWith("TREX ")))
    assert.deepStrictEqual(frame.map((r) => r.slice(0, 6)), ["TREX  ", "budget", "  n1  "], rows.join("\n"))
    // one column short of the 60 (as every line of the frame is cut), not half as long: each character one column
    assert.strictEqual(frame[0], `TREX  ${name}  best score: 0.7 (n4)`.slice(0, 58) + "…", rows.join("\n"))
  })
})

/** A real tmux server (its own socket) with one pane: `TMUX` as its panes have it, and the pane's terminal. `kill` it after. */
const tmuxServer = (name: string) => {
  if (!existsSync(TMUX)) execFileSync("sh", [INSTALL, TMUX, "tmux"], { stdio: "inherit" })
  const server = `trex-${name}-${process.pid}`
  const tmux = (...args: ReadonlyArray<string>) => execFileSync(TMUX, ["-L", server, "-f", "/dev/null", ...args], { encoding: "utf8" }).trimEnd()
  tmux("new-session", "-d", "-x", "80", "-y", "20", "sleep 120")
  const [socket, pid, tty] = tmux("display", "-p", "-t", "0", "#{socket_path} #{pid} #{pane_tty}").split(" ")
  return { tmux, tmuxVar: `${socket},${pid},0`, tty: tty!, kill: () => spawnSync(TMUX, ["-L", server, "kill-server"]) }
}

describe("LiveView in a terminal opened from a tmux pane (TMUX inherited), which is no pane", { timeout: 120_000 }, () => {
  it("asks the tmux server that TMUX names whether the terminal is one of its panes", () => {
    const a = tmuxServer("a")
    const b = tmuxServer("b")
    try {
      const width = (env: Record<string, string>, tty: string | undefined) => Effect.runSync(LiveView.ambiguousWidth(env, { tty }))
      // in a pane of a: tmux's count; in b's, a terminal window that inherited a's TMUX: the locale's
      assert.strictEqual(width({ LANG: "ja_JP.UTF-8", TMUX: a.tmuxVar }, a.tty), 1)
      assert.strictEqual(width({ LANG: "ja_JP.UTF-8", TMUX: a.tmuxVar }, b.tty), 2)
      assert.strictEqual(width({ LANG: "en_US.UTF-8", TMUX: a.tmuxVar }, b.tty), 1)
      // a server that cannot be asked (gone), or a terminal that cannot be told: TMUX at its word
      assert.strictEqual(width({ LANG: "ja_JP.UTF-8", TMUX: `${a.tmuxVar.split(",")[0]}-gone,1,0` }, b.tty), 1)
      assert.strictEqual(width({ LANG: "ja_JP.UTF-8", TMUX: a.tmuxVar }, undefined), 1)
    } finally {
      a.kill()
      b.kill()
    }
  })

  it("counts East Asian Ambiguous characters as the locale says there, so none wraps on a terminal that draws them wide", async () => {
    // the frame drawn in a terminal (tmux with a locale that draws them wide, standing for a CJK user's) with TMUX of another tmux's pane
    const name = "αβγδεζηθικλμνξοπρστυφχψω±§αβγδεζηθικλμν"
    const a = tmuxServer("outer")
    const terminal = wideTerminal(`${name}·…`)
    try {
      const rows = await terminalScreen(name, 60, { terminal, env: { LC_ALL: "ja_JP.UTF-8" }, tmuxOf: a.tmuxVar })
      assert.strictEqual(rows.filter((r) => r.startsWith("TREX ")).length, 1, rows.join("\n"))
      const frame = rows.slice(rows.findIndex((r) => r.startsWith("TREX ")))
      assert.deepStrictEqual(frame.map((r) => r.slice(0, 6)), ["TREX  ", "budget", "  n1  "], rows.join("\n"))
      assert.match(frame[0]!, /^TREX  αβγδεζηθικλμνξ.*…$/)
    } finally {
      a.kill()
      rmSync(terminal.LOCPATH, { recursive: true, force: true })
    }
  })
})

describe("tmux's codepoint-widths (3.5 on)", { timeout: 60_000 }, () => {
  it("reads the option's entries as tmux prints an array option (show -sv), and asks for it only of a tmux that has it", () => {
    // tmux here (3.3a) has no codepoint-widths: its array option command-alias, holding entries of that form, prints as the option would
    const a = tmuxServer("widths")
    try {
      const entries = ["U+03B1-U+03C9=2", "U+00B7=2", "é=2", "U+2026=0", "U+2026=2", "u+00b1=2", "U+0=2", "U+41-U+40=2", "U+110000=2", "§=3", "ab=2"]
      entries.forEach((e, i) => a.tmux("set", "-s", `command-alias[${100 + i}]`, e))
      const shown = a.tmux("show-options", "-sv", "command-alias")
      assert.include(shown, "split-pane=split-window\n")
      assert.deepStrictEqual(Tmux.parseWidths(shown), [[0x3b1, 0x3c9, 2], [0xb7, 0xb7, 2], [0xe9, 0xe9, 2], [0x2026, 0x2026, 0], [0x2026, 0x2026, 2]])
      const server = Tmux.ask(a.tmuxVar, a.tty)
      assert.deepStrictEqual(server, { pane: true, version: a.tmux("display", "-p", "#{version}"), widths: [] })
      assert.isFalse(Tmux.atLeast(server!.version, 3, 5))
      assert.deepStrictEqual(["3.4", "3.5", "3.5a", "next-3.6", "master", "4.0"].map((v) => Tmux.atLeast(v, 3, 5)), [false, true, true, true, true, true])
    } finally {
      a.kill()
    }
  })

  it("the frame counts a code point as codepoint-widths gives it, ahead of the Ambiguous rule", () => {
    let out = ""
    const view = LiveView.make({ tty: true, write: (s) => void (out += s), intervalMs: 60_000, columns: () => 60, codepointWidths: [[0x3b1, 0x3c9, 2]] })
    const b = new TreeBuilder.TreeBuilder(TreeBuilder.task({ name: "αβγδεζηθικλμνξοπρστυφχψω±§αβγδεζηθικλμν", budget: { maxTrials: 4 } }))
    view.onEvent({ seq: 1, event: b.events[0]! }, b.view)
    view.close()
    // Greek letters two columns each (± and § one, as Ambiguous ones are): the line cut to 59 columns so counted
    const first = screen(out)[0]!
    assert.strictEqual(first, "TREX  αβγδεζηθικλμνξοπρστυφχψω±§α…")
  })
})

describe("LiveView and private-use characters (icon fonts: Nerd Fonts' glyphs)", { timeout: 120_000 }, () => {
  // a branch, a gear, a folder (U+E000-F8FF) and two of Material Design's (plane 15), with text between
  const icons = "\ue0a0 main \uf013 \uf07b \u{f0001}\u{f024b} "
  const name = icons.repeat(5)

  it("counts them two columns on a terminal that draws East Asian Ambiguous characters wide (they are Ambiguous), so none wraps", async () => {
    // a terminal whose locale gives them (and the frame's · and …) two columns, as xterm's cjkWidth and VTE's setting do
    const terminal = wideTerminal(`${name}·…`)
    try {
      const rows = await terminalScreen(name, 60, { terminal, env: { LC_ALL: "C.UTF-8", TREX_AMBIGUOUS_WIDTH: "2" } })
      assert.strictEqual(rows.filter((r) => r.startsWith("TREX ")).length, 1, rows.join("\n"))
      const frame = rows.slice(rows.findIndex((r) => r.startsWith("TREX ")))
      assert.deepStrictEqual(frame.map((r) => r.slice(0, 6)), ["TREX  ", "budget", "  n1  "], rows.join("\n"))
      assert.isTrue(frame[0]!.startsWith(`TREX  \ue0a0 main \uf013`) && frame[0]!.endsWith("…"), rows.join("\n"))
    } finally {
      rmSync(terminal.LOCPATH, { recursive: true, force: true })
    }
  })

  it("counts them one column where the terminal does (tmux as installed), so a line takes the whole width", async () => {
    const rows = await terminalScreen(name, 60)
    assert.strictEqual(rows.filter((r) => r.startsWith("TREX ")).length, 1, rows.join("\n"))
    const frame = rows.slice(rows.findIndex((r) => r.startsWith("TREX ")))
    assert.deepStrictEqual(frame.map((r) => r.slice(0, 6)), ["TREX  ", "budget", "  n1  "], rows.join("\n"))
    // 59 columns, a character each
    assert.strictEqual(frame[0], [...`TREX  ${name}`].slice(0, 58).join("") + "…", rows.join("\n"))
  })
})

describe("LiveView.ambiguousWidth", () => {
  const of = (env: Record<string, string>) => Effect.runSync(Effect.result(LiveView.ambiguousWidth(env)))
  it("is TREX_AMBIGUOUS_WIDTH when set, else 1 in tmux, else 2 in a ja, zh or ko locale (LC_ALL, then LC_CTYPE, then LANG) and 1 elsewhere; another value is refused naming the fix", () => {
    const width = (env: Record<string, string>) => {
      const r = of(env)
      return r._tag === "Success" ? r.success : r.failure.message
    }
    assert.strictEqual(width({}), 1)
    assert.strictEqual(width({ LANG: "ja_JP.UTF-8" }), 2)
    assert.strictEqual(width({ LANG: "zh_CN.UTF-8" }), 2)
    assert.strictEqual(width({ LC_CTYPE: "ko_KR.UTF-8", LANG: "en_US.UTF-8" }), 2)
    assert.strictEqual(width({ LC_ALL: "en_US.UTF-8", LANG: "ja_JP.UTF-8" }), 1)
    assert.strictEqual(width({ LC_ALL: "", LANG: "zh_TW.UTF-8" }), 2)
    assert.strictEqual(width({ LANG: "jv_ID.UTF-8" }), 1)
    assert.strictEqual(width({ LANG: "ja_JP.UTF-8", TREX_AMBIGUOUS_WIDTH: "1" }), 1)
    assert.strictEqual(width({ LANG: "ja_JP.UTF-8", TREX_AMBIGUOUS_WIDTH: "narrow" }), 1)
    assert.strictEqual(width({ TREX_AMBIGUOUS_WIDTH: "wide" }), 2)
    // inside tmux, which counts them 1 whatever the locale, unless the variable says otherwise
    assert.strictEqual(width({ LANG: "ja_JP.UTF-8", TMUX: "/tmp/tmux-1000/default,1234,0" }), 1)
    assert.strictEqual(width({ LANG: "ja_JP.UTF-8", TMUX: "" }), 2)
    assert.strictEqual(width({ LANG: "ja_JP.UTF-8", TMUX: "/tmp/tmux-1000/default,1234,0", TREX_AMBIGUOUS_WIDTH: "2" }), 2)
    assert.strictEqual(
      width({ TREX_AMBIGUOUS_WIDTH: "double" }),
      `TREX_AMBIGUOUS_WIDTH is "double": set it to 1 (narrow) or 2 (wide), the columns your terminal draws an East Asian Ambiguous character (±, §, α, …) in, ` +
        `or unset it to follow the terminal (1 in tmux) and the locale (2 in a ja, zh or ko one)`
    )
  })

  it("trex run refuses another value of TREX_AMBIGUOUS_WIDTH before it makes the run directory (exit 2)", { timeout: 60_000 }, () => {
    const root = path.resolve(import.meta.dirname, "../../..")
    const out = mkdtempSync(path.join(os.tmpdir(), "trex-ambiguous-"))
    const r = spawnSync(process.execPath, ["--conditions=@trex/source", path.join(root, "packages/cli/src/bin.ts"), "run", path.join(import.meta.dirname, "fixtures", "toy.task.yaml"), "--out", out], {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, TREX_AMBIGUOUS_WIDTH: "double" },
      timeout: 60_000
    })
    assert.strictEqual(r.status, 2, r.stdout + r.stderr)
    assert.match(r.stderr, /^trex: TREX_AMBIGUOUS_WIDTH is "double": set it to 1 \(narrow\) or 2 \(wide\), .*\n$/)
    assert.deepStrictEqual(readdirSync(out), [])
    rmSync(out, { recursive: true })
  })
})
