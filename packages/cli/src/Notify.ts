/**
 * Messages about a run, posted as JSON to webhooks: a Slack or Mattermost incoming webhook shows its
 * `text`, any other endpoint reads its `trex` object. One message when the run ends (finished, failed
 * or stopped, with its best trial and counts), and with `best`, one for each new best trial.
 *
 * A webhook's address is a secret (whoever has a Slack webhook's address can post to its channel): it
 * is held as `Redacted`, never journaled, logged or shown but for its origin, and a resumed run posts
 * only to the webhooks its own session is given (`--notify`, `TREX_NOTIFY_URL`, `Trex.start`'s
 * `notify`). A message that cannot be delivered is tried again (a network error, a timeout, HTTP 429
 * or 5xx) and then logged as a warning: a webhook never fails, stops or holds up a run for long.
 *
 * Delivery is at least once, across a kill too: a message is written to the run directory (`notify/`,
 * fsync'd) when it is due and removed once every webhook answered 2xx, so one that was due, being posted
 * or being retried when the controller died, or given up on, is posted by the run's next session (`trex
 * resume`, to its own webhooks). A session's end is written before the journal records it, so a kill
 * between the two does not lose it (and an end the journal never got is not posted). A message may
 * therefore arrive twice: each carries a stable id, the same on every try (the `webhook-id` header, as
 * Standard Webhooks names it, and `trex.id`), by which a receiver drops the second. Which webhooks
 * got an end the journal records is kept (`notify/delivered/`), so a resume that runs nothing, which
 * tells that end again, posts it only to those that have not. A message kept
 * longer than `maxAgeHours` (72 by default) when a session would post it is not posted: it is said,
 * and moved to `notify/expired/`, which `trex status` shows and `trex notify` posts ({@link retryExpired}) or drops.
 *
 * @since 0.1.0
 */
import * as crypto from "node:crypto"
import * as os from "node:os"
import { Errors, ExperimentNode, type ExperimentTree, Journal, JournalEvent, OptionSpec } from "@trex/core"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { processOf } from "./internal/lockHolder.ts"
import { boundedSettings, settingsLine } from "./internal/settingsText.ts"
import * as Outbox from "./internal/outbox.ts"
import * as Untrusted from "./internal/untrusted.ts"
import * as RunDir from "./RunDir.ts"
import * as Status from "./Status.ts"

/**
 * Where and what to post. `urls`: http(s) addresses (strings, or `Redacted` strings); `best`: also
 * post each new best trial (default: only the run's end). `timeoutMs` bounds one attempt (default
 * 10,000); `attempts` (default 3) bounds the tries of one message to one webhook.
 * @since 0.1.0 @category models
 */
export interface Options {
  readonly urls: ReadonlyArray<string | Redacted.Redacted<string>>
  readonly best?: boolean
  readonly timeoutMs?: number
  readonly attempts?: number
  /**
   * Hours a message kept undelivered (its webhooks down, or the controller killed) may wait for a
   * later session to post it (default 72, as long as Stripe retries an event): an older one is not
   * posted, but said and moved to `notify/expired/` in the run directory.
   */
  readonly maxAgeHours?: number
}

/** How long a kept message may wait for a session to post it, by default: 72 hours. @since 0.1.0 @category constants */
export const MAX_AGE_HOURS = 72

/**
 * The environment variable read by `trex run` and `trex resume` for webhooks, beside `--notify`:
 * addresses separated by whitespace. Unlike a flag, it is not shown in the process list.
 * @since 0.1.0 @category constants
 */
export const ENV = "TREX_NOTIFY_URL"

/** How a run ended, as a message tells it. @since 0.1.0 @category models */
export type Outcome = "finished" | "failed" | "stopped"

/**
 * The `trex` object of a message: `kind` `best` (a new best trial: `best`, `trials` finished so far)
 * or `end` (`outcome`, `reason`, and the run's `status` as `trex status --json` gives it, without its
 * nodes, analysis and insights, its settings bounded for an edited journal: a key cut at 60 characters, a value
 * whose JSON is longer than 200 as `trex status` shows it, the first 40 settings and the first 40 overrides, and
 * `settingsLeftOut` and `settingOverridesLeftOut` counting every one left out). `at`: when it was due (ISO 8601; a message kept across a kill is
 * posted later). `id` is the message's, the same on every try and after a kill (also sent as the
 * `webhook-id` header): `<runId>/best-<node>` (a node's best is one message, whichever session posts
 * it), `<runId>/end-<seq>` for an end the journal records (`RunFinished`, at `seq`; a resume that runs
 * nothing and ends the same way tells that same end, under its id) or `<runId>/end-<12 hex digits>`
 * for a session that ended without one (an error, a cancel). A receiver that keeps the ids it has seen
 * drops the messages it gets twice.
 * @since 0.1.0 @category models
 */
export type Payload =
  | {
    readonly kind: "best"
    readonly id: string
    readonly at: string
    readonly runId: string
    readonly runDir: string
    readonly task: string
    readonly metric: { readonly name: string; readonly direction: string }
    readonly best: { readonly id: string; readonly score: number; readonly metrics: Record<string, number>; readonly strategy: unknown }
    readonly trials: number
  }
  | {
    readonly kind: "end"
    readonly id: string
    readonly at: string
    readonly outcome: Outcome
    readonly reason: string
    readonly runId: string
    readonly runDir: string
    readonly status: Omit<Status.StatusJson, "nodes" | "analysis" | "insights" | "webhooks"> & {
      readonly settingsLeftOut?: number
      readonly settingOverridesLeftOut?: number
    } | undefined
  }

/** What is posted: the JSON body. @since 0.1.0 @category models */
export interface Message {
  readonly text: string
  readonly trex: Payload
}

