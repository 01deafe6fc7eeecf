/**
 * @trex/core/testing — conformance suites for the contracts (for plugin authors and for our
 * own implementations), and a builder for experiment trees in tests.
 *
 * @since 0.1.0
 */
export * as BackendConformance from "./BackendConformance.ts"
export * as ResearcherConformance from "./ResearcherConformance.ts"
export * as SearchPolicyConformance from "./SearchPolicyConformance.ts"
export * as TreeBuilder from "./TreeBuilder.ts"
