/**
 * The longest `--model-timeout` (`modelTimeoutSeconds`), in seconds: the models' `timeoutMs` is a timer's wait, and
 * Node's timers keep at most 2^31 - 1 ms (a longer one fires at once; `AnthropicModel.Options.timeoutMs`).
 *
 * @internal
 */
export const MAX_MODEL_TIMEOUT_SECONDS = 2_147_483