/** Where a webhook is, as messages show it: its origin only (its path is the secret part). @since 0.1.0 @category functions */
export const shown = (url: Redacted.Redacted<string>): string => {
  const value = Redacted.value(url)
  try {
    return `${new URL(value).origin}/…`
  } catch {
    return "(an address that is not a URL)"
  }
}

/**
 * Check a webhook's address: an absolute `http:` or `https:` URL. `source` names where it was given
 * (`--notify`, `TREX_NOTIFY_URL`, `notify.urls[0]`). The error never shows the address itself.
 * @since 0.1.0 @category functions
 */
export const parseUrl = (raw: string | Redacted.Redacted<string>, source: string): Effect.Effect<Redacted.Redacted<string>, Errors.InvalidInput> =>
  Effect.suspend(() => {
    const value = (Redacted.isRedacted(raw) ? Redacted.value(raw) : raw).trim()
    const issue = urlIssue(value)
    return issue === undefined
      ? Effect.succeed(Redacted.make(new URL(value).href))
      : Effect.fail(new Errors.InvalidInput({ source, message: `${source} ${issue}` }))
  })

/** Why an address is not a webhook's, or `undefined` when it is one. */
const urlIssue = (value: string): string | undefined => {
  try {
    const { protocol } = new URL(value.trim())
    return protocol === "https:" || protocol === "http:" ? undefined : `is a ${protocol} address: a webhook takes http: or https:`
  } catch {
    return `is not a URL (${value.trim() === "" ? "it is empty" : `${value.length} characters`}): give the webhook's full address, e.g. https://hooks.slack.com/services/T000/B000/XXXX`
  }
}

const WHAT = "the webhooks told of the run's end, e.g. { urls: [\"https://hooks.slack.com/services/T000/B000/XXXX\"], best: true }"

const fields: OptionSpec.Rule = OptionSpec.struct({
  urls: OptionSpec.required({
    issues: (v, path) => {
      if (!Array.isArray(v)) return [`${path}: expected a list of webhook addresses, e.g. ["https://hooks.slack.com/services/T000/B000/XXXX"], got ${typeof v === "string" ? "one string: put it in a list" : OptionSpec.show(v)}`]
      return v.flatMap((u, i) => {
        const value = typeof u === "string" ? u : Redacted.isRedacted(u) && typeof Redacted.value(u) === "string" ? Redacted.value(u) as string : undefined
        if (value === undefined) return [`${path}[${i}]: expected an address (a string, or a Redacted string), got ${OptionSpec.show(u)}`]
        const issue = urlIssue(value)
        return issue === undefined ? [] : [`${path}[${i}] ${issue}`]
      })
    }
  }),
  best: OptionSpec.boolean("also post each new best trial"),
  timeoutMs: OptionSpec.integer(1, "milliseconds one attempt may take, e.g. 10000"),
  attempts: OptionSpec.integer(1, "tries of one message to one webhook, e.g. 3", 10),
  maxAgeHours: OptionSpec.number({ above: 0 }, "hours a kept message may wait for a later session to post it, e.g. 72")
}, WHAT)

/**
 * What {@link Options} takes, as `Trex.start`'s `notify` and {@link make} check it: each issue names
 * its field (`notify.urls[1]`, `notify.attempts`) and never shows an address (nor a string or a list
 * given instead of the object: an address on its own, or a list of them).
 * @since 0.1.0 @category rules
 */
export const rule: OptionSpec.Rule = {
  issues: (v, path) => {
    if (typeof v === "object" && v !== null && !Array.isArray(v)) return fields.issues(v, path)
    const got = typeof v === "string" ? "a string: give an address in urls, { urls: [address] }" : Array.isArray(v) ? "a list: give it as urls, { urls: [...] }" : OptionSpec.show(v)
    return [`${path}: expected an object (${WHAT}), got ${got}`]
  }
}

/** Webhook addresses from {@link ENV}'s value (whitespace-separated; unset or blank: none). @since 0.1.0 @category functions */
export const fromEnv = (value: string | undefined): Effect.Effect<ReadonlyArray<Redacted.Redacted<string>>, Errors.InvalidInput> =>
  Effect.forEach((value ?? "").split(/\s+/).filter((s) => s !== ""), (s, i) => parseUrl(s, i === 0 ? ENV : `${ENV} (its address ${i + 1})`))

/** A post that did not get a 2xx answer; `retryable` for a network error, a timeout, 429 and 5xx. */
class Undelivered extends Error {
  readonly retryable: boolean
  constructor(message: string, retryable: boolean) {
    super(message)
    this.retryable = retryable
  }
}

/** One attempt: POST the body, within `timeoutMs` (interrupting it aborts the request). */
const postOnce = (url: Redacted.Redacted<string>, id: string, body: string, timeoutMs: number) =>
  Effect.tryPromise({
    try: async (signal) => {
      const response = await fetch(Redacted.value(url), {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": "trex-notify", "webhook-id": id },
        body,
        redirect: "manual",
        signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)])
      })
      // the answer's body is not read: drop it, so its connection is freed
      await response.body?.cancel().catch(() => undefined)
      return response.status
    },
    catch: (e) => {
      const cause = e instanceof Error && e.cause instanceof Error ? e.cause.message : undefined
      const timedOut = e instanceof Error && (e.name === "TimeoutError" || e.name === "AbortError")
      return new Undelivered(timedOut ? `no answer within ${timeoutMs} ms` : `${e instanceof Error ? e.message : String(e)}${cause !== undefined ? ` (${cause})` : ""}`, true)
    }
  }).pipe(
    Effect.flatMap((status) =>
      status >= 200 && status < 300
        ? Effect.void
        : Effect.fail(
          new Undelivered(
            `HTTP ${status}${status === 404 || status === 403 || status === 410 ? " (the webhook's address is wrong, or it was revoked)" : status >= 300 && status < 400 ? " (a redirect: give the address it redirects to)" : ""}`,
            status === 429 || status >= 500
          )
        )
    )
  )

