/**
 * A throwaway controller for the code agent's restart tests: runs the agent for node argv[4] of run
 * `r1` on a real local backend at `<argv[2]>/jobs`, its model the Messages API at argv[3], until the
 * test SIGKILLs it (so the jobs it started are left behind, as after a crash). argv[5], if given, is
 * what a resuming Explorer adds to the request (`{ job, jobs }`, as JSON). With `TREX_CODE_AGENT_BACKEND` set
 * (docker, slurm, gridengine, ssh) the backend is that one of `support/codeAgentBackends.ts`, under `<argv[2]>`. Each job the agent reports
 * `Submitted` is appended to `<argv[2]>/submitted-<node>.jsonl` at once, as the Explorer journals it.
 */
import { Backend, type ExecutorAgent, Fingerprint } from "@trex/core"
import { LocalBackend } from "@trex/executors"
import { Effect, Redacted, Stream } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { strategy, task } from "../../packages/agents/test/support/codeAgentToy.ts"
import { AnthropicModel, CodeAgentExecutor, Model } from "@trex/agents"
import * as Backends from "./codeAgentBackends.ts"

const [root, url, nodeId, resume] = process.argv.slice(2)
const program = Effect.scoped(Effect.gen(function*() {
  const kind = process.env["TREX_CODE_AGENT_BACKEND"] as Backends.Kind | undefined
  const backend = kind !== undefined ? yield* Backends.make(kind, root!) : yield* LocalBackend.make({ root: Path.join(root!, "jobs"), slots: 1, killGraceMs: 1000 })
  const executor = yield* CodeAgentExecutor.make({ maxTurns: 4 }).pipe(
    Effect.provideService(Model.Model, AnthropicModel.make({ apiKey: Redacted.make("sk-test"), baseURL: url! })),
    Effect.provideService(Backend.Backend, backend)
  )
  const node = { id: nodeId!, parent: "root", strategy, fingerprint: Fingerprint.of(strategy), proposedAt: 0 }
  const resumed = resume !== undefined ? JSON.parse(resume) as Partial<ExecutorAgent.ExecutionRequest> : {}
  yield* Stream.runForEach(executor.run({ task, runId: "r1", runDir: root!, node, ...resumed }), (event) =>
    Effect.sync(() => {
      if (event._tag === "Submitted") Fs.appendFileSync(Path.join(root!, `submitted-${nodeId}.jsonl`), JSON.stringify(event.job) + "\n")
    }))
  yield* Effect.never
}))
Effect.runFork(program)
