/**
 * The real backends the code agent's tests run it on beyond the local one (Docker, Slurm, Grid Engine, SSH: those
 * of scripts/services/start-all.sh, facts in scripts/services/.env), each under a root of the test's, so that a
 * controller process and the test build the same backend, and what the agent is told of each; and Kubernetes on the
 * stand-in API server (packages/executors/test/support/FakeKubeApi.ts), one for each backend made.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { Backend } from "@trex/core"
import { DockerBackend, GridEngineBackend, KubernetesBackend, SlurmBackend, SshBackend } from "@trex/executors"
import { Effect, type Scope } from "effect"
import * as FakeKubeApi from "../../packages/executors/test/support/FakeKubeApi.ts"
import { sshHost } from "./sshHost.ts"

const env = (k: string, d: string) => process.env[k] ?? d

export const IMAGE = env("TREX_TEST_DOCKER_IMAGE", "local/busybox:latest")

export type Kind = "docker" | "slurm" | "gridengine" | "ssh" | "kubernetes"
export const kinds: ReadonlyArray<Kind> = ["docker", "slurm", "gridengine", "ssh", "kubernetes"]

/** Where the SSH backend keeps the jobs of a test whose root is `base` (on the test host, which is this machine). */
export const sshRoot = (base: string): string => `/tmp/trex-code-agent-ssh-${Path.basename(base)}`

/** The backend of `kind`, its jobs under `base`. */
export const make = (kind: Kind, base: string): Effect.Effect<Backend.BackendShape, unknown, Scope.Scope> => {
  switch (kind) {
    case "docker":
      return DockerBackend.make({ root: Path.join(base, "docker"), image: IMAGE, socketPath: env("DOCKER_HOST", "unix:///var/run/docker.sock").replace(/^unix:\/\//, ""), stopGraceSeconds: 1 })
    case "slurm":
      return SlurmBackend.make({ workDir: Path.join(base, "slurm"), pollIntervalMs: 300 })
    case "gridengine":
      return GridEngineBackend.make({ workDir: Path.join(base, "gridengine"), pollIntervalMs: 300, sgeRoot: env("SGE_ROOT", "/var/lib/gridengine") })
    case "ssh":
      return SshBackend.make({
        hosts: [sshHost()],
        remoteRoot: sshRoot(base),
        pollInterval: "150 millis",
        killGraceSeconds: 1
      })
    case "kubernetes":
      return Effect.acquireRelease(Effect.promise(() => FakeKubeApi.start({ gracePeriodMs: 1000 })), (fake) => Effect.promise(() => fake.close())).pipe(
        Effect.flatMap((fake) => KubernetesBackend.make({ kubeConfig: fake.kubeConfig(), namespace: "trex", image: IMAGE, logGraceMs: 3000 }))
      )
  }
}

/** The directories where the training jobs of node `node` of run `r1` run (on the SSH host, which is this machine). */
export const trainingDirs = (kind: Kind, base: string, node: string): ReadonlyArray<string> => {
  const under = (dir: string) => (Fs.existsSync(dir) ? Fs.readdirSync(dir).filter((d) => d.startsWith(`${node}-`)).map((d) => Path.join(dir, d)) : [])
  switch (kind) {
    case "docker":
      return [Path.join(base, "docker", node)]
    case "slurm":
    case "gridengine":
      return under(Path.join(base, kind, "r1"))
    case "ssh":
      return [Path.join(sshRoot(base), "r1", node)]
    case "kubernetes":
      // its pods' directories are the stand-in's, which a controller process of its own does not reach
      return []
  }
}