/**
 * Post one message to one webhook, its id as the `webhook-id` header, trying again after 1 and 2 s
 * (and so on, up to `attempts`) while the failure is retryable. Fails with why, after how many attempts.
 * @since 0.1.0 @category functions
 */
export const post = (
  url: Redacted.Redacted<string>,
  message: Message,
  options: { readonly timeoutMs?: number; readonly attempts?: number } = {}
): Effect.Effect<void, Error> => {
  const attempts = Math.max(1, options.attempts ?? 3)
  let tried = 0
  return Effect.suspend(() => {
    tried++
    return postOnce(url, message.trex.id, JSON.stringify(message), options.timeoutMs ?? 10_000)
  }).pipe(
    Effect.retry({ schedule: Schedule.exponential("1 second"), times: attempts - 1, while: (e) => e.retryable }),
    Effect.mapError((e) => new Error(`${e.message} (${tried} attempt${tried === 1 ? "" : "s"})`))
  )
}

const fmt = (x: number | undefined) => (x === undefined ? "-" : Number.isInteger(x) ? String(x) : x.toPrecision(4))

/** The message of a new best trial. @since 0.1.0 @category functions */
export const bestMessage = (run: { readonly runId: string; readonly runDir: string }, tree: ExperimentTree.TreeView, best: ExperimentTree.NodeView): Message => {
  const task = tree.task
  const score = ExperimentNode.score(best)!
  const finished = [...tree.nodes()].filter((n) => ExperimentNode.isFinished(n)).length
  const metrics = ExperimentNode.result(best)?.metrics ?? {}
  return {
    text: `trex · ${Untrusted.chat(task.name, 120)}: new best ${Untrusted.chat(task.metric.name, 60)} ${fmt(score)} (${best.id}) after ${finished} trial${finished === 1 ? "" : "s"} · ${Untrusted.chat(run.runDir, 300)}`,
    trex: {
      kind: "best",
      id: `${run.runId}/best-${best.id}`,
      at: new Date().toISOString(),
      runId: run.runId,
      runDir: run.runDir,
      task: task.name,
      metric: { name: task.metric.name, direction: task.metric.direction },
      best: { id: best.id, score, metrics, strategy: best.strategy },
      trials: finished
    }
  }
}

/**
 * The message of a run's end: `finished` when it journaled its end (not a stop's) with a trial that succeeded,
 * `failed` when it failed (an error, trials that all failed the same way, a researcher that failed) or
 * ended with none that succeeded, `stopped` when it ended without finishing (`trex resume` continues it).
 * `info` is the run as its journal holds it at the end (`undefined` when it could not be read; a
 * {@link Notifier}'s: its live tree, and its budget used as replayed). `id`:
 * the message's (by default a new one, `<runId>/end-<12 hex digits>`; a {@link Notifier} gives an end
 * the journal records its own, see {@link Payload}).
 * @since 0.1.0 @category functions
 */
export const endMessage = (
  run: { readonly runId: string; readonly runDir: string; readonly task: string },
  exit: Exit.Exit<{ readonly reason: string }, unknown>,
  info: Status.Source | undefined,
  id = `${run.runId}/end-${crypto.randomBytes(6).toString("hex")}`
): Message => {
  // as `trex status --json` gives it (its settings too: what a resume kept), without what may be long
  const all = info === undefined ? undefined : Status.settingsJson(info)
  const settings = all === undefined ? undefined : boundedSettings(all)
  const status = info === undefined ? undefined : { ...(({ analysis: _a, insights: _i, nodes: _n, webhooks: _w, ...rest }) => rest)(Status.toJson(info)), ...settings }
  const error = Exit.isFailure(exit) ? Option.getOrUndefined(Exit.findErrorOption(exit)) : undefined
  const errorMessage = error === undefined ? undefined : error instanceof Error ? error.message : String(error)
  // the reason the journal holds (as `trex status` shows it), else the error's, else the summary's
  const reason = info?.finished?.reason ?? errorMessage ?? (Exit.isSuccess(exit) ? exit.value.reason : "interrupted")
  const failedTrials = status?.counts.Failed ?? 0
  const outcome: Outcome = errorMessage !== undefined || (info?.finished !== undefined && status?.best === undefined && failedTrials > 0) ||
      (Exit.isSuccess(exit) && exit.value.reason.startsWith(JournalEvent.RESEARCHER_FAILED))
    ? "failed"
    : info?.finished !== undefined && info.finished.reason !== JournalEvent.STOPPED_BY_REQUEST
    ? "finished"
    : "stopped"
  const trials = status === undefined ? "" : ` · ${status.counts.Succeeded} succeeded, ${failedTrials} failed`
  const best = status?.best !== undefined ? ` · best ${Untrusted.chat(status.metric.name, 60)} ${fmt(status.best.score)} (${status.best.id})` : ""
  // how the run is wired, and what a resume set for it, in `trex list`'s and `trex status`'s words, cut
  const line = all === undefined || settings === undefined ? "" : settingsLine(all, settings)
  const wired = line === "" ? "" : ` · ${Untrusted.chat(line, 600)}`
  const next = outcome === "stopped" ? ` · continue with: trex resume ${Untrusted.chat(run.runDir, 300)}` : ` · ${Untrusted.chat(run.runDir, 300)}`
  return {
    text: `trex · ${Untrusted.chat(run.task, 120)} ${outcome}: ${Untrusted.chat(reason, 400)}${best}${trials}${wired}${next}`,
    trex: {
      kind: "end",
      id,
      at: new Date(info?.finished?.at ?? Date.now()).toISOString(),
      outcome,
      reason,
      runId: run.runId,
      runDir: run.runDir,
      status
    }
  }
}

