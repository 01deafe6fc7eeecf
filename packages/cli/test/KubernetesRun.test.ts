// `trex run --backend k8s`: the real CLI against the stand-in Kubernetes API server
// (packages/executors/test/support/FakeKubeApi.ts, whose kubelet runs each pod's command as a local process),
// through a kubeconfig file, as a user's task file names it.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import * as FakeKubeApi from "../../executors/test/support/FakeKubeApi.ts"
import { root, trexAsync, trexHere } from "./support/cli.ts"

const fixtures = path.join(root, "packages/cli/test/fixtures")

/** The toy task on Kubernetes: its jobs in namespace `trex` of `fake`, with `image`; `k8s` lines added to its section. */
const k8sTask = (fake: FakeKubeApi.FakeKubeApi, image: string, k8s = "") => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-k8s-run-"))
  fs.copyFileSync(path.join(fixtures, "toy-job.mjs"), path.join(dir, "toy-job.mjs"))
  fs.writeFileSync(path.join(dir, "kubeconfig"), fake.kubeConfig().exportConfig())
  const toy = fs.readFileSync(path.join(fixtures, "toy.task.yaml"), "utf8")
  assert.include(toy, `command: ["node", "{taskDir}/toy-job.mjs"]`)
  fs.writeFileSync(path.join(dir, "task.yaml"), `${toy.replace("maxTrials: 8", "maxTrials: 5")}
backend:
  k8s:
    kubeconfig: ${path.join(dir, "kubeconfig")}
    context: fake
    namespace: trex
    image: ${image}
${k8s}`)
  return { task: path.join(dir, "task.yaml"), out: path.join(dir, "runs") }
}

/** The Job (its name) of the first trial whose pod runs in namespace `trex` of `fake`, looked for up to 30 s. */
const firstRunningJob = async (fake: FakeKubeApi.FakeKubeApi): Promise<string> => {
  for (let i = 0; i < 600; i++) {
    await new Promise((r) => setTimeout(r, 50))
    const job = fake.list("pods", "trex").find((p) => p.status.phase === "Running")?.metadata.labels?.["trex.dev/job"]
    if (job !== undefined) return job
  }
  return assert.fail("a trial's pod runs")
}

/** Waits until no pod of Job `job` is left in namespace `trex` of `fake` (its process ended), up to 30 s. */
const podsGone = async (fake: FakeKubeApi.FakeKubeApi, job: string): Promise<void> => {
  for (let i = 0; i < 600; i++) {
    if (!fake.list("pods", "trex").some((p) => p.metadata.labels?.["trex.dev/job"] === job)) return
    await new Promise((r) => setTimeout(r, 50))
  }
  assert.fail(`the pods of ${job} are gone`)
}

/** What `trex status` shows of `runDir` once it shows `text` (asked every 100 ms for up to 60 s; the last answer else). */
const statusShowing = async (runDir: string, text: string): Promise<string> => {
  let shown = ""
  for (const until = Date.now() + 60_000; Date.now() < until; await new Promise((r) => setTimeout(r, 100))) {
    shown = (await trexHere(["status", runDir])).stdout
    if (shown.includes(text)) break
  }
  return shown
}

/** `task`'s trials given `env` (the toy job's TREX_TOY_* settings). */
const withJobEnv = (task: string, env: Record<string, string>) => {
  const text = fs.readFileSync(task, "utf8")
  assert.include(text, "  resources: { cpus: 1, timeLimitSeconds: 30 }")
  fs.writeFileSync(task, text.replace("  resources: { cpus: 1, timeLimitSeconds: 30 }", `  resources: { cpus: 1, timeLimitSeconds: 30 }\n  env: ${JSON.stringify(env)}`))
}

/**
 * A stand-in with a Kueue queue that admits every Job it holds (not one whose workload is inactive), and a toy task on
 * it with the given stuckAfterMs whose trials run until `release()` (TREX_TOY_HOLD): a trial surely runs while the
 * test looks at it, however slow the machine, and the trials after end at once.
 */
const withAdmittingKueue = async (
  options: Omit<FakeKubeApi.FakeKubeOptions, "suspendJobs">,
  stuckAfterMs: number,
  body: (fake: FakeKubeApi.FakeKubeApi, task: string, out: string, release: () => void) => Promise<void>
): Promise<void> => {
  const fake = await FakeKubeApi.start({ gracePeriodMs: 1000, ...options, suspendJobs: true })
  const admitting = setInterval(() => {
    for (const j of fake.list("jobs", "trex")) if (j.spec.suspend === true) fake.admit("trex", j.metadata.name)
  }, 100)
  try {
    const { task, out } = k8sTask(fake, "busybox:1.36", `    stuckAfterMs: ${stuckAfterMs}\n    labels:\n      kueue.x-k8s.io/queue-name: gpu-queue`)
    const hold = path.join(path.dirname(task), "go")
    withJobEnv(task, { TREX_TOY_HOLD: hold })
    await body(fake, task, out, () => fs.writeFileSync(hold, ""))
  } finally {
    clearInterval(admitting)
    await fake.close()
  }
}

