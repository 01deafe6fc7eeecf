/**
 * A search run through the SDK rather than the CLI (for what the CLI cannot wire: Claude
 * against a local server, secrets as `Redacted` job env, a custom researcher): `Explorer.run`
 * on a SQLite journal in a run directory, the template executor on the local backend.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { ClaudeResearcher, HeuristicResearcher, TemplateExecutor } from "@trex/agents"
import { type Errors, Journal, Researcher, SearchPolicy, type Task, TaskFile } from "@trex/core"
import { LocalBackend } from "@trex/executors"
import { Explorer, Uct } from "@trex/mcts"
import { Effect, Layer, Redacted } from "effect"
import * as AnthropicModel from "../../packages/agents/src/model/AnthropicModel.ts"
import * as Model from "../../packages/agents/src/model/Model.ts"
import { fixtures } from "./lib.ts"

export interface EmbeddedOptions {
  readonly task: Task.Task
  readonly runDir: string
  readonly concurrency?: number
  readonly seed?: number
  /** Claude through a Messages API at this URL with this key; else the heuristic researcher. */
  readonly claude?: { readonly url: string; readonly apiKey: string; readonly timeoutMs: number }
  /** Any other researcher. */
  readonly researcher?: Researcher.ResearcherShape
  /** Extra job environment (secrets as `Redacted`). */
  readonly env?: Record<string, string | Redacted.Redacted<string>>
  readonly distillEvery?: number
}

/** Load one of the campaign task files. */
export const loadTask = (file: string): Promise<Task.Task> =>
  Effect.runPromise(TaskFile.load(path.isAbsolute(file) ? file : path.join(fixtures, file))).then((l) => l.task)

const researcherLayer = (options: EmbeddedOptions): Layer.Layer<Researcher.Researcher, Errors.InvalidInput> => {
  if (options.researcher !== undefined) return Layer.succeed(Researcher.Researcher, options.researcher)
  if (options.claude === undefined) return HeuristicResearcher.layer()
  const model = AnthropicModel.make({
    apiKey: Redacted.make(options.claude.apiKey),
    baseURL: options.claude.url,
    model: "claude-sonnet-5-5",
    timeoutMs: options.claude.timeoutMs,
    retry: { maxRetries: 4, baseDelay: "20 millis", maxDelay: "100 millis" }
  })
  return ClaudeResearcher.layer({ researchTools: false, maxRepairs: 2 }).pipe(
    Layer.provide(Layer.mergeAll(
      Layer.succeed(Model.Model, model),
      ClaudeResearcher.ResearchTools.layer({ huggingFace: "http://127.0.0.1:9", arxiv: "http://127.0.0.1:9" })
    ))
  )
}

/** Run (or resume) a search to its end and return its summary. */
export const runEmbedded = (options: EmbeddedOptions): Promise<Explorer.Summary> => {
  const concurrency = options.concurrency ?? 2
  // the SQLite journal takes its lock file before it creates the directory
  fs.mkdirSync(options.runDir, { recursive: true })
  const layers = Layer.mergeAll(
    Journal.Journal.layerSqlite(path.join(options.runDir, "journal.sqlite")),
    Layer.succeed(SearchPolicy.SearchPolicy, Uct.make()),
    researcherLayer(options),
    TemplateExecutor.layer({ taskDir: fixtures, ...(options.env !== undefined ? { env: options.env } : {}) }).pipe(
      Layer.provide(LocalBackend.layer({ root: path.join(options.runDir, "jobs"), slots: concurrency, killGraceMs: 500 }))
    )
  )
  return Effect.runPromise(
    Explorer.run(options.task, {
      runId: path.basename(options.runDir),
      runDir: options.runDir,
      concurrency,
      seed: options.seed ?? 0,
      distillEvery: options.distillEvery ?? 4
    }).pipe(Effect.provide(layers))
  )
}
