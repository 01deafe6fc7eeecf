// The flags of `trex run` and `trex resume` that set how the model-backed agents call their model, on the real CLI
// against the local OpenAI-compatible stand-in (packages/agents/test/support/FakeOpenAiServer.ts).
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { DatabaseSync } from "node:sqlite"
import * as zlib from "node:zlib"
import { assert, describe, it } from "@effect/vitest"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { CostMeter, type Errors, Journal } from "@trex/core"
import { Model, OpenAiModel } from "@trex/agents"
import { Explorer, Uct } from "@trex/mcts"
import { Effect, Layer } from "effect"
import { Command } from "effect/cli"
import * as Cli from "../src/Cli.ts"
import * as Trex from "../src/Trex.ts"
import { MAX_MODEL_TIMEOUT_SECONDS } from "../src/internal/modelLimits.ts"
import * as FakeOpenAi from "../../agents/test/support/FakeOpenAiServer.ts"
import { functionExecutor, gridResearcher, layers, makeTask } from "../../mcts/test/support/toy.ts"
import { readJournal, root, trex, trexAsync, trexHere } from "./support/cli.ts"

/** The CLI's command on `args`, in this process (its bad input as the error, not an exit code). */
const cli = (args: ReadonlyArray<string>) =>
  Command.runWith(Cli.command, { version: "0.1.0", renderErrors: false })(args).pipe(Effect.provide(NodeServices.layer))

/** `effect` with these variables set (`undefined`: removed) in this process's environment, then as they were. */
const withEnv = <A, E, R>(env: Record<string, string | undefined>, effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const before = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]))
      for (const [k, v] of Object.entries(env)) v === undefined ? delete process.env[k] : (process.env[k] = v)
      return before
    }),
    () => effect,
    (before) => Effect.sync(() => Object.entries(before).forEach(([k, v]) => v === undefined ? delete process.env[k] : (process.env[k] = v)))
  )

const toy = path.join(root, "packages/cli/test/fixtures/toy.task.yaml")
/** What a first wait before a researcher is asked again is, in every place that takes one. */
const DELAY_RULE = "(the first wait before a researcher that failed retryably is asked again, doubled each time)"
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "trex-model-flags-"))

describe("--max-retry-after", () => {
  it.live("bounds the retry-after a model server may ask for and be waited out; recorded with the run, and given again by a resume for its session", () =>
    Effect.gen(function*() {
      // a server over its quota, whatever it is asked: it asks to wait a second
      const server = yield* FakeOpenAi.make(() => ({ kind: "error", status: 429, body: "quota exceeded", headers: { "retry-after": "1" } }))
      const env = { OPENAI_BASE_URL: server.url, TREX_MODEL: "qwen3:8b", OPENAI_API_KEY: undefined }
      const out = tmp()
      const run = yield* Effect.promise(() =>
        trexAsync(["run", toy, "--researcher", "claude", "--model-api", "openai-compatible", "--max-retry-after", "0.5", "--out", out], env)
      )
      assert.strictEqual(run.status, 1, run.stdout + run.stderr)
      const runDir = run.stdout.match(/run directory: (.*)/)![1]!
      const waited = "the server asked to wait 1 s (retry-after) before calling again, longer than maxRetryAfter"
      assert.include(run.stderr, `${waited} (500 ms): call again once that time has passed (a run stopped by it resumes then), or raise the model's retry.maxRetryAfter (trex run or resume --max-retry-after <seconds>)`)
      // not waited out, and not asked again: each call the researcher makes fails in one request
      const asked = server.requests.length
      assert.strictEqual(asked, 2, run.stderr)
      // kept with the run: a resume that gives none bounds it the same
      const kept = yield* Effect.promise(() => trexAsync(["resume", runDir], env))
      assert.strictEqual(kept.status, 1, kept.stdout + kept.stderr)
      assert.include(kept.stderr, `${waited} (500 ms)`)
      // a resume's own, for its session
      const lower = yield* Effect.promise(() => trexAsync(["resume", runDir, "--max-retry-after", "0.25"], env))
      assert.strictEqual(lower.status, 1, lower.stdout + lower.stderr)
      assert.include(lower.stderr, `${waited} (250 ms)`)
      assert.strictEqual(server.requests.length, 3 * asked, "no call retried")
    }), { timeout: 120_000 })

  it.effect("a value below 0 is bad input naming the flag and what it takes, for run, resume and check", () =>
    Effect.gen(function*() {
      const message = "--max-retry-after must be 0 or more seconds, got -5: the longest wait a model server's retry-after may ask for, e.g. --max-retry-after 3600 to wait out an hour"
      for (const args of [["run", toy, "--max-retry-after", "-5", "--out", tmp()], ["resume", "no-such-run", "--max-retry-after", "-5"], ["check", toy, "--max-retry-after", "-5"]]) {
        const error = yield* Effect.flip(cli(args))
        assert.strictEqual(error._tag, "InvalidInput", `${args.join(" ")}: ${String(error)}`)
        assert.strictEqual((error as Errors.InvalidInput).message, message)
      }
    }))
})