/** Each trial of a run: its state (`trex status --json`) and its `trex status --node` text. */
const nodeDetails = async (runDir: string) => {
  const status = JSON.parse((await trexHere(["status", runDir, "--json"])).stdout) as { nodes: ReadonlyArray<{ id: string; state: string }> }
  const details: Array<{ id: string; state: string; text: string }> = []
  for (const n of status.nodes) details.push({ ...n, text: (await trexHere(["status", runDir, "--node", n.id])).stdout })
  return details
}

describe("trex run --backend k8s", () => {
  it("runs the toy search as Jobs to its end; with an image that cannot be pulled, each trial is taken back after stuckAfterMs and the run stops after three alike, naming the image", async () => {
    const fake = await FakeKubeApi.start({ unpullable: ["registry.invalid/trainer:1"], gracePeriodMs: 1000, claims: [{ name: "trex-jobs" }] })
    try {
      // the job directories on a claim: what each trial left outlives its pod
      const good = k8sTask(fake, "busybox:1.36", "    jobDirClaim: trex-jobs")
      const ran = await trexAsync(["run", good.task, "--backend", "k8s", "--out", good.out, "--concurrency", "2", "--seed", "1"], { PATH: `${path.dirname(process.execPath)}:${process.env.PATH}` })
      assert.strictEqual(ran.status, 0, ran.stdout + ran.stderr)
      assert.include(ran.stdout, "State: finished (budget: maxTrials)")
      // one Job a trial, each trial's end its Job's (the toy's `broken` format crashes its trainer)
      const counts = /Trials: (\d+) succeeded, (\d+) failed, 0 pruned, 0 cancelled, 0 in flight/.exec(ran.stdout)
      assert.isNotNull(counts, ran.stdout)
      const jobs = fake.list("jobs", "trex")
      assert.deepStrictEqual(
        // (the end after its interim condition, SuccessCriteriaMet or FailureTarget, as the job controller records it)
        [jobs.length, ...["Complete", "Failed"].map((end) => jobs.filter((j) => j.status.conditions?.some((c: { type: string; status: string }) => c.type === end && c.status === "True")).length)],
        [5, Number(counts![1]), Number(counts![2])]
      )
      assert.isAtLeast(Number(counts![1]), 3, ran.stdout)
      const runId = path.basename(/run directory: (\S+)/.exec(ran.stdout)![1]!)
      const kept = fs.readdirSync(path.join(fake.claimDir("trex-jobs"), runId)).sort()
      assert.deepStrictEqual(kept, jobs.map((j) => j.metadata.name).sort(), "a folder for each Job, at <run>/<Job name>")
      const succeeded = jobs.filter((j) => j.status.conditions?.[0]?.type === "Complete")
      for (const j of succeeded) assert.isTrue(fs.existsSync(path.join(fake.claimDir("trex-jobs"), runId, j.metadata.name, "result.json")), j.metadata.name)
      // and `trex status --node` says where a trial's folder is
      const runDir = /run directory: (\S+)/.exec(ran.stdout)![1]!
      const n1 = await trexHere(["status", runDir, "--node", "n1"])
      const n1Job = /job kubernetes (\S+) submitted/.exec(n1.stdout)?.[1]
      assert.isDefined(n1Job, n1.stdout)
      assert.include(n1.stdout, `(its folder: PersistentVolumeClaim trex-jobs in namespace trex, folder ${runId}/${n1Job})`)
      // each trial's log, as the pod streamed it, kept in the run's folder (the pod's goes with its Job's TTL)
      const status = JSON.parse((await trexHere(["status", runDir, "--json"])).stdout) as { nodes: ReadonlyArray<{ id: string; state: string }> }
      const crashed = status.nodes.filter((n) => n.state === "Failed")
      assert.isAtLeast(crashed.length, 1, "a broken format crashed its trainer")
      for (const n of status.nodes) assert.isTrue(fs.existsSync(path.join(runDir, "jobs", n.id, "trex-job.log")), n.id)
      for (const n of crashed) {
        assert.include(fs.readFileSync(path.join(runDir, "jobs", n.id, "trex-job.log"), "utf8"), "Traceback: the recipe cannot handle format=broken")
        assert.match((await trexHere(["status", runDir, "--node", n.id])).stdout, /^Log tail \(.*jobs\/n\d+\):\n {2}\| Traceback: the recipe cannot handle format=broken$/m)
      }

      const bad = k8sTask(fake, "registry.invalid/trainer:1", "    stuckAfterMs: 1500")
      const stopped = await trexAsync(["run", bad.task, "--backend", "k8s", "--out", bad.out, "--concurrency", "1", "--seed", "1"])
      assert.strictEqual(stopped.status, 1, stopped.stdout + stopped.stderr)
      assert.include(
        stopped.stdout + stopped.stderr,
        `finished: every trial failed the same way (n1, n2, n3): Infra: its pod could not start within 2 s (stuckAfterMs): ErrImagePull: Failed to pull image "registry.invalid/trainer:1": not found; its Job was deleted`
      )
      assert.include(stopped.stdout, "Trials: 0 succeeded, 3 failed")
      // each trial's Job made once: not run again, as a lost job's trial would be (5 Jobs of the first run)
      assert.lengthOf(fake.requests.filter((r) => r === "POST /apis/batch/v1/namespaces/trex/jobs"), 5 + 3)
      const badJobs = fake.list("jobs", "trex").filter((j) => j.spec.template.spec.containers[0].image === "registry.invalid/trainer:1")
      assert.deepStrictEqual(badJobs, [], "every stuck Job deleted")
    } finally {
      await fake.close()
    }
  }, 180_000)

  it("a trial whose Job Kueue preempts (suspends) while it runs waits in the queue and ends with the run when its Job is resumed: one Job a trial, none made again", async () => {
    const fake = await FakeKubeApi.start({ gracePeriodMs: 1000 })
    try {
      const { task, out } = k8sTask(fake, "busybox:1.36")
      const log = path.join(path.dirname(task), "toy.log")
      const hold = path.join(path.dirname(task), "go")
      // each job says in toy.log that it ran, and runs until the test lets it end (long enough to be suspended while it runs)
      withJobEnv(task, { TREX_TOY_HOLD: hold, TREX_TOY_LOG: log })
      // two trials: the one preempted, and one after it
      const running = trexAsync(["run", task, "--backend", "k8s", "--out", out, "--concurrency", "1", "--seed", "1", "--max-trials", "2"])
      // Kueue preempts the first trial as it runs (its job has begun), and admits its Job again a moment later
      const first = await firstRunningJob(fake)
      for (let i = 0; i < 600 && !(fs.existsSync(log) && fs.readFileSync(log, "utf8").trim() !== ""); i++) await new Promise((r) => setTimeout(r, 50))
      assert.isTrue(fake.suspend("trex", first))
      // meanwhile `trex status` shows the trial waiting, saying who stopped it and why
      const runDir = path.join(out, fs.readdirSync(out)[0]!)
      const shown = await statusShowing(runDir, "waiting (Suspended (")
      assert.include(shown, "waiting (Suspended (kueue-job-controller: Preempted to accommodate a workload due to prioritization in the ClusterQueue)", shown)
      // its pod gone (no job of it may end once let go), its Job is admitted again, and its new pod runs to its end
      await podsGone(fake, first)
      assert.isTrue(fake.admit("trex", first))
      fs.writeFileSync(hold, "")
      const ran = await running
      assert.strictEqual(ran.status, 0, ran.stdout + ran.stderr)
      assert.include(ran.stdout, "State: finished (budget: maxTrials)")
      assert.match(ran.stdout, /Trials: \d+ succeeded, \d+ failed, 0 pruned, 0 cancelled, 0 in flight/)
      // two trials, two Jobs: the preempted trial was not run again in a new Job; its Job ran it twice (the queue's doing)
      assert.lengthOf(fake.requests.filter((r) => r === "POST /apis/batch/v1/namespaces/trex/jobs"), 2)
      const ranNodes = fs.readFileSync(log, "utf8").trim().split("\n")
      assert.deepStrictEqual(ranNodes, ["n1", "n1", "n2"], ranNodes.join(","))
      assert.strictEqual(/run directory: (\S+)/.exec(ran.stdout)![1]!, runDir)
      const status = JSON.parse((await trexHere(["status", runDir, "--json"])).stdout) as { nodes: ReadonlyArray<{ id: string; state: string }> }
      const preempted = status.nodes.find((n) => n.id === ranNodes.find((n, i) => ranNodes.indexOf(n) !== i))
      assert.strictEqual(preempted?.state, "Succeeded", JSON.stringify(status.nodes))
    } finally {
      await fake.close()
    }
  }, 180_000)

  it("a trial whose Kueue workload is deactivated as it runs says so in `trex status`, then fails Infra after stuckAfterMs and the run goes on: one Job a trial", async () => {
    // (the trial waits deactivated for stuckAfterMs: long enough for `trex status` to see it on a busy machine. With a new
    // process for each ask, 4 s was not: a CI run's 20 asks all came after it, each loading the CLI first; asked in this
    // process, its modules loaded before, every 100 ms, 8 s is many asks)
    await withAdmittingKueue({}, 8_000, async (fake, task, out, release) => {
      // two trials: the one deactivated, and one after it
      const running = trexAsync(["run", task, "--backend", "k8s", "--out", out, "--concurrency", "1", "--seed", "1", "--max-trials", "2"])
      const first = await firstRunningJob(fake)
      const runDir = path.join(out, fs.readdirSync(out)[0]!)
      assert.include(await statusShowing(runDir, "State: running"), "State: running")
      // Kueue deactivates its workload (requeued past its backoffLimitCount) and stops its Job
      assert.isTrue(fake.deactivate("trex", first))
      const shown = await statusShowing(runDir, "waiting (Deactivated by Kueue (")
      assert.include(shown, "waiting (Deactivated by Kueue (The workload is deactivated due to exceeding the maximum number of re-queuing retries)", shown)
      // the trial after it ends at once (the deactivated one's pod gone first: it may not end so)
      await podsGone(fake, first)
      release()
      const ran = await running
      assert.strictEqual(ran.status, 0, ran.stdout + ran.stderr)
      assert.include(ran.stdout, "State: finished (budget: maxTrials)")
      // two trials, two Jobs: the deactivated trial failed, not run again
      assert.lengthOf(fake.requests.filter((r) => r === "POST /apis/batch/v1/namespaces/trex/jobs"), 2)
      const detail = await nodeDetails(runDir)
      const deactivated = detail.filter((n) => n.text.includes("Kueue deactivated its Workload"))
      assert.lengthOf(deactivated, 1, JSON.stringify(detail.map((n) => [n.id, n.state])))
      assert.strictEqual(deactivated[0]!.state, "Failed")
      assert.include(deactivated[0]!.text, "and it was not reactivated within 8 s (stuckAfterMs): its Job was deleted")
    })
  }, 180_000)

  it("a trial whose Job Kueue deletes by its retention of the workload it deactivated (before stuckAfterMs) fails Infra saying so, not cancelled, and the run goes on", async () => {
    // Kueue's objectRetentionPolicies.workloads.afterDeactivatedByKueue: 2 s, shorter than the backend's stuckAfterMs
    await withAdmittingKueue({ afterDeactivatedByKueueMs: 2000 }, 60_000, async (fake, task, out, release) => {
      // two trials: the one whose Job Kueue deletes, and one after it
      const running = trexAsync(["run", task, "--backend", "k8s", "--out", out, "--concurrency", "1", "--seed", "1", "--max-trials", "2"])
      const first = await firstRunningJob(fake)
      assert.isTrue(fake.deactivate("trex", first))
      // the trial after it ends at once (the deactivated one's pod gone first: it may not end so)
      await podsGone(fake, first)
      release()
      const ran = await running
      assert.strictEqual(ran.status, 0, ran.stdout + ran.stderr)
      assert.include(ran.stdout, "State: finished (budget: maxTrials)")
      assert.match(ran.stdout, /Trials: \d+ succeeded, \d+ failed, 0 pruned, 0 cancelled, 0 in flight/)
      // two trials, two Jobs: the trial whose Job Kueue deleted failed, not run again
      assert.lengthOf(fake.requests.filter((r) => r === "POST /apis/batch/v1/namespaces/trex/jobs"), 2)
      const runDir = path.join(out, fs.readdirSync(out)[0]!)
      const detail = await nodeDetails(runDir)
      // before: `failed (Cancelled)`, `Failure: Cancelled: Job trex-n1-... was deleted before it finished`, as if a user had deleted it
      const deleted = detail.filter((n) => n.text.includes("deleted its Job once it had been inactive for Kueue's objectRetentionPolicies.workloads.afterDeactivatedByKueue"))
      assert.lengthOf(deleted, 1, JSON.stringify(detail.map((n) => [n.id, n.state, n.text])))
      assert.strictEqual(deleted[0]!.state, "Failed")
    })
  }, 180_000)
})
