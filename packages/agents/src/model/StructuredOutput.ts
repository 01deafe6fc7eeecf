/**
 * Structured output through tool use: the answer is a tool whose input JSON Schema comes from
 * an effect `Schema`. The model may first call research tools; when it calls the answer tool
 * its input is decoded (and checked with `check`, when given), and every issue, each with its
 * path, goes back as an `is_error` tool result asking for a repair — a bounded number of times —
 * before failing with a {@link StructuredOutputError} that keeps the paths. An answer cut off at
 * `maxTokens` (stop reason `max_tokens`) is reported as cut off, not by the keys the cut left out;
 * one the model declined (stop reason `refusal`), or cut off by the model's context window
 * (`model_context_window_exceeded`), fails at once, not retryable.
 *
 * @since 0.1.0
 */
import { TaskFile } from "@trex/core"
import { Effect, Schema } from "effect"
import * as Model from "./Model.ts"

/**
 * The model never produced a valid answer within its repairs or turns. `retryable`: whether asking
 * again from the start may succeed — true for answers that did not decode (a model answers
 * differently each time), false when the last answer was cut off at `maxTokens` (it would be cut
 * again: raise `maxTokens`), the model declined to answer (stop reason `refusal`) or the prompt filled
 * the model's context window (`model_context_window_exceeded`).
 * @since 0.1.0 @category errors
 */
export class StructuredOutputError extends Schema.TaggedError<StructuredOutputError>()("StructuredOutputError", {
  tool: Schema.String,
  message: Schema.String,
  attempts: Schema.Int,
  retryable: Schema.Boolean
}) {}

/** A client-side tool the model may call on the way: its definition and what it does. @since 0.1.0 @category models */
export interface ToolHandler<R = never> {
  readonly definition: Model.ToolDefinition
  /** The text returned to the model; a failure becomes an `is_error` result. */
  readonly run: (input: unknown) => Effect.Effect<string, string, R>
}

/**
 * The JSON Schema of a schema's encoded form, as a tool `input_schema` (definitions inlined
 * under `$defs`).
 * @since 0.1.0 @category conversions
 */
export const inputSchema = (schema: Schema.Top): Record<string, unknown> => {
  const doc = Schema.toJsonSchemaDocument(schema)
  const defs = doc.definitions as Record<string, unknown>
  return { ...(doc.schema as Record<string, unknown>), ...(Object.keys(defs).length > 0 ? { $defs: defs } : {}) }
}

/** @since 0.1.0 @category models */
export interface Options<S extends Schema.Top, R = never> {
  readonly schema: S
  /** The answer tool's name and description. */
  readonly name: string
  readonly description: string
  readonly system: string
  readonly messages: ReadonlyArray<Model.Message>
  readonly tools?: ReadonlyArray<ToolHandler<R>>
  readonly webSearch?: { readonly maxUses: number }
  readonly maxTokens?: number
  readonly thinking?: { readonly budgetTokens: number }
  /** Repairs after invalid answers (default 2). */
  readonly maxRepairs?: number
  /** Turns spent on research tools before the answer tool is forced (default 6). */
  readonly maxToolTurns?: number
  /**
   * What is wrong with a decoded answer beyond its schema (a value outside a declared space),
   * one issue a line as `path: problem`; none when it is fine. Issues are sent back for repair
   * like decode errors.
   */
  readonly check?: (value: S["Type"]) => ReadonlyArray<string>
  readonly reason?: string
}

/** Every issue of a decode failure, one per line with its path: `proposals[0].strategy.training: Missing key`. */
const issuesOf = (e: unknown): Array<string> =>
  TaskFile.formatIssues(e).split("\n").map((l) => l.trim()).filter((l) => l.length > 0)

/** Issues on one line for the final error: the first few, then a count. */
const summary = (issues: ReadonlyArray<string>, max = 5): string =>
  issues.slice(0, max).join("; ") + (issues.length > max ? `; and ${issues.length - max} more` : "")

/**
 * Ask for a value of `schema`; see the module docs.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Model, StructuredOutput } from "@trex/agents"
 * const answer = StructuredOutput.generateObject({
 *   schema: Schema.Struct({ lr: Schema.Number }),
 *   name: "answer", description: "Your answer", system: "You tune models.",
 *   messages: [Model.user("Pick a learning rate")]
 * })
 * ```
 * @since 0.1.0 @category constructors
 */
