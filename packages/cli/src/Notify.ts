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
 * Delivery is at least once, across a kill too: a message is written to the run directory (`notify/`)
 * when it is due and removed once every webhook answered 2xx, so one that was due, being posted or
 * being retried when the controller died, or given up on, is posted by the run's next session (`trex
 * resume`, to its own webhooks). A message may therefore arrive twice: each carries a stable id, the
 * same on every try (the `webhook-id` header, as Standard Webhooks names it, and `trex.id`), by which a
 * receiver drops the second.
 *
 * @since 0.1.0
 */
import * as crypto from "node:crypto"
import { Errors, ExperimentNode, OptionSpec, type ExperimentTree, type JournalEvent } from "@trex/core"
import { Explorer } from "@trex/mcts"
import { Deferred, Duration, Effect, Exit, Fiber, Option, Queue, Redacted, Schedule, type Scope } from "effect"
import * as Outbox from "./internal/outbox.ts"
import * as Untrusted from "./internal/untrusted.ts"
import type { RunInfo } from "./RunDir.ts"
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
}

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
 * nodes, analysis and insights). `id` is the message's, the same on every try and after a kill (also
 * sent as the `webhook-id` header): `<runId>/best-<node>` (a node's best is one message, whichever
 * session posts it) or `<runId>/end-<12 hex digits>` (each session's end is a message of its own). A
 * receiver that keeps the ids it has seen drops the messages it gets twice.
 * @since 0.1.0 @category models
 */
export type Payload =
  | {
    readonly kind: "best"
    readonly id: string
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
    readonly outcome: Outcome
    readonly reason: string
    readonly runId: string
    readonly runDir: string
    readonly status: Omit<Status.StatusJson, "nodes" | "analysis" | "insights"> | undefined
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
  attempts: OptionSpec.integer(1, "tries of one message to one webhook, e.g. 3", 10)
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
 * `info` is the run as its journal holds it at the end (`undefined` when it could not be read).
 * @since 0.1.0 @category functions
 */
export const endMessage = (
  run: { readonly runId: string; readonly runDir: string; readonly task: string },
  exit: Exit.Exit<{ readonly reason: string }, unknown>,
  info: RunInfo | undefined
): Message => {
  const status = info === undefined ? undefined : (({ nodes: _n, analysis: _a, insights: _i, ...rest }) => rest)(Status.toJson(info))
  const error = Exit.isFailure(exit) ? Option.getOrUndefined(Exit.findErrorOption(exit)) : undefined
  const errorMessage = error === undefined ? undefined : error instanceof Error ? error.message : String(error)
  // the reason the journal holds (as `trex status` shows it), else the error's, else the summary's
  const reason = info?.finished?.reason ?? errorMessage ?? (Exit.isSuccess(exit) ? exit.value.reason : "interrupted")
  const failedTrials = status?.counts.Failed ?? 0
  const outcome: Outcome = errorMessage !== undefined || (info?.finished !== undefined && status?.best === undefined && failedTrials > 0) ||
      (Exit.isSuccess(exit) && exit.value.reason.startsWith(Explorer.RESEARCHER_FAILED))
    ? "failed"
    : info?.finished !== undefined && info.finished.reason !== Explorer.STOPPED_BY_REQUEST
    ? "finished"
    : "stopped"
  const trials = status === undefined ? "" : ` · ${status.counts.Succeeded} succeeded, ${failedTrials} failed`
  const best = status?.best !== undefined ? ` · best ${Untrusted.chat(status.metric.name, 60)} ${fmt(status.best.score)} (${status.best.id})` : ""
  const next = outcome === "stopped" ? ` · continue with: trex resume ${Untrusted.chat(run.runDir, 300)}` : ` · ${Untrusted.chat(run.runDir, 300)}`
  return {
    text: `trex · ${Untrusted.chat(run.task, 120)} ${outcome}: ${Untrusted.chat(reason, 400)}${best}${trials}${next}`,
    trex: { kind: "end", id: `${run.runId}/end-${crypto.randomBytes(6).toString("hex")}`, outcome, reason, runId: run.runId, runDir: run.runDir, status }
  }
}

/**
 * A run's notifier: {@link Notifier.onEvent} queues a message for each new best (with `best`), in the
 * order found, a later best replacing one not yet posted; {@link Notifier.end} queues the end's and
 * waits until every queued message was posted or given up on, or as long as one message's tries take
 * (`attempts` of `timeoutMs`, 1, 2... s apart: 33 s by default), whichever comes first. Each is kept in
 * the run directory from when it is queued until every webhook got it (see the module's note).
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
}

/** The longest one message's tries to one webhook take: `attempts` answers of `timeoutMs` at most, 1, 2, 4... s apart. */
const longest = (options: Options): Duration.Duration => {
  const attempts = Math.max(1, options.attempts ?? 3)
  return Duration.millis(attempts * (options.timeoutMs ?? 10_000) + (2 ** (attempts - 1) - 1) * 1000)
}

const what = (m: Message) => (m.trex.kind === "end" ? "end" : `new best (${m.trex.best.id})`)

/**
 * Start a run's notifier in the current scope: messages are posted one at a time, to every webhook
 * at once; closing the scope stops posting. The messages an earlier session of the run left
 * undelivered (`notify/` in its directory) are posted first, to this session's webhooks.
 * @since 0.1.0 @category constructors
 */
export const make = (
  options: Options,
  run: { readonly runId: string; readonly runDir: string }
): Effect.Effect<Notifier, Errors.InvalidInput, Scope.Scope> =>
  Effect.gen(function*() {
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
    const keep = (held: Held) => kept(Outbox.put(run.runDir, { id: held.id, at: held.at, message: held.message, delivered: [...held.delivered] }))
    /** Messages not yet delivered to every webhook, by id: in the run directory too. */
    const undelivered = new Map<string, Held>()
    const hold = (message: Message): Held => {
      const held = { id: message.trex.id, at: Date.now(), message, delivered: new Set<string>() }
      undelivered.set(held.id, held)
      keep(held)
      return held
    }
    const drop = (held: Held) => {
      undelivered.delete(held.id)
      kept(Outbox.remove(run.runDir, held.id))
    }
    const queue = yield* Queue.unbounded<{ readonly held: Held; readonly done?: Deferred.Deferred<void> }>()
    // an earlier session's: due before anything this one finds
    const earlier = Outbox.read<Message>(run.runDir)
    for (const file of earlier.unreadable) yield* Effect.logWarning(`notify: ${file}: not a message this trex kept; left as it is`)
    for (const e of earlier.entries) {
      const held = { id: e.id, at: e.at, message: e.message, delivered: new Set(e.delivered) }
      undelivered.set(held.id, held)
      yield* Queue.offer(queue, { held })
    }
    const complete = (held: Held) => urls.every((url) => held.delivered.has(keys.get(url)!))
    // to the webhooks that have not got it (an earlier session's message may have reached some), each
    // one's answer kept at once; done when all have it (this session gives it to no other)
    const deliver = (held: Held) =>
      Effect.forEach(urls.filter((url) => !held.delivered.has(keys.get(url)!)), (url) =>
        post(url, held.message, options).pipe(
          Effect.andThen(Effect.sync(() => {
            held.delivered.add(keys.get(url)!)
            if (!complete(held)) keep(held)
          })),
          Effect.catch((e) => Effect.logWarning(`notify: the ${what(held.message)} message of ${run.runDir} was not delivered to ${shown(url)}: ${e.message}`))
        ), { concurrency: "unbounded", discard: true }).pipe(
          Effect.andThen(Effect.sync(() => {
            if (complete(held)) drop(held)
          }))
        )
    const posting = yield* Effect.forkScoped(Effect.forever(
      Effect.gen(function*() {
        const items = yield* Queue.takeAll(queue)
        // of the bests queued while the last message was posted, only the latest is news (and it
        // replaces any best given up on earlier)
        const lastBest = items.findLastIndex((item) => item.held.message.trex.kind === "best")
        for (const [i, item] of items.entries()) {
          if (item.held.message.trex.kind !== "best") yield* deliver(item.held)
          else if (i !== lastBest) drop(item.held)
          else {
            for (const h of [...undelivered.values()]) if (h.message.trex.kind === "best" && h !== item.held) drop(h)
            yield* deliver(item.held)
          }
          if (item.done !== undefined) yield* Deferred.succeed(item.done, undefined)
        }
      })
    ))
    let lastBest: string | undefined
    return {
      onEvent: (entry, tree) => {
        if (options.best !== true || entry.event._tag !== "NodeFinished" || entry.event.outcome !== "Succeeded") return
        const best = tree.best()
        if (best === undefined || best.id !== entry.event.nodeId || best.id === lastBest) return
        lastBest = best.id
        // kept before the event is journaled (onEvent comes first): a kill after it leaves the message
        Queue.offerUnsafe(queue, { held: hold(bestMessage(run, tree, best)) })
      },
      end: (message) =>
        Effect.gen(function*() {
          const done = yield* Deferred.make<void>()
          yield* Queue.offer(queue, { held: hold(message), done })
          // the exit waits as long as one message's tries, however many are queued before the end's
          // (bests tried while the webhook did not answer): what is left is kept, for the next session
          const limit = longest(options)
          const posted = yield* Deferred.await(done).pipe(Effect.timeoutOption(limit))
          if (Option.isNone(posted)) yield* Fiber.interrupt(posting)
          if (undelivered.size === 0) return
          const left = [...undelivered.values()].map((h) => what(h.message))
          yield* Effect.logWarning(
            `notify: ${left.length === 1 ? "a message" : `${left.length} messages`} of ${run.runDir} (${left.join(", ")}) ${left.length === 1 ? "was" : "were"} not delivered to every webhook` +
              `${Option.isNone(posted) ? ` within ${Duration.format(limit)} of the run's end (as long as one message's tries)` : ""}: ` +
              `kept in ${Outbox.dirOf(run.runDir)}, and posted by the run's next session with webhooks (trex resume ${run.runDir} --notify <url>)`
          )
        })
    }
  })

/**
 * What an earlier session of a run left undelivered (kept in its directory, `notify/`), in a sentence
 * that says how to post it; `undefined` when nothing waits. `trex status` shows it.
 * @since 0.1.0 @category functions
 */
export const waiting = (runDir: string, session = "the run's next session"): string | undefined => {
  const { entries } = Outbox.read<Message>(runDir)
  if (entries.length === 0) return undefined
  return `${entries.length === 1 ? "a webhook message" : `${entries.length} webhook messages`} of an earlier session (${entries.map((e) => what(e.message)).join(", ")}) ` +
    `${entries.length === 1 ? "was" : "were"} not delivered: kept in ${Outbox.dirOf(runDir)}; give ${session} webhooks (--notify, ${ENV}, notify) to post ${entries.length === 1 ? "it" : "them"}`
}

/**
 * A session without webhooks: a warning when an earlier one left messages undelivered (kept in the run
 * directory), saying how to post them.
 * @since 0.1.0 @category functions
 */
export const remind = (runDir: string): Effect.Effect<void> =>
  Effect.suspend(() => {
    const line = waiting(runDir, "this session")
    return line === undefined ? Effect.void : Effect.logWarning(`notify: ${line}`)
  })
