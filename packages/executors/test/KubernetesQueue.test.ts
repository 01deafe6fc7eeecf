// The Kubernetes backend through the real @kubernetes/client-node against test/support/FakeKubeApi.ts, a local
// stand-in for the API server (no API server can run on these machines): it runs each Job's container command
// as a local process, schedules by cpu / memory / nvidia.com/gpu, and garbage-collects by ownerReferences.
// Here: a batch queue (Kueue) that holds, suspends, preempts, deactivates and deletes Jobs, and a Job suspended by
// hand; withdrawals another controller reads; tombstones.
import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Backend } from "@trex/core"
import { BatchV1Api, CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node"
import { Deferred, Effect, Fiber, Logger, Stream } from "effect"
import * as KubernetesBackend from "../src/KubernetesBackend.ts"
import * as K from "../src/internal/k8sJob.ts"
import { eventually } from "./support/eventually.ts"
import * as FakeKubeApi from "./support/FakeKubeApi.ts"
import { assertDeactivated, config, done, exitOf, Fake, fakeWith, KUEUE_DEACTIVATED, podOf, podRuns, podUnschedulable, spec, states, watchStarted, watchUntil } from "./support/kubeTest.ts"

describe("KubernetesBackend with a batch queue and priorities", () => {

  it.live("a Job a queue holds suspended (Kueue) waits Pending saying so, past stuckAfterMs, and runs once admitted; its queue's label is on it", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith({ suspendJobs: true })
      const backend = yield* KubernetesBackend.make(config(fake, { stuckAfterMs: 1_000, labels: { "kueue.x-k8s.io/queue-name": "gpu-queue" } }))
      const ref = yield* backend.submit(spec("queued", done))
      const watching = yield* watchUntil(backend, ref, (e) => e._tag === "State" && e.reason?.startsWith("Suspended") === true)
      assert.strictEqual(fake.get("jobs", "trex", ref.id)?.metadata.labels?.["kueue.x-k8s.io/queue-name"], "gpu-queue")
      yield* Effect.sleep("1500 millis") // past stuckAfterMs: a queue's hold is a wait for room, not a job that cannot start
      assert.isTrue(fake.admit("trex", ref.id))
      const events = yield* Fiber.join(watching)
      const exit = exitOf(events)
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
      assert.deepStrictEqual(states(events).slice(0, 1), ["Pending Suspended: its Job waits to be admitted (a batch queue such as Kueue holds it until its quota has room)"])
      assert.include(states(events), "Running")
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a withdrawal mark younger than a request on a Job a queue holds (no pod yet) is taken off once it is a request old, and the Job runs once admitted", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith({ suspendJobs: true })
      const batch = fake.kubeConfig().makeApiClient(BatchV1Api)
      const backend = yield* KubernetesBackend.make(config(fake, { requestTimeoutMs: 2_000, labels: { "kueue.x-k8s.io/queue-name": "gpu-queue" } }))
      const ref = yield* backend.submit(spec("queued-marked", done))
      const mark = JSON.stringify({ pod: "a-pod-of-another-controller", at: new Date().toISOString() })
      yield* Effect.promise(() => batch.patchNamespacedJob({ name: ref.id, namespace: "trex", body: [{ op: "add", path: "/metadata/annotations/trex.dev~1withdrawn", value: mark }] }))
      const watching = yield* watchUntil(backend, ref, (e) => e._tag === "State" && e.reason?.startsWith("Suspended") === true)
      // before, the look again at the mark read the pod it named, which a held Job has not: it failed, the mark stayed
      yield* eventually("the mark is taken off", () => fake.get("jobs", "trex", ref.id)?.metadata.annotations?.[K.WITHDRAWN_ANNOTATION] === undefined)
      assert.isTrue(fake.admit("trex", ref.id))
      assert.strictEqual(exitOf(yield* Fiber.join(watching)).outcome, "Succeeded")
    }).pipe(Effect.scoped), { timeout: 60_000 })

  /** A Job of a Kueue queue, admitted and watched until it started, and the name of its Workload. */
  const admittedKueueJob = (name: string, fakeOptions: Omit<Parameters<typeof fakeWith>[0], "suspendJobs">, stuckAfterMs: number) =>
    Effect.gen(function*() {
      const fake = yield* fakeWith({ ...fakeOptions, suspendJobs: true })
      const backend = yield* KubernetesBackend.make(config(fake, { stuckAfterMs, labels: { "kueue.x-k8s.io/queue-name": "gpu-queue" } }))
      const ref = yield* backend.submit(spec(name, "echo started; sleep 30"))
      assert.isTrue(fake.admit("trex", ref.id))
      const watching = yield* watchStarted(backend, ref)
      const workload = fake.list("workloads", "trex").find((w) => w.metadata.labels?.[K.KUEUE_JOB_UID_LABEL] === fake.get("jobs", "trex", ref.id)!.metadata.uid)!.metadata.name
      return { fake, backend, ref, watching, workload }
    })

  it.live("a Job whose Workload Kueue deactivated (its requeuing limit) says so and how to reactivate it, and is taken back after stuckAfterMs: Failed / Infra, for a controller that looks later too; one reactivated in time runs", () =>
    Effect.gen(function*() {
      const { fake, backend, ref, watching, workload } = yield* admittedKueueJob("deactivated", {}, 3_000)
      // Kueue stops the Job of a workload requeued more than its backoffLimitCount, and sets it inactive
      assert.isTrue(fake.deactivate("trex", ref.id))
      const events = yield* Fiber.join(watching)
      const exit = assertDeactivated(events, workload, "it was not reactivated within 3 s (stuckAfterMs): its Job was deleted.")
      assert.include(exit.message, `kubectl patch workload -n trex ${workload} --type=merge -p '{"spec":{"active":true}}'`)
      assert.include(states(events), `Pending Deactivated by Kueue (${KUEUE_DEACTIVATED}): its Workload ${workload} is inactive, so the Job is not admitted again; reactivate it within 3 s (stuckAfterMs) to run the trial (\`kubectl patch workload -n trex ${workload} --type=merge -p '{"spec":{"active":true}}'\`), else its Job is deleted and the trial fails`)
      assert.isUndefined(fake.get("jobs", "trex", ref.id))
      // a controller that looks later (a resumed run) reads the same end
      const later = yield* KubernetesBackend.make(config(fake))
      assert.strictEqual((yield* Backend.awaitExit(later, ref)).message, exit.message)

      // a user who may not list Workloads: the deactivation is read from Kueue's `Stopped` Event on the Job
      const unlisted = yield* fakeWith({ suspendJobs: true, denied: ["list workloads"] })
      const blind = yield* KubernetesBackend.make(config(unlisted, { stuckAfterMs: 1_000, labels: { "kueue.x-k8s.io/queue-name": "gpu-queue" } }))
      const unseen = yield* blind.submit(spec("deactivated-unlisted", "echo started; sleep 30"))
      assert.isTrue(unlisted.admit("trex", unseen.id))
      const blindWatching = yield* watchStarted(blind, unseen)
      const uid = unlisted.get("jobs", "trex", unseen.id)!.metadata.uid
      assert.isTrue(unlisted.deactivate("trex", unseen.id))
      const blindExit = exitOf(yield* Fiber.join(blindWatching))
      assert.deepStrictEqual([blindExit.outcome, blindExit.failureKind], ["Failed", "Infra"], blindExit.message)
      assert.isTrue((blindExit.message ?? "").startsWith(`Kueue deactivated its Workload (kueue-job-controller: ${KUEUE_DEACTIVATED}), and it was not reactivated within 1 s (stuckAfterMs)`), blindExit.message)
      assert.include(blindExit.message, `kubectl patch -n trex $(kubectl get workloads -n trex -l kueue.x-k8s.io/job-uid=${uid} -o name) --type=merge`)

      // reactivated in time (a user's patch of its Workload), it is admitted again and runs from its start
      const patient = yield* KubernetesBackend.make(config(fake, { stuckAfterMs: 60_000, labels: { "kueue.x-k8s.io/queue-name": "gpu-queue" } }))
      const again = yield* patient.submit(spec("reactivated", `echo started; sleep 2; ${done}`))
      assert.isTrue(fake.admit("trex", again.id))
      const deactivated = yield* Deferred.make<void>()
      const running = yield* watchUntil(patient, again, (e) => {
        if (e._tag === "State" && e.reason?.startsWith("Deactivated by Kueue") === true) Deferred.doneUnsafe(deactivated, Effect.void)
        return e._tag === "Log" && e.line === "started"
      })
      assert.isTrue(fake.deactivate("trex", again.id))
      yield* Deferred.await(deactivated)
      const custom = fake.kubeConfig().makeApiClient(CustomObjectsApi)
      const name = fake.list("workloads", "trex").find((w) => w.metadata.labels?.[K.KUEUE_JOB_UID_LABEL] === fake.get("jobs", "trex", again.id)!.metadata.uid)!.metadata.name
      assert.isFalse(fake.admit("trex", again.id), "an inactive workload is not admitted")
      yield* Effect.promise(() =>
        custom.patchNamespacedCustomObject({ group: "kueue.x-k8s.io", version: "v1beta1", namespace: "trex", plural: "workloads", name, body: [{ op: "replace", path: "/spec/active", value: true }] })
      )
      assert.isTrue(fake.admit("trex", again.id))
      const exitAgain = exitOf(yield* Fiber.join(running))
      assert.deepStrictEqual([exitAgain.outcome, exitAgain.result], ["Succeeded", { metrics: {}, primary: 1 }], exitAgain.message)
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a Job Kueue deletes by its retention of a workload it deactivated (afterDeactivatedByKueue), before stuckAfterMs: Failed / Infra saying so, not Cancelled, for a controller that looks later too", () =>
    Effect.gen(function*() {
      // Kueue's objectRetentionPolicies.workloads.afterDeactivatedByKueue: 1 s, shorter than the backend's stuckAfterMs
      const { backend, ref, watching, workload, fake } = yield* admittedKueueJob("retained", { afterDeactivatedByKueueMs: 1_000 }, 60_000)
      assert.isTrue(fake.deactivate("trex", ref.id))
      const events = yield* Fiber.join(watching)
      // before: Cancelled, `Job ... was deleted before it finished`, as if a user had cancelled it
      const exit = assertDeactivated(
        events,
        workload,
        "deleted its Job once it had been inactive for Kueue's objectRetentionPolicies.workloads.afterDeactivatedByKueue " +
          "(kueue-job-controller: Deleted job: deactivation retention period expired), before stuckAfterMs (60 s)."
      )
      assert.include(states(events).join("\n"), `Pending Deactivated by Kueue (${KUEUE_DEACTIVATED})`)
      // a controller that looks later (a resumed run) reads the same end, from the tombstone the watch wrote
      const later = yield* KubernetesBackend.make(config(fake))
      assert.strictEqual((yield* Backend.awaitExit(later, ref)).message, exit.message)
      // and a fresh list shows it finished: the tombstone keeps its run and node, as its Job said them
      assert.deepStrictEqual((yield* later.list("k8s-run/1")).find((j) => j.ref.id === ref.id)?.labels, { run: "k8s-run/1", node: "retained" })

      // deleted while no controller watched it (no tombstone): a controller that looks then reads Kueue's Events
      const unwatched = yield* backend.submit(spec("retained-unwatched", "echo started; sleep 30"))
      assert.isTrue(fake.admit("trex", unwatched.id))
      yield* eventually("its pod runs", () => podRuns(fake, unwatched.id))
      assert.isTrue(fake.deactivate("trex", unwatched.id))
      yield* eventually("Kueue deleted its Job and said so", () =>
        fake.get("jobs", "trex", unwatched.id) === undefined &&
        fake.list("events", "trex").some((e) => e.involvedObject.name === unwatched.id && e.reason === "Deleted"))
      const found = yield* Backend.awaitExit(later, unwatched)
      assert.deepStrictEqual([found.outcome, found.failureKind], ["Failed", "Infra"], found.message)
      assert.isTrue(
        (found.message ?? "").startsWith(
          `Kueue deactivated its Workload (kueue-job-controller: ${KUEUE_DEACTIVATED}), and deleted its Job once it had been inactive for Kueue's objectRetentionPolicies.workloads.afterDeactivatedByKueue`
        ),
        found.message
      )
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a Job suspended by hand (no batch queue) before its pod was made says so, since when, and how to resume it, to a controller that begins while it is suspended too; past stuckAfterMs it is said again in the log, not taken back; it runs once resumed", () => {
    const logged: Array<string> = []
    return Effect.gen(function*() {
      // a quota full for now: the Job's controller makes no pod yet
      const fake = yield* fakeWith({ podQuota: 0 })
      // stuckAfterMs short: a hand suspension outlasts it, waited for without a bound, and said again in the log
      const backend = yield* KubernetesBackend.make(config(fake, { stuckAfterMs: 1_000 }))
      const ref = yield* backend.submit(spec("suspended-by-hand", done))
      const batch = fake.kubeConfig().makeApiClient(BatchV1Api)
      // `kubectl patch job <name> -p '{"spec":{"suspend":true}}'`, by a person
      const suspend = (value: boolean) =>
        Effect.promise(() => batch.patchNamespacedJob({ name: ref.id, namespace: "trex", body: [{ op: "replace", path: "/spec/suspend", value }] }))
      yield* eventually("its controller was refused its pod", () => fake.list("events", "trex").some((e) => e.reason === "FailedCreate"))
      yield* suspend(true)
      // since when, as its controller recorded it (its `Suspended` condition), in whole seconds: it is waited for without a bound
      yield* eventually("its controller saw it suspended", () =>
        fake.get("jobs", "trex", ref.id)!.status.conditions?.some((c: { type: string; status: string }) => c.type === "Suspended" && c.status === "True") === true)
      const since = new Date(fake.get("jobs", "trex", ref.id)!.status.conditions.find((c: { type: string }) => c.type === "Suspended").lastTransitionTime).toISOString().replace(/\.\d+Z$/, "Z")
      const byHand = `Pending Suspended by hand since ${since} (spec.suspend: true, not by a batch queue: no Kueue Workload of it, no Stopped Event): its Job makes no pod, ` +
        `and the trial runs once the Job is resumed (\`kubectl patch job -n trex ${ref.id} --type=merge -p '{"spec":{"suspend":false}}'\`)`
      const shown = (e: Backend.JobEvent) => e._tag === "State" && e.reason?.startsWith(`Suspended by hand since ${since}`) === true
      const watching = yield* watchUntil(backend, ref, shown)
      // a controller that begins now (a `trex resume`) says the same
      const later = yield* KubernetesBackend.make(config(fake, { stuckAfterMs: 1_000 }))
      const laterWatching = yield* watchUntil(later, ref, shown)
      yield* eventually("the log says it is still suspended by hand, since when", () =>
        logged.some((l) => l.startsWith(`Warn: kubernetes: Job ${ref.id} is still suspended by hand since ${since}, waited for without a bound`)))
      fake.setPodQuota(undefined)
      yield* suspend(false)
      for (const events of [yield* Fiber.join(watching), yield* Fiber.join(laterWatching)]) {
        const exit = exitOf(events)
        assert.strictEqual(exit.outcome, "Succeeded", exit.message)
        const said = states(events)
        assert.include(said, byHand, JSON.stringify(said))
        assert.include(said.slice(said.indexOf(byHand)), "Running", JSON.stringify(said))
      }
    }).pipe(Effect.scoped, Effect.provide(Logger.layer([Logger.make((o) => void logged.push(`${o.logLevel}: ${String(o.message)}`))])))
  }, { timeout: 60_000 })

  it.live("a PriorityClass that is not there: trex check fails on the pod's dry run; a run's trial is taken back after stuckAfterMs naming it; one that is there runs", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith({ priorityClasses: ["low-priority"] })
      const missing = yield* KubernetesBackend.make(config(fake, { stuckAfterMs: 1_500, priorityClassName: "low-priorty" }))
      const found = yield* missing.preflight!(spec("check", done))
      assert.deepStrictEqual(found.map((c) => `${c.severity}: ${c.message}`), [
        `fail: the API server would refuse a trial's pod (a dry run): pods "trex-check-check-pod" is forbidden: no PriorityClass with name low-priorty was found`
      ])
      const exit = yield* Backend.awaitExit(missing, yield* missing.submit(spec("no-class", done)))
      assert.deepStrictEqual([exit.outcome, exit.failureKind, exit.retryable], ["Failed", "Infra", false])
      assert.strictEqual(exit.message, "its pod could not start within 2 s (stuckAfterMs): FailedCreate: no PriorityClass with name low-priorty was found; its Job was deleted")
      const fine = yield* KubernetesBackend.make(config(fake, { priorityClassName: "low-priority" }))
      assert.deepStrictEqual(yield* fine.preflight!(spec("check", done)), [])
      assert.strictEqual((yield* Backend.run(fine, spec("with-class", done))).outcome, "Succeeded")
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

describe("KubernetesBackend when a batch queue suspends a running Job (Kueue's preemption)", () => {
  /**
   * A person suspends the Job (`kubectl patch job`); once its controller has seen it, the stand-in's clock, held since
   * Kueue admitted the Job, is let go (`release`). Its Workload, whose `Admitted` is of the Job's `Suspended` second.
   */
  const suspendByHand = (fake: FakeKubeApi.FakeKubeApi, name: string, release: () => void) =>
    Effect.gen(function*() {
      const batch = fake.kubeConfig().makeApiClient(BatchV1Api)
      yield* Effect.promise(() => batch.patchNamespacedJob({ name, namespace: "trex", body: [{ op: "replace", path: "/spec/suspend", value: true }] }))
      const job = () => fake.get("jobs", "trex", name)!
      yield* eventually("its controller says it is suspended", () => job().status.conditions.some((c: { type: string; status: string }) => c.type === "Suspended" && c.status === "True"))
      release()
      const wl = fake.list("workloads", "trex").find((w) => w.metadata.labels?.[K.KUEUE_JOB_UID_LABEL] === job().metadata.uid)!
      const admitted = wl.status.conditions.find((c: { type: string }) => c.type === "Admitted").lastTransitionTime
      const suspended = job().status.conditions.find((c: { type: string }) => c.type === "Suspended").lastTransitionTime
      assert.strictEqual(suspended, admitted, "the admission and the suspension in one second")
      return wl
    })

  // Kueue preempts a trial by suspending its Job: the Job's controller deletes its pod, not counted failed (its tracking
  // finalizer taken off first), and makes a new one once Kueue admits the Job again. The trial waits in the queue again:
  // not failed (its retry would run the strategy twice, beside the resumed Job), and the result is the new pod's.
  const KUEUE = "Preempted to accommodate a workload (UID: 9f54, JobUID: 2a7c) due to prioritization in the ClusterQueue; preemptor path: /gpu/high; preemptee path: /gpu/low"
  const suspendedReason = (r: string | undefined) => r !== undefined && r.startsWith("Suspended (")

  it.live("a Job suspended by hand after Kueue's stop was lifted (resumed since): not said to be Kueue's, and Kueue, which admits its Workload, resumes it", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith({ suspendJobs: true })
      const backend = yield* KubernetesBackend.make(config(fake, { labels: { "kueue.x-k8s.io/queue-name": "gpu-queue" } }))
      // each pod runs until the test lets the last one end (a fixed sleep ran to its end in the third)
      const go = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "trex-k8s-by-hand-")), "go")
      const ref = yield* backend.submit(spec("stopped-then-by-hand", `echo started; while [ ! -e ${go} ]; do sleep 0.1; done; ${done}`))
      assert.isTrue(fake.admit("trex", ref.id))
      const seen: Array<Backend.JobEvent> = []
      const watching = yield* Effect.forkChild(backend.watch(ref).pipe(Stream.tap((e) => Effect.sync(() => seen.push(e))), Stream.runCollect, Effect.map((c) => Array.from(c))))
      const started = () => seen.filter((e) => e._tag === "Log" && e.line === "started").length
      yield* eventually("its first pod started", () => started() === 1)
      // Kueue preempts it (its `Stopped` Event), then admits it again: its controller's `Resumed`, in a later second
      assert.isTrue(fake.suspend("trex", ref.id, KUEUE))
      yield* eventually("its watch says Kueue stopped it", () => seen.some((e) => e._tag === "State" && e.reason?.startsWith("Suspended (kueue-job-controller: Preempted") === true))
      const stoppedAt = Date.parse(fake.list("events", "trex").find((e) => e.involvedObject.name === ref.id && e.reason === "Stopped")!.lastTimestamp)
      yield* eventually("a second after the stop's (the Events' times are whole seconds)", () => Math.floor(Date.now() / 1000) > Math.floor(stoppedAt / 1000))
      assert.isTrue(fake.admit("trex", ref.id))
      yield* eventually("its second pod started", () => started() === 2)
      // in a later second than its admission (the whole-second rule; one in the admission's own second is the next test's)
      const admittedAt = Date.parse(fake.list("workloads", "trex").find((w) => w.metadata.labels?.[K.KUEUE_JOB_UID_LABEL] === fake.get("jobs", "trex", ref.id)!.metadata.uid)!
        .status.conditions.find((c: { type: string }) => c.type === "Admitted").lastTransitionTime)
      yield* eventually("a second after its admission's", () => Math.floor(Date.now() / 1000) > Math.floor(admittedAt / 1000))
      // a person suspends it (`kubectl patch job`), while Kueue admits its Workload
      const batch = fake.kubeConfig().makeApiClient(BatchV1Api)
      yield* Effect.promise(() => batch.patchNamespacedJob({ name: ref.id, namespace: "trex", body: [{ op: "replace", path: "/spec/suspend", value: true }] }))
      // once its second pod is taken back (deleted), the third may end
      yield* eventually("its watch says it was suspended by hand", () => seen.some((e) => e._tag === "State" && e.reason?.startsWith("Suspended by hand") === true))
      yield* eventually("its second pod is gone", () => fake.list("pods", "trex").filter((p) => p.metadata.labels?.[K.JOB_LABEL] === ref.id).length <= 1 && started() === 2)
      fs.writeFileSync(go, "")
      const events = yield* Fiber.join(watching)
      fs.rmSync(path.dirname(go), { recursive: true, force: true })
      const exit = exitOf(events)
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
      const workload = fake.list("workloads", "trex").find((w) => w.metadata.labels?.[K.KUEUE_JOB_UID_LABEL] === fake.get("jobs", "trex", ref.id)!.metadata.uid)!.metadata.name
      const said = states(events)
      // before, the lifted stop was read as the cause: `Suspended (kueue-job-controller: Preempted ...)` a second time
      assert.strictEqual(said.filter((s) => s.startsWith("Pending Suspended (kueue-job-controller: Preempted")).length, 1, JSON.stringify(said))
      assert.include(
        said,
        `Pending Suspended by hand (spec.suspend: true while Kueue admits its Workload ${workload}: not by Kueue, which resumes the Job): its pod is deleted, ` +
          "and the trial runs from its start in a new pod once the Job is resumed",
        JSON.stringify(said)
      )
      assert.strictEqual(started(), 3)
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a Job suspended by hand in the second Kueue admitted it: told from Kueue's hold by the Job's Events' order, and resumed by Kueue", () =>
    Effect.gen(function*() {
      // the API server's clock held from the admission until its controller has seen the Job suspended: the Workload's
      // `Admitted` and the Job's `Suspended` conditions are stamped in one second, whatever the machine's load
      let held: number | undefined
      const fake = yield* fakeWith({ suspendJobs: true, clock: () => held ?? Date.now() })
      const backend = yield* KubernetesBackend.make(config(fake, { labels: { "kueue.x-k8s.io/queue-name": "gpu-queue" } }))
      const ref = yield* backend.submit(spec("by-hand-same-second", done))
      const watching = yield* watchUntil(backend, ref, (e) => e._tag === "State")
      // Kueue admits the Job, and a person at once suspends it (`kubectl patch job`) as its pod is made
      held = Date.now()
      assert.isTrue(fake.admit("trex", ref.id))
      const wl = yield* suspendByHand(fake, ref.id, () => void (held = undefined))
      const events = yield* Fiber.join(watching)
      const exit = exitOf(events)
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
      // (without the Events' order: `Suspended (spec.suspend set: by a batch queue such as Kueue, or a user)`)
      assert.include(
        states(events),
        `Pending Suspended by hand (spec.suspend: true while Kueue admits its Workload ${wl.metadata.name}: not by Kueue, which resumes the Job): ` +
          "its pod is deleted, and the trial runs from its start in a new pod once the Job is resumed",
        JSON.stringify(states(events))
      )
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a Job Kueue started before its controller first saw it, suspended by hand in the second Kueue admitted it: told by its watch, which saw it started (its Events cannot tell)", () =>
    Effect.gen(function*() {
      // the API server's clock held from the admission (as the Job is made) until its controller has seen it suspended
      let held: number | undefined = Date.now()
      // (Kueue undoes the suspension once the watch has looked again why it waits, by the controller's condition)
      const fake = yield* fakeWith({ suspendJobs: true, admitAtCreate: true, kueueResumeMs: 3_500, clock: () => held ?? Date.now() })
      const backend = yield* KubernetesBackend.make(config(fake, { labels: { "kueue.x-k8s.io/queue-name": "gpu-queue" } }))
      // its first pod runs until it is taken back; the one made once Kueue resumes the Job succeeds at once
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-unsynced-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const ran = path.join(dir, "ran")
      const ref = yield* backend.submit(spec("by-hand-unsynced", `if [ -e ${ran} ]; then ${done}; else touch ${ran}; echo started; sleep 30; fi`))
      const watching = yield* watchStarted(backend, ref)
      const wl = yield* suspendByHand(fake, ref.id, () => void (held = undefined))
      // its controller's first Suspended, after Kueue's Started, with no Resumed: as a creation's written late
      const events = fake.list("events", "trex").filter((e) => e.involvedObject.name === ref.id).map((e) => `${e.reason} ${e.count}`)
      assert.deepStrictEqual(events.filter((e) => /^(Started|Suspended|Resumed) /.test(e)), ["Started 1", "Suspended 1"])
      const watched = yield* Fiber.join(watching)
      const exit = exitOf(watched)
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
      // (without what the watch saw, its look again says `Suspended (by Kueue): ...`)
      assert.deepStrictEqual(
        states(watched).filter((st) => st.startsWith("Pending Suspended")),
        [
          `Pending Suspended by hand (spec.suspend: true while Kueue admits its Workload ${wl.metadata.name}: not by Kueue, which resumes the Job): ` +
          "its pod is deleted, and the trial runs from its start in a new pod once the Job is resumed"
        ],
        JSON.stringify(states(watched))
      )
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("its watch says it waits in the queue again and by whom, then follows the new pod: the new pod's result, once; so does a controller that begins while it is suspended", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith()
      const backend = yield* KubernetesBackend.make(config(fake))
      // the first pod writes a result of 0 and is stopped before it writes 1 (its wrapper prints the 0 on SIGTERM)
      const script = `echo started; echo '{"metrics":{},"primary":0}' > result.json; sleep 3; echo '{"metrics":{},"primary":1}' > result.json; echo finished`
      const ref = yield* backend.submit(spec("preempted-by-queue", script, { resources: { gpus: 1, cpus: 1 } }))
      const watching = yield* watchStarted(backend, ref)
      const first = podOf(fake, ref.id)!.metadata.name
      assert.isTrue(fake.suspend("trex", ref.id, KUEUE))
      yield* eventually("its first pod is gone", () => fake.get("pods", "trex", first) === undefined)
      // a controller that begins now (a `trex resume`) finds it waiting in the queue
      const later = yield* KubernetesBackend.make(config(fake))
      const laterWatching = yield* watchUntil(later, ref, (e) => e._tag === "State")
      assert.isFalse(fake.get("jobs", "trex", ref.id)!.status.conditions.some((c: { type: string }) => c.type === "Failed" || c.type === "FailureTarget"), "a suspended Job is not failed")
      assert.isTrue(fake.admit("trex", ref.id))
      const watched = [yield* Fiber.join(watching), yield* Fiber.join(laterWatching)]
      // the GPU the first pod held while it ran counts, as the watch that saw it run knows
      const seen = exitOf(watched[0]!)
      assert.isAbove(seen.gpuSeconds, seen.wallSeconds, JSON.stringify(seen))
      for (const events of watched) {
        const exit = exitOf(events)
        assert.strictEqual(exit.outcome, "Succeeded", exit.message)
        assert.deepStrictEqual(exit.result, { metrics: {}, primary: 1 }, JSON.stringify(exit))
        assert.include(exit.logTail, "finished")
        const said = states(events)
        const waiting = said.findIndex((st) => suspendedReason(st.replace(/^Pending /, "")))
        assert.isAtLeast(waiting, 0, JSON.stringify(said))
        // who and why first (`trex status` shows 120 characters), without the workloads' UIDs and paths
        assert.strictEqual(said[waiting]!.slice(0, 128), "Pending Suspended (kueue-job-controller: Preempted to accommodate a workload due to prioritization in the ClusterQueue): its Job")
        assert.include(said.slice(waiting + 1), "Running", JSON.stringify(said))
      }
      // the first pod never counted failed, one Job: the strategy ran in it twice only as the queue made it
      assert.strictEqual(fake.get("jobs", "trex", ref.id)!.status.failed, 0)
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a suspension lifted before the Job's controller deleted the pod: the pod runs on, and the trial is shown running again, with its result", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith()
      const backend = yield* KubernetesBackend.make(config(fake))
      const ref = yield* backend.submit(spec("suspended-briefly", `echo started; sleep 2; ${done}`))
      const watching = yield* watchStarted(backend, ref)
      const pod = podOf(fake, ref.id)!.metadata.name
      // suspended and resumed at once: the Job's controller, which acts after, finds it not suspended and keeps the pod
      assert.isTrue(fake.suspend("trex", ref.id))
      assert.isTrue(fake.admit("trex", ref.id))
      const events = yield* Fiber.join(watching)
      const exit = exitOf(events)
      assert.deepStrictEqual([exit.outcome, exit.result], ["Succeeded", { metrics: {}, primary: 1 }], JSON.stringify(exit))
      assert.strictEqual(podOf(fake, ref.id)!.metadata.name, pod, "the same pod ran to its end")
      const said = states(events)
      assert.strictEqual(said.at(-1), "Running", JSON.stringify(said))
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a drain withdraws a suspended Job whose pod is still terminating, and another controller reads it waiting, not running", () =>
    Effect.gen(function*() {
      // a pod that ignores SIGTERM terminates for its whole grace period
      const fake = yield* fakeWith({ gracePeriodMs: 6000 })
      const backend = yield* KubernetesBackend.make(config(fake))
      const ref = yield* backend.submit(spec("suspended-withdrawn", "trap '' TERM; echo started; sleep 60"))
      const core = fake.kubeConfig().makeApiClient(CoreV1Api)
      yield* eventually("its job has begun (its SIGTERM ignored)", () => podRuns(fake, ref.id))
      yield* eventually("its job has begun (its SIGTERM ignored)", Effect.promise(() => core.readNamespacedPodLog({ name: podOf(fake, ref.id)!.metadata.name, namespace: "trex" })).pipe(Effect.map((log) => log.includes("started"))))
      assert.isTrue(fake.suspend("trex", ref.id))
      yield* eventually("its pod is terminating", () => podOf(fake, ref.id)?.metadata.deletionTimestamp !== undefined)
      const other = yield* KubernetesBackend.make(config(fake))
      const watching = yield* watchUntil(other, ref, (e) => e._tag === "State")
      assert.isDefined(podOf(fake, ref.id)?.metadata.deletionTimestamp, "still terminating")
      // listed waiting, as a resumed run reconciles it
      assert.strictEqual((yield* other.list("k8s-run/1")).find((j) => j.ref.id === ref.id)?.state, "Pending")
      assert.isTrue(yield* backend.withdraw!(ref))
      const events = yield* Fiber.join(watching)
      assert.strictEqual(exitOf(events).outcome, "Cancelled")
      assert.isTrue(suspendedReason(states(events)[0]?.replace(/^Pending /, "")), JSON.stringify(states(events)))
      assert.notInclude(states(events), "Running")
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

describe("KubernetesBackend when another controller reads a job this one withdrew", () => {
  // The Job's controller counts the deleted pod as failed and, with backoffLimit 0, fails the Job before it is deleted.
  it.live("another controller watching a job this one withdraws reads it withdrawn (Cancelled), not Failed for the pod the Job's controller counts failed", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith()
      const backend = yield* KubernetesBackend.make(config(fake))
      const ref = yield* backend.submit(spec("withdrawn-elsewhere", done, { resources: { gpus: 3, cpus: 1 } }))
      // a second controller (a second `trex resume`) that has seen it wait for a node
      const other = yield* KubernetesBackend.make(config(fake))
      const watching = yield* watchUntil(other, ref, (e) => e._tag === "State" && e.reason === "Unschedulable")
      assert.isTrue(yield* backend.withdraw!(ref))
      const exit = exitOf(yield* Fiber.join(watching))
      assert.deepStrictEqual([exit.outcome, exit.message], ["Cancelled", `Job ${ref.id} was withdrawn before its pod started`])
      // a user who may not patch Jobs withdraws all the same, unmarked
      const unmarked = yield* fakeWith({ denied: ["patch jobs"] })
      const plain = yield* KubernetesBackend.make(config(unmarked))
      const job = yield* plain.submit(spec("withdrawn-unmarked", done, { resources: { gpus: 3, cpus: 1 } }))
      yield* eventually("its pod waits for a node", () => podUnschedulable(unmarked, job.id))
      assert.isTrue(yield* plain.withdraw!(job))
      assert.strictEqual((yield* Backend.awaitExit(plain, job)).outcome, "Cancelled")
      // a user who may patch Jobs but not delete pods: the withdraw fails, and takes its mark back off
      const undeletable = yield* fakeWith({ denied: ["delete pods"] })
      const refused = yield* KubernetesBackend.make(config(undeletable))
      const kept = yield* refused.submit(spec("withdraw-refused", done, { resources: { gpus: 3, cpus: 1 } }))
      yield* eventually("its pod waits for a node", () => podUnschedulable(undeletable, kept.id))
      const failure = yield* Effect.flip(refused.withdraw!(kept))
      assert.include(failure.message, "HTTP 403")
      assert.isUndefined(undeletable.get("jobs", "trex", kept.id)?.metadata.annotations?.[K.WITHDRAWN_ANNOTATION])
      yield* refused.cancel(kept)
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a mark a controller left as it stopped mid-withdrawal (not journaled, so the resumed run reattaches): its pod deleted, the withdrawal is finished (Job deleted, tombstone); its pod not deleted, the mark is taken off and the pod's own failure read as such", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith()
      const batch = fake.kubeConfig().makeApiClient(BatchV1Api)
      const core = fake.kubeConfig().makeApiClient(CoreV1Api)
      const backend = yield* KubernetesBackend.make(config(fake))
      /** A job whose pod waits for a node, marked as a withdraw marks it (`at` its time), as a controller stopped then leaves it. */
      const marked = (node: string, at: Date) =>
        Effect.gen(function*() {
          const ref = yield* backend.submit(spec(node, done, { resources: { gpus: 3, cpus: 1 } }))
          yield* eventually("its pod waits for a node", () => podUnschedulable(fake, ref.id))
          const pod = podOf(fake, ref.id)!
          const mark = JSON.stringify({ pod: pod.metadata.uid, at: at.toISOString() })
          yield* Effect.promise(() => batch.patchNamespacedJob({ name: ref.id, namespace: "trex", body: [{ op: "add", path: "/metadata/annotations/trex.dev~1withdrawn", value: mark }] }))
          return { ref, pod: pod.metadata.name }
        })
      const markOn = (job: string) => fake.get("jobs", "trex", job)?.metadata.annotations?.[K.WITHDRAWN_ANNOTATION]

      // stopped after it deleted the pod: the Job's controller fails the Job; a resumed run's watch finishes the withdrawal
      const gone = yield* marked("withdrawal-unfinished", new Date())
      yield* Effect.promise(() => core.deleteNamespacedPod({ name: gone.pod, namespace: "trex", gracePeriodSeconds: 0 }))
      yield* eventually("its Job failed", () => fake.get("jobs", "trex", gone.ref.id)?.status.conditions?.some((c: { type: string }) => c.type === "Failed") === true)
      const resumed = yield* KubernetesBackend.make(config(fake))
      const exit = yield* Backend.awaitExit(resumed, gone.ref)
      assert.deepStrictEqual([exit.outcome, exit.message], ["Cancelled", `Job ${gone.ref.id} was withdrawn before its pod started`])
      yield* eventually("its Job is deleted", () => fake.get("jobs", "trex", gone.ref.id) === undefined)
      assert.isDefined(fake.get("configmaps", "trex", `${gone.ref.id}-cancelled`), "its tombstone")
      // so a controller that looks once the Job is gone reads it cancelled, not lost
      assert.strictEqual((yield* Backend.awaitExit(yield* KubernetesBackend.make(config(fake)), gone.ref)).outcome, "Cancelled")

      // stopped before it deleted the pod (the mark older than a request): the mark is taken off, and the pod's own failure
      // before it ran (here a `kubectl delete pod`) is read as such, by every controller
      const left = yield* marked("withdrawal-never-done", new Date(Date.now() - 120_000))
      const watching = yield* watchUntil(resumed, left.ref, (e) => e._tag === "State" && e.reason === "Unschedulable")
      yield* eventually("the mark is taken off", () => markOn(left.ref.id) === undefined)
      yield* Effect.promise(() => core.deleteNamespacedPod({ name: left.pod, namespace: "trex" }))
      const own = exitOf(yield* Fiber.join(watching))
      assert.deepStrictEqual([own.outcome, own.failureKind], ["Failed", "Infra"], own.message)
      assert.match(own.message ?? "", /^job failed without running: BackoffLimitExceeded/)
      assert.strictEqual((yield* Backend.awaitExit(yield* KubernetesBackend.make(config(fake)), left.ref)).outcome, "Failed")

      // the same while a watch of it runs (another controller marked it and deleted its pod, then stopped)
      const watched = yield* backend.submit(spec("withdrawal-while-watched", done, { resources: { gpus: 3, cpus: 1 } }))
      const other = yield* KubernetesBackend.make(config(fake))
      const watchedWatching = yield* watchUntil(other, watched, (e) => e._tag === "State" && e.reason === "Unschedulable")
      const watchedPod = podOf(fake, watched.id)!
      yield* Effect.promise(() =>
        batch.patchNamespacedJob({ name: watched.id, namespace: "trex", body: [{ op: "add", path: "/metadata/annotations/trex.dev~1withdrawn", value: JSON.stringify({ pod: watchedPod.metadata.uid, at: new Date().toISOString() }) }] })
      )
      yield* Effect.promise(() => core.deleteNamespacedPod({ name: watchedPod.metadata.name, namespace: "trex", gracePeriodSeconds: 0 }))
      assert.deepStrictEqual(exitOf(yield* Fiber.join(watchedWatching)).outcome, "Cancelled")
      yield* eventually("its Job is deleted", () => fake.get("jobs", "trex", watched.id) === undefined)
      assert.isDefined(fake.get("configmaps", "trex", `${watched.id}-cancelled`), "its tombstone")

      // a mark younger than a request may be another controller's withdraw in progress: taken off once it is a request old
      const young = yield* marked("withdrawal-in-progress", new Date())
      const quick = yield* KubernetesBackend.make(config(fake, { requestTimeoutMs: 2_000 }))
      const youngWatching = yield* watchUntil(quick, young.ref, (e) => e._tag === "State" && e.reason === "Unschedulable")
      yield* eventually("the mark is taken off", () => markOn(young.ref.id) === undefined)
      // and one put on while the watch runs, its pod never deleted
      const again = JSON.stringify({ pod: podOf(fake, young.ref.id)!.metadata.uid, at: new Date().toISOString() })
      yield* Effect.promise(() => batch.patchNamespacedJob({ name: young.ref.id, namespace: "trex", body: [{ op: "add", path: "/metadata/annotations/trex.dev~1withdrawn", value: again }] }))
      assert.strictEqual(markOn(young.ref.id), again)
      yield* eventually("the mark is taken off", () => markOn(young.ref.id) === undefined)
      yield* quick.cancel(young.ref)
      assert.strictEqual(exitOf(yield* Fiber.join(youngWatching)).outcome, "Cancelled")
    }).pipe(Effect.scoped), { timeout: 60_000 })

})

describe("KubernetesBackend tombstones", () => {
  it.live("a cancelled job's tombstone carries labels of its own and the run's: the documented cleanup selects tombstones only", () =>
    Effect.gen(function*() {
      const fake = yield* Fake
      const backend = yield* KubernetesBackend.make(config(fake))
      const cancelled = yield* backend.submit(spec("tomb-cancel", "sleep 60"))
      yield* backend.cancel(cancelled)
      assert.strictEqual((yield* Backend.awaitExit(backend, cancelled)).outcome, "Cancelled")
      // another run's job, still running, with its spec ConfigMap mounted
      const other = yield* backend.submit(spec("tomb-other", "sleep 60", { labels: { run: "k8s-run/2", node: "n1" } }))
      const core = fake.kubeConfig().makeApiClient(CoreV1Api)
      const names = (labelSelector: string) =>
        Effect.promise(() => core.listNamespacedConfigMap({ namespace: "trex", labelSelector })).pipe(Effect.map((l) => l.items.map((c) => c.metadata!.name!).sort()))
      // what docs/backends.md tells users to delete: every tombstone, or one run's
      assert.deepStrictEqual(yield* names(K.TOMBSTONE_LABEL), [`${cancelled.id}-cancelled`])
      assert.deepStrictEqual(yield* names(`${K.TOMBSTONE_LABEL},${K.RUN_LABEL}=${K.labelValue("k8s-run/1")}`), [`${cancelled.id}-cancelled`])
      assert.deepStrictEqual(yield* names(`${K.TOMBSTONE_LABEL},${K.RUN_LABEL}=${K.labelValue("k8s-run/2")}`), [])
      // the running job's spec ConfigMap is not a tombstone
      assert.isDefined(fake.get("configmaps", "trex", other.id))
      assert.notInclude(yield* names(K.TOMBSTONE_LABEL), other.id)
      yield* backend.cancel(other)
    }).pipe(Effect.scoped))
})