describe("--model-max-retries, --model-retry-delay, --model-max-retry-delay, --model-timeout", () => {
  it.live("set how the model retries a call and how long an attempt may take; recorded with the run, and given again by a resume for its session", () =>
    Effect.gen(function*() {
      // A server that fails calls retryably (500) while it has failures left, then asks for an hour's wait (429), which
      // stops the run at once. The failures are the analysis's (a failed analysis is journaled as such, not asked
      // again), so that no ask to propose fails retryably: the explorer's own 2/4/8 s waits between asks are not met.
      let failures = 3
      // (then: the headers and 5 bytes of an answer, then nothing, while `held` is more than 0)
      let held = 0
      const server = yield* FakeOpenAi.make(() =>
        held-- > 0 ? FakeOpenAi.raw("application/json", JSON.stringify({ choices: [] }), { holdAfter: 5 })
        : failures-- > 0 ? { kind: "error", status: 500, body: "internal error" }
        : { kind: "error", status: 429, body: "quota exceeded", headers: { "retry-after": "3600" } }
      )
      const env = { OPENAI_BASE_URL: server.url, TREX_MODEL: "qwen3:8b", OPENAI_API_KEY: undefined }
      const out = tmp()
      const run = yield* Effect.promise(() =>
        trexAsync(["run", toy, "--researcher", "claude", "--model-api", "openai-compatible", "--model-max-retries", "2", "--model-retry-delay", "0.01", "--model-max-retry-delay", "0.02", "--out", out], env)
      )
      assert.strictEqual(run.status, 1, run.stdout + run.stderr)
      const runDir = run.stdout.match(/run directory: (.*)/)![1]!
      // the analysis: its first attempt and 2 retries, the same request 3 times (4 retries, the default, would have met
      // the 429 as its fourth attempt); then the first ask to propose meets the 429 and stops the run
      assert.strictEqual(server.requests.length, 4, run.stderr)
      assert.deepStrictEqual([server.requests[1]!.body, server.requests[2]!.body], [server.requests[0]!.body, server.requests[0]!.body])
      assert.notDeepEqual(server.requests[3]!.body, server.requests[0]!.body)
      const analyses = () =>
        Effect.promise(() => readJournal(runDir)).pipe(Effect.map((entries) => entries.flatMap((e) => (e.event._tag === "AnalysisCompleted" ? [e.event.analysis.summary] : []))))
      assert.match((yield* analyses())[0]!, /^analysis failed: .*HTTP 500/)
      // kept with the run: a resume that gives none asks its analysis again (the run stopped on its researcher) and gives
      // it up after 3 requests (500s); its ask to propose meets the 429
      failures = 3
      const kept = yield* Effect.promise(() => trexAsync(["resume", runDir], env))
      assert.strictEqual(kept.status, 1, kept.stdout + kept.stderr)
      assert.strictEqual(server.requests.length, 4 + 4, kept.stderr)
      // a resume's own, for its session: an analysis whose answer stops after its headers and 5 bytes is given up after
      // --model-timeout (not 10 minutes), and not asked again (with the run's 2 retries, its second attempt would have
      // met the 429, and the ask to propose a third request)
      held = 1
      const none = yield* Effect.promise(() => trexAsync(["resume", runDir, "--model-max-retries", "0", "--model-timeout", "0.5"], env))
      assert.strictEqual(none.status, 1, none.stdout + none.stderr)
      assert.strictEqual(server.requests.length, 4 + 4 + 2, none.stderr)
      assert.match((yield* analyses()).at(-1)!, /^analysis failed: .*within 500 ms/)
    }), { timeout: 120_000 })

  it.effect("a value they do not take is bad input naming the flag and what it takes, for run, resume and check --call-model", () =>
    Effect.gen(function*() {
      const out = tmp()
      // the real CLI once: exit 2, the message on stderr, no run directory
      const run = trex(["run", toy, "--model-timeout", "0", "--out", out])
      assert.strictEqual(run.status, 2, run.stderr)
      assert.include(run.stderr, "trex: --model-timeout must be more than 0 seconds, got 0")
      // each flag and command in this process, through the CLI's own command (main.ts makes its InvalidInput exit 2)
      for (
        const [flag, value, message] of [
          ["--model-max-retries", "-1", "--model-max-retries must be 0 or more, got -1: the retries of a model call after its first attempt, e.g. --model-max-retries 8 (0: none)"],
          ["--model-retry-delay", "-2", "--model-retry-delay must be 0 or more seconds, got -2: the first wait before a model call's retry, e.g. --model-retry-delay 2"],
          ["--model-max-retry-delay", "-3", "--model-max-retry-delay must be 0 or more seconds, got -3: the longest wait before a model call's retry, e.g. --model-max-retry-delay 60"],
          ["--model-timeout", "0", "--model-timeout must be more than 0 seconds, got 0: how long one attempt of a model call may take, e.g. --model-timeout 1200 for 20 minutes"],
          ["--model-timeout", "2147484", "--model-timeout must be at most 2147483 seconds (about 24.8 days, the longest wait a timer keeps), got 2147484"]
        ] as const
      ) {
        for (
          const args of [
            ["run", toy, flag, value, "--out", out],
            ["resume", path.join(out, "no-such-run"), flag, value],
            ["check", toy, "--researcher", "claude", "--call-model", flag, value]
          ]
        ) {
          const error = yield* Effect.flip(cli(args))
          assert.strictEqual(error._tag, "InvalidInput", `${args.join(" ")}: ${String(error)}`)
          assert.include((error as Errors.InvalidInput).message, message, args.join(" "))
          assert.strictEqual((error as Errors.InvalidInput).source, flag)
        }
      }
      assert.deepStrictEqual(fs.readdirSync(out), [], "no run directory")
    }))

  it.live("--model-timeout's bound is the models' own (Model.MAX_TIMEOUT_MS): its longest makes a model that calls, one second more one that refuses", () =>
    Effect.gen(function*() {
      assert.strictEqual(MAX_MODEL_TIMEOUT_SECONDS, 2_147_483)
      assert.strictEqual(MAX_MODEL_TIMEOUT_SECONDS, Math.floor(Model.MAX_TIMEOUT_MS / 1000))
      // a port nobody listens on: a model that calls fails on the connection, one that refuses its timeoutMs sends nothing
      const call = (seconds: number) =>
        Effect.flip(OpenAiModel.make({ baseURL: "http://127.0.0.1:9/v1", model: "m", timeoutMs: seconds * 1000, retry: { maxRetries: 0 } })
          .generate({ system: "", messages: [Model.user("hi")], maxTokens: 1 }))
      const longest = yield* call(MAX_MODEL_TIMEOUT_SECONDS)
      assert.isUndefined(longest.option, longest.message)
      assert.include(longest.message, "connection error")
      assert.strictEqual((yield* call(MAX_MODEL_TIMEOUT_SECONDS + 1)).option, "timeoutMs")
    }).pipe(Effect.provideService(CostMeter.CostMeter, { record: () => Effect.void })))
})

