// Webhooks (`--notify`, TREX_NOTIFY_URL, `Trex.start`'s `notify`): the real CLI on the toy task, or the CLI in this
// process where the process is not the subject, posts to a real HTTP server on loopback (support/notify.ts), which can
// answer as a webhook does, fail, or never answer. Messages kept, expired, `trex notify` and the run's lock:
// NotifyKept.test.ts.
import { spawn } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { assert, describe, it } from "@effect/vitest"
import { Cost, ExperimentNode, ExperimentTree, JournalEvent } from "@trex/core"
import { TreeBuilder } from "@trex/core/testing"
import { Effect, Exit, Redacted } from "effect"
import { boundedSettings, settingsLine } from "../src/internal/settingsText.ts"
import * as Notify from "../src/Notify.ts"
import * as Trex from "../src/Trex.ts"
import { root } from "./support/cli.ts"
import { allText, inProcess, killedAt, outbox, runDirOf, toyTask, trex, trexStatus, webhook } from "./support/notify.ts"
import { hostileSettings, recordOptions } from "./support/settingsRun.ts"

describe("Notify: webhooks told of a run", () => {
  it.live("the real CLI posts each new best (better each time) and, before it exits, the run's end; the address's secret path is written nowhere", () =>
    Effect.scoped(Effect.gen(function*() {
      const hook = yield* webhook()
      const { out, task } = toyTask(6)
      const secret = "T0001/B0001/s3cr3tT0k3n"
      const r = yield* trex(["run", task, "--out", out, "--notify", `${hook.url}/services/${secret}`, "--notify-best"], { TREX_TOY_MS: "60" })
      assert.strictEqual(r.status, 0, r.stderr)
      assert.isTrue(hook.received.every((m) => m.path === `/services/${secret}` && m.contentType === "application/json"))
      // each message's id, in its header and its body, is its own
      assert.isTrue(hook.received.every((m) => m.id !== undefined && m.id === m.body.trex.id))
      assert.strictEqual(new Set(hook.received.map((m) => m.id)).size, hook.received.length)
      const kinds = hook.received.map((m) => m.body.trex.kind)
      assert.strictEqual(kinds.at(-1), "end", "the end is posted last, before the CLI exits")
      assert.strictEqual(kinds.filter((k) => k === "end").length, 1)
      const bests = hook.received.filter((m) => m.body.trex.kind === "best").map((m) => m.body.trex as Extract<Notify.Payload, { kind: "best" }>)
      assert.isAtLeast(bests.length, 1)
      for (let i = 1; i < bests.length; i++) assert.isAbove(bests[i]!.best.score, bests[i - 1]!.best.score)
      const end = hook.received.at(-1)!.body
      assert.strictEqual(end.trex.kind, "end")
      if (end.trex.kind !== "end") return
      assert.strictEqual(end.trex.outcome, "finished")
      assert.strictEqual(end.trex.reason, "budget: maxTrials")
      const runDir = runDirOf(r.stdout)
      assert.strictEqual(end.trex.runDir, runDir)
      // the summary and report.md say the run finished, though the session holds the run's lock until its end is posted
      assert.include(r.stdout, "State: finished (budget: maxTrials)")
      assert.include(fs.readFileSync(path.join(runDir, "report.md"), "utf8"), "- State: finished — budget: maxTrials")
      // the end's best is the run's, as trex status tells it, and the last best posted
      const status = JSON.parse((yield* trexStatus([runDir, "--json"])).stdout)
      assert.deepStrictEqual(end.trex.status?.best, status.best)
      assert.deepStrictEqual(end.trex.status?.counts, status.counts)
      assert.strictEqual(status.counts.Succeeded + status.counts.Failed, 6)
      assert.strictEqual(bests.at(-1)!.best.id, status.best.id)
      assert.match(end.text, new RegExp(`^trex · toy finished: budget: maxTrials · best score [0-9.]+ \\(${status.best.id}\\) · \\d+ succeeded, \\d+ failed · `))
      assert.notInclude(allText(runDir), secret)
      assert.deepStrictEqual(outbox(runDir), [], "every message delivered: nothing waits")
      assert.notInclude(r.stdout + r.stderr, secret)
    })), 120_000)

  it.live("a webhook that fails for a while gets the message once it answers; one that keeps failing is a warning naming its origin only, and the run ends as it would", () =>
    Effect.scoped(Effect.gen(function*() {
      // /flaky answers 503 to its first request, then 200; /gone answers 404 (a revoked webhook) to every request
      const hook = yield* webhook((p, n) => (p === "/flaky" && n === 1 ? 503 : p === "/gone" ? 404 : 200))
      const { out, task } = toyTask(2)
      const r = yield* trex(["run", task, "--out", out, "--notify", `${hook.url}/flaky`], { TREX_TOY_MS: "30", TREX_NOTIFY_URL: ` ${hook.url}/gone ` })
      assert.strictEqual(r.status, 0, r.stderr)
      assert.deepStrictEqual(hook.received.map((m) => `${m.path} ${m.body.trex.kind}`).sort(), ["/flaky end", "/flaky end", "/gone end"])
      assert.include(r.stdout + r.stderr, `notify: the end message of ${runDirOf(r.stdout)} was not delivered to ${hook.url}/…: HTTP 404 (the webhook's address is wrong, or it was revoked) (1 attempt)`)
      assert.notInclude(r.stdout + r.stderr, `${hook.url}/gone`)
      // tried again under the same id; the message /gone never got is kept for the next session
      const flaky = hook.received.filter((m) => m.path === "/flaky")
      assert.strictEqual(flaky[0]!.id, flaky[1]!.id)
      const runDir = runDirOf(r.stdout)
      assert.include(r.stderr, `notify: a message of ${runDir} (end) was not delivered to every webhook: kept in ${path.join(runDir, "notify")}`)
      assert.deepStrictEqual(outbox(runDir).map((e) => e.id), [flaky[0]!.id])
    })), 120_000)

  it.live("kill -9 while a new best's message is being retried: trex resume posts it under the same id, then the run's end", () =>
    Effect.scoped(Effect.gen(function*() {
      // the first best's post is refused (503); its retry, a second later, arrives as the controller is
      // killed (it never gets an answer); after the kill the webhook takes everything
      let controller: ReturnType<typeof spawn> | undefined
      let killed = false
      const hook = yield* webhook((_p, n) => {
        if (killed) return 200
        if (n === 1) return 503
        killed = true
        controller!.kill("SIGKILL")
        return "hang"
      })
      const { out, task } = toyTask(3)
      // one trial at a time, each 2.5 s: no second best is found before the retry
      const first = yield* trex(["run", task, "--out", out, "--concurrency", "1", "--notify", `${hook.url}/h`, "--notify-best"], { TREX_TOY_MS: "2500" }, (_text, child) => {
        controller = child
      })
      assert.isTrue(killed, first.stdout + first.stderr)
      assert.strictEqual(first.status, null, "killed")
      const before = hook.received.map((m) => `${m.status} ${m.id}`)
      const runDir = runDirOf(first.stdout)
      const due = hook.received[0]!.body.trex
      assert.strictEqual(due.kind, "best")
      assert.deepStrictEqual(before, [`503 ${due.id}`, `hang ${due.id}`])
      assert.deepStrictEqual(outbox(runDir).map((e) => e.id), [due.id], "kept in the run directory")

      // the resume is given the webhook, not --notify-best: the message was due all the same
      const resumed = yield* inProcess(["resume", runDir, "--notify", `${hook.url}/h`], { TREX_TOY_MS: "30" })
      assert.strictEqual(resumed.status, 0, resumed.stderr)
      const after = hook.received.slice(2)
      assert.deepStrictEqual(after.map((m) => `${m.status} ${m.body.trex.kind}`), ["200 best", "200 end"])
      assert.strictEqual(after[0]!.id, due.id)
      assert.deepStrictEqual(after[0]!.body, hook.received[0]!.body, "the message as it was due")
      const end = after[1]!.body.trex
      assert.strictEqual(end.kind === "end" && end.outcome, "finished")
      assert.deepStrictEqual(outbox(runDir), [], "nothing left to post")
    })), 120_000)

  it.live("kill -9 while the end's message is being retried: the next session posts it under the same id, once; messages delivered are not posted again", () =>
    Effect.scoped(Effect.gen(function*() {
      // every best is taken; the end's post is refused, and its retry arrives as the controller is killed
      let controller: ReturnType<typeof spawn> | undefined
      let killed = false
      const hook = yield* webhook((_p, _n, body) => {
        if (killed || body.trex.kind === "best") return 200
        if (hook.received.some((m) => m.body.trex.kind === "end")) {
          killed = true
          controller!.kill("SIGKILL")
          return "hang"
        }
        return 503
      })
      const { out, task } = toyTask(3)
      const first = yield* trex(["run", task, "--out", out, "--notify", `${hook.url}/h`, "--notify-best"], { TREX_TOY_MS: "30" }, (_text, child) => {
        controller = child
      })
      assert.isTrue(killed, first.stdout + first.stderr)
      const runDir = runDirOf(first.stdout)
      const ends = hook.received.filter((m) => m.body.trex.kind === "end")
      assert.deepStrictEqual(ends.map((m) => m.status), [503, "hang"])
      assert.strictEqual(ends[0]!.id, ends[1]!.id)
      const bests = hook.received.filter((m) => m.body.trex.kind === "best")
      assert.isTrue(bests.length >= 1 && bests.every((m) => m.status === 200))

      // the run had finished: its resume starts nothing and ends as the run had, the same end: it posts
      // the message that was lost, under its id, and no second end of its own
      assert.match(ends[0]!.id!, /\/end-\d+$/, "named after the journal's entry")
      const n = hook.received.length
      yield* inProcess(["resume", runDir, "--notify", `${hook.url}/h`], { TREX_TOY_MS: "30" })
      const after = hook.received.slice(n)
      assert.deepStrictEqual(after.map((m) => `${m.status} ${m.body.trex.kind}`), ["200 end"], "no best again, no second end")
      assert.strictEqual(after[0]!.id, ends[0]!.id)
      assert.deepStrictEqual(after[0]!.body, ends[0]!.body)
      assert.deepStrictEqual(outbox(runDir), [])
    })), 120_000)

  it.live("kill -9 after the run's end is journaled, before its message is kept or posted: the next session posts that end under its id, once", () =>
    Effect.scoped(Effect.gen(function*() {
      const hook = yield* webhook()
      const { out, task } = toyTask(2)
      // the report is written (report.md.<pid>.tmp, then renamed) after the journal's last entry and
      // before the end's message is posted: a FIFO in its place, whose pipe the test filled (and never
      // reads), holds the controller there, its file open, until the test kills it
      const held = killedAt((runDir, pid) => path.join(runDir, `report.md.${pid}.tmp`))
      const first = yield* trex(["run", task, "--out", out, "--notify", `${hook.url}/h`], { TREX_TOY_MS: "400" }, held.onStdout)
      assert.isTrue(held.finish(), first.stdout + first.stderr)
      assert.strictEqual(first.status, null, "killed")
      const runDir = runDirOf(first.stdout)
      assert.deepStrictEqual(hook.received, [], "nothing was posted")
      // the journal has the run's end, and the run directory its message, named after the journal's entry
      const kept = outbox(runDir)
      assert.strictEqual(kept.length, 1)
      const end = kept[0]!.message.trex
      assert.strictEqual(end.kind === "end" && `${end.outcome}: ${end.reason}`, "finished: budget: maxTrials")
      assert.match(end.id, /\/end-\d+$/)
      const status = yield* trexStatus([runDir])
      assert.include(status.stdout, "finished")
      assert.include(status.stdout, "\nWebhooks: a webhook message of an earlier session (end) was not delivered")

      // the resume runs nothing and ends as the run had: the same end, posted once, as it was kept
      const resumed = yield* inProcess(["resume", runDir, "--notify", `${hook.url}/h`], { TREX_TOY_MS: "30" })
      assert.strictEqual(resumed.status, 0, resumed.stderr)
      assert.deepStrictEqual(hook.received.map((m) => `${m.status} ${m.id}`), [`200 ${end.id}`])
      assert.deepStrictEqual(hook.received[0]!.body, kept[0]!.message)
      assert.deepStrictEqual(outbox(runDir), [])
    })), 120_000)

  it.live("an end kept before it was journaled, whose entry the journal never got (a kill between the two), is never posted", () =>
    Effect.scoped(Effect.gen(function*() {
      const { out, task } = toyTask(2)
      const first = yield* inProcess(["run", task, "--out", out], { TREX_TOY_MS: "30" })
      assert.strictEqual(first.status, 0, first.stderr)
      const runDir = runDirOf(first.stdout)
      const runId = path.basename(runDir)
      // as the notifier keeps an end at its RunFinished, for an entry past the journal's last
      const lost = Notify.endMessage({ runId, runDir, task: "toy" }, Exit.succeed({ reason: "budget: maxTrials" }), undefined, `${runId}/end-999`)
      fs.mkdirSync(path.join(runDir, "notify"))
      fs.writeFileSync(path.join(runDir, "notify", "end-999.json"), JSON.stringify({ id: lost.trex.id, at: Date.now(), message: lost, delivered: [], end: { seq: 999, at: Date.now() } }))
      assert.notInclude((yield* trexStatus([runDir])).stdout, "Webhooks:")
      const hook = yield* webhook()
      yield* inProcess(["resume", runDir, "--notify", `${hook.url}/h`], { TREX_TOY_MS: "30" })
      // only the resume's end (the run's, which its first session had no webhook to post)
      assert.deepStrictEqual(hook.received.map((m) => m.body.trex.kind), ["end"])
      assert.notStrictEqual(hook.received[0]!.id, lost.trex.id)
      assert.deepStrictEqual(outbox(runDir), [])
    })), 120_000)

  it.live("kill -9 between a webhook's 2xx to the end and the record that it got it: the resume posts that end once more, under its id, and then never again", () =>
    Effect.scoped(Effect.gen(function*() {
      const hook = yield* webhook()
      const url = `${hook.url}/h`
      const key = crypto.createHash("sha256").update(new URL(url).href).digest("hex").slice(0, 16)
      const { out, task } = toyTask(2)
      // the record is written to <key>.json.<pid>.tmp, then renamed: a FIFO in its place, its pipe filled
      // (and never read), holds the controller there, after the webhook's 200, until the test kills it
      const held = killedAt((runDir, pid) => {
        const delivered = path.join(runDir, "notify", "delivered")
        fs.mkdirSync(delivered, { recursive: true })
        return path.join(delivered, `${key}.json.${pid}.tmp`)
      })
      const first = yield* trex(["run", task, "--out", out, "--notify", url], { TREX_TOY_MS: "30" }, held.onStdout)
      assert.isTrue(held.finish(), first.stdout + first.stderr)
      assert.strictEqual(first.status, null, "killed")
      const runDir = runDirOf(first.stdout)
      // the webhook got the end (200), and the controller died before it recorded so: the end is still kept
      assert.deepStrictEqual(hook.received.map((m) => `${m.status} ${m.body.trex.kind}`), ["200 end"])
      const end = hook.received[0]!
      assert.match(end.id!, /\/end-\d+$/)
      assert.deepStrictEqual(outbox(runDir).map((e) => e.id), [end.id])
      assert.include((yield* trexStatus([runDir])).stdout, "\nWebhooks: a webhook message of an earlier session (end) was not delivered")

      // at least once: the resume (which runs nothing) posts it again, as it was, under the same id (by
      // which a receiver drops it), and records it; a later resume posts nothing
      for (let i = 0; i < 2; i++) {
        const resumed = yield* inProcess(["resume", runDir, "--notify", url], { TREX_TOY_MS: "30" })
        assert.strictEqual(resumed.status, 0, resumed.stderr)
      }
      assert.deepStrictEqual(hook.received.map((m) => `${m.status} ${m.id}`), [`200 ${end.id}`, `200 ${end.id}`], "posted exactly once more")
      assert.deepStrictEqual(hook.received[1]!.body, end.body)
      assert.deepStrictEqual(outbox(runDir), [])
      assert.deepStrictEqual(JSON.parse(fs.readFileSync(path.join(runDir, "notify", "delivered", `${key}.json`), "utf8")), { ends: [end.id] })
    })), 120_000)

  it.live("kill -9 between a new best's 2xx and its file's update: the resume posts it once more, under its id, and then never again", () =>
    Effect.scoped(Effect.gen(function*() {
      // one trial: its best is the run's only one (a later best, kept meanwhile, would replace it)
      const { out, task } = toyTask(1)
      // /b never answers, so after /a's 200 the best is kept again (delivered to /a), to <name>.json.<pid>.tmp
      // then renamed: a FIFO in its place, made when /a gets the best (its first keeping done), holds the
      // controller there, the 200 in hand, until the test kills it: the state a kill between a best's 2xx
      // and its file's removal leaves (the file as it was before the post)
      let stdout = ""
      let controller: ReturnType<typeof spawn> | undefined
      let name: string | undefined
      const held = killedAt((runDir, pid) => path.join(runDir, "notify", `${name}.${pid}.tmp`))
      const hook = yield* webhook((p, _n, body) => {
        if (p === "/a" && body.trex.kind === "best" && name === undefined) {
          name = `${body.trex.id.slice(body.trex.id.lastIndexOf("/") + 1)}.json`
          held.onStdout(stdout, controller!)
        }
        return p === "/b" ? "hang" : 200
      })
      const first = yield* trex(["run", task, "--out", out, "--notify", `${hook.url}/a`, "--notify", `${hook.url}/b`, "--notify-best"], { TREX_TOY_MS: "30" }, (text, child) => {
        stdout = text
        controller = child
      })
      assert.isTrue(held.finish(), first.stdout + first.stderr)
      assert.strictEqual(first.status, null, "killed")
      const runDir = runDirOf(first.stdout)
      const best = hook.received.filter((m) => m.path === "/a")
      assert.deepStrictEqual(best.map((m) => `${m.status} ${m.body.trex.kind}`), ["200 best"])
      // kept still, as before its post (with what the run kept meanwhile, posted after it)
      const kept = outbox(runDir)
      assert.strictEqual(kept[0]!.id, best[0]!.id)
      assert.deepStrictEqual(kept[0]!.delivered, [])

      // at least once: the resume posts it to /a again, as it was, under the same id, then never again
      for (let i = 0; i < 2; i++) {
        const resumed = yield* inProcess(["resume", runDir, "--notify", `${hook.url}/a`, "--notify-best"], { TREX_TOY_MS: "30" })
        assert.strictEqual(resumed.status, 0, resumed.stderr)
      }
      const again = hook.received.filter((m) => m.path === "/a" && m.id === best[0]!.id)
      assert.deepStrictEqual(again.map((m) => m.status), [200, 200], "posted exactly once more")
      assert.deepStrictEqual(again[1]!.body, best[0]!.body)
      assert.deepStrictEqual(outbox(runDir), [])
    })), 120_000)

  it.live("a webhook down for the whole run: bounded tries, the run ends as it would, what was not delivered is said and kept until a session with webhooks posts it", () =>
    Effect.scoped(Effect.gen(function*() {
      // an address nothing listens on: every post is refused
      const down = yield* webhook()
      const downUrl = `${down.url}/down`
      yield* Effect.promise(() => new Promise<void>((r) => down.server.close(() => r())))
      const { out, task } = toyTask(2)
      const first = yield* trex(["run", task, "--out", out, "--notify", downUrl, "--notify-best"], { TREX_TOY_MS: "30" })
      assert.strictEqual(first.status, 0, first.stderr)
      const runDir = runDirOf(first.stdout)
      assert.match(first.stderr, /notify: the end message of .* was not delivered to http:\/\/127\.0\.0\.1:\d+\/…: fetch failed \(connect ECONNREFUSED [^)]*\) \(3 attempts\)/)
      assert.match(first.stderr, /notify: 2 messages of .* \(new best \(n\d+\), end\) were not delivered to every webhook: kept in .*notify, and posted by the run's next session with webhooks/)
      const kept = outbox(runDir)
      assert.deepStrictEqual(kept.map((e) => e.message.trex.kind), ["best", "end"])
      assert.notInclude(allText(path.join(runDir, "notify")), "/down", "the address is not written")

      // a session without webhooks says what waits, and leaves it
      const quiet = yield* inProcess(["resume", runDir])
      assert.include(quiet.stderr, `notify: 2 webhook messages of an earlier session (new best (${(kept[0]!.message.trex as { best: { id: string } }).best.id}), end) were not delivered: kept in ${path.join(runDir, "notify")}; give this session webhooks`)
      assert.strictEqual(outbox(runDir).length, 2)
      // trex status says so too
      const waiting = yield* trexStatus([runDir])
      assert.include(waiting.stdout, `\nWebhooks: 2 webhook messages of an earlier session (new best (`)
      assert.include(waiting.stdout, `end) were not delivered: kept in ${path.join(runDir, "notify")}; give the run's next session webhooks (--notify, TREX_NOTIFY_URL, notify) to post them`)

      // one with a webhook that answers posts them, in the order they were due; the run had finished, and
      // this resume (as the quiet one) ran nothing and ended as it had: the kept end tells its end too
      const hook = yield* webhook()
      yield* inProcess(["resume", runDir], { TREX_NOTIFY_URL: `${hook.url}/up` })
      assert.deepStrictEqual(hook.received.map((m) => m.id), kept.map((e) => e.id))
      assert.deepStrictEqual(outbox(runDir), [])
      assert.notInclude((yield* trexStatus([runDir])).stdout, "Webhooks:")
      // a later one tells that end again, under its id, but /up has it: nothing is posted, and no best
      yield* inProcess(["resume", runDir], { TREX_NOTIFY_URL: `${hook.url}/up` })
      assert.deepStrictEqual(hook.received.slice(2).map((m) => m.id), [])
    })), 120_000)

  it.live("of two webhooks, the one that got a message is not posted it again: the next session posts it to the other only", () =>
    Effect.scoped(Effect.gen(function*() {
      // /down answers 503 (retryable) until it is back up
      let up = false
      const hook = yield* webhook((p) => (p === "/down" && !up ? 503 : 200))
      const { out, task } = toyTask(2)
      const first = yield* inProcess(["run", task, "--out", out, "--notify", `${hook.url}/up`, "--notify", `${hook.url}/down`], { TREX_TOY_MS: "30" })
      assert.strictEqual(first.status, 0, first.stderr)
      const runDir = runDirOf(first.stdout)
      const end = hook.received.find((m) => m.path === "/up")!
      assert.deepStrictEqual(outbox(runDir).map((e) => e.id), [end.id])
      up = true
      const n = hook.received.length
      yield* inProcess(["resume", runDir, "--notify", `${hook.url}/up`, "--notify", `${hook.url}/down`], { TREX_TOY_MS: "30" })
      const after = hook.received.slice(n)
      // the first session's end to /down only: the resume ran nothing and ended as the run had (the same end)
      assert.deepStrictEqual(after.map((m) => `${m.path} ${m.status} ${m.id === end.id}`), ["/down 200 true"])
      assert.deepStrictEqual(outbox(runDir), [])
    })), 120_000)

  it.live("a resume that runs nothing does not post the end again to a webhook that got it; a webhook it never reached gets it, under its id", () =>
    Effect.scoped(Effect.gen(function*() {
      const hook = yield* webhook()
      const { out, task } = toyTask(2)
      const first = yield* inProcess(["run", task, "--out", out, "--notify", `${hook.url}/a`], { TREX_TOY_MS: "30" })
      assert.strictEqual(first.status, 0, first.stderr)
      const runDir = runDirOf(first.stdout)
      assert.deepStrictEqual(hook.received.map((m) => `${m.path} ${m.body.trex.kind}`), ["/a end"])
      const end = hook.received[0]!
      assert.match(end.id!, /\/end-\d+$/)
      assert.deepStrictEqual(outbox(runDir), [], "nothing waits")
      assert.notInclude((yield* trexStatus([runDir])).stdout, "Webhooks:")

      // the run had finished: each resume runs nothing and tells the same end, which /a has
      for (let i = 0; i < 2; i++) {
        const again = yield* inProcess(["resume", runDir, "--notify", `${hook.url}/a`], { TREX_TOY_MS: "30" })
        assert.strictEqual(again.status, 0, again.stderr)
      }
      assert.deepStrictEqual(hook.received.map((m) => m.path), ["/a"], "the end is not posted again to /a")
      // what /a got is recorded by a hash of its address, never the address
      const delivered = path.join(runDir, "notify", "delivered")
      assert.strictEqual(fs.readdirSync(delivered).length, 1)
      assert.notInclude(allText(delivered), "/a")
      // a webhook added later gets that end, under its id, and /a still nothing
      const added = yield* inProcess(["resume", runDir, "--notify", `${hook.url}/a`, "--notify", `${hook.url}/b`], { TREX_TOY_MS: "30" })
      assert.strictEqual(added.status, 0, added.stderr)
      assert.deepStrictEqual(hook.received.slice(1).map((m) => `${m.path} ${m.id === end.id}`), ["/b true"])
      assert.strictEqual(fs.readdirSync(delivered).length, 2)
      assert.deepStrictEqual(outbox(runDir), [])
    })), 120_000)

  it.live("a setup error ends the run failed, with its cause; a run stopped by Ctrl-C ends stopped, saying how to continue; its resume posts to the webhooks it is given", () =>
    Effect.scoped(Effect.gen(function*() {
      const hook = yield* webhook()
      const { dir, out, task } = toyTask(6)
      const failed = yield* inProcess(["run", task, "--out", out, "--notify", `${hook.url}/a`], { TREX_TOY_MS: "30", TREX_TOY_NEEDS: path.join(dir, "missing-module") })
      assert.strictEqual(failed.status, 1)
      const first = hook.received.at(-1)!.body
      assert.strictEqual(first.trex.kind === "end" && first.trex.outcome, "failed")
      assert.match(first.text, /^trex · toy failed: every trial failed the same way \([n\d, ]+\): Crash: exited with code 1 \(ModuleNotFoundError: No module named 'transformerz'\) · 0 succeeded, \d failed/)

      // Ctrl-C once the first trial has started: the run drains, and is not finished
      let signalled = false
      const stopped = yield* trex(["run", task, "--out", out, "--no-reuse", "--notify", `${hook.url}/b`], { TREX_TOY_MS: "1500" }, (text, child) => {
        if (!signalled && text.includes("start  n1")) {
          signalled = true
          child.kill("SIGINT")
        }
      })
      assert.isTrue(signalled, stopped.stdout)
      const runDir = runDirOf(stopped.stdout)
      const second = hook.received.at(-1)!
      assert.strictEqual(second.path, "/b")
      assert.strictEqual(second.body.trex.kind === "end" && second.body.trex.outcome, "stopped")
      assert.include(second.body.text, `continue with: trex resume ${runDir}`)

      // a resume is told nothing of the first session's webhook: it posts to its own
      const resumed = yield* inProcess(["resume", runDir, "--notify", `${hook.url}/c`], { TREX_TOY_MS: "30" })
      assert.strictEqual(resumed.status, 0, resumed.stderr)
      assert.deepStrictEqual(hook.received.slice(2).map((m) => m.path), ["/c"])
      assert.strictEqual(hook.received.at(-1)!.body.trex.kind === "end" && (hook.received.at(-1)!.body.trex as { outcome: string }).outcome, "finished")
    })), 120_000)

  it.live("bad addresses are refused before anything runs, naming where they were given and never showing them", () =>
    Effect.gen(function*() {
      const { out, task } = toyTask(2)
      const ftp = yield* inProcess(["run", task, "--out", out, "--notify", "ftp://hooks.example/s3cr3t"])
      assert.strictEqual(ftp.status, 2)
      assert.include(ftp.stderr, "--notify is a ftp: address: a webhook takes http: or https:")
      const env = yield* inProcess(["run", task, "--out", out], { TREX_NOTIFY_URL: "https://ok.example/x hooks.example/s3cr3t" })
      assert.strictEqual(env.status, 2)
      assert.include(env.stderr, "TREX_NOTIFY_URL (its address 2) is not a URL (20 characters): give the webhook's full address")
      const best = yield* inProcess(["run", task, "--out", out, "--notify-best"])
      assert.strictEqual(best.status, 2)
      assert.include(best.stderr, "--notify-best posts to the webhooks of --notify or TREX_NOTIFY_URL, and none is given")
      for (const r of [ftp, env, best]) assert.notInclude(r.stdout + r.stderr, "s3cr3t")
      assert.isFalse(fs.existsSync(out), "nothing was started")
      const e = yield* Effect.flip(Effect.tryPromise({
        try: () => Trex.start({ taskFile: task, out, notify: { urls: "https://hooks.example/x" as never, attempts: 0 } }),
        catch: (e) => e as { readonly message: string }
      }))
      assert.include(e.message, "notify.urls: expected a list of webhook addresses")
      assert.include(e.message, "put it in a list")
      assert.include(e.message, "notify.attempts")
    }), 120_000)

  it.live("Notify.post: a webhook that never answers is given up on after its attempts, each bounded by timeoutMs", () =>
    Effect.scoped(Effect.gen(function*() {
      const hook = yield* webhook(() => "hang")
      const message: Notify.Message = { text: "t", trex: { kind: "end", id: "x/end-1", at: "2026-12-05T00:00:00.000Z", outcome: "stopped", reason: "r", runId: "x", runDir: "d", status: undefined } }
      const e = yield* Effect.flip(Notify.post(Redacted.make(`${hook.url}/slow`), message, { timeoutMs: 300, attempts: 2 }))
      assert.strictEqual(e.message, "no answer within 300 ms (2 attempts)")
      assert.strictEqual(hook.received.length, 2)
    })), 30_000)

  it.live("the run's end waits for a webhook that never answers as long as one message's tries, however many are queued before it; the rest is kept", () =>
    Effect.scoped(Effect.gen(function*() {
      const hook = yield* webhook(() => "hang")
      // three ends an earlier session left undelivered, as it keeps them
      const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-notify-"))
      fs.mkdirSync(path.join(runDir, "notify"))
      const earlier = [1, 2, 3].map((i) => Notify.endMessage({ runId: "r", runDir, task: "t" }, Exit.succeed({ reason: `session ${i}` }), undefined))
      earlier.forEach((message, i) =>
        fs.writeFileSync(path.join(runDir, "notify", `${message.trex.id.slice(2)}.json`), JSON.stringify({ id: message.trex.id, at: Date.now() - 1000 + i, message, delivered: [] }))
      )
      // each message's tries: 2 answers of 200 ms at most, 1 s apart
      yield* Effect.scoped(Effect.gen(function*() {
        const notifier = yield* Notify.make({ urls: [`${hook.url}/slow`], timeoutMs: 200, attempts: 2 }, { runId: "r", runDir })
        yield* notifier.end(Notify.endMessage({ runId: "r", runDir, task: "t" }, Exit.succeed({ reason: "budget" }), undefined))
      }))
      // the first kept message had its tries, the second one perhaps its first; the end was never tried
      assert.deepStrictEqual(hook.received.slice(0, 2).map((m) => m.id), [earlier[0]!.trex.id, earlier[0]!.trex.id])
      assert.isAtMost(hook.received.length, 3)
      assert.strictEqual(outbox(runDir).length, 4, "every message kept")
      assert.deepStrictEqual(outbox(runDir).slice(0, 3).map((e) => e.id), earlier.map((m) => m.trex.id))
    })), 30_000)

  it.effect("the end a notifier keeps when the run's end comes is the one its whole journal makes, named after the end a resume that ran nothing told again", () =>
    Effect.scoped(Effect.gen(function*() {
      // three sessions (the second with a new budget), then one that ran nothing and ended as the third had
      const b = new TreeBuilder.TreeBuilder(TreeBuilder.task({ name: "kept", budget: { maxTrials: 2 } }))
      const events: Array<JournalEvent.JournalEvent> = []
      const take = () => events.push(...b.events.splice(0))
      const trial = (score: number) => {
        const id = b.succeed(ExperimentNode.ROOT, { "training.learningRate": score / 100 }, score)
        take()
        events.push(JournalEvent.make("BudgetCharged", { nodeId: id, cost: Cost.make({ gpuSeconds: 60, dollars: 0.5 }), reason: "trial", at: 1_000 * events.length }))
      }
      take()
      trial(0.4)
      trial(0.6)
      events.push(JournalEvent.make("RunFinished", { reason: "budget: maxTrials", at: 60_000 }))
      events.push(JournalEvent.make("RunResumed", { at: 3_600_000, budget: { maxTrials: 4 }, settings: { modelTimeoutSeconds: 60 } }))
      trial(0.5)
      events.push(JournalEvent.make("RunFinished", { reason: "budget: maxTrials", at: 3_700_000 }))
      events.push(JournalEvent.make("RunResumed", { at: 7_200_000 }))
      events.push(JournalEvent.make("RunFinished", { reason: "budget: maxTrials", at: 7_200_010 }))
      const entries = events.map((event, i) => ({ seq: i + 1, event }))
      const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-notify-kept-"))
      const kept = (journaled: number) =>
        Effect.gen(function*() {
          fs.rmSync(path.join(runDir, "notify"), { recursive: true, force: true })
          const notifier = yield* Notify.make({ urls: ["http://127.0.0.1:9/hook"] }, { runId: "r", runDir, journaled: entries.slice(0, journaled) })
          for (const entry of entries.slice(journaled)) notifier.onEvent(entry, ExperimentTree.fold(events.slice(0, entry.seq))!.view)
          return outbox(runDir).map((e) => e.message)
        })
      const last = events.at(-1) as JournalEvent.Of<"RunFinished">
      const whole = { started: events[0] as JournalEvent.Of<"RunStarted">, finished: last, tree: ExperimentTree.fold(events)!, entries, writer: undefined }
      const told = entries.length - 2
      const expected = Notify.endMessage({ runId: "r", runDir, task: "kept" }, Exit.succeed({ reason: last.reason }), whole, `r/end-${told}`)
      // the budget used across the sessions, as `trex status` tells it
      assert.deepStrictEqual(expected.trex.kind === "end" && expected.trex.status?.budget, { limits: { maxTrials: 4 }, trials: 3, spent: Cost.make({ gpuSeconds: 180, dollars: 1.5 }), elapsedSeconds: 160.01 })
      // and the setting the second session set for the run, which the notifier, keeping no entry, replays too
      assert.deepStrictEqual(expected.trex.kind === "end" && expected.trex.status?.settingOverrides, [{ key: "modelTimeoutSeconds", value: 60, resume: 1, at: 3_600_000 }])
      // the last session: the run's journal before it, then its own entries
      assert.deepStrictEqual(yield* kept(entries.length - 2), [expected])
      // a session that saw every entry keeps each end it saw come: the last, named after the one it tells again
      const all = yield* kept(0)
      assert.deepStrictEqual(all.map((m) => m.trex.id), ["r/end-" + (entries.findIndex((e) => e.event._tag === "RunFinished") + 1), `r/end-${told}`])
      assert.deepStrictEqual(all[1], expected)
      // a journal that does not start at 1 makes no end (it is not the whole run)
      fs.rmSync(path.join(runDir, "notify"), { recursive: true, force: true })
      const notifier = yield* Notify.make({ urls: ["http://127.0.0.1:9/hook"] }, { runId: "r", runDir, journaled: entries.slice(1, -1) })
      notifier.onEvent(entries.at(-1)!, ExperimentTree.fold(events)!.view)
      assert.deepStrictEqual(outbox(runDir), [])
    })))

  it.live("a notifier holds no reference to the journal entries it was given: they are freed while it runs", () =>
    Effect.scoped(Effect.gen(function*() {
      v8.setFlagsFromString("--expose-gc")
      const gc = vm.runInNewContext("gc") as () => void
      const b = new TreeBuilder.TreeBuilder(TreeBuilder.task({ name: "held", budget: { maxTrials: 2 } }))
      b.succeed(ExperimentNode.ROOT, { "training.learningRate": 0.01 }, 0.5)
      const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-notify-held-"))
      const hook = yield* webhook()
      // the entries a resumed run's prepare read, given to the notifier and dropped by their caller
      const { notifier, entries } = yield* Effect.suspend(() => {
        const journaled = b.events.splice(0).map((event, i) => ({ seq: i + 1, event }))
        return Notify.make({ urls: [`${hook.url}/h`] }, { runId: "r", runDir, journaled }).pipe(Effect.map((notifier) => ({ notifier, entries: new WeakRef(journaled) })))
      })
      // a WeakRef's target stays until the job that made (or read) it ends
      yield* Effect.promise(() => new Promise<void>((r) => setImmediate(r)))
      gc()
      assert.isUndefined(entries.deref(), "the entries are freed while the notifier runs")
      yield* notifier.end(Notify.endMessage({ runId: "r", runDir, task: "held" }, Exit.succeed({ reason: "budget" }), undefined))
      assert.strictEqual(hook.received.length, 1)
    })), 30_000)

  it("text from the run (an error's message, a task name) makes no mention, link or markup in a chat", () => {
    const m = Notify.endMessage({ runId: "r", runDir: "runs/r", task: "<!channel> & co" }, Exit.fail(new Error("loss is NaN, @here <https://x.example|click>")), undefined)
    assert.strictEqual(m.text, "trex · &lt;!channel&gt; &amp; co failed: loss is NaN, @\u200Bhere &lt;https://x.example|click&gt; · runs/r")
    assert.strictEqual(m.trex.kind === "end" && m.trex.reason, "loss is NaN, @here <https://x.example|click>", "the JSON keeps the text as it is")
  })
})