/**
 * A run's notifier: {@link Notifier.onEvent} queues a message for each new best (with `best`), in the
 * order found, a later best replacing one not yet posted, and keeps the end's message when the run's
 * end (`RunFinished`) comes, before it is journaled; {@link Notifier.end} queues the end's (under the
 * id of the end the journal recorded, when it did) and waits until every queued message was posted or
 * given up on, or as long as one message's tries take (`attempts` of `timeoutMs`, 1, 2... s apart: 33 s
 * by default), whichever comes first. Each is kept in the run directory from when it is due until every
 * webhook got it (see the module's note). `onEvent`'s `tree` is the run's with the entry applied (the
 * explorer's): an end is made from it, and from totals kept as the entries come, none of which is kept.
 * @since 0.1.0 @category models
 */
export interface Notifier {
  readonly onEvent: (entry: JournalEvent.Entry, tree: ExperimentTree.TreeView) => void
  readonly end: (message: Message) => Effect.Effect<void>
}

/** A message the notifier holds: as it is kept in the run directory, with the webhooks that got it. */
interface Held {
  readonly id: string
  readonly at: number
  readonly message: Message
  readonly delivered: Set<string>
  /** An end made before its `RunFinished` was journaled: that entry. */
  readonly end?: { readonly seq: number; readonly at: number }
}

/** The longest one message's tries to one webhook take: `attempts` answers of `timeoutMs` at most, 1, 2, 4... s apart. */
const longest = (options: Options): Duration.Duration => {
  const attempts = Math.max(1, options.attempts ?? 3)
  return Duration.millis(attempts * (options.timeoutMs ?? 10_000) + (2 ** (attempts - 1) - 1) * 1000)
}

const what = (m: Message) => (m.trex.kind === "end" ? "end" : `new best (${m.trex.best.id})`)

/**
 * Whether a message may be told again by a later session: an end the journal records (`end-<seq>`),
 * which a resume that runs nothing tells under the same id. Which webhooks got it is recorded
 * (`notify/delivered/`), so that it is posted only to those that have not.
 */
const toldAgain = (m: Message): boolean => m.trex.kind === "end" && Outbox.endSeq(m.trex.id) !== undefined

const withId = (message: Message, id: string): Message => ({ ...message, trex: { ...message.trex, id } })

/**
 * Whether a kept message may be posted: one made before its end was journaled (`end`) only when the
 * journal holds that end (`journaled`: the run's entries before this session; unknown: it may).
 */
const endJournaled = (end: Outbox.Entry<Message>["end"], journaled: ReadonlyArray<JournalEvent.Entry> | undefined): boolean => {
  if (end === undefined || journaled === undefined) return true
  const entry = journaled[end.seq - 1]
  return entry?.seq === end.seq && entry.event._tag === "RunFinished" && entry.event.at === end.at
}

/**
 * The messages an earlier session kept, but those that tell an end the journal never got (the
 * controller was killed between keeping it and journaling it): those are removed, never posted.
 */
const keptMessages = (runDir: string, journaled: ReadonlyArray<JournalEvent.Entry> | undefined, removeUnjournaled: boolean) => {
  const { entries, unreadable } = Outbox.read<Message>(runDir)
  const posted: Array<Outbox.Entry<Message>> = []
  for (const e of entries) {
    if (endJournaled(e.end, journaled)) posted.push(e)
    else if (removeUnjournaled) Outbox.remove(runDir, e.id)
  }
  return { entries: posted, unreadable }
}

/** `3 messages (new best (n2), end, end)`, `a message (end)`: what a list of messages is. */
const listed = (entries: ReadonlyArray<{ readonly message: Message }>, one = "a webhook message", many = "webhook messages") =>
  `${entries.length === 1 ? one : `${entries.length} ${many}`} of an earlier session (${entries.map((e) => what(e.message)).join(", ")})`

/**
 * Start a run's notifier in the current scope: messages are posted one at a time, to every webhook
 * at once; closing the scope stops posting. The messages an earlier session of the run left
 * undelivered (`notify/` in its directory) are posted first, to this session's webhooks, but those
 * due more than `maxAgeHours` ago (moved to `notify/expired/`, and said). `run.journaled`: the run's
 * journal entries before this session (a resumed run's), which name the ends a session keeps and
 * tell which kept ends the journal got.
 * @since 0.1.0 @category constructors
 */