describe("--researcher-retries, --researcher-retry-delay", () => {
  it.live("set how often and after how long a researcher that failed retryably is asked again; recorded with the run (a resume keeps them), and given again by a resume for its session", () =>
    Effect.gen(function*() {
      // a model server that fails every call retryably (500), not retried by the model (--model-max-retries 0): the
      // analysis fails in one request (journaled as failed, not asked again), then each ask to propose in one request
      const server = yield* FakeOpenAi.make(() => ({ kind: "error", status: 500, body: "internal error" }))
      const env = { OPENAI_BASE_URL: server.url, TREX_MODEL: "qwen3:8b", OPENAI_API_KEY: undefined }
      const run = yield* Effect.promise(() =>
        trexAsync(
          ["run", toy, "--researcher", "claude", "--model-api", "openai-compatible", "--model-max-retries", "0", "--researcher-retries", "2", "--researcher-retry-delay", "0.01", "--out", tmp()],
          env
        )
      )
      assert.strictEqual(run.status, 1, run.stdout + run.stderr)
      const runDir = run.stdout.match(/run directory: (.*)/)![1]!
      // the analysis, then the ask to propose and its 2 asks again, after 0.01 s and 0.02 s (not 2 s and 4 s)
      assert.strictEqual(server.requests.length, 1 + 3, run.stderr)
      assert.include(run.stderr, "(1 of 3; again in 0.01 s)")
      assert.include(run.stderr, "(2 of 3; again in 0.02 s)")
      assert.notInclude(run.stderr, "3 of 3;")
      // recorded with the run
      const { options } = (yield* Effect.promise(() => readJournal(runDir)))[0]!.event as { readonly options: Record<string, unknown> }
      assert.deepInclude(options, { researcherRetries: 2, researcherRetryDelaySeconds: 0.01 })
      // a resume keeps the run's wait and gives its session 1 ask again: it asks its analysis again (the run stopped on
      // its researcher), then to propose twice
      const resumed = yield* Effect.promise(() => trexAsync(["resume", runDir, "--researcher-retries", "1"], env))
      assert.strictEqual(resumed.status, 1, resumed.stdout + resumed.stderr)
      assert.strictEqual(server.requests.length, 4 + 1 + 2, resumed.stderr)
      assert.include(resumed.stderr, "(1 of 2; again in 0.01 s)")
    }), { timeout: 120_000 })

  it.effect("a value they do not take is bad input naming the flag and what it takes, for run, resume and check", () =>
    Effect.gen(function*() {
      const out = tmp()
      for (
        const [flag, value, message] of [
          ["--researcher-retries", "-1", "--researcher-retries must be 0 or more, got -1: the times a researcher that failed retryably is asked again before the run stops, e.g. --researcher-retries 5 (0: none)"],
          ["--researcher-retry-delay", "-0.5", `--researcher-retry-delay: expected a wait of 0 or more seconds ${DELAY_RULE}, e.g. --researcher-retry-delay 10, got -0.5`]
        ] as const
      ) {
        for (const args of [["run", toy, flag, value, "--out", out], ["resume", path.join(out, "no-such-run"), flag, value], ["check", toy, flag, value]]) {
          const error = yield* Effect.flip(cli(args))
          assert.strictEqual(error._tag, "InvalidInput", `${args.join(" ")}: ${String(error)}`)
          assert.strictEqual((error as Errors.InvalidInput).message, message, args.join(" "))
          assert.strictEqual((error as Errors.InvalidInput).source, flag)
        }
      }
      assert.deepStrictEqual(fs.readdirSync(out), [], "no run directory")
      // values it takes: the check takes the flags of the run it checks for
      yield* cli(["check", toy, "--researcher-retries", "5", "--researcher-retry-delay", "0.5", "--json"])
    }))

  it.effect("the rule of the first wait is one, with one message: --researcher-retry-delay, Trex.start's researcherRetryDelaySeconds and Explorer.Options.researcherRetryDelay", () =>
    Effect.gen(function*() {
      const flag = yield* Effect.flip(cli(["run", toy, "--researcher-retry-delay", "-0.5", "--out", tmp()]))
      const option = yield* Effect.flip(Trex.prepare({ taskFile: toy, researcherRetryDelaySeconds: -0.5, out: tmp() }))
      const explorer = yield* Effect.flip(
        Explorer.run(makeTask({ maxTrials: 1 }), { runId: "r", runDir: tmp(), researcherRetryDelay: -500 }).pipe(
          Effect.provide(Layer.mergeAll(Journal.Journal.layerMemory, Uct.layer(), layers(gridResearcher, functionExecutor({ runs: [] }))))
        )
      )
      assert.strictEqual(flag.message, `--researcher-retry-delay: expected a wait of 0 or more seconds ${DELAY_RULE}, e.g. --researcher-retry-delay 10, got -0.5`)
      assert.strictEqual(option.message, `invalid options:\n  researcherRetryDelaySeconds: expected a wait of 0 or more seconds ${DELAY_RULE}, e.g. 2, got -0.5`)
      assert.strictEqual(explorer.message, `invalid Explorer.run options:\n  researcherRetryDelay: expected a duration of 0 or more ${DELAY_RULE}, e.g. "2 seconds" or 500 (milliseconds), got -500`)
      // a NaN or an infinite wait, which no flag gives (--researcher-retry-delay takes a finite number), by the same rule
      for (const wait of [Number.NaN, Number.POSITIVE_INFINITY]) {
        assert.include((yield* Effect.flip(Trex.prepare({ taskFile: toy, researcherRetryDelaySeconds: wait, out: tmp() }))).message, DELAY_RULE)
      }
    }))
})

