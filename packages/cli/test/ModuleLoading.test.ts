// What the `trex` CLI loads as it starts: the real CLI from its sources in a child process, its modules counted by a
// module-load hook (support/moduleHook.ts). `@anthropic-ai/sdk` and what it pulls in (OpenTelemetry's API,
// standardwebhooks: about 300 of the 830 modules `trex --help` loaded) are loaded only when a Claude model is called;
// `yaml` (72 modules) only when a YAML task file is read (`trex run`, `trex check`), and the code of a run (its agents
// and backends: `@trex/agents`, `@trex/executors`; the search, `@trex/mcts`; the live view) only by the commands that
// run or check one: not by `--help`, `trex status` or `trex list`; nor is the barrel of `effect` (`import { Effect } from
// "effect"` loads its every module, 289 of them, where `--help` needs 207): the modules every command loads import
// effect's by path (`import * as Effect from "effect/Effect"`).
import * as fs from "node:fs"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as FakeAnthropic from "../../agents/test/support/FakeAnthropicServer.ts"
import { root, tmp, trexAsync } from "./support/cli.ts"

const hook = path.join(import.meta.dirname, "support/moduleHook.ts")

/**
 * The CLI run to its end with the hook (given to its process alone, not in NODE_OPTIONS, which the processes it starts
 * would inherit): its exit, output, the modules it loaded by package, and of its files the live view's and effect's
 * barrel, counted as packages of their own.
 */
const counted = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const dir = tmp()
    const out = path.join(dir, "modules.json")
    const files = path.join(dir, "files.txt")
    const r = yield* Effect.promise(() => trexAsync(args, { ...env, TREX_MODULE_COUNT: out, TREX_MODULE_FILES: files }, root, [`--import=${hook}`]))
    assert.isTrue(fs.existsSync(out), `the hook wrote no count: ${r.stderr}`)
    const modules: Record<string, number> = { ...JSON.parse(fs.readFileSync(out, "utf8")), ...byFile(fs.readFileSync(files, "utf8").split("\n")) }
    return { ...r, modules }
  })

const SDK = ["@anthropic-ai/sdk", "@opentelemetry/api", "standardwebhooks"]
const sdkModules = (modules: Record<string, number>) => SDK.filter((p) => (modules[p] ?? 0) > 0).map((p) => `${p}: ${modules[p]}`)
/** The live view (`cli/src/LiveView.ts` and the two modules only it uses), counted as a package of its own. */
const LIVE_VIEW = ["cli/src/LiveView.ts", "cli/src/internal/displayWidth.ts", "cli/src/internal/tmux.ts"]
const byFile = (files: ReadonlyArray<string>) => ({
  "(live view)": files.filter((f) => LIVE_VIEW.includes(f)).length,
  "(effect barrel)": files.filter((f) => f === "effect/dist/index.js").length
})
/** The task file's parser and the code of a run (the search, the live view), each with its count of modules loaded. */
const RUN_ONLY = ["yaml", "(own) agents", "(own) executors", "(own) mcts", "(live view)"]
const runModules = (modules: Record<string, number>) => RUN_ONLY.filter((p) => (modules[p] ?? 0) > 0).map((p) => `${p}: ${modules[p]}`)
/** What `--help`, `status` and `list` load of that, or of effect's barrel. */
const notForEveryCommand = (modules: Record<string, number>) => [...RUN_ONLY, "(effect barrel)"].filter((p) => (modules[p] ?? 0) > 0).map((p) => `${p}: ${modules[p]}`)

describe("the modules the CLI loads", () => {
  it.live("--help and a run with the defaults load no Claude SDK; a Claude model's first call loads it, and works; --help, status and list load no task file parser, agents, backends, search, live view or effect barrel", () =>
    Effect.gen(function*() {
      const help = yield* counted(["--help"])
      assert.strictEqual(help.status, 0, help.stderr)
      assert.isAbove(help.modules["effect"] ?? 0, 0, "the hook counts")
      assert.deepStrictEqual(sdkModules(help.modules), [])
      assert.deepStrictEqual(notForEveryCommand(help.modules), [], "--help reads no task file, runs nothing, and loads effect's modules by path")
      // a short run on the simulator with the embedded default agents (heuristic researcher, template executor)
      const out = tmp()
      const run = yield* counted(["run", path.join(root, "examples/recorded-table/task.yaml"), "--max-trials", "2", "--out", out])
      assert.strictEqual(run.status, 0, run.stderr)
      assert.deepStrictEqual(sdkModules(run.modules), [])
      assert.deepStrictEqual(runModules(run.modules).map((p) => p.split(":")[0]), RUN_ONLY, "the run read its YAML task file, and ran trials")
      const status = yield* counted(["status", /run directory: (\S+)/.exec(run.stdout)![1]!])
      assert.strictEqual(status.status, 0, status.stderr)
      assert.deepStrictEqual(notForEveryCommand(status.modules), [], "trex status reads the run's journal, not its task file, and runs nothing")
      const list = yield* counted(["list", out])
      assert.strictEqual(list.status, 0, list.stderr)
      assert.include(list.stdout, "recorded")
      assert.deepStrictEqual(notForEveryCommand(list.modules), [], "trex list reads the runs' journals, and runs nothing")
      // Claude's researcher, asked a 1-token turn: the SDK is loaded, and its answer read
      const yes = FakeAnthropic.message([FakeAnthropic.text("Yes")], { input_tokens: 12, output_tokens: 1 })
      const server = yield* FakeAnthropic.make([yes], { apiKey: "test-key-good", models: [{ id: "claude-sonnet-5-5", display_name: "Claude Sonnet 5.5" }] })
      const check = yield* counted(["check", path.join(root, "examples/quickstart/task.yaml"), "--researcher", "claude", "--call-model"], {
        ANTHROPIC_BASE_URL: server.url,
        ANTHROPIC_API_KEY: "test-key-good",
        TREX_MODEL: "claude-sonnet-5-5"
      })
      assert.strictEqual(check.status, 0, check.stdout + check.stderr)
      assert.include(check.stdout, "it answered a 1-token turn with this key (--call-model: 12 input and 1 output token")
      assert.isAbove(check.modules["@anthropic-ai/sdk"] ?? 0, 0, JSON.stringify(check.modules))
      assert.strictEqual(server.requests.length, 1)
    }), { timeout: 120_000 })
})