export const make = (
  options: Options,
  run: { readonly runId: string; readonly runDir: string; readonly journaled?: ReadonlyArray<JournalEvent.Entry> | undefined }
): Effect.Effect<Notifier, Errors.InvalidInput, Scope.Scope> => {
  // the notifier's closures hold none of `run`: its entries (a resumed run's whole journal) are read
  // once, when it starts, and then let go of, so that they are freed once their caller lets go of them too
  const { runDir, runId } = run
  let journaled = run.journaled
  return Effect.gen(function*() {
    const issues = rule.issues(options, "notify")
    if (issues.length > 0) return yield* new Errors.InvalidInput({ source: /^([\w.]+)/.exec(issues[0]!)?.[1] ?? "notify", message: issues.join("\n") })
    const urls = yield* Effect.forEach(options.urls, (u, i) => parseUrl(u, `notify.urls[${i}]`))
    const keys = new Map(urls.map((u) => [u, Outbox.keyOf(Redacted.value(u))]))
    const context = yield* Effect.context<never>()
    // the first write that fails is said (a read-only or full disk): the message is posted all the same
    let unkept = false
    const kept = (failed: string | undefined) => {
      if (failed === undefined || unkept) return
      unkept = true
      Effect.runForkWith(context)(Effect.logWarning(`notify: ${failed}: messages are posted, but one not yet delivered when the controller is killed is lost`))
    }
    const maxAgeHours = options.maxAgeHours ?? MAX_AGE_HOURS
    // each kept message carries this session's age, so that `trex status` tells what a session like it would do
    const keep = (held: Held) =>
      kept(Outbox.put(runDir, { id: held.id, at: held.at, message: held.message, delivered: [...held.delivered], ...(held.end !== undefined ? { end: held.end } : {}), maxAgeHours }))
    /** Messages not yet delivered to every webhook, by id: in the run directory too. */
    const undelivered = new Map<string, Held>()
    /** The ids of the messages queued in this session (an earlier session's, and this one's). */
    const queued = new Set<string>()
    const hold = (message: Message, end?: Held["end"]): Held => {
      const held = { id: message.trex.id, at: Date.now(), message, delivered: new Set<string>(), ...(end !== undefined ? { end } : {}) }
      undelivered.set(held.id, held)
      keep(held)
      return held
    }
    const drop = (held: Held) => {
      undelivered.delete(held.id)
      kept(Outbox.remove(runDir, held.id))
    }
    const queue = yield* Queue.unbounded<{ readonly held?: Held; readonly done?: Deferred.Deferred<void> }>()
    const offer = (held: Held, done?: Deferred.Deferred<void>) => {
      queued.add(held.id)
      return Queue.offerUnsafe(queue, { held, ...(done !== undefined ? { done } : {}) })
    }
    // what a kill mid-write left (temporary files, never read): removed when this process holds the run or
    // nobody does (a controller beside it could be writing them)
    const holder = yield* Journal.writer(RunDir.journalFile(runDir))
    if (holder === undefined || (holder.pid === process.pid && (holder.host === undefined || holder.host === os.hostname()))) {
      for (const failed of Outbox.removeStale(runDir)) kept(failed)
    }
    // an earlier session's: due before anything this one finds, unless too old to post
    const earlier = keptMessages(runDir, journaled, true)
    for (const file of earlier.unreadable) yield* Effect.logWarning(`notify: ${file}: not a message this trex kept; left as it is`)
    const now = Date.now()
    const expired = earlier.entries.filter((e) => now - e.at > maxAgeHours * 3_600_000)
    for (const e of expired) kept(Outbox.expire(runDir, e, now))
    if (expired.length > 0) {
      yield* Effect.logWarning(
        `notify: ${listed(expired)} ${expired.length === 1 ? "was" : "were"} due more than ${maxAgeHours} hours ago (the oldest at ${new Date(expired[0]!.at).toISOString()}): ` +
          `too old to post (notify.maxAgeHours, --notify-max-age): not posted, and moved to ${Outbox.expiredDirOf(runDir)}`
      )
    }
    for (const e of earlier.entries) {
      if (expired.includes(e)) continue
      const held = { id: e.id, at: e.at, message: e.message, delivered: new Set(e.delivered), ...(e.end !== undefined ? { end: e.end } : {}) }
      undelivered.set(held.id, held)
      // kept again with this session's age, should it be left for the next one
      if ((e.maxAgeHours ?? MAX_AGE_HOURS) !== maxAgeHours) keep(held)
      offer(held)
    }
    const complete = (held: Held) => urls.every((url) => held.delivered.has(keys.get(url)!))
    // to the webhooks that have not got it (an earlier session's message may have reached some; an end
    // the journal records, told again by a resume that runs nothing, may have reached some before), each
    // one's answer kept at once; done when all have it (this session gives it to no other)
    const deliver = (held: Held) =>
      Effect.suspend(() => {
        const told = toldAgain(held.message)
        if (told) for (const key of keys.values()) if (Outbox.deliveredTo(runDir, key).includes(held.id)) held.delivered.add(key)
        return Effect.forEach(urls.filter((url) => !held.delivered.has(keys.get(url)!)), (url) =>
          post(url, held.message, options).pipe(
            Effect.andThen(Effect.sync(() => {
              // a kill between the answer and these records posts the message once more (at least once)
              if (told) kept(Outbox.markDelivered(runDir, keys.get(url)!, held.id))
              held.delivered.add(keys.get(url)!)
              if (!complete(held)) keep(held)
            })),
            Effect.catch((e) => Effect.logWarning(`notify: the ${what(held.message)} message of ${runDir} was not delivered to ${shown(url)}: ${e.message}`))
          ), { concurrency: "unbounded", discard: true })
      }).pipe(
        Effect.andThen(Effect.sync(() => {
          if (complete(held)) drop(held)
        }))
      )
    const posting = yield* Effect.forkScoped(Effect.forever(
      Effect.gen(function*() {
        const items = yield* Queue.takeAll(queue)
        // of the bests queued while the last message was posted, only the latest is news (and it
        // replaces any best given up on earlier)
        const lastBest = items.findLastIndex((item) => item.held?.message.trex.kind === "best")
        for (const [i, item] of items.entries()) {
          if (item.held === undefined) {
            // nothing to post: the end waits for what was queued before it
          } else if (item.held.message.trex.kind !== "best") yield* deliver(item.held)
          else if (i !== lastBest) drop(item.held)
          else {
            for (const h of [...undelivered.values()]) if (h.message.trex.kind === "best" && h !== item.held) drop(h)
            yield* deliver(item.held)
          }
          if (item.done !== undefined) yield* Deferred.succeed(item.done, undefined)
        }
      })
    ))
    // the run's journal as this session knows it (the entries before it, and each one it journals),
    // followed, not kept (the explorer's tree holds the run): whole when it starts at 1 with the run's
    // start and its entries come one after another, when an end made from it is the one `trex status`
    // would show: the live tree, and the budget used replayed as the entries came
    let seen = 0
    let whole = true
    let started: JournalEvent.Of<"RunStarted"> | undefined
    let replayed: Status.Replay | undefined
    let previous: JournalEvent.JournalEvent["_tag"] | undefined
    /**
     * The last `RunFinished`, and the journal position that names it: its own, or, when the session
     * that journaled it ran nothing (its `RunResumed` just before it) and ended as the run had ended (a
     * `RunFinished` just before that, of the same reason), the one that names that earlier end.
     */
    let lastEnd: { readonly seq: number; readonly reason: string; readonly named: number } | undefined
    const follow = (entry: JournalEvent.Entry) => {
      const event = entry.event
      seen++
      if (entry.seq !== seen) whole = false
      if (seen === 1 && event._tag === "RunStarted") {
        started = event
        replayed = new Status.Replay(event.task.budget)
      }
      replayed?.apply(event)
      if (event._tag === "RunFinished") {
        const again = previous === "RunResumed" && lastEnd?.seq === entry.seq - 2 && lastEnd.reason === event.reason
        lastEnd = { seq: entry.seq, reason: event.reason, named: again ? lastEnd!.named : entry.seq }
      }
      previous = event._tag
    }
    for (const entry of journaled ?? []) follow(entry)
    journaled = undefined
    let lastBest: string | undefined
    /** The id of the end this session journaled, once it has. */
    let sessionEnd: string | undefined
    /**
     * The run's end, before it is journaled (onEvent comes first): its message is kept, so a kill
     * between the journal's entry and the message's post leaves it for the next session, and named
     * after the entry, so that a resume that runs nothing tells the same end under the same id.
     */
    const ending = (entry: JournalEvent.Entry, tree: ExperimentTree.TreeView) => {
      const event = entry.event
      if (event._tag !== "RunFinished" || started === undefined || replayed === undefined || !whole || lastEnd === undefined) return
      sessionEnd = `${runId}/end-${lastEnd.named}`
      // an earlier session's message of that end is queued, or was posted, in this session: it tells it
      if (queued.has(sessionEnd)) return
      const info: Status.Source = { started, finished: event, view: tree, replayed, writer: undefined }
      hold(endMessage({ runId, runDir, task: tree.task.name }, Exit.succeed({ reason: event.reason }), info, sessionEnd), { seq: entry.seq, at: event.at })
    }
    return {
      onEvent: (entry, tree) => {
        follow(entry)
        if (entry.event._tag === "RunFinished") return ending(entry, tree)
        if (options.best !== true || entry.event._tag !== "NodeFinished" || entry.event.outcome !== "Succeeded") return
        const best = tree.best()
        if (best === undefined || best.id !== entry.event.nodeId || best.id === lastBest) return
        lastBest = best.id
        // kept before the event is journaled (onEvent comes first): a kill after it leaves the message
        offer(hold(bestMessage({ runId, runDir }, tree, best)))
      },
      end: (message) =>
        Effect.gen(function*() {
          const done = yield* Deferred.make<void>()
          if (sessionEnd !== undefined && queued.has(sessionEnd)) {
            // the end the journal recorded was an earlier session's, whose message is queued (or posted)
            yield* Queue.offer(queue, { done })
          } else {
            // the message of the end the journal recorded, kept when it was journaled, is replaced by this one
            const end = sessionEnd !== undefined ? undelivered.get(sessionEnd)?.end : undefined
            offer(hold(sessionEnd !== undefined ? withId(message, sessionEnd) : message, end), done)
          }
          // the exit waits as long as one message's tries, however many are queued before the end's
          // (bests tried while the webhook did not answer): what is left is kept, for the next session
          const limit = longest(options)
          const posted = yield* Deferred.await(done).pipe(Effect.timeoutOption(limit))
          if (Option.isNone(posted)) yield* Fiber.interrupt(posting)
          if (undelivered.size === 0) return
          const left = [...undelivered.values()].map((h) => what(h.message))
          yield* Effect.logWarning(
            `notify: ${left.length === 1 ? "a message" : `${left.length} messages`} of ${runDir} (${left.join(", ")}) ${left.length === 1 ? "was" : "were"} not delivered to every webhook` +
              `${Option.isNone(posted) ? ` within ${Duration.format(limit)} of the run's end (as long as one message's tries)` : ""}: ` +
              `kept in ${Outbox.dirOf(runDir)}, and posted by the run's next session with webhooks (trex resume ${runDir} --notify <url>)`
          )
        })
    }
  })
}