describe("a resumed run's recorded settings", () => {
  it.live("one a model cannot take (a --model-timeout longer than a timer waits, in an older or edited journal) is refused before anything runs, naming it and the flag that overrides it; one given becomes the run's", () =>
    Effect.gen(function*() {
      const server = yield* FakeOpenAi.make(() => ({ kind: "error", status: 401, body: "invalid key" }))
      const env = { OPENAI_BASE_URL: server.url, TREX_MODEL: "qwen3:8b", OPENAI_API_KEY: undefined }
      // a run whose model is refused its key: it stops at its first call
      const run = yield* Effect.promise(() => trexAsync(["run", toy, "--researcher", "claude", "--model-api", "openai-compatible", "--out", tmp()], env))
      assert.strictEqual(run.status, 1, run.stdout + run.stderr)
      const runDir = run.stdout.match(/run directory: (.*)/)![1]!
      const asked = server.requests.length
      // its journal's recorded settings given a timeout of 3,000,000 s (34.7 days), its checksum made anew: a sound entry
      const db = new DatabaseSync(path.join(runDir, "journal.sqlite"))
      const { payload } = db.prepare("SELECT payload FROM events WHERE seq = 1").get() as { payload: string }
      const started = JSON.parse(payload)
      started.options.modelTimeoutSeconds = 3_000_000
      const edited = JSON.stringify(started)
      db.prepare("UPDATE events SET payload = ?, crc = ? WHERE seq = 1").run(edited, zlib.crc32(edited))
      db.close()
      const entries = (yield* Effect.promise(() => readJournal(runDir))).length
      // (in this process, its environment the run's while it runs: without the check, the resume runs here)
      const refused = yield* Effect.flip(withEnv(env, cli(["resume", runDir])))
      assert.strictEqual(refused._tag, "InvalidInput", String(refused))
      assert.strictEqual(
        (refused as Errors.InvalidInput).message,
        `${runDir}: the run's recorded modelTimeoutSeconds is 3000000, which this trex does not take (expected a number above 0 and at most 2147483 ` +
          `(seconds one attempt of a model call may take, e.g. 600); a journal of an older trex, or an edited one): resume with --model-timeout <value> ` +
          `(Trex.start: modelTimeoutSeconds) to give the run another from then on, e.g. trex resume ${runDir} --model-timeout 600`
      )
      assert.strictEqual(server.requests.length, asked, "no call")
      assert.lengthOf(yield* Effect.promise(() => readJournal(runDir)), entries, "nothing journaled")
      // given: the resume runs, and its model calls (refused its key again); the run's timeout from then on,
      // in its RunResumed, with the session's other settings (--model-max-retries) not kept
      const given = yield* withEnv(env, Effect.promise(() => trexHere(["resume", runDir, "--model-timeout", "60", "--model-max-retries", "0"])))
      assert.strictEqual(given.status, 1, given.stdout + given.stderr)
      assert.isAbove(server.requests.length, asked, given.stderr)
      assert.include(given.stderr, "401")
      const resumes = () => readJournal(runDir).then((es) => es.flatMap((e) => e.event._tag === "RunResumed" ? [e.event] : []))
      assert.deepStrictEqual((yield* Effect.promise(resumes)).map((e) => e.settings), [{ modelTimeoutSeconds: 60 }])
      // so a plain resume (in a new process: all it knows is the journal file) runs, and calls, and records nothing more
      const calls = server.requests.length
      const plain = yield* Effect.promise(() => trexAsync(["resume", runDir], env))
      assert.strictEqual(plain.status, 1, plain.stdout + plain.stderr)
      assert.notInclude(plain.stderr, "does not take")
      assert.isAbove(server.requests.length, calls, plain.stderr)
      assert.deepStrictEqual((yield* Effect.promise(resumes)).map((e) => e.settings), [{ modelTimeoutSeconds: 60 }, undefined])
    }), { timeout: 120_000 })
})
