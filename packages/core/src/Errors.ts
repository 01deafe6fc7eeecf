/**
 * Typed errors shared by the packages. Each says what went wrong, where, and what to do.
 * Errors that may succeed on a retry carry `retryable: true`; schedules read it.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/** Input (a task file, a strategy, a flag) failed validation. @since 0.1.0 @category errors */
export class InvalidInput extends Schema.TaggedError<InvalidInput>()("InvalidInput", {
  /** Where the input came from: a file path, "strategy", "--concurrency"... */
  source: Schema.String,
  /** Readable issues, each naming the path of the bad field. */
  message: Schema.String
}) {}

/** The journal could not be read or written. @since 0.1.0 @category errors */
export class JournalError extends Schema.TaggedError<JournalError>()("JournalError", {
  /**
   * `NoSpace`: the disk (or quota) holding the journal is full, or its filesystem read-only: nothing was
   * written, the journal is intact; once there is room, the run resumes.
   */
  reason: Schema.Literals(["Io", "Corrupt", "Version", "Locked", "Mismatch", "NoSpace"]),
  message: Schema.String,
  /** For `Corrupt`: the first bad sequence number. */
  seq: Schema.optionalKey(Schema.Int)
}) {}

/** A backend could not do what was asked. @since 0.1.0 @category errors */
export class BackendError extends Schema.TaggedError<BackendError>()("BackendError", {
  backend: Schema.String,
  operation: Schema.String,
  message: Schema.String,
  retryable: Schema.Boolean
}) {}

/**
 * A researcher could not propose, analyse or distil. `retryable`: whether asking again may succeed
 * (a model that is down or overloaded, an answer that did not decode); the explorer asks again only
 * then, and stops at once on one that is not (a refused key, a bug in the researcher).
 * @since 0.1.0 @category errors
 */
export class ResearcherError extends Schema.TaggedError<ResearcherError>()("ResearcherError", {
  operation: Schema.String,
  message: Schema.String,
  retryable: Schema.Boolean
}) {}

/** An executor agent could not run a node (infrastructure, not the trial itself). @since 0.1.0 @category errors */
export class ExecutorError extends Schema.TaggedError<ExecutorError>()("ExecutorError", {
  nodeId: Schema.String,
  message: Schema.String,
  retryable: Schema.Boolean,
  /**
   * Set when the service the executor calls refused its own settings (an API key, its permissions,
   * a model name): every trial would fail alike, so the run stops at this one (see `Result.Failure.setup`).
   */
  setup: Schema.optionalKey(Schema.Boolean)
}) {}

/**
 * A search policy answered what the loop cannot do: a node that may not be expanded (unknown,
 * running, cancelled, or exhausted), or something that is not a selection. A bug in the policy;
 * the run stops with its journal intact (resumable once the policy is mended).
 * @since 0.1.0 @category errors
 */
export class PolicyError extends Schema.TaggedError<PolicyError>()("PolicyError", {
  policy: Schema.String,
  message: Schema.String
}) {}

/**
 * A run stopped because its trials all failed the same way, none having succeeded: a setup error
 * (the trainer's command, a module or data path missing, a Docker image or Slurm partition that
 * does not exist, a trainer that writes no metric) rather than its strategies'; or because, after
 * trials had worked, its latest trials failed the same way one after another: a setup that broke
 * under the run (a full disk, a data or model path gone, an expired credential). Its journal is
 * finished and sound, its best so far kept; once the setup is mended, a resumed run runs the
 * strategies of `nodes` again.
 * @since 0.1.0 @category errors
 */
export class SetupFailure extends Schema.TaggedError<SetupFailure>()("SetupFailure", {
  runId: Schema.String,
  /** The failure as the first of the trials read: its kind, message and last log line. */
  failure: Schema.String,
  /** The trials that failed this way, in the order they finished. */
  nodes: Schema.Array(Schema.String),
  message: Schema.String,
  /**
   * Set when the trials failed on the executor's own settings, refused by the service it calls
   * (`Result.Failure.setup`: an API key, its permissions, a model name): the run stopped at the first.
   */
  refused: Schema.optionalKey(Schema.Boolean)
}) {}

/** A node id that the tree does not have. @since 0.1.0 @category errors */
export class NodeNotFound extends Schema.TaggedError<NodeNotFound>()("NodeNotFound", {
  id: Schema.String
}) {}

/**
 * Why a write failed for want of room, or `undefined` when it failed otherwise: `ENOSPC` (no space left
 * on device), `EDQUOT` (disk quota exceeded), `EROFS` (a read-only filesystem), SQLite's `SQLITE_FULL`
 * (13) and `SQLITE_READONLY` (8) from `node:sqlite`. What a controller that cannot write its run
 * folder reports, instead of a stack: the disk is full, free space, then resume.
 *
 * @example
 * ```ts
 * import { Errors } from "@trex/core"
 * Errors.noSpace(Object.assign(new Error("write"), { code: "ENOSPC" })) // "no space left on device"
 * ```
 * @since 0.1.0 @category utilities
 */
export const noSpace = (error: unknown): string | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  const { code, errcode } = error as { readonly code?: unknown; readonly errcode?: unknown }
  if (code === "ENOSPC" || errcode === 13) return "no space left on device"
  if (code === "EDQUOT") return "disk quota exceeded"
  if (code === "EROFS") return "read-only file system"
  if (errcode === 8) return "attempt to write a read-only database"
  return undefined
}