/**
 * What an earlier session of a run left undelivered (kept in its directory, `notify/`), in a sentence
 * that says how to post it; `undefined` when nothing waits. `journaled`: the run's journal entries, to
 * leave out an end the journal never got (it is not posted). It names those due longer ago (at `now`)
 * than the `maxAgeHours` of the session that kept them ({@link MAX_AGE_HOURS} when not recorded), which a
 * session with webhooks and that age expires, and says which age that is. `trex status` shows it.
 * @since 0.1.0 @category functions
 */
export const waiting = (runDir: string, session = "the run's next session", journaled?: ReadonlyArray<JournalEvent.Entry>, now = Date.now()): string | undefined => {
  const { entries } = keptMessages(runDir, journaled, false)
  if (entries.length === 0) return undefined
  // a session without webhooks expires nothing (it cannot know the age the next one allows): those past
  // the age of the session that kept them are said, as a next session like it will expire them
  const old = entries.filter((e) => pastMaxAge(e, now))
  const ages = [...new Set(old.map(maxAgeOf))].sort((a, b) => a - b)
  const them = old.length === 1 ? "it" : "them"
  const expiring = old.length === 0
    ? ""
    : `; ${old.length === entries.length ? (old.length === 1 ? "it was" : "they were") : `${old.length} of them (${old.map((e) => what(e.message)).join(", ")}) ${old.length === 1 ? "was" : "were"}`} ` +
      `due more than ${ages.join(" or ")} hours ago (the --notify-max-age of the session that kept ${them}): a session with webhooks and that age will not post ${them}, ` +
      `but move ${them} to ${Outbox.expiredDirOf(runDir)}; give it a longer --notify-max-age to post ${them}`
  const within = [...new Set(entries.map(maxAgeOf))].sort((a, b) => a - b).join(" or ")
  return `${listed(entries)} ${entries.length === 1 ? "was" : "were"} not delivered: kept in ${Outbox.dirOf(runDir)}; ` +
    `give ${session} webhooks (--notify, ${ENV}, notify) to post ${entries.length === 1 ? "it" : "them"} (within ${within} hours of when ${entries.length === 1 ? "it was" : "they were"} due, or --notify-max-age)${expiring}`
}

