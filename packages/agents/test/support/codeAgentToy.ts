/**
 * The toy task the code agent's tests give it (here and in the repository's
 * `test/code-agent-local.test.ts`): its task, strategy and request for node n1, a job script with a
 * typo in it, and the tool results the model received last.
 */
import { type ExecutorAgent, Fingerprint, Strategy, Task } from "@trex/core"
import { Schema } from "effect"
import type * as Fake from "./FakeAnthropicServer.ts"

export const task = Schema.decodeUnknownSync(Task.Task)({
  name: "toy",
  objective: "Learn a toy function",
  metric: { name: "accuracy", direction: "maximize" }
})

export const strategy = Strategy.decodeSync({ data: { sources: [{ name: "toy" }] }, training: { learningRate: 0.01, epochs: 2, batchSize: 4 } })

/** The request to run node n1 of run r1 in `root`. */
export const request = (root: string, withTask: Task.Task = task): ExecutorAgent.ExecutionRequest => ({
  task: withTask,
  runId: "r1",
  runDir: root,
  node: { id: "n1", parent: "root", strategy, fingerprint: Fingerprint.of(strategy), proposedAt: 0 }
})

/** A job that fails to start (a typo: `consle`), as a code agent's first draft may. */
export const broken = `import * as fs from "node:fs"\nconst s = JSON.parse(fs.readFileSync(process.env.TREX_JOB_DIR + "/strategy.json", "utf8"))\nconsle.log(s)\n`

/** The tool results of the latest request, as the model received them. */
export const lastToolResults = (r: Fake.Recorded): Array<{ is_error?: boolean; content: string }> =>
  (r.body.messages.at(-1).content as Array<any>).filter((b) => b.type === "tool_result")

/** The text of the first user message of a request: what a session tells the model at its start. */
export const firstMessage = (r: Fake.Recorded): string => {
  const content = r.body.messages[0].content as string | Array<{ type: string; text?: string }>
  return typeof content === "string" ? content : content.map((b) => b.text ?? "").join("")
}
