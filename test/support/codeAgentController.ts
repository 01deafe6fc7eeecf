/**
 * A throwaway controller for the code agent's restart tests: runs the agent for node argv[4] of run
 * `r1` on a real local backend at `<argv[2]>/jobs`, its model the Messages API at argv[3], until the
 * test SIGKILLs it (so the jobs it started are left behind, as after a crash).
 */
import { Backend, Fingerprint } from "@trex/core"
import { LocalBackend } from "@trex/executors"
import { Effect, Redacted, Stream } from "effect"
import * as Path from "node:path"
import { strategy, task } from "../../packages/agents/test/support/codeAgentToy.ts"
import { AnthropicModel, CodeAgentExecutor, Model } from "@trex/agents"

const [root, url, nodeId] = process.argv.slice(2)
const program = Effect.scoped(Effect.gen(function*() {
  const backend = yield* LocalBackend.make({ root: Path.join(root!, "jobs"), slots: 1, killGraceMs: 1000 })
  const executor = yield* CodeAgentExecutor.make({ maxTurns: 4 }).pipe(
    Effect.provideService(Model.Model, AnthropicModel.make({ apiKey: Redacted.make("sk-test"), baseURL: url! })),
    Effect.provideService(Backend.Backend, backend)
  )
  const node = { id: nodeId!, parent: "root", strategy, fingerprint: Fingerprint.of(strategy), proposedAt: 0 }
  yield* Stream.runDrain(executor.run({ task, runId: "r1", runDir: root!, node }))
  yield* Effect.never
}))
Effect.runFork(program)
