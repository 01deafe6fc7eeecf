// Webhook messages a run keeps: those waiting and expired (`--notify-max-age`), as `trex status` shows them,
// `trex notify --retry-expired/--drop-expired`, what is written durably, and the run's lock between sessions and
// `trex notify` (real processes). The webhook, the real CLI and the CLI in this process: support/notify.ts.
import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Journal } from "@trex/core"
import { Effect, Exit, Fiber } from "effect"
import * as Notify from "../src/Notify.ts"
import * as RunDir from "../src/RunDir.ts"
import { endSession, inProcess, keptByRefusingWebhook, outbox, recordFsyncs, runDirOf, toyTask, trex, trexStatus, webhook } from "./support/notify.ts"

describe("Notify: messages kept, expired and posted by trex notify; the run's lock", () => {
  it.live("a kept message due longer ago than --notify-max-age is not posted: said, moved to notify/expired, and shown by trex status", () =>
    Effect.scoped(Effect.gen(function*() {
      // a run whose webhook refused its new best and its end: both kept
      const { runDir, kept } = yield* keptByRefusingWebhook([])
      assert.deepStrictEqual(outbox(runDir).map((e) => e.message.trex.kind), ["best", "end"])
      // as if the best had waited 100 hours, the end 10
      const hours = (h: number) => Date.now() - h * 3_600_000
      for (const [e, h] of [[kept[0]!, 100], [kept[1]!, 10]] as const) {
        const file = path.join(runDir, "notify", `${e.id.slice(e.id.lastIndexOf("/") + 1)}.json`)
        fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, "utf8")), at: hours(h) }))
      }
      const hook = yield* webhook()
      const resumed = yield* inProcess(["resume", runDir, "--notify", `${hook.url}/h`, "--notify-max-age", "50"], { TREX_TOY_MS: "30" })
      assert.strictEqual(resumed.status, 0, resumed.stderr)
      // the end (10 hours old) is posted; the best (100 hours old) is not
      assert.deepStrictEqual(hook.received.map((m) => m.id), [kept[1]!.id])
      const best = (kept[0]!.message.trex as { best: { id: string } }).best.id
      assert.include(resumed.stderr, `notify: a webhook message of an earlier session (new best (${best})) was due more than 50 hours ago (the oldest at `)
      assert.include(resumed.stderr, `too old to post (notify.maxAgeHours, --notify-max-age): not posted, and moved to ${path.join(runDir, "notify", "expired")}`)
      assert.deepStrictEqual(outbox(runDir), [], "nothing waits")
      const expired = fs.readdirSync(path.join(runDir, "notify", "expired"))
      assert.deepStrictEqual(expired, [`best-${best}.json`])
      const status = yield* trexStatus([runDir])
      assert.include(status.stdout, `\nWebhooks: a message of an earlier session (new best (${best})) was never posted: found 100 hours after it was due, too old to post; kept in ${path.join(runDir, "notify", "expired")}`)
      assert.notInclude(status.stdout, "not delivered")
      // a bad age is refused, naming the flag
      const bad = yield* inProcess(["resume", runDir, "--notify", `${hook.url}/h`, "--notify-max-age", "0"])
      assert.strictEqual(bad.status, 2)
      assert.include(bad.stderr, "--notify-max-age is in hours and must be more than 0, got 0")
    })), 120_000)

  it.live("trex status and status --json list the messages waiting, those the next session will expire (past 72 hours), and those expired", () =>
    Effect.scoped(Effect.gen(function*() {
      const { runDir, kept, best, file } = yield* keptByRefusingWebhook([])
      // as if the best had waited 100 hours
      const aged = Date.now() - 100 * 3_600_000
      fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, "utf8")), at: aged }))
      const endAt = (JSON.parse(fs.readFileSync(path.join(runDir, "notify", `${kept[1]!.id.slice(kept[1]!.id.lastIndexOf("/") + 1)}.json`), "utf8")) as { at: number }).at

      // a session without webhooks expires nothing: status says which one the next session with them will
      const text = (yield* trexStatus([runDir])).stdout
      assert.include(text, `\nWebhooks: 2 webhook messages of an earlier session (new best (${best}), end) were not delivered`)
      assert.include(text, `; 1 of them (new best (${best})) was due more than 72 hours ago (the --notify-max-age of the session that kept it): a session with webhooks and that age will not post it, but move it to ${path.join(runDir, "notify", "expired")}; give it a longer --notify-max-age to post it`)
      const json = JSON.parse((yield* trexStatus([runDir, "--json"])).stdout)
      assert.deepStrictEqual(json.webhooks, {
        waiting: [
          { id: kept[0]!.id, kind: "best", due: new Date(aged).toISOString(), maxAgeHours: 72, pastMaxAge: true },
          { id: kept[1]!.id, kind: "end", due: new Date(endAt).toISOString(), maxAgeHours: 72, pastMaxAge: false }
        ],
        expired: []
      })

      // the next session with webhooks (the default age) posts the end and expires the best, as said
      const hook = yield* webhook()
      const resumed = yield* inProcess(["resume", runDir, "--notify", `${hook.url}/h`], { TREX_TOY_MS: "30" })
      assert.strictEqual(resumed.status, 0, resumed.stderr)
      assert.deepStrictEqual(hook.received.map((m) => m.id), [kept[1]!.id])
      const after = JSON.parse((yield* trexStatus([runDir, "--json"])).stdout)
      assert.deepStrictEqual(after.webhooks.waiting, [])
      assert.deepStrictEqual(after.webhooks.expired.map((e: { id: string; kind: string; due: string }) => [e.id, e.kind, e.due]), [[kept[0]!.id, "best", new Date(aged).toISOString()]])
      assert.isAtLeast(Date.parse(after.webhooks.expired[0].expired), Date.parse(json.webhooks.waiting[1].due))
    })), 120_000)

  it.live("trex status judges a waiting message by the --notify-max-age of the session that kept it, and says which age that is", () =>
    Effect.scoped(Effect.gen(function*() {
      const { refusing, runDir, kept, best, file } = yield* keptByRefusingWebhook(["--notify-max-age", "168"])
      const age = (h: number) => fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, "utf8")), at: Date.now() - h * 3_600_000 }))
      // 100 hours: past the default, not past the 168 the run was started with
      age(100)
      const text = (yield* trexStatus([runDir])).stdout
      assert.include(text, "to post them (within 168 hours of when they were due, or --notify-max-age)")
      assert.notInclude(text, "due more than")
      const json = JSON.parse((yield* trexStatus([runDir, "--json"])).stdout)
      assert.deepStrictEqual(json.webhooks.waiting.map((w: { maxAgeHours: number; pastMaxAge: boolean }) => [w.maxAgeHours, w.pastMaxAge]), [[168, false], [168, false]])
      // 200 hours: past it, and the line says which age
      age(200)
      assert.include((yield* trexStatus([runDir])).stdout, `; 1 of them (new best (${best})) was due more than 168 hours ago (the --notify-max-age of the session that kept it)`)
      // a resume with another age (still refused) keeps what waits with its own: the best (200 hours) is expired, the end kept with 24
      const resumed = yield* inProcess(["resume", runDir, "--notify", `${refusing.url}/gone`, "--notify-max-age", "24"], { TREX_TOY_MS: "30" })
      assert.strictEqual(resumed.status, 0, resumed.stderr)
      const after = JSON.parse((yield* trexStatus([runDir, "--json"])).stdout)
      assert.deepStrictEqual(after.webhooks.waiting.map((w: { id: string; maxAgeHours: number }) => [w.id, w.maxAgeHours]), [[kept[1]!.id, 24]])
      assert.deepStrictEqual(after.webhooks.expired.map((w: { id: string }) => w.id), [kept[0]!.id])
    })), 120_000)

  it.live("trex notify --retry-expired posts the expired messages now to the webhooks that lack them, keeping those not delivered; --drop-expired removes them", () =>
    Effect.scoped(Effect.gen(function*() {
      // /gone refuses everything (404, not tried again); /b refuses until it is up
      let up = false
      const hook = yield* webhook((p) => (p === "/gone" || (p === "/b" && !up) ? 404 : 200))
      const { out, task } = toyTask(2)
      const first = yield* inProcess(["run", task, "--out", out, "--notify", `${hook.url}/gone`, "--notify-best"], { TREX_TOY_MS: "30" })
      assert.strictEqual(first.status, 0, first.stderr)
      const runDir = runDirOf(first.stdout)
      const kept = outbox(runDir)
      assert.deepStrictEqual(kept.map((e) => e.message.trex.kind), ["best", "end"])
      const [best, end] = [kept[0]!.id, kept[1]!.id]
      for (const e of kept) {
        const file = path.join(runDir, "notify", `${e.id.slice(e.id.lastIndexOf("/") + 1)}.json`)
        fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, "utf8")), at: Date.now() - 100 * 3_600_000 }))
      }
      // the resume (default age) expires both, and tells the run's end again, under its id, to /h
      const resumed = yield* inProcess(["resume", runDir, "--notify", `${hook.url}/h`], { TREX_TOY_MS: "30" })
      assert.strictEqual(resumed.status, 0, resumed.stderr)
      const expiredDir = path.join(runDir, "notify", "expired")
      assert.deepStrictEqual(fs.readdirSync(expiredDir).length, 2)
      assert.include((yield* trexStatus([runDir])).stdout, `kept in ${expiredDir}: trex notify ${runDir} --retry-expired --notify <url> posts them now, --drop-expired removes them`)
      const posts = () => hook.received.filter((m) => m.path !== "/gone").map((m) => `${m.path} ${m.id} ${m.status}`)
      assert.deepStrictEqual(posts(), [`/h ${end} 200`])

      // bad input: no webhook, neither or both ways, not a run directory
      const none = yield* inProcess(["notify", runDir, "--retry-expired"])
      assert.strictEqual(none.status, 2)
      assert.include(none.stderr, "--retry-expired posts to the webhooks of --notify or TREX_NOTIFY_URL, and none is given")
      const neither = yield* inProcess(["notify", runDir, "--notify", `${hook.url}/h`])
      assert.strictEqual(neither.status, 2)
      assert.include(neither.stderr, "give --retry-expired (post them now) or --drop-expired (remove them)")
      const both = yield* inProcess(["notify", runDir, "--retry-expired", "--drop-expired"])
      assert.strictEqual(both.status, 2)
      assert.include(both.stderr, "--retry-expired and --drop-expired are two ways to deal with the same messages: give one")
      const notRun = yield* inProcess(["notify", out, "--drop-expired"])
      assert.strictEqual(notRun.status, 2)
      assert.include(notRun.stderr, `${out} is not a run directory`)

      // /b refuses: the best reaches /h only, the end (which /h has) nothing; both are kept, exit 1
      const refused = yield* inProcess(["notify", runDir, "--retry-expired", "--notify", `${hook.url}/h`, "--notify", `${hook.url}/b`])
      assert.strictEqual(refused.status, 1, refused.stderr)
      assert.deepStrictEqual(posts(), [`/h ${end} 200`, `/h ${best} 200`, `/b ${best} 404`, `/b ${end} 404`])
      assert.include(refused.stdout, `kept ${best} in ${expiredDir}: ${hook.url}/…: HTTP 404`)
      assert.include(refused.stdout, `try again (trex notify ${runDir} --retry-expired --notify <url>)`)
      assert.strictEqual(fs.readdirSync(expiredDir).length, 2)

      // /b is up: each goes to /b only, and is removed
      up = true
      const retried = yield* inProcess(["notify", runDir, "--retry-expired", "--json", "--notify", `${hook.url}/h`], { TREX_NOTIFY_URL: `${hook.url}/b` })
      assert.strictEqual(retried.status, 0, retried.stderr)
      assert.deepStrictEqual(JSON.parse(retried.stdout), { posted: [best, end], kept: [], dropped: [], unreadable: [] })
      assert.deepStrictEqual(posts().slice(4), [`/b ${best} 200`, `/b ${end} 200`])
      assert.isFalse(fs.existsSync(expiredDir))
      const json = JSON.parse((yield* trexStatus([runDir, "--json"])).stdout)
      assert.deepStrictEqual(json.webhooks, { waiting: [], expired: [] })
      // the end /b got is recorded: a resume that tells it again posts it to neither
      yield* inProcess(["resume", runDir, "--notify", `${hook.url}/h`, "--notify", `${hook.url}/b`], { TREX_TOY_MS: "30" })
      assert.strictEqual(posts().length, 6)
      const nothing = yield* inProcess(["notify", runDir, "--retry-expired", "--notify", `${hook.url}/h`])
      assert.strictEqual(nothing.status, 0)
      assert.include(nothing.stdout, `no message of ${runDir} was found too old to post`)

      // --drop-expired: a best expired by a resume whose webhook refuses it all is removed unposted
      const second = toyTask(2)
      const run2 = yield* inProcess(["run", second.task, "--out", second.out, "--notify", `${hook.url}/gone`, "--notify-best"], { TREX_TOY_MS: "30" })
      const runDir2 = runDirOf(run2.stdout)
      const best2 = outbox(runDir2)[0]!
      const file2 = path.join(runDir2, "notify", `${best2.id.slice(best2.id.lastIndexOf("/") + 1)}.json`)
      fs.writeFileSync(file2, JSON.stringify({ ...JSON.parse(fs.readFileSync(file2, "utf8")), at: Date.now() - 100 * 3_600_000 }))
      yield* inProcess(["resume", runDir2, "--notify", `${hook.url}/gone`], { TREX_TOY_MS: "30" })
      const withHook = yield* inProcess(["notify", runDir2, "--drop-expired", "--notify", `${hook.url}/h`])
      assert.strictEqual(withHook.status, 2)
      assert.include(withHook.stderr, "--drop-expired posts nothing, and a webhook is given")
      const dropped = yield* inProcess(["notify", runDir2, "--drop-expired", "--json"])
      assert.strictEqual(dropped.status, 0, dropped.stderr)
      assert.deepStrictEqual(JSON.parse(dropped.stdout), { posted: [], kept: [], dropped: [best2.id], unreadable: [] })
      const after = JSON.parse((yield* trexStatus([runDir2, "--json"])).stdout)
      assert.deepStrictEqual(after.webhooks.expired, [])
      // the end /gone refused still waits for a session with webhooks
      assert.deepStrictEqual(after.webhooks.waiting.map((w: { kind: string }) => w.kind), ["end"])
      assert.strictEqual(posts().length, 6, "dropping posts nothing")
    })), 180_000)

  it.live("a kept message is written durably: its file and its folder are fsync'd before it is posted", () =>
    Effect.scoped(Effect.gen(function*() {
      const synced = yield* recordFsyncs
      let syncedBeforePost: ReadonlyArray<string> = []
      const hook = yield* webhook(() => {
        syncedBeforePost = [...synced]
        return 200
      })
      const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-notify-"))
      yield* Effect.scoped(Effect.gen(function*() {
        const notifier = yield* Notify.make({ urls: [`${hook.url}/h`] }, { runId: "r", runDir })
        yield* notifier.end(Notify.endMessage({ runId: "r", runDir, task: "t" }, Exit.succeed({ reason: "budget" }), undefined, "r/end-7"))
      }))
      assert.strictEqual(hook.received.length, 1)
      const notify = path.join(runDir, "notify")
      // the folder made (its parent synced), the file written (synced before its rename), the folder synced after it
      assert.deepStrictEqual(syncedBeforePost, [runDir, path.join(notify, `end-7.json.${process.pid}.tmp`), notify])
      assert.deepStrictEqual(outbox(runDir), [])
    })), 30_000)

  it.live("what a webhook got is recorded durably (file and folder fsync'd), and holds the latest end only", () =>
    Effect.scoped(Effect.gen(function*() {
      const synced = yield* recordFsyncs
      const hook = yield* webhook()
      const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-notify-"))
      const session = endSession(`${hook.url}/h`, runDir)
      yield* session("r/end-7")
      const delivered = path.join(runDir, "notify", "delivered")
      const [name] = fs.readdirSync(delivered)
      const record = path.join(delivered, name!)
      // the message kept (as above), then the record: its folder made (its parent synced), the record written
      // (synced before its rename), its folder synced after it
      const notify = path.join(runDir, "notify")
      assert.deepStrictEqual(synced, [runDir, path.join(notify, `end-7.json.${process.pid}.tmp`), notify, notify, `${record}.${process.pid}.tmp`, delivered])
      assert.deepStrictEqual(JSON.parse(fs.readFileSync(record, "utf8")), { ends: ["r/end-7"] })
      // a later end replaces it; told again, it is not posted again
      yield* session("r/end-9")
      yield* session("r/end-9")
      assert.deepStrictEqual(JSON.parse(fs.readFileSync(record, "utf8")), { ends: ["r/end-9"] })
      assert.deepStrictEqual(hook.received.map((m) => m.id), ["r/end-7", "r/end-9"])
    })), 30_000)

  it.live("an end id of random hex digits that are all decimal is not taken for a journal position: the record holds the latest end", () =>
    Effect.scoped(Effect.gen(function*() {
      const hook = yield* webhook()
      const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-notify-"))
      const session = endSession(`${hook.url}/h`, runDir)
      // a session that ended without RunFinished, its 12 random hex digits all decimal (1 in 282), then
      // the run's end the journal records, told again by a resume that runs nothing
      yield* session("r/end-123456789012")
      yield* session("r/end-9")
      yield* session("r/end-9")
      assert.deepStrictEqual(hook.received.map((m) => m.id), ["r/end-123456789012", "r/end-9"], "the end the webhook has is not posted again")
      const delivered = path.join(runDir, "notify", "delivered")
      const [name] = fs.readdirSync(delivered)
      const record = path.join(delivered, name!)
      assert.deepStrictEqual(JSON.parse(fs.readFileSync(record, "utf8")), { ends: ["r/end-9"] })
      // a record an older trex wrote with such an id is replaced by the journal's end
      fs.writeFileSync(record, JSON.stringify({ ends: ["r/end-023456789012"] }))
      yield* session("r/end-11")
      yield* session("r/end-11")
      assert.deepStrictEqual(JSON.parse(fs.readFileSync(record, "utf8")), { ends: ["r/end-11"] })
      assert.deepStrictEqual(hook.received.map((m) => m.id).slice(2), ["r/end-11"])
    })), 30_000)

  it.live("trex notify is refused while a controller runs the run, and holds the run's lock while it posts: a resume meanwhile is refused before it posts anything", () =>
    Effect.scoped(Effect.gen(function*() {
      const { runDir, best, file } = yield* keptByRefusingWebhook([])
      fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, "utf8")), at: Date.now() - 100 * 3_600_000 }))
      const lock = path.join(runDir, "journal.sqlite")
      // /x: while trex notify waits for its answer, `during` runs
      let during: (() => Promise<void>) | undefined
      // (once: a post that timed out meanwhile, on a loaded machine, is tried again and answered once `during` is done)
      let done: Promise<void> | undefined
      const hook = yield* webhook((p) => (p === "/x" && during !== undefined ? (done ??= during()).then(() => 200) : 200))
      const expired = path.join(runDir, "notify", "expired", `best-${best}.json`)

      // a real controller: a resume with one more trial, held running until `hold` exists; at its start it
      // expires the best (100 hours old) and posts the end its first session kept
      const hold = path.join(path.dirname(runDir), "hold")
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.writeFileSync(hold, "")))
      let controller: ReturnType<typeof spawn> | undefined
      const running = yield* Effect.forkChild(trex(["resume", runDir, "--max-trials", "3", "--notify", `${hook.url}/h`], { TREX_TOY_MS: "30", TREX_TOY_HOLD: hold }, (_text, child) => {
        controller = child
      }))
      const until = Date.now() + 60_000
      while (!(controller !== undefined && (yield* Journal.writer(lock))?.pid === controller.pid && fs.existsSync(expired) && hook.received.length > 0)) {
        assert.isBelow(Date.now(), until, "the resume holds the run and has expired the best")
        yield* Effect.sleep("50 millis")
      }
      const drop = yield* inProcess(["notify", runDir, "--drop-expired"])
      assert.strictEqual(drop.status, 2, drop.stderr)
      assert.include(drop.stderr, `the run in ${runDir} is in use by process ${controller!.pid}, its controller, which posts and expires the run's webhook messages itself`)
      assert.include(drop.stderr, `Wait for it to end, or stop it (trex stop ${runDir} --wait), then run trex notify again`)
      const retry = yield* inProcess(["notify", runDir, "--retry-expired", "--notify", `${hook.url}/x`])
      assert.strictEqual(retry.status, 2, retry.stderr)
      assert.include(retry.stderr, `is in use by process ${controller!.pid}`)
      assert.isTrue(fs.existsSync(expired), "not dropped")
      assert.deepStrictEqual(hook.received.filter((m) => m.path === "/x"), [], "not posted")
      fs.writeFileSync(hold, "")
      const resumed = yield* Fiber.join(running)
      assert.strictEqual(resumed.status, 0, resumed.stderr)
      const posted = hook.received.length

      // trex notify holds the run while it posts: a resume then is refused, and posts nothing (no kept
      // message, no failed end of its own); it is told what holds the run (a trex notify, its pid and host)
      // and to wait. trex status shows the run as its journal ended it (no controller), held by that trex
      // notify; trex stop has nothing to stop, and says what holds the run; a second trex notify is told so too
      type Said = { readonly status: number | null; readonly stdout?: string; readonly stderr: string }
      let meanwhile: { refused: Said; status: Said; json: Record<string, unknown>; stop: Said; again: Said } | undefined
      during = () =>
        Effect.runPromise(Effect.gen(function*() {
          const refused = yield* trex(["resume", runDir, "--notify", `${hook.url}/h`], { TREX_TOY_MS: "30" })
          const status = yield* trexStatus([runDir])
          const json = JSON.parse((yield* trexStatus([runDir, "--json"])).stdout) as Record<string, unknown>
          meanwhile = { refused, status, json, stop: yield* inProcess(["stop", runDir]), again: yield* inProcess(["notify", runDir, "--drop-expired"]) }
        }))
      let notifier: ReturnType<typeof spawn> | undefined
      const retried = yield* trex(["notify", runDir, "--retry-expired", "--json", "--notify", `${hook.url}/x`], {}, undefined, (child) => {
        notifier = child
      })
      assert.strictEqual(retried.status, 0, retried.stderr)
      assert.deepStrictEqual(JSON.parse(retried.stdout).posted, [`${path.basename(runDir)}/best-${best}`])
      const { again, json, refused, status, stop } = meanwhile!
      const holder = `held by a \`trex notify\` session (process ${notifier!.pid} on this host, ${os.hostname()}), which posts or drops the run's expired webhook messages: ` +
        "it lets go of the run once done, within seconds (up to 33 s for each message a webhook does not answer). Wait for it to finish, then "
      assert.strictEqual(refused.status, 2, refused.stderr)
      assert.include(refused.stderr, `trex: the run's lock (${lock}.lock) is ${holder}try again`)
      assert.notInclude(refused.stderr, "controller")
      assert.include(status.stdout, "\nState: finished (budget: maxTrials)\n")
      assert.include(status.stdout, `\nLock: ${holder}\`trex resume ${runDir}\` or \`trex notify\` can take the run\n`)
      assert.notInclude(status.stdout, "running (controller")
      assert.strictEqual(json.state, "finished")
      assert.isUndefined(json.writerPid)
      assert.deepStrictEqual(json.heldBy, { by: "trex notify", pid: notifier!.pid, host: os.hostname() })
      assert.strictEqual(stop.status, 0, stop.stderr)
      assert.include(stop.stdout, `the run in ${runDir} is not running: it finished (budget: maxTrials); nothing to stop. It is ${holder}trex resume can take it`)
      assert.strictEqual(again.status, 2, again.stderr)
      assert.include(again.stderr, `the run in ${runDir} is ${holder}run trex notify again`)
      assert.deepStrictEqual([...new Set(hook.received.slice(posted).map((m) => `${m.path} ${m.body.trex.kind}`))], ["/x best"], "the refused resume posted nothing")
      assert.isFalse(fs.existsSync(expired))
    })), 120_000)

  it.live("two resumes started together: the one the run's lock refuses posts nothing, the other posts each kept message once", () =>
    Effect.scoped(Effect.gen(function*() {
      const { runDir, kept } = yield* keptByRefusingWebhook([])
      const hook = yield* webhook()
      // a FIFO among the kept messages, its write end held by the test: a session whose notifier starts
      // blocks reading it (after its lock, before its journal opens) until the test lets go of that end
      const fifo = path.join(runDir, "notify", "0-held.json")
      execFileSync("mkfifo", [fifo])
      const writeEnd = fs.openSync(fifo, fs.constants.O_RDWR)
      const reading = (child: ReturnType<typeof spawn> | undefined) => {
        if (child?.pid === undefined) return false
        try {
          return fs.readdirSync(`/proc/${child.pid}/fd`).some((fd) => {
            try {
              return fs.readlinkSync(`/proc/${child.pid}/fd/${fd}`) === fifo
            } catch {
              return false
            }
          })
        } catch {
          return false
        }
      }
      const children: Array<ReturnType<typeof spawn> | undefined> = [undefined, undefined]
      const resume = (i: number) =>
        Effect.forkChild(trex(["resume", runDir, "--notify", `${hook.url}/h`], { TREX_TOY_MS: "30" }, undefined, (child) => {
          children[i] = child
        }))
      const first = yield* resume(0)
      const until = Date.now() + 60_000
      while (!reading(children[0])) {
        assert.isBelow(Date.now(), until, "the first resume's notifier reads the kept messages")
        yield* Effect.sleep("20 millis")
      }
      // the second starts while the first is between its start and its journal: refused by the lock the
      // first holds, it exits; without that lock it reaches its notifier too
      const second = yield* resume(1)
      while (!(children[1]?.exitCode !== null && children[1]?.exitCode !== undefined) && !reading(children[1])) {
        assert.isBelow(Date.now(), until, "the second resume is refused or reads the kept messages")
        yield* Effect.sleep("20 millis")
      }
      fs.closeSync(writeEnd)
      const results = [yield* Fiber.join(first), yield* Fiber.join(second)]
      fs.rmSync(fifo)
      assert.deepStrictEqual(results.map((r) => r.status), [0, 2], results.map((r) => r.stderr).join("\n"))
      assert.include(results[1]!.stderr, "run is in use by process ")
      // each kept message posted once, by the first: nothing by the refused one (no kept message, no end of its own)
      assert.deepStrictEqual(hook.received.map((m) => `${m.status} ${m.id}`), kept.map((e) => `200 ${e.id}`))
      assert.deepStrictEqual(outbox(runDir), [])
    })), 120_000)

  it.live("the temporary files a kill mid-write left in notify/ are removed when a notifier starts on a run nobody else holds, and only then", () =>
    Effect.scoped(Effect.gen(function*() {
      const hook = yield* webhook()
      const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-notify-"))
      const file = RunDir.journalFile(runDir)
      fs.writeFileSync(file, "")
      const notify = path.join(runDir, "notify")
      const stale = [path.join(notify, "best-n1.json.4000001.tmp"), path.join(notify, "delivered", "0123456789abcdef.json.4000002.tmp"), path.join(notify, "expired", "end-7.json.4000003.tmp")]
      // not of its kind (a file of someone else's), or this process's own (being written now): left
      const others = [path.join(notify, "notes.tmp"), path.join(notify, "delivered", "x.json.tmp"), path.join(notify, `best-n2.json.${process.pid}.tmp`)]
      for (const f of [...stale, ...others]) {
        fs.mkdirSync(path.dirname(f), { recursive: true })
        fs.writeFileSync(f, "{\"id\":")
      }
      const start = Effect.scoped(Notify.make({ urls: [`${hook.url}/h`] }, { runId: "r", runDir }))
      // another process holds the run (a controller, which may be writing them): left
      const script = `const { DatabaseSync } = require("node:sqlite"); const db = new DatabaseSync(${JSON.stringify(`${file}.lock`)}); ` +
        `db.exec("BEGIN EXCLUSIVE"); console.log("ready"); setInterval(() => {}, 1000)`
      const holder = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] })
      const exited = new Promise<void>((r) => holder.once("exit", () => r()))
      yield* Effect.addFinalizer(() => Effect.sync(() => holder.kill("SIGKILL")))
      yield* Effect.promise(() => new Promise<void>((resolve) => holder.stdout.on("data", (d) => String(d).includes("ready") && resolve())))
      yield* start
      assert.deepStrictEqual([...stale, ...others].filter((f) => !fs.existsSync(f)), [], "nothing removed while another process holds the run")
      holder.kill("SIGKILL")
      yield* Effect.promise(() => exited)
      // nobody holds it: its kind, of other processes, removed
      yield* start
      assert.deepStrictEqual(stale.filter((f) => fs.existsSync(f)), [])
      assert.deepStrictEqual(others.filter((f) => !fs.existsSync(f)), [])
      assert.deepStrictEqual(hook.received, [])
    })), 60_000)

})
