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
