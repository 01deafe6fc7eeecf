/**
 * @trex/core/testing — conformance suites for the contracts (for plugin authors and for our
 * own implementations), a builder for experiment trees in tests, a backend that holds a
 * submit open (to test that a stop landing there cancels the job), and a check that a
 * constructor refuses mistyped options.
 *
 * @since 0.1.0
 */
export * as BackendConformance from "./BackendConformance.ts"
export * as HeldSubmit from "./HeldSubmit.ts"
export * as OptionsConformance from "./OptionsConformance.ts"
export * as ResearcherConformance from "./ResearcherConformance.ts"
export * as SearchPolicyConformance from "./SearchPolicyConformance.ts"
export * as TreeBuilder from "./TreeBuilder.ts"