describe("Notify: the settings of a run's end", () => {
  /** A short run of the simulator, its recorded settings laid over with `options`, resumed with `args` and a webhook: the end posted. */
  const resumedEnd = (options: Record<string, unknown>, args: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      const hook = yield* webhook()
      const out = fs.mkdtempSync(path.join(os.tmpdir(), "trex-notify-settings-"))
      const run = yield* inProcess(["run", path.join(root, "examples/recorded-table/task.yaml"), "--max-trials", "2", "--out", out])
      assert.strictEqual(run.status, 0, run.stderr)
      const runDir = runDirOf(run.stdout)
      recordOptions(runDir, options)
      const resume = yield* inProcess(["resume", runDir, "--max-trials", "3", "--notify", `${hook.url}/h`, ...args])
      assert.strictEqual(resume.status, 0, resume.stderr)
      const ends = hook.received.filter((m) => m.body.trex.kind === "end")
      assert.strictEqual(ends.length, 1)
      const end = ends[0]!
      assert.strictEqual(end.body.trex.kind, "end")
      return { runDir, body: end.body, raw: JSON.stringify(end.body), end: end.body.trex as Extract<Notify.Payload, { kind: "end" }> }
    })

  it.live("names the settings the run takes and the one a resume set, as trex status --json gives them and as its Setting: line says it", () =>
    Effect.scoped(Effect.gen(function*() {
      // a model timeout this trex does not take, recorded at the start; the resume sets 60 for the run
      const { body, end, runDir } = yield* resumedEnd({ modelTimeoutSeconds: 3_000_000 }, ["--model-timeout", "60"])
      const status = JSON.parse((yield* trexStatus([runDir, "--json"])).stdout)
      assert.deepStrictEqual({ settings: end.status?.settings, settingOverrides: end.status?.settingOverrides }, { settings: status.settings, settingOverrides: status.settingOverrides })
      assert.strictEqual(end.status?.settings?.["modelTimeoutSeconds"], 60)
      assert.isUndefined(end.status?.settingsLeftOut)
      // the text: how the run is wired, in trex list's words, then the override in trex status's
      const line = (yield* trexStatus([runDir])).stdout.split("\n").find((l) => l.startsWith("Setting: "))!
      assert.include(body.text, ` · settings simulator/heuristic/uct (1 set on resume): ${line.slice("Setting: ".length)} · `)
    })), 60_000)

  it.live("an edited journal's settings are carried bounded: keys and long values cut as trex status cuts them, the first 40, the rest counted; the text on one line", () =>
    Effect.scoped(Effect.gen(function*() {
      // settings this trex does not take, as an edited journal or another tool's may hold: a key of 5,000 characters
      // with markup, `|` and a line break, whose value is as bad, and 60 more of 10,000 characters each
      const { researcher: _r, policy: _p, ...hostile } = hostileSettings("<!channel> <https://x.example|click>")
      const many = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`extra${i}`, "v".repeat(10_000)]))
      const { body, end, raw, runDir } = yield* resumedEnd({ ...hostile, ...many, modelTimeoutSeconds: 3_000_000 }, ["--model-timeout", "60"])
      const status = JSON.parse((yield* trexStatus([runDir, "--json"])).stdout)
      const settings = end.status!.settings!
      const keys = Object.keys(settings)
      assert.strictEqual(keys.length, 40)
      // the first 40 as trex status --json orders them, the rest counted
      assert.strictEqual(end.status!.settingsLeftOut, Object.keys(status.settings).length - 40)
      assert.deepStrictEqual(keys.slice(0, 5), Object.keys(status.settings).slice(0, 5))
      assert.isTrue(keys.every((k) => k.length <= 60 && !k.includes("\n")), "each key cut, on one line")
      assert.isTrue(Object.values(settings).every((v) => typeof v === "string" ? v.length <= 200 : JSON.stringify(v).length <= 200), "each value bounded")
      // a long value, as trex status shows it; the hostile key, cut as it shows it
      assert.strictEqual(settings["extra0"], `"${"v".repeat(198)}…`)
      assert.isTrue(keys.some((k) => k.startsWith("<b>key</b>| kkk") && k.endsWith("…")))
      assert.deepStrictEqual(end.status!.settingOverrides!.map((o) => [o.key, o.value, o.from]), [["modelTimeoutSeconds", 60, 3_000_000]])
      assert.isBelow(raw.length, 20_000, "the message is bounded")
      assert.notInclude(body.text, "\n")
      assert.include(body.text, " · settings simulator/heuristic/uct (1 set on resume): modelTimeoutSeconds 60 since resume 1 (")
    })), 60_000)

  it("the bounded settings lose none uncounted: keys alike once cut are counted, overrides past the 40th counted, the text's count the run's", () => {
    // two keys alike in their first 59 characters (cut to one), then 50 more; 50 overrides
    const long = "k".repeat(70)
    const settings: Record<string, unknown> = { backend: "simulator", researcher: "heuristic", policy: "uct", [`${long}a`]: 1, [`${long}b`]: 2 }
    for (let i = 0; i < 50; i++) settings[`extra${i}`] = i
    const settingOverrides = Array.from({ length: 50 }, (_, i) => ({ key: `extra${i}`, value: i, from: -i, resume: 1, at: Date.UTC(2026, 11, 6) }))
    const all = { settings, settingOverrides }
    const carried = boundedSettings(all)
    // every setting carried or counted, the 40 carried the first 40 there are room for (the cut key once)
    assert.strictEqual(Object.keys(carried.settings).length, 40)
    assert.strictEqual(Object.keys(carried.settings).length + (carried.settingsLeftOut ?? 0), Object.keys(settings).length, "a setting lost uncounted")
    assert.strictEqual(carried.settings[`${"k".repeat(59)}…`], 1, "the first of the two alike carried")
    assert.strictEqual(carried.settingOverrides.length, 40)
    assert.strictEqual(carried.settingOverridesLeftOut, 10, "the overrides left out counted")
    const line = settingsLine(all, carried)
    assert.match(line, /^settings simulator\/heuristic\/uct \(50 set on resume\): extra0 0 since resume 1 /, "the count is the run's")
    assert.isTrue(line.endsWith("; and 10 more"), line.slice(-80))
    // a run's own few settings: all carried, nothing counted
    const few = boundedSettings({ settings: { backend: "docker", researcher: "claude", policy: "puct" }, settingOverrides: [] })
    assert.deepStrictEqual(few, { settings: { backend: "docker", researcher: "claude", policy: "puct" }, settingOverrides: [] })
    assert.strictEqual(settingsLine({ settings: {}, settingOverrides: [] }, boundedSettings({ settings: {}, settingOverrides: [] })), "")
  })
})
