/**
 * @trex/executors — where jobs run: the `Backend` implementations (local processes, Docker,
 * Slurm, Grid Engine, SSH hosts, Kubernetes) and the simulator for policy research.
 *
 * @since 0.1.0
 */
export * as DockerBackend from "./DockerBackend.ts"
export * as GridEngineBackend from "./GridEngineBackend.ts"
export * as KubernetesBackend from "./KubernetesBackend.ts"
export * as LocalBackend from "./LocalBackend.ts"
export * as Simulator from "./Simulator.ts"
export * as SlurmBackend from "./SlurmBackend.ts"
export * as SshBackend from "./SshBackend.ts"
