// `trex check`: the real CLI against the local backend, model servers (stand-ins speaking their APIs) and the
// stand-in Kubernetes API server (packages/executors/test/support/FakeKubeApi.ts); what a run would meet is found
// without running a trial. The checks on the engines other test files stop (Slurm, Grid Engine, sshd, Docker) are in
// CheckEngines.test.ts, which runs after those files (vitest.config.ts).
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import type * as Check from "../src/Check.ts"
import { Effect } from "effect"
import * as FakeAnthropic from "../../agents/test/support/FakeAnthropicServer.ts"
import * as FakeOpenAi from "../../agents/test/support/FakeOpenAiServer.ts"
import * as FakeKubeApi from "../../executors/test/support/FakeKubeApi.ts"
import { findings, taskFile } from "./support/checkTask.ts"
import { root, trex, trexAsync } from "./support/cli.ts"

describe("trex check", () => {
  it("the quickstart on the local backend: every check passes, and nothing is written", () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "trex-check-cwd-"))
    const r = trex(["check", path.join(root, "examples/quickstart/task.yaml")], {}, cwd)
    assert.strictEqual(r.status, 0, r.stderr)
    assert.match(r.stdout, /^ok {4}task {5}quickstart-addition: maximize score; \d+ parameters to search; heuristic researcher, template executor, uct policy, concurrency 2$/m)
    assert.match(r.stdout, /^ok {4}backend  local answers: 2 slots, 0 GPUs, 0 in use$/m)
    assert.match(r.stdout, /^ok {4}job {6}a trial runs \S+node \S+\/examples\/quickstart\/train\.ts; no GPU, 1 CPU, time limit 120 s$/m)
    assert.include(r.stdout, "no problem found: `trex run")
    assert.deepStrictEqual(fs.readdirSync(cwd), [], "no trex-runs folder, nothing at all")
  })

  it("what a run would meet on the local backend: a command not on the PATH, a secret not set, more GPUs than there are; exit 1", () => {
    const { file } = taskFile(`  command: ["trainz", "--fast"]
  secretEnv: [CHECK_HUB_TOKEN]
  resources: { gpus: 2 }`)
    const r = trex(["check", file, "--json"], { CHECK_HUB_TOKEN: undefined })
    assert.strictEqual(r.status, 1, r.stderr)
    const found = findings(r.stdout)
    assert.include(found, "fail secrets: the task's recipe.secretEnv names CHECK_HUB_TOKEN, which is not set in trex's environment: set it before `trex run` or `trex resume` (`export CHECK_HUB_TOKEN=...`); every job gets its value as a secret, never written to the run's files")
    assert.include(found, "fail backend: local: a trial asks for 2 GPUs (recipe.resources.gpus) and the backend has 0: no trial could start")
    assert.isTrue(found.some((f) => /^fail job: the job's command trainz is not on the PATH jobs get \(.*\): give its full path in recipe\.command\[0\], or install it$/.test(f)), found.join("\n"))
    // mended: the secret set, a command that is there
    const mended = taskFile(`  command: ["{execPath}", "-e", "1"]
  secretEnv: [CHECK_HUB_TOKEN]`)
    const ok = trex(["check", mended.file, "--json"], { CHECK_HUB_TOKEN: "hf_abcdefgh12345" })
    assert.strictEqual(ok.status, 0, ok.stdout)
    assert.include(findings(ok.stdout), "ok secrets: CHECK_HUB_TOKEN set; every job gets it as a secret")
    assert.notInclude(ok.stdout, "hf_abcdefgh12345")
  })

  it.live("with the code agent: its jobs are looked at as the recipe's would be (their interpreter on the PATH, here)", () =>
    Effect.gen(function*() {
    const server = yield* FakeAnthropic.make([])
    const { file } = taskFile(`  command: ["trainz", "{taskDir}/train.py"]`)
    const r = yield* Effect.promise(() => trexAsync(["check", file, "--executor", "code-agent", "--json"], { ANTHROPIC_API_KEY: "sk-test", ANTHROPIC_BASE_URL: server.url, TREX_MODEL: "claude-sonnet-5-5" }))
    assert.strictEqual(r.status, 1, r.stdout + r.stderr)
    const found = findings(r.stdout)
    assert.include(found, "ok model: anthropic serves claude-sonnet-5-5 (claude-sonnet-5-5)")
    assert.isTrue(found.some((f) => /^ok job: the code agent writes each trial's scripts, run where and as the recipe's command would be \(trainz \S+\/train\.py; no GPU, 1 CPU, no time limit\)$/.test(f)), found.join("\n"))
    assert.isTrue(found.some((f) => /^fail job: the job's command trainz is not on the PATH jobs get/.test(f)), found.join("\n"))
  }))

  it.live("the model the agents would call, asked without a call that costs anything: a refused key, a misspelt name, a server that is not there fail; a local server's list of models names what it serves", () =>
    Effect.gen(function*() {
      const server = yield* FakeAnthropic.make([], { apiKey: "test-key-good", models: [{ id: "claude-sonnet-5-5", display_name: "Claude Sonnet 5.5", max_input_tokens: 1_000_000 }] })
      const quickstart = path.join(root, "examples/quickstart/task.yaml")
      const check = (env: Record<string, string | undefined>, ...flags: Array<string>) =>
        Effect.promise(() => trexAsync(["check", quickstart, ...flags, "--json"], env)).pipe(Effect.map((r) => ({ ...r, found: r.stdout === "" ? [] : findings(r.stdout) })))
      const anthropic = { ANTHROPIC_BASE_URL: server.url, ANTHROPIC_API_KEY: "test-key-good", TREX_MODEL: "claude-sonnet-5-5" }
      const good = yield* check(anthropic, "--researcher", "claude")
      assert.strictEqual(good.status, 0, good.stdout + good.stderr)
      assert.include(good.found, "ok model: anthropic serves claude-sonnet-5-5 (Claude Sonnet 5.5, a context window of 1000000 tokens)")
      const revoked = yield* check({ ...anthropic, ANTHROPIC_API_KEY: "test-key-revoked" }, "--researcher", "claude")
      assert.strictEqual(revoked.status, 1, revoked.stdout + revoked.stderr)
      assert.include(revoked.found, "fail model: anthropic: HTTP 401 authentication_error: invalid x-api-key (check ANTHROPIC_API_KEY)")
      assert.notInclude(revoked.stdout, "test-key-revoked")
      const misspelt = yield* check({ ...anthropic, TREX_MODEL: "claude-sonet-5-5" }, "--executor", "code-agent")
      assert.strictEqual(misspelt.status, 1)
      assert.isTrue(misspelt.found.some((f) => f.startsWith("fail model: anthropic: the API serves no model named claude-sonet-5-5 (TREX_MODEL): HTTP 404 not_found_error: model: claude-sonet-5-5")), misspelt.found.join("\n"))
      // not one turn was asked for: a check costs nothing
      assert.strictEqual(server.requests.length, 0)
      assert.deepStrictEqual(server.described, ["claude-sonnet-5-5", "claude-sonnet-5-5", "claude-sonet-5-5"])
      const gone = yield* check({ ...anthropic, ANTHROPIC_BASE_URL: "http://127.0.0.1:9" }, "--researcher", "claude")
      assert.strictEqual(gone.status, 1)
      assert.isTrue(gone.found.some((f) => f.startsWith("fail model: anthropic does not answer: ")), gone.found.join("\n"))
      const local = yield* FakeOpenAi.make([], { models: ["qwen3:8b", "llama3.1:8b"] })
      const served = { OPENAI_BASE_URL: local.url, TREX_MODEL: "qwen3:8b" }
      const ok = yield* check(served, "--researcher", "claude", "--model-api", "openai-compatible")
      assert.include(ok.found, "ok model: openai-compatible serves qwen3:8b (one of the 2 models it lists); whether the key may call it was not checked (no free call of an OpenAI-compatible server shows it): --call-model asks a 1-token turn, billed (a few tokens)")
      const notServed = yield* check({ ...served, TREX_MODEL: "qwen3:7b" }, "--researcher", "claude", "--model-api", "openai-compatible")
      assert.strictEqual(notServed.status, 1)
      assert.include(notServed.found, `fail model: openai-compatible: ${local.url} serves no model named qwen3:7b (TREX_MODEL): it serves qwen3:8b, llama3.1:8b; set TREX_MODEL to the name it lists`)
    }))

  it.live("--call-model: a key refused on chat completions alone, which the free probe passes, fails a 1-token turn; one taken says what it cost", () =>
    Effect.gen(function*() {
      const quickstart = path.join(root, "examples/quickstart/task.yaml")
      const check = (env: Record<string, string | undefined>, ...flags: Array<string>) =>
        Effect.promise(() => trexAsync(["check", quickstart, ...flags, "--json"], env)).pipe(Effect.map((r) => ({ ...r, found: r.stdout === "" ? [] : findings(r.stdout) })))
      // a key that may list the models and not call them (a restricted key, a proxy's per-model access)
      const local = yield* FakeOpenAi.make((request) =>
        request.headers.authorization === "Bearer key-restricted"
          ? { kind: "error", status: 403, body: "You have insufficient permissions for this operation. Missing scopes: model.request" }
          // an answer made, and billed, whose body is cut after its headers and 10 bytes
          : request.headers.authorization === "Bearer key-cut"
          ? FakeOpenAi.raw("application/json", JSON.stringify({ choices: [{ message: { content: "Yes" } }], usage: { prompt_tokens: 19, completion_tokens: 1 } }), { cutAfter: 10 })
          : { kind: "message", content: "Yes", finish: "length", usage: { prompt_tokens: 19, completion_tokens: 1 } }, { models: ["qwen3:8b"] })
      const restricted = { OPENAI_BASE_URL: local.url, TREX_MODEL: "qwen3:8b", OPENAI_API_KEY: "key-restricted" }
      const free = yield* check(restricted, "--executor", "code-agent", "--model-api", "openai-compatible")
      assert.strictEqual(free.status, 0, free.stdout + free.stderr)
      assert.isUndefined((JSON.parse(free.stdout) as Check.Report).spent, "nothing billed")
      assert.isTrue(free.found.some((f) => f.startsWith("ok model: openai-compatible serves qwen3:8b (one of the 1 model it lists); whether the key may call it was not checked")), free.found.join("\n"))
      assert.strictEqual(local.requests.length, 0, "free by default")
      const called = yield* check(restricted, "--executor", "code-agent", "--model-api", "openai-compatible", "--call-model")
      assert.strictEqual(called.status, 1, called.stdout + called.stderr)
      assert.include(
        called.found,
        "fail model: openai-compatible serves qwen3:8b (one of the 1 model it lists), but refused a 1-token turn with this key: HTTP 403 " +
          `{"error":{"message":"You have insufficient permissions for this operation. Missing scopes: model.request"}} (check OPENAI_API_KEY: the key may not use this model, set by TREX_MODEL, or this endpoint)`
      )
      assert.notInclude(called.stdout, "key-restricted")
      assert.strictEqual(local.requests.length, 1, "one attempt")
      const taken = yield* check({ ...restricted, OPENAI_API_KEY: "key-full" }, "--researcher", "claude", "--model-api", "openai-compatible", "--call-model")
      assert.strictEqual(taken.status, 0, taken.stdout + taken.stderr)
      assert.include(taken.found, "ok model: openai-compatible serves qwen3:8b (one of the 1 model it lists); it answered a 1-token turn with this key (--call-model: 19 input and 1 output token)")
      // billed, charged to no run: said apart in the report
      assert.deepStrictEqual((JSON.parse(taken.stdout) as Check.Report).spent, { inputTokens: 19, outputTokens: 1, dollars: 0 })
      // a turn cut after its headers failed, and was billed all the same: its estimate said
      const cut = yield* check({ ...restricted, OPENAI_API_KEY: "key-cut" }, "--researcher", "claude", "--model-api", "openai-compatible", "--call-model")
      assert.strictEqual(cut.status, 1, cut.stdout + cut.stderr)
      const cutSpent = (JSON.parse(cut.stdout) as Check.Report).spent!
      assert.isTrue(cutSpent.estimated === true && cutSpent.inputTokens > 0 && cutSpent.outputTokens > 0, JSON.stringify(cutSpent))
      assert.isTrue(
        cut.found.some((f) =>
          f.startsWith("fail model: openai-compatible does not answer a 1-token turn: connection error") &&
          f.endsWith(`(--call-model's attempt was billed: ${cutSpent.inputTokens} input and ${cutSpent.outputTokens} output tokens (estimated))`)
        ),
        cut.found.join("\n")
      )
      // Claude's: count_tokens said it free, and the turn says it again, priced
      const yes = FakeAnthropic.message([FakeAnthropic.text("Yes")], { input_tokens: 12, output_tokens: 1 })
      const server = yield* FakeAnthropic.make([yes, yes], {
        apiKey: "test-key-good",
        models: [{ id: "claude-sonnet-5-5", display_name: "Claude Sonnet 5.5", max_input_tokens: 1_000_000 }]
      })
      const claude = yield* check({ ANTHROPIC_BASE_URL: server.url, ANTHROPIC_API_KEY: "test-key-good", TREX_MODEL: "claude-sonnet-5-5" }, "--researcher", "claude", "--call-model")
      assert.strictEqual(claude.status, 0, claude.stdout + claude.stderr)
      assert.include(claude.found, "ok model: anthropic serves claude-sonnet-5-5 (Claude Sonnet 5.5, a context window of 1000000 tokens); it answered a 1-token turn with this key (--call-model: 12 input and 1 output token, $0.000051)")
      assert.strictEqual(server.requests[0]!.body.max_tokens, 1)
      const claudeSpent = (JSON.parse(claude.stdout) as Check.Report).spent!
      assert.deepStrictEqual([claudeSpent.inputTokens, claudeSpent.outputTokens, claudeSpent.dollars.toFixed(6)], [12, 1, "0.000051"])
      // and in the text, on a line of its own
      const text = yield* Effect.promise(() =>
        trexAsync(["check", quickstart, "--researcher", "claude", "--call-model"], { ANTHROPIC_BASE_URL: server.url, ANTHROPIC_API_KEY: "test-key-good", TREX_MODEL: "claude-sonnet-5-5" })
      )
      assert.strictEqual(text.status, 0, text.stdout + text.stderr)
      assert.include(text.stdout, "\nspent: 12 input and 1 output token, $0.000051 on --call-model's 1-token turn, charged to no run\n")
      // without a model-backed agent, there is no model to ask
      const none = yield* check({}, "--call-model")
      assert.strictEqual(none.status, 2)
      assert.include(none.stderr, "--call-model asks the model that a model-backed agent calls, and these settings have none: give it with --researcher claude or --executor code-agent")
    }), { timeout: 120_000 })

  it.live("--call-model takes the model's flags of trex run: --model-timeout bounds its turn, --max-retry-after the wait its server may ask for", () =>
    Effect.gen(function*() {
      const quickstart = path.join(root, "examples/quickstart/task.yaml")
      // a turn whose headers and 5 bytes come, then nothing; then one over its quota for an hour and a half
      const server = yield* FakeOpenAi.make((_, i) =>
        i === 0
          ? FakeOpenAi.raw("application/json", JSON.stringify({ choices: [{ message: { content: "Yes" } }] }), { holdAfter: 5 })
          : { kind: "error", status: 429, body: "quota exceeded", headers: { "retry-after": "5400" } }, { models: ["qwen3:8b"] })
      const env = { OPENAI_BASE_URL: server.url, TREX_MODEL: "qwen3:8b", OPENAI_API_KEY: undefined }
      const check = (...flags: Array<string>) =>
        Effect.promise(() => trexAsync(["check", quickstart, "--researcher", "claude", "--model-api", "openai-compatible", "--call-model", ...flags, "--json"], env))
          .pipe(Effect.map((r) => ({ ...r, found: r.stdout === "" ? [] : findings(r.stdout) })))
      // given up after --model-timeout (0.5 s), not check's --timeout (30 s)
      const held = yield* check("--model-timeout", "0.5")
      assert.strictEqual(held.status, 1, held.stdout + held.stderr)
      assert.isTrue(held.found.some((f) => /^fail model: openai-compatible does not answer a 1-token turn: .*within 500 ms/.test(f)), held.found.join("\n"))
      // a wait of 90 minutes: past the default 60 s, a run's call would stop at once, and so does the check; with
      // --max-retry-after 7200 a run would wait it out: busy, a warning
      const busy = yield* check("--max-retry-after", "7200")
      assert.strictEqual(busy.status, 0, busy.stdout + busy.stderr)
      assert.isTrue(busy.found.some((f) => f.startsWith("warn model: openai-compatible answers, but is busy now (a 1-token turn: HTTP 429")), busy.found.join("\n"))
      assert.strictEqual(server.requests.length, 2, "each asked once")
    }), { timeout: 60_000 })

  it("a task file that is not valid, or settings a run refuses (a model key not set), are bad input (exit 2), as for trex run", () => {
    const { file } = taskFile(`  command: []`)
    const r = trex(["check", file])
    assert.strictEqual(r.status, 2)
    assert.include(r.stderr, "recipe.command")
    // a default strategy outside its search space, refused by trex check and trex run alike
    const outside = taskFile(`  command: ["true"]`).file
    fs.writeFileSync(outside, fs.readFileSync(outside, "utf8").replace("learningRate: 0.0001, epochs", "learningRate: 0.0003, epochs"))
    for (const command of ["check", "run"]) {
      const refused = trex([command, outside], {}, path.dirname(outside))
      assert.strictEqual(refused.status, 2, refused.stderr)
      assert.include(refused.stderr, "defaultStrategy.training.learningRate: 0.0003 is not one of searchSpace.parameters[0].values [0.0001, 0.001]")
      assert.deepStrictEqual(fs.readdirSync(path.dirname(outside)), ["task.yaml"], "no run directory")
    }
    const quickstart = path.join(root, "examples/quickstart/task.yaml")
    const keyless = trex(["check", quickstart, "--researcher", "claude"], { ANTHROPIC_API_KEY: undefined })
    assert.strictEqual(keyless.status, 2)
    assert.include(keyless.stderr, "--researcher claude: set ANTHROPIC_API_KEY in the environment (see docs/guide-claude.md)")
  })

  it("on Kubernetes (the stand-in API server), the example task: a missing image pull secret, events or nodes it may not list, a claim pods of one node at a time may mount warn; a namespace or claim that is not there, a node that could take no pod, RBAC a trial needs fail", async () => {
    const a100 = { name: "a100-0", labels: { "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB" }, cpu: "16", memoryMi: 131072, extended: { "nvidia.com/gpu": 1 }, taints: [{ key: "nvidia.com/gpu", effect: "NoSchedule" }] }
    /** The example task against a fake of `options`, through a kubeconfig file. */
    const check = async (options: FakeKubeApi.FakeKubeOptions) => {
      const fake = await FakeKubeApi.start(options)
      try {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-check-k8s-"))
        fs.writeFileSync(path.join(dir, "kubeconfig"), fake.kubeConfig().exportConfig())
        const example = fs.readFileSync(path.join(root, "examples/backends/k8s.task.yaml"), "utf8")
        assert.include(example, "context: gpu-cluster")
        fs.writeFileSync(path.join(dir, "task.yaml"), example.replace("context: gpu-cluster", `kubeconfig: ${path.join(dir, "kubeconfig")}\n    context: fake`))
        const r = await trexAsync(["check", path.join(dir, "task.yaml"), "--backend", "k8s", "--json"])
        assert.deepStrictEqual(fake.list("jobs", "ml"), [], "nothing made")
        return r
      } finally {
        await fake.close()
      }
    }
    // the example's claims: hf-cache shared by every node, trex-jobs one node's at a time
    const claims = [{ name: "hf-cache" }, { name: "trex-jobs", accessModes: ["ReadWriteOnce"] }]
    const ok = await check({ nodes: [a100], namespaces: ["ml"], denied: ["list events"], claims })
    assert.strictEqual(ok.status, 0, ok.stdout + ok.stderr)
    const found = findings(ok.stdout).map((f) => f.replace(/ of http:\/\/127\.0\.0\.1:\d+/, ""))
    assert.include(found, "ok backend: k8s answers: 16 slots, 1 GPU, 0 in use")
    assert.deepStrictEqual(found.filter((f) => !f.startsWith("ok ") && !f.startsWith("warn budget")), [
      "warn job: the kubeconfig's user may not list events in namespace ml: a Job whose pod its controller refuses (a quota, a missing service account) shows Pending with no reason",
      "warn job: the image pull secret registry-credentials (backend.k8s.imagePullSecrets) is not in namespace ml: an image of a private registry would not be pulled",
      "warn job: the PersistentVolumeClaim trex-jobs (backend.k8s.jobDirClaim) is ReadWriteOnce: pods on one node at a time may mount it, so trials placed on other nodes wait (Multi-Attach) until it is free; use a ReadWriteMany claim (NFS, CephFS, a cloud file store), or a nodeSelector that keeps trials on one node"
    ])
    const bad = await check({ nodes: [{ ...a100, cpu: "4" }], namespaces: ["default"], denied: ["watch jobs", "list nodes"], claims })
    assert.strictEqual(bad.status, 1, bad.stdout + bad.stderr)
    const refused = findings(bad.stdout).map((f) => f.replace(/ of http:\/\/127\.0\.0\.1:\d+/, "").replace(/ on http:\/\/127\.0\.0\.1:\d+/, ""))
    // may not list nodes (a namespace's user, as on most shared clusters): no capacity, a warning, and the job still looked at
    assert.include(refused, `warn backend: k8s answers, but not with its capacity (listNodes: HTTP 403: nodes is forbidden: User "fake" cannot list resource "nodes" in API group "" at the cluster scope): whether it has the 1 GPU a trial asks for is not known`)
    assert.includeMembers(refused, [
      "fail job: the kubeconfig's user may not watch jobs.batch in namespace ml, which trials need: grant them with a Role and a RoleBinding (docs/backends.md, Kubernetes, RBAC)",
      "warn job: the kubeconfig's user may not list nodes (cluster-scoped): `trex check` cannot count the cluster's CPUs and GPUs, nor find a node that fits a trial's pod",
      "fail job: there is no namespace ml (backend.k8s.namespace): create it (`kubectl create namespace ml`) or name another"
    ])
    // that alone: trials would run, so the check passes
    const namespaced = await check({ nodes: [a100], namespaces: ["ml"], denied: ["list nodes"], claims })
    assert.strictEqual(namespaced.status, 0, namespaced.stdout)
    const small = await check({ nodes: [{ ...a100, cpu: "4" }], namespaces: ["ml"], claims: [{ name: "trex-jobs" }] })
    assert.strictEqual(small.status, 1, small.stdout)
    assert.include(findings(small.stdout).map((f) => f.replace(/ of http:\/\/127\.0\.0\.1:\d+/, "")), "fail job: the PersistentVolumeClaim hf-cache (backend.k8s.mounts[0].claim) is not in namespace ml: a trial's pod would wait Pending (Unschedulable) until stuckAfterMs; create it (`kubectl apply -n ml -f pvc.yaml`) or name one that is there (`kubectl get pvc -n ml`)")
    assert.isTrue(findings(small.stdout).some((f) => /^fail job: no node of .* could take a trial's pod, which would wait Pending \(Unschedulable\) for ever: 1 node: cpu 4 allocatable, 8 asked$/.test(f)), small.stdout)
  }, 120_000)
})
