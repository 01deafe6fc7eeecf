// The Kubernetes backend through the real @kubernetes/client-node against test/support/FakeKubeApi.ts, a local
// stand-in for the API server (no API server can run on these machines): it runs each Job's container command
// as a local process, schedules by cpu / memory / nvidia.com/gpu, and garbage-collects by ownerReferences.
// Here: a pod the cluster stops, an API server that does not answer, a Job the TTL controller deleted, a log gone,
// cut short, rotated or whose connection dies, a watch that ends with an ERROR event.
import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Backend } from "@trex/core"
import { CoreV1Api } from "@kubernetes/client-node"
import { Deferred, Effect, Fiber, Redacted, Stream } from "effect"
import * as KubernetesBackend from "../src/KubernetesBackend.ts"
import * as K from "../src/internal/k8sJob.ts"
import { eventually } from "./support/eventually.ts"
import * as FakeKubeApi from "./support/FakeKubeApi.ts"
import { collect, config, done, exitOf, Fake, fakeWith, podOf, podUnschedulable, runningJob, spec, states, watchStarted, watchUntil } from "./support/kubeTest.ts"

describe("KubernetesBackend when the cluster stops a pod", () => {
  it.live("a pod preempted (then deleted), or evicted by its node's kubelet, ends Failed / Infra saying so, not Crash or OOM from the signal it got: not the strategy's doing", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith()
      const backend = yield* KubernetesBackend.make(config(fake))
      // one ends on SIGTERM (exit 143, a Crash by its code), one ignores it and is killed (exit 137, the job protocol's OOM code)
      const cases = [
        { node: "preempted", script: "echo started; sleep 30", reason: "PreemptionByScheduler", message: "Preempted in order to admit critical pod", evicted: false },
        { node: "evicted", script: "trap '' TERM; echo started; sleep 30", reason: "TerminationByKubelet", message: "The node was low on resource: memory.", evicted: true }
      ]
      for (const c of cases) {
        const ref = yield* backend.submit(spec(c.node, c.script))
        // the watch has seen it run (a watch that begins after the pod is gone cannot know why it went)
        const watching = yield* watchUntil(backend, ref, (e) => e._tag === "State" && e.state === "Running")
        const pod = podOf(fake, ref.id)!.metadata.name
        const logOf = () => fake.kubeConfig().makeApiClient(CoreV1Api).readNamespacedPodLog({ name: pod, namespace: "trex" })
        for (let i = 0; i < 100 && !(yield* Effect.promise(logOf)).includes("started"); i++) yield* Effect.sleep("50 millis")
        assert.isTrue(fake.disrupt("trex", podOf(fake, ref.id)!.metadata.name, c.reason, { message: c.message, evicted: c.evicted }))
        const exit = exitOf(yield* Fiber.join(watching))
        assert.deepStrictEqual([exit.outcome, exit.failureKind, exit.retryable], ["Failed", "Infra", undefined], exit.message)
        assert.include(exit.logTail, "started", JSON.stringify(exit))
        assert.strictEqual(
          exit.message,
          c.evicted
            ? "its pod was evicted by the kubelet (Evicted: The node was low on resource: memory.), not ended by the job"
            : "its pod was preempted by a pod of higher priority (PreemptionByScheduler: Preempted in order to admit critical pod), not ended by the job"
        )
        assert.strictEqual(exit.exitCode, c.evicted ? 137 : 143)
        if (!c.evicted) yield* eventually("the preempted pod is gone", () => podOf(fake, ref.id) === undefined)
      }
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a pod deleted while it runs (`kubectl delete pod`) or evicted through the eviction API ends Failed / Infra saying so, not Crash from the SIGTERM it got", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith()
      const backend = yield* KubernetesBackend.make(config(fake))
      const core = fake.kubeConfig().makeApiClient(CoreV1Api)
      for (const how of ["delete", "evict"] as const) {
        const ref = yield* backend.submit(spec(`pod-${how}`, "echo started; sleep 30"))
        const watching = yield* watchStarted(backend, ref)
        const name = podOf(fake, ref.id)!.metadata.name
        yield* Effect.promise(() =>
          how === "delete"
            ? core.deleteNamespacedPod({ name, namespace: "trex" })
            : core.createNamespacedPodEviction({ name, namespace: "trex", body: { metadata: { name, namespace: "trex" } } })
        )
        const exit = exitOf(yield* Fiber.join(watching))
        assert.deepStrictEqual([exit.outcome, exit.failureKind, exit.retryable, exit.exitCode], ["Failed", "Infra", undefined, 143], exit.message)
        assert.strictEqual(
          exit.message,
          how === "delete"
            ? "its pod was deleted while it ran (`kubectl delete pod`, or a controller other than its Job's), not ended by the job"
            : "its pod was evicted (a node drain, or the eviction API) (EvictionByEvictionAPI: Eviction API: evicting), not ended by the job"
        )
      }
    }).pipe(Effect.scoped), { timeout: 60_000 })

  // Its node goes down while the watch follows the pod's log: the log's end comes (its stream from the kubelet broke),
  // its pod never says its container ended, and its log is answered 500 (the API server cannot reach the kubelet);
  // the taint manager deletes the pod at once, or (`unreachableFirst`) once the node has been unreachable a while.
  for (const unreachableFirst of [false, true]) {
    it.live(`a pod whose node goes down while its log is followed${unreachableFirst ? ", unreachable before its pod is deleted" : ""}: the watch ends Failed / Infra once its pod is deleted, not after apiWaitMs${unreachableFirst ? "; meanwhile the kubelet is said not to answer, not the API server" : ""}`, () =>
      Effect.gen(function*() {
        const fake = yield* fakeWith()
        const backend = yield* KubernetesBackend.make(config(fake, { apiWaitMs: 30_000 }))
        const ref = yield* backend.submit(spec(`node-down-followed${unreachableFirst ? "-late" : ""}`, "echo started; sleep 60"))
        const unreachable = yield* Deferred.make<void>()
        const watching = yield* watchUntil(backend, ref, (e) => {
          if (e._tag === "State" && e.reason?.includes("does not answer") === true) Deferred.doneUnsafe(unreachable, Effect.void)
          return e._tag === "Log" && e.line === "started"
        })
        const pod = podOf(fake, ref.id)!.metadata.name
        if (unreachableFirst) {
          assert.isTrue(fake.nodeUnreachable("trex", pod))
          yield* Deferred.await(unreachable)
        }
        assert.isTrue(fake.disrupt("trex", pod, "DeletionByTaintManager", { message: "Taint manager: deleting due to NoExecute taint", nodeDown: true }))
        const events = yield* Fiber.join(watching)
        const exit = exitOf(events)
        assert.deepStrictEqual([exit.outcome, exit.failureKind], ["Failed", "Infra"], exit.message)
        assert.include(exit.message, "deleted as its node was tainted NoExecute (not ready, unreachable)")
        assert.include(exit.logTail, "started")
        assert.include(exit.resultError, "its node does not answer")
        const said = states(events).filter((st) => st.includes("does not answer"))
        assert.deepStrictEqual(said.map((st) => st.replace(/ since .*/, "")), unreachableFirst ? ["Running the kubelet of node gpu-node, asked through the API server for the pod's log, does not answer"] : [])
      }).pipe(Effect.scoped), { timeout: 60_000 })
  }

  // Its node down and not removed, the pod's deletion is never confirmed: the Job keeps FailureTarget (Kubernetes 1.31
  // and later add Failed only once no pod of it is terminating), and the pod's log is out of reach.
  it.live("a pod whose node is down: a later controller reads the Job's FailureTarget as its end, Failed / Infra, not a wait for Failed", () =>
    Effect.gen(function*() {
      const { fake, ref } = yield* runningJob("node-down", "echo started; sleep 30")
      assert.isTrue(fake.disrupt("trex", podOf(fake, ref.id)!.metadata.name, "DeletionByTaintManager", { message: "Taint manager: deleting due to NoExecute taint", nodeDown: true }))
      yield* eventually("its Job has FailureTarget", () => fake.get("jobs", "trex", ref.id)?.status.conditions?.some((c: { type: string }) => c.type === "FailureTarget") === true)
      assert.isFalse(fake.get("jobs", "trex", ref.id)!.status.conditions.some((c: { type: string }) => c.type === "Failed"), "no Failed while its pod is terminating")
      const exit = yield* Backend.awaitExit(yield* KubernetesBackend.make(config(fake, { apiWaitMs: 2000 })), ref)
      assert.deepStrictEqual([exit.outcome, exit.failureKind], ["Failed", "Infra"], exit.message)
      assert.include(exit.message, "deleted as its node was tainted NoExecute (not ready, unreachable)")
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

describe("KubernetesBackend when the API server does not answer", () => {
  const jobsOf = (fake: FakeKubeApi.FakeKubeApi, node: string) => fake.list("jobs", "trex").filter((j) => j.metadata.labels?.[K.NODE_LABEL] === K.labelValue(node))
  const reasons = states

  it.live("a job submitted meanwhile (connections refused, or taken and never answered) waits Pending saying why, and its Job is made once the server answers: one Job, run to its end", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith()
      const backend = yield* KubernetesBackend.make(config(fake, { requestTimeoutMs: 1000 }))
      for (const [mode, cause] of [["refused", /ECONNREFUSED/], ["hang", /no answer within 1 s \(requestTimeoutMs\)/]] as const) {
        const node = `submitted-${mode}`
        fake.outage(true, mode)
        // the submit does not wait for the server: its ref comes back while it is away
        const ref = yield* backend.submit(spec(node, done, { env: { S: Redacted.make("x") } }))
        assert.isTrue(ref.data.queued, JSON.stringify(ref))
        const events = Array.from(yield* backend.watch(ref).pipe(
          Stream.tap((e) => (e._tag === "State" && e.reason !== undefined && /does not answer/.test(e.reason)
            ? Effect.andThen(Effect.sleep("2 seconds"), Effect.sync(() => fake.outage(false)))
            : Effect.void)),
          Stream.runCollect
        ))
        const states = reasons(events)
        assert.match(states[0] ?? "", /^Pending the Kubernetes API server at http:\/\/127\.0\.0\.1:\d+ does not answer since \d\d:\d\d:\d\dZ \(.+\); Job \S+ is created once it answers, asked again every second for up to 1800 s \(apiWaitMs\)$/, states.join("\n"))
        assert.match(states[0]!, cause)
        assert.strictEqual(states[1], "Pending", `the end of the wait is told: ${states.join("\n")}`)
        assert.include(states, "Running")
        const exit = exitOf(events)
        assert.strictEqual(exit.outcome, "Succeeded", exit.message)
        assert.deepStrictEqual(exit.result, { metrics: {}, primary: 1 })
        assert.deepStrictEqual(jobsOf(fake, node).map((j) => j.metadata.name), [ref.id])
        assert.isDefined(fake.get("secrets", "trex", ref.id))
      }
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("cancel, withdraw and list wait for it (a stop ends the wait), a job still queued is taken back without it, and apiWaitMs bounds the wait", () =>
    Effect.gen(function*() {
      const { fake, backend, ref: running } = yield* runningJob("wait-running", "echo up; sleep 60")
      const unscheduled = yield* backend.submit(spec("wait-unscheduled", done, { resources: { gpus: 3, cpus: 1 } }))
      yield* eventually("the second waits for GPUs", () => podUnschedulable(fake, unscheduled.id))
      fake.outage(true, "refused")
      // submitted meanwhile: queued here, taken back at once (no Job of them is ever made), their watches Cancelled
      const withdrawn = yield* backend.submit(spec("queued-withdrawn", done))
      const cancelled = yield* backend.submit(spec("queued-cancelled", done))
      // and one whose controller stops before the server answers
      const abandoned = yield* (yield* KubernetesBackend.make(config(fake))).submit(spec("queued-abandoned", done))
      assert.isTrue(yield* backend.withdraw!(withdrawn))
      assert.isFalse(yield* backend.withdraw!(withdrawn), "once")
      yield* backend.cancel(cancelled)
      for (const ref of [withdrawn, cancelled]) assert.strictEqual((yield* Backend.awaitExit(backend, ref)).outcome, "Cancelled")
      // the others wait for the server, and are done once it answers
      const waiting = yield* Effect.forkChild(Effect.all({
        listed: backend.list("k8s-run/1"),
        taken: backend.withdraw!(unscheduled),
        cancel: backend.cancel(running)
      }, { concurrency: "unbounded" }))
      yield* Effect.sleep("3 seconds")
      fake.outage(false)
      const { listed, taken } = yield* Fiber.join(waiting)
      assert.isTrue(taken, "the unscheduled job is withdrawn")
      assert.sameDeepMembers(listed.map((j) => [j.ref.id, j.state]), [[running.id, "Running"], [unscheduled.id, "Pending"], [withdrawn.id, "Finished"], [cancelled.id, "Finished"]])
      yield* eventually("the cancelled and the withdrawn Jobs are gone, their tombstones written", () =>
        [running.id, unscheduled.id].every((id) => fake.get("jobs", "trex", id) === undefined && fake.get("configmaps", "trex", `${id}-cancelled`) !== undefined))
      assert.deepStrictEqual([...jobsOf(fake, "queued-withdrawn"), ...jobsOf(fake, "queued-cancelled"), ...jobsOf(fake, "queued-abandoned")], [])
      // a resumed controller finds no Job of the abandoned one: lost (Infra, so run again), saying why
      const lost = yield* Backend.awaitExit(yield* KubernetesBackend.make(config(fake)), abandoned)
      assert.strictEqual(lost.failureKind, "Infra")
      assert.include(lost.message, "it was submitted while the API server did not answer: it may never have been created")
      // a stop ends the wait, even a cancel's in a finalizer (as the executor cancels a stopped trial's job)
      fake.outage(true, "refused")
      const stopped = yield* Effect.forkChild(Effect.scoped(Effect.andThen(
        Effect.addFinalizer(() => Effect.ignore(backend.cancel({ backend: "kubernetes", id: "trex-stopped-abcde", data: { namespace: "trex" } }))),
        Effect.never
      )))
      yield* Effect.sleep("1500 millis")
      yield* Fiber.interrupt(stopped)
      // past apiWaitMs: an error that says what to check
      const impatient = yield* KubernetesBackend.make(config(fake, { apiWaitMs: 1000 }))
      const error = yield* Effect.flip(impatient.list("k8s-run/1"))
      fake.outage(false)
      assert.isFalse(error.retryable)
      assert.match(error.message, /^the Kubernetes API server at http:\/\/127\.0\.0\.1:\d+ did not answer for \d+ s \(apiWaitMs\) while listing the Jobs of run k8s-run\/1: listJobs: fetch failed \(connect ECONNREFUSED 127\.0\.0\.1:\d+\)\. Check `kubectl cluster-info`$/)
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a withdraw whose delete was carried out but its answer lost says withdrawn (asked again, the pod is gone by its own doing)", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith()
      const backend = yield* KubernetesBackend.make(config(fake))
      const ref = yield* backend.submit(spec("withdraw-lost", done, { resources: { gpus: 3, cpus: 1 } }))
      yield* eventually("it waits for GPUs", () => podUnschedulable(fake, ref.id))
      fake.loseAnswer("pods", false, "DELETE")
      assert.isTrue(yield* backend.withdraw!(ref))
      assert.strictEqual((yield* Backend.awaitExit(backend, ref)).outcome, "Cancelled")
      yield* eventually("the Job is gone, its tombstone written", () =>
        fake.get("jobs", "trex", ref.id) === undefined && fake.get("configmaps", "trex", `${ref.id}-cancelled`) !== undefined)
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

describe("KubernetesBackend after the TTL controller deleted a finished Job", () => {
  it.live("the instance that saw it end still has its Exit; a fresh one reports that it is gone", () =>
    Effect.gen(function*() {
      const fake = yield* Fake
      const backend = yield* KubernetesBackend.make(config(fake, { ttlSecondsAfterFinished: 1 }))
      const ref = yield* backend.submit(spec("ttl", "echo done > result.json"))
      const exit = yield* Backend.awaitExit(backend, ref)
      assert.strictEqual(exit.outcome, "Succeeded")
      yield* eventually("the TTL controller deletes the finished Job", () => fake.get("jobs", "trex", ref.id) === undefined)
      const again = yield* collect(backend, ref)
      assert.strictEqual(again.length, 1)
      assert.strictEqual(exitOf(again).outcome, "Succeeded")
      assert.deepStrictEqual((yield* backend.list("k8s-run/1")).map((j) => [j.ref.id, j.state]), [[ref.id, "Finished"]])
      const fresh = yield* KubernetesBackend.make(config(fake))
      const gone = yield* Backend.awaitExit(fresh, ref)
      assert.strictEqual(gone.failureKind, "Infra")
    }).pipe(Effect.scoped))
})

describe("KubernetesBackend when a pod is deleted before its log is read", () => {
  it.live("a finished job's exit says its log is gone (no BackendError); a cancelled one is still Cancelled", () =>
    Effect.gen(function*() {
      const fake = yield* Fake
      const backend = yield* KubernetesBackend.make(config(fake))
      const done = yield* backend.submit(spec("log-gone", "echo hi; echo '{\"metrics\":{},\"primary\":1}' > result.json"))
      assert.strictEqual((yield* Backend.awaitExit(backend, done)).outcome, "Succeeded")
      const running = yield* backend.submit(spec("log-gone-cancel", "sleep 60"))
      yield* backend.watch(running).pipe(
        Stream.takeUntil((e) => e._tag === "State" && e.state === "Running"),
        Stream.runDrain
      )
      fake.logsGone(true)
      yield* backend.cancel(running)
      // A fresh instance (a restarted controller) has no cached exits: it lists the pod, then reads its log.
      const fresh = yield* KubernetesBackend.make(config(fake))
      const exit = yield* Backend.awaitExit(fresh, done)
      assert.strictEqual(exit.outcome, "Succeeded")
      assert.isUndefined(exit.result)
      assert.include(exit.resultError, "was deleted before its log")
      assert.strictEqual((yield* Backend.awaitExit(fresh, running)).outcome, "Cancelled")
      fake.logsGone(false)
    }).pipe(Effect.scoped))

  it.live("a pod whose log is gone when the watch starts to follow it: the exit says so (no BackendError)", () =>
    Effect.gen(function*() {
      const fake = yield* Fake
      const backend = yield* KubernetesBackend.make(config(fake))
      fake.logsGone(true)
      const ref = yield* backend.submit(spec("log-gone-follow", "sleep 1; echo '{\"metrics\":{},\"primary\":1}' > result.json"))
      const exit = yield* Backend.awaitExit(backend, ref)
      fake.logsGone(false)
      assert.strictEqual(exit.outcome, "Succeeded")
      assert.include(exit.resultError, "was deleted before its log")
    }).pipe(Effect.scoped))
})

/**
 * A job that prints `before`, waits until the test lets it go on, then prints `after` and writes its result: the
 * stand-in's log or watch is broken (`fault`, done before the job goes on) as `before` is read, and the watch must still
 * give every line once, and the result. Returns the watch's events.
 */
const followedThrough = (name: string, fault: (fake: FakeKubeApi.FakeKubeApi) => Effect.Effect<void, Error>, o: { readonly fake?: FakeKubeApi.FakeKubeOptions; readonly filler?: number } = {}) =>
  Effect.gen(function*() {
    const fake = yield* fakeWith(o.fake)
    const backend = yield* KubernetesBackend.make(config(fake))
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `trex-k8s-${name}-`))
    const go = path.join(dir, "go")
    // `filler` lines of 1000 characters first (each line's number, its 0s as x's, then x's), by one process (a shell
    // loop of printf | tr took 4.4 s for 200 lines on a loaded machine, 0.04 s so)
    const filler = o.filler ?? 0
    const ref = yield* backend.submit(spec(name, [
      // (once its log is followed: the kubelet serves the current file alone, and lines rotated away before are not the subject)
      ...(filler > 0
        ? [
          "echo started",
          `while [ ! -e ${go}-filler ]; do sleep 0.1; done`,
          `awk 'BEGIN { x = sprintf("%996s", ""); gsub(/ /, "x", x); for (i = 0; i < ${filler}; i++) { n = sprintf("%04d", i); gsub(/0/, "x", n); print n x } }'`
        ]
        : []),
      "echo before",
      `while [ ! -e ${go} ]; do sleep 0.1; done`,
      "echo after",
      `echo '{"metrics":{"acc":1},"primary":1}' > result.json`
    ].join("\n")))
    const events = yield* backend.watch(ref).pipe(
      Stream.tap((e) =>
        e._tag === "Log" && e.line === "before"
          ? Effect.andThen(fault(fake), Effect.sync(() => fs.writeFileSync(go, "")))
          : e._tag === "Log" && e.line === "started"
          ? Effect.sync(() => fs.writeFileSync(`${go}-filler`, ""))
          : Effect.void
      ),
      Stream.runCollect,
      Effect.map((c) => Array.from(c))
    )
    fs.rmSync(dir, { recursive: true, force: true })
    const exit = exitOf(events)
    assert.strictEqual(exit.outcome, "Succeeded", exit.message)
    assert.deepStrictEqual(exit.result, { metrics: { acc: 1 }, primary: 1 })
    const all = events.flatMap((e) => (e._tag === "Log" ? [e.line] : []))
    if (filler > 0) assert.strictEqual(all[0], "started")
    const logLines = all.slice(filler > 0 ? 1 : 0)
    assert.deepStrictEqual(logLines.slice(filler), ["before", "after"])
    assert.deepStrictEqual(logLines.slice(0, filler).map((l) => l.length === 1000 ? Number(l.slice(0, 4).replace(/x/g, "0")) : l), Array.from({ length: filler }, (_, i) => i))
    return events
  }).pipe(Effect.scoped)

describe("KubernetesBackend when a followed log ends while its container runs", () => {
  // The real API server ends a followed log's answer cleanly when its stream from the kubelet breaks (a kubelet
  // restart): the same end as the container's. The rest of the log, and the result marker at its end, must still come.
  it.live("the log is followed on from where it was: every line once, and the result", () => followedThrough("log-end", (fake) => Effect.sync(() => fake.endLogs())))

  // The kubelet serves a container's current log file alone, and rotates it past containerLogMaxSize (10 MiB by
  // default; 64 KiB here): 200 kB read before the end, the log followed on is not that far from its start.
  it.live("after the kubelet rotated the container's log: every line once, and the result", () =>
    followedThrough("log-rotated", (fake) => Effect.sync(() => fake.endLogs()), { fake: { containerLogMaxBytes: 64 * 1024 }, filler: 200 }))
})

describe("KubernetesBackend when a followed log's connection dies without a word", () => {
  // Nothing more comes and no end (a load balancer dropped the idle connection): once the Job has ended and the log
  // said nothing for logGraceMs, the rest of the log, and the result marker at its end, is read.
  it.live("the rest of the log is read once the Job has ended: every line once, and the result", () => followedThrough("log-stall", (fake) => Effect.sync(() => fake.stallLogs())))
})

describe("KubernetesBackend when a watch ends with an ERROR event", () => {
  // The API server tells a watcher that it cannot go on (410 Expired, an internal error) in the stream: an ERROR
  // event whose object is a Status, not a Job or a Pod. It is no state of the job; the watch is made again.
  it.live("the job's state is not read from it, and the job is followed to its end", () =>
    Effect.gen(function*() {
      const events = yield* followedThrough("watch-error", (fake) =>
        Effect.andThen(
          Effect.sync(() => fake.watchError()),
          // the watches are made again (their ERROR and end read) before the job goes on
          eventually("the watches are made again", () => fake.requests.filter((r) => r.includes("watch=true")).length >= 4)
        ))
      assert.deepStrictEqual(events.flatMap((e) => (e._tag === "State" ? [`${e.state}:${e.reason ?? ""}`] : [])), ["Running:"])
    }).pipe(Effect.scoped))
})
