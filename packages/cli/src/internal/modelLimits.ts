import { Model } from "@trex/agents"

/**
 * The longest `--model-timeout` (`modelTimeoutSeconds`), in whole seconds: the models' `timeoutMs` is a timer's wait,
 * and they take at most `Model.MAX_TIMEOUT_MS` (2^31 - 1 ms, the longest wait Node's timers keep): 2147483 seconds.
 *
 * @internal
 */
export const MAX_MODEL_TIMEOUT_SECONDS = Math.floor(Model.MAX_TIMEOUT_MS / 1000)