/** The age a kept message may reach: its session's `maxAgeHours`, or {@link MAX_AGE_HOURS} when not recorded. */
const maxAgeOf = (e: Outbox.Entry<Message>): number => e.maxAgeHours ?? MAX_AGE_HOURS

/** Whether a kept message was due longer ago than the age of the session that kept it: a session with webhooks and that age expires it. */
const pastMaxAge = (e: Outbox.Entry<Message>, now: number) => now - e.at > maxAgeOf(e) * 3_600_000

/**
 * A run's webhook messages not delivered, as `trex status --json` gives them (`webhooks`): those waiting
 * for the run's next session with webhooks (but an end the journal never got), and those found too old
 * to post. `journaled`: the run's journal entries.
 * @since 0.1.0 @category functions
 */
export const statusJson = (runDir: string, journaled?: ReadonlyArray<JournalEvent.Entry>, now = Date.now()): Status.WebhooksJson => ({
  waiting: keptMessages(runDir, journaled, false).entries.map((e) => ({
    id: e.id,
    kind: e.message.trex.kind,
    due: new Date(e.at).toISOString(),
    maxAgeHours: maxAgeOf(e),
    pastMaxAge: pastMaxAge(e, now)
  })),
  expired: Outbox.readExpired<Message>(runDir).entries.map((e) => ({
    id: e.id,
    kind: e.message.trex.kind,
    due: new Date(e.at).toISOString(),
    expired: new Date(e.expired ?? e.at).toISOString()
  }))
})

/**
 * The messages of a run found too old to post (`notify/expired/`), in a sentence; `undefined` when
 * there are none. `trex status` shows it.
 * @since 0.1.0 @category functions
 */
export const expired = (runDir: string): string | undefined => {
  const { entries } = Outbox.readExpired<Message>(runDir)
  if (entries.length === 0) return undefined
  const ages = entries.map((e) => Math.round(((e.expired ?? e.at) - e.at) / 3_600_000))
  return `${listed(entries, "a message", "messages")} ${entries.length === 1 ? "was" : "were"} never posted: ` +
    `found ${Math.min(...ages)}${Math.max(...ages) !== Math.min(...ages) ? ` to ${Math.max(...ages)}` : ""} hours after ${entries.length === 1 ? "it was" : "they were"} due, too old to post; ` +
    `kept in ${Outbox.expiredDirOf(runDir)}: trex notify ${runDir} --retry-expired --notify <url> posts ${entries.length === 1 ? "it" : "them"} now, --drop-expired removes ${entries.length === 1 ? "it" : "them"}`
}

/**
 * Hold the run's writer lock (the one its controller holds while it runs) for the scope: a controller
 * posts and expires the run's messages itself, and one running beside `trex notify` could post or drop
 * the same message at once; held, no controller starts meanwhile (`trex resume` is refused). Refused,
 * naming the process and what to do, while one holds it.
 */
const exclusive = (runDir: string): Effect.Effect<void, Errors.InvalidInput, Scope.Scope> => {
  const file = RunDir.journalFile(runDir)
  // recorded with this process's pid and host: a resume refused meanwhile, and `trex status`, say that a trex notify holds the run
  return Journal.lockWriter(file, { by: RunDir.NOTIFY_HOLDER }).pipe(
    Effect.catch((e) =>
      Effect.flatMap(Journal.writer(file), (holder) =>
        Effect.fail(
          new Errors.InvalidInput({
            source: runDir,
            message: e.reason !== "Locked"
              ? `cannot take the run's lock (${file}.lock): ${e.message}`
              : holder?.by !== undefined
              ? `the run in ${runDir} is ${RunDir.heldBy(holder, "run trex notify again")}`
              : `the run in ${runDir} is in use by ${processOf(holder)}, ` +
                `its controller, which posts and expires the run's webhook messages itself: trex notify would post or drop them beside it. ` +
                `Wait for it to end, or stop it (trex stop ${runDir} --wait), then run trex notify again`
          })
        )
      )
    )
  )
}

/**
 * What `trex notify` did with a run's messages found too old to post (`notify/expired/`): by id, those
 * `posted` now to every webhook given (and removed), those `kept` (a webhook did not answer 2xx: `failures`
 * says which and why; they stay, and a later try posts them only to the webhooks that did not get them),
 * those `dropped` (removed unposted), and the files that are not a message (`unreadable`, left as they are).
 * @since 0.1.0 @category models
 */
