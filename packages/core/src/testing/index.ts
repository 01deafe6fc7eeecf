/**
 * @trex/core/testing — conformance suites for the contracts, for plugin authors and for our own
 * implementations.
 *
 * @since 0.1.0
 */
export * as BackendConformance from "./BackendConformance.ts"
