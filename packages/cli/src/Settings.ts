/**
 * How a run is wired: which backend, researcher, executor, policy and scheduler, with what
 * concurrency and seed. Chosen by `trex run` flags, recorded in the journal's `RunStarted`
 * event, and read back by `trex resume` so a resumed run is wired as it started.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/** @since 0.1.0 @category schemas */
export const BackendKind = Schema.Literals(["local", "simulator", "docker", "slurm", "gridengine", "ssh", "k8s"])
/** @since 0.1.0 @category schemas */
export const ResearcherKind = Schema.Literals(["heuristic", "claude", "random", "tpe"])
/** @since 0.1.0 @category schemas */
export const ExecutorKind = Schema.Literals(["template", "code-agent"])
/** @since 0.1.0 @category schemas */
export const PolicyKind = Schema.Literals(["uct", "puct", "greedy", "best-first", "random"])
/** Which API the model-backed agents call. @since 0.1.0 @category schemas */
export const ModelApi = Schema.Literals(["anthropic", "openai-compatible"])
/** @since 0.1.0 @category schemas */
export const SchedulerKind = Schema.Literals(["none", "asha"])

/**
 * @since 0.1.0 @category schemas
 */
export const Settings = Schema.Struct({
  taskFile: Schema.String,
  taskDir: Schema.String,
  backend: BackendKind,
  researcher: ResearcherKind,
  executor: ExecutorKind,
  policy: PolicyKind,
  scheduler: SchedulerKind,
  modelApi: ModelApi,
  concurrency: Schema.Int.check(Schema.isGreaterThan(0)),
  distillEvery: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  stagnation: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThan(0))),
  /**
   * Stop the run once this many trials have failed the same way, none having succeeded (a setup
   * error), or twice as many one after another once some have (a setup that broke under the run:
   * see `Explorer.Options.failFast`); `0` turns it off (`--fail-fast 0`). Default 3.
   */
  failFast: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  /**
   * The longest wait, in seconds, a model server's `retry-after` may ask for and be waited out
   * (`--max-retry-after`; the model's `retry.maxRetryAfter`, default 60): a longer one fails the call
   * at once, saying how long it asked for. A resume may give another, for its session.
   */
  maxRetryAfterSeconds: Schema.optionalKey(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))),
  /**
   * How the model-backed agents' model retries a call that failed retryably (a 429, a 5xx, a lost
   * connection): at most `modelMaxRetries` retries after the first attempt (`--model-max-retries`;
   * the model's `retry.maxRetries`, default 4), the first wait `modelRetryDelaySeconds`
   * (`--model-retry-delay`; `retry.baseDelay`, default 1), doubled each retry and jittered, none
   * longer than `modelMaxRetryDelaySeconds` (`--model-max-retry-delay`; `retry.maxDelay`, default 30)
   * but a longer `retry-after`. A resume may give others, for its session.
   */
  modelMaxRetries: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  modelRetryDelaySeconds: Schema.optionalKey(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))),
  modelMaxRetryDelaySeconds: Schema.optionalKey(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))),
  /**
   * Seconds one attempt of a model call may take (`--model-timeout`; the model's `timeoutMs`, default
   * 600): a `generate` its whole answer, a stream its headers and then each event. Past it the
   * attempt fails, and is retried. A resume may give another, for its session.
   */
  modelTimeoutSeconds: Schema.optionalKey(Schema.Finite.check(Schema.isGreaterThan(0))),
  /**
   * Times the explorer asks a researcher that failed retryably (its model down or overloaded, an
   * answer that did not decode) again before the run stops (`--researcher-retries`;
   * `Explorer.Options.researcherRetries`, default 3), the first after `researcherRetryDelaySeconds`
   * (`--researcher-retry-delay`; `researcherRetryDelay`, default 2), each wait twice the one before,
   * none longer than 60 seconds (or than the first, when that is longer). A resume may give others,
   * for its session.
   */
  researcherRetries: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  researcherRetryDelaySeconds: Schema.optionalKey(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))),
  /** `false`: run every strategy, even one an earlier run of the same task and code has a result for (`--no-reuse`). */
  reuse: Schema.optionalKey(Schema.Boolean),
  /** A fingerprint of the trainer's files (see `ResultCache.identity`): results are reused only between runs with the same. */
  code: Schema.optionalKey(Schema.String)
})
/** @since 0.1.0 @category models */
export type Settings = typeof Settings.Type

/** Defaults for the embedded run: no key, no GPU, no Docker. @since 0.1.0 @category constants */
export const defaults: Omit<Settings, "taskFile" | "taskDir"> = {
  backend: "local",
  researcher: "heuristic",
  executor: "template",
  policy: "uct",
  scheduler: "none",
  modelApi: "anthropic",
  concurrency: 2,
  distillEvery: 5
}