export interface ExpiredOutcome {
  readonly posted: ReadonlyArray<string>
  readonly kept: ReadonlyArray<{ readonly id: string; readonly failures: ReadonlyArray<string> }>
  readonly dropped: ReadonlyArray<string>
  readonly unreadable: ReadonlyArray<string>
}

/**
 * Post a run's messages found too old to post (`notify/expired/`) now, as they were kept (their
 * `trex.at` says when they were due), to the webhooks `options.urls` that have not got them, one message
 * at a time in the order they were due; each one every webhook answered 2xx is removed, the others stay
 * with the webhooks that did. An end the journal records, posted, is recorded as delivered
 * (`notify/delivered/`), so a resume that tells it again does not post it twice. It holds the run's
 * writer lock meanwhile, as its controller does: refused (`InvalidInput`, naming the process) while the
 * run is running, and no controller starts until it is done.
 * @since 0.1.0 @category functions
 */
export const retryExpired = (runDir: string, options: Pick<Options, "urls" | "timeoutMs" | "attempts">): Effect.Effect<ExpiredOutcome, Errors.InvalidInput> =>
  Effect.scoped(Effect.gen(function*() {
    const urls = yield* Effect.forEach(options.urls, (u, i) => parseUrl(u, `notify.urls[${i}]`))
    yield* exclusive(runDir)
    const { entries, unreadable } = Outbox.readExpired<Message>(runDir)
    const posted: Array<string> = []
    const kept: Array<{ readonly id: string; readonly failures: ReadonlyArray<string> }> = []
    for (const e of entries) {
      const delivered = new Set(e.delivered)
      // an end a later session told again (under its id) may have reached some of them since
      if (toldAgain(e.message)) for (const url of urls) if (Outbox.deliveredTo(runDir, Outbox.keyOf(Redacted.value(url))).includes(e.id)) delivered.add(Outbox.keyOf(Redacted.value(url)))
      const failures: Array<string> = []
      for (const url of urls) {
        const key = Outbox.keyOf(Redacted.value(url))
        if (delivered.has(key)) continue
        const failed = yield* post(url, e.message, options).pipe(Effect.match({ onFailure: (err) => err.message, onSuccess: () => undefined }))
        if (failed !== undefined) {
          failures.push(`${shown(url)}: ${failed}`)
          continue
        }
        delivered.add(key)
        const recorded = toldAgain(e.message) ? Outbox.markDelivered(runDir, key, e.id) : undefined
        if (recorded !== undefined) failures.push(`${shown(url)} got it, but ${recorded}`)
      }
      if (failures.length === 0) {
        const removed = Outbox.removeExpired(runDir, e.id)
        if (removed === undefined) posted.push(e.id)
        else kept.push({ id: e.id, failures: [`posted, but ${removed}`] })
      } else {
        const updated = Outbox.putExpired(runDir, { ...e, delivered: [...delivered] })
        kept.push({ id: e.id, failures: updated === undefined ? failures : [...failures, updated] })
      }
    }
    return { posted, kept, dropped: [], unreadable }
  }))

/**
 * Remove a run's messages found too old to post (`notify/expired/`), unposted: once seen, they are no
 * longer listed by `trex status`. As {@link retryExpired}, refused while the run is running.
 * @since 0.1.0 @category functions
 */
export const dropExpired = (runDir: string): Effect.Effect<ExpiredOutcome, Errors.InvalidInput> =>
  Effect.scoped(Effect.gen(function*() {
    yield* exclusive(runDir)
    const { entries, unreadable } = Outbox.readExpired<Message>(runDir)
    const dropped: Array<string> = []
    const kept: Array<{ readonly id: string; readonly failures: ReadonlyArray<string> }> = []
    for (const e of entries) {
      const removed = Outbox.removeExpired(runDir, e.id)
      if (removed === undefined) dropped.push(e.id)
      else kept.push({ id: e.id, failures: [removed] })
    }
    return { posted: [], kept, dropped, unreadable }
  }))

/** What `trex notify` did, in lines. @since 0.1.0 @category functions */
export const expiredOutcomeText = (runDir: string, outcome: ExpiredOutcome): string => {
  const dir = Outbox.expiredDirOf(runDir)
  const lines: Array<string> = []
  if (outcome.posted.length + outcome.kept.length + outcome.dropped.length === 0) lines.push(`no message of ${runDir} was found too old to post: ${dir} holds none`)
  for (const id of outcome.posted) lines.push(`posted ${id} to every webhook, and removed it from ${dir}`)
  for (const id of outcome.dropped) lines.push(`dropped ${id} (not posted) from ${dir}`)
  for (const k of outcome.kept) lines.push(`kept ${k.id} in ${dir}: ${k.failures.join("; ")}`)
  for (const f of outcome.unreadable) lines.push(`${f}: not a message this trex kept; left as it is`)
  if (outcome.kept.length > 0) lines.push(`try again (trex notify ${runDir} --retry-expired --notify <url>): a webhook that got a message is not posted it again`)
  return lines.join("\n")
}

/**
 * A session without webhooks: a warning when an earlier one left messages undelivered (kept in the run
 * directory), saying how to post them. `journaled`: the run's journal entries (an end it never got is
 * removed, never posted).
 * @since 0.1.0 @category functions
 */
export const remind = (runDir: string, journaled?: ReadonlyArray<JournalEvent.Entry>): Effect.Effect<void> =>
  Effect.suspend(() => {
    keptMessages(runDir, journaled, true)
    const line = waiting(runDir, "this session", journaled)
    return line === undefined ? Effect.void : Effect.logWarning(`notify: ${line}`)
  })