export const generateObject = Effect.fn("StructuredOutput.generateObject")(function*<S extends Schema.Top, R = never>(
  options: Options<S, R>
) {
  const model = yield* Model.Model
  const decode = Schema.decodeUnknownEffect(options.schema)
  const handlers = new Map((options.tools ?? []).map((t) => [t.definition.name, t]))
  const answerTool: Model.ToolDefinition = { name: options.name, description: options.description, inputSchema: inputSchema(options.schema) }
  const tools = [...(options.tools ?? []).map((t) => t.definition), answerTool]
  const maxRepairs = options.maxRepairs ?? 2
  const maxToolTurns = options.maxToolTurns ?? 6
  const maxTokens = options.maxTokens ?? 8192
  const messages: Array<Model.Message> = [...options.messages]
  let repairs = 0
  let toolTurns = 0
  let lastProblem = "no answer"
  let lastCutOff = false
  const research = handlers.size > 0 || options.webSearch !== undefined
  for (;;) {
    const forced = !research || toolTurns >= maxToolTurns
    const response = yield* model.generate({
      system: options.system,
      messages,
      tools,
      toolChoice: forced ? { type: "tool", name: options.name } : { type: "any" },
      maxTokens,
      ...(options.thinking !== undefined ? { thinking: options.thinking } : {}),
      ...(options.webSearch !== undefined && !forced ? { webSearch: options.webSearch } : {}),
      reason: options.reason ?? options.name
    })
    // a declined request is declined again, however often it is repaired or asked anew
    if (response.stopReason === "refusal") {
      const said = Model.text(response).trim()
      return yield* new StructuredOutputError({
        tool: options.name,
        message: `no answer: the model declined to answer (stop reason refusal)${said.length > 0 ? `: ${said.slice(0, 300)}` : ""}`,
        attempts: repairs,
        retryable: false
      })
    }
    // a longer conversation (a repair) would fill the window sooner
    if (response.stopReason === "model_context_window_exceeded") {
      return yield* new StructuredOutputError({
        tool: options.name,
        message: "no answer: the prompt and the answer filled the model's context window (stop reason model_context_window_exceeded): send a shorter prompt",
        attempts: repairs,
        retryable: false
      })
    }
    // an empty answer is not sent back: the API refuses a message without content
    if (response.content.length > 0) messages.push({ role: "assistant", content: response.content })
    if (response.stopReason === "pause_turn" && toolTurns++ < maxToolTurns) continue
    const calls = Model.toolCalls(response)
    const answer = calls.find((c) => c.name === options.name)
    // A cut-off answer is incomplete whatever it holds: say so, not which keys the cut left out.
    const cutOff = response.stopReason === "max_tokens"
    lastCutOff = cutOff
    const results: Array<Model.ContentBlock> = []
    if (answer !== undefined) {
      const decoded = yield* decode(answer.input, { errors: "all" }).pipe(
        Effect.map((value) => {
          const issues = options.check?.(value) ?? []
          return issues.length === 0 ? { ok: true as const, value } : { ok: false as const, issues: [...issues] }
        }),
        Effect.catch((e) => Effect.succeed({ ok: false as const, issues: issuesOf(e) }))
      )
      if (decoded.ok) return decoded.value as S["Type"]
      lastProblem = cutOff ? `the answer was cut off at maxTokens (${maxTokens}): raise maxTokens` : summary(decoded.issues)
      repairs++
      if (repairs > maxRepairs) break
      const problem = cutOff
        ? `Your answer was cut off at the output limit (${maxTokens} tokens) before it was complete.\nCall ${options.name} again with a shorter answer.`
        : `Invalid input for ${options.name}:\n${decoded.issues.map((i) => `- ${i}`).join("\n")}\nCall ${options.name} again with corrected input.`
      for (const c of calls) {
        results.push(c === answer
          ? { type: "tool_result", toolUseId: c.id, isError: true, content: problem }
          : { type: "tool_result", toolUseId: c.id, content: "skipped: answer first" })
      }
    } else if (calls.length > 0 && !cutOff) {
      toolTurns++
      for (const c of calls) {
        const handler = handlers.get(c.name)
        const out = handler === undefined
          ? { ok: false, text: `unknown tool ${c.name}` }
          : yield* handler.run(c.input).pipe(
            Effect.map((text) => ({ ok: true, text })),
            Effect.catch((text) => Effect.succeed({ ok: false, text }))
          )
        results.push({ type: "tool_result", toolUseId: c.id, content: out.text, ...(out.ok ? {} : { isError: true }) })
      }
    } else {
      lastProblem = cutOff
        ? `the answer was cut off at maxTokens (${maxTokens}): raise maxTokens`
        : `the model answered in text instead of calling ${options.name}`
      repairs++
      if (repairs > maxRepairs) break
      for (const c of calls) results.push({ type: "tool_result", toolUseId: c.id, isError: true, content: "cut off: not run" })
      results.push({
        type: "text",
        text: cutOff
          ? `Your answer was cut off at the output limit (${maxTokens} tokens). Answer by calling the ${options.name} tool, briefly.`
          : `Answer by calling the ${options.name} tool.`
      })
    }
    messages.push({ role: "user", content: results })
  }
  return yield* new StructuredOutputError({
    tool: options.name,
    message: `no valid ${options.name} after ${maxRepairs} repairs: ${lastProblem}`,
    attempts: repairs,
    retryable: !lastCutOff
  })
})
