/**
 * The longest `--model-timeout` (`modelTimeoutSeconds`), in whole seconds: the models' `timeoutMs` is a timer's wait,
 * and they take at most `Model.MAX_TIMEOUT_MS` of `@trex/agents` (2^31 - 1 ms, the longest wait Node's timers keep):
 * 2147483 seconds. Written out rather than read from `@trex/agents`, which only the commands that make a model load
 * (`trex --help` and `trex status` load no agent code); `ModelFlags.test.ts` checks that the two agree.
 *
 * @internal
 */
export const MAX_MODEL_TIMEOUT_SECONDS = Math.floor((2 ** 31 - 1) / 1000)
