/**
 * What the tests of the batch-scheduler backends (Slurm, Grid Engine) share: a job spec of a shell
 * script in one run, a watch collected whole, and its one Exit.
 */
import { assert } from "@effect/vitest"
import type { Backend } from "@trex/core"
import { Effect, Stream } from "effect"

/** A job of run `run` that runs `script` with `/bin/sh -c`, with a strategy file and one CPU. */
export const specIn = (run: string) => (node: string, script: string, extra: Partial<Backend.JobSpec> = {}): Backend.JobSpec => ({
  name: `trex-${node}`,
  argv: ["/bin/sh", "-c", script, "job"],
  env: {},
  files: [{ path: "strategy.json", content: JSON.stringify({ lr: 0.1 }) }],
  resources: { gpus: 0, cpus: 1 },
  labels: { run, node },
  ...extra
})

/** Every event of a job's watch, to its end. */
export const collect = (backend: Backend.BackendShape, ref: Parameters<Backend.BackendShape["watch"]>[0]) =>
  Stream.runCollect(backend.watch(ref)).pipe(Effect.map((c) => Array.from(c)))

/** The one Exit of a watch's events, which is their last. */
export const exitOf = (events: ReadonlyArray<Backend.JobEvent>): Backend.JobExit => {
  const exits = events.filter((e): e is Backend.JobExit => e._tag === "Exit")
  assert.strictEqual(exits.length, 1)
  assert.strictEqual(events.at(-1), exits[0])
  return exits[0]!
}
