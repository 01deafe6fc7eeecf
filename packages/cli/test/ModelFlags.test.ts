// The flags of `trex run` and `trex resume` that set how the model-backed agents call their model, on the real CLI
// against the local OpenAI-compatible stand-in (packages/agents/test/support/FakeOpenAiServer.ts).
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as FakeOpenAi from "../../agents/test/support/FakeOpenAiServer.ts"
import { root, trex, trexAsync } from "./support/cli.ts"

const toy = path.join(root, "packages/cli/test/fixtures/toy.task.yaml")
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

  it("a value below 0 is bad input naming the flag and what it takes, for run and resume", () => {
    const out = tmp()
    const run = trex(["run", toy, "--max-retry-after", "-5", "--out", out])
    assert.strictEqual(run.status, 2, run.stderr)
    assert.include(run.stderr, "--max-retry-after must be 0 or more seconds, got -5: the longest wait a model server's retry-after may ask for, e.g. --max-retry-after 3600 to wait out an hour")
    assert.deepStrictEqual(fs.readdirSync(out), [], "no run directory")
    const resume = trex(["resume", path.join(out, "no-such-run"), "--max-retry-after", "-1"])
    assert.strictEqual(resume.status, 2, resume.stderr)
    assert.include(resume.stderr, "--max-retry-after must be 0 or more seconds, got -1")
  })
})

describe("--model-max-retries, --model-retry-delay, --model-max-retry-delay, --model-timeout", () => {
  it.live("set how the model retries a call and how long an attempt may take; recorded with the run, and given again by a resume for its session", () =>
    Effect.gen(function*() {
      // a server that fails calls retryably (500) while it has failures left, then asks for an hour's wait (429), which stops the run at once
      let failures = Infinity
      const server = yield* FakeOpenAi.make(() =>
        failures-- > 0 ? { kind: "error", status: 500, body: "internal error" } : { kind: "error", status: 429, body: "quota exceeded", headers: { "retry-after": "3600" } }
      )
      const env = { OPENAI_BASE_URL: server.url, TREX_MODEL: "qwen3:8b", OPENAI_API_KEY: undefined }
      const out = tmp()
      const run = yield* Effect.promise(() =>
        trexAsync(["run", toy, "--researcher", "claude", "--model-api", "openai-compatible", "--model-max-retries", "2", "--model-retry-delay", "0.01", "--model-max-retry-delay", "0.02", "--out", out], env)
      )
      assert.strictEqual(run.status, 1, run.stdout + run.stderr)
      const runDir = run.stdout.match(/run directory: (.*)/)![1]!
      // each call the researcher makes (its analysis, then 4 asks to propose: its own retries) is its first attempt and 2 retries, the same request 3 times
      assert.include(run.stderr, "researcher could not propose under root (3 of 4; again in 8 s): HTTP 500")
      const asked = server.requests.length
      assert.strictEqual(asked % 3, 0, `${asked} requests`)
      for (let i = 0; i < asked; i += 3) {
        assert.deepStrictEqual([server.requests[i + 1]!.body, server.requests[i + 2]!.body], [server.requests[i]!.body, server.requests[i]!.body])
      }
      // kept with the run: a resume that gives none gives up its analysis and its first ask to propose after 3 requests
      // each (500s): the next ask meets the 429
      failures = 6
      const kept = yield* Effect.promise(() => trexAsync(["resume", runDir], env))
      assert.strictEqual(kept.status, 1, kept.stdout + kept.stderr)
      assert.include(kept.stderr, "researcher could not propose under root (1 of 4; again in 2 s): HTTP 500")
      assert.strictEqual(server.requests.length, asked + 7)
      // a resume's own, for its session: no retry, each call given up after its first 500
      failures = 2
      const none = yield* Effect.promise(() => trexAsync(["resume", runDir, "--model-max-retries", "0"], env))
      assert.strictEqual(none.status, 1, none.stdout + none.stderr)
      assert.include(none.stderr, "researcher could not propose under root (1 of 4; again in 2 s): HTTP 500")
      assert.strictEqual(server.requests.length, asked + 7 + 3)
      // a server that sends its headers and 5 bytes, then nothing (the analysis, the first ask to propose; then it asks for an
      // hour's wait): each attempt given up after --model-timeout, not 10 minutes
      const stalled = yield* FakeOpenAi.make((_, i) =>
        i < 2 ? FakeOpenAi.raw("application/json", JSON.stringify({ choices: [] }), { holdAfter: 5 }) : { kind: "error", status: 429, body: "quota exceeded", headers: { "retry-after": "3600" } }
      )
      const held = yield* Effect.promise(() =>
        trexAsync(["run", toy, "--researcher", "claude", "--model-api", "openai-compatible", "--model-timeout", "0.5", "--model-max-retries", "0", "--out", out], {
          ...env,
          OPENAI_BASE_URL: stalled.url
        })
      )
      assert.strictEqual(held.status, 1, held.stdout + held.stderr)
      assert.match(held.stderr, /researcher could not propose under root \(1 of 4; again in 2 s\): .*within 500 ms/)
      assert.strictEqual(stalled.requests.length, 3)
    }), { timeout: 120_000 })

  it("a value they do not take is bad input naming the flag and what it takes, for run and resume", () => {
    const out = tmp()
    for (
      const [flag, value, message] of [
        ["--model-max-retries", "-1", "--model-max-retries must be 0 or more, got -1: the retries of a model call after its first attempt, e.g. --model-max-retries 8 (0: none)"],
        ["--model-retry-delay", "-2", "--model-retry-delay must be 0 or more seconds, got -2: the first wait before a model call's retry, e.g. --model-retry-delay 2"],
        ["--model-max-retry-delay", "-3", "--model-max-retry-delay must be 0 or more seconds, got -3: the longest wait before a model call's retry, e.g. --model-max-retry-delay 60"],
        ["--model-timeout", "0", "--model-timeout must be more than 0 seconds, got 0: how long one attempt of a model call may take, e.g. --model-timeout 1200 for 20 minutes"]
      ] as const
    ) {
      const run = trex(["run", toy, flag, value, "--out", out])
      assert.strictEqual(run.status, 2, run.stderr)
      assert.include(run.stderr, message)
      const resume = trex(["resume", path.join(out, "no-such-run"), flag, value])
      assert.strictEqual(resume.status, 2, resume.stderr)
      assert.include(resume.stderr, message)
    }
    assert.deepStrictEqual(fs.readdirSync(out), [], "no run directory")
  })
})
