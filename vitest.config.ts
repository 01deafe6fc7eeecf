import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"
import { BaseSequencer, type TestSpecification } from "vitest/node"

// Every Node.js process the tests start (the workers, and the CLI from its sources, which the CLI tests and the chaos
// campaigns start hundreds of times) keeps V8's compiled code of the modules it loads in this folder, keyed by each
// file's contents (Node.js's module compile cache), and starts from it: `trex --help` from its sources took 1.08 s of
// 1.3 s CPU, 0.75 s of 0.85 s so; the 20 tests of packages/cli/test/Cli.test.ts 48-50 s CPU without, 32-33 s with,
// from a cold cache as on a clean clone.
process.env["NODE_COMPILE_CACHE"] ??= fileURLToPath(new URL("node_modules/.cache/node-compile-cache", import.meta.url))

/**
 * Files whose tests use engines that other files stop (dockerd, slurmd, sge_execd): run after them, in a group of
 * their own. The crash campaign on the remote backends is one file per backend (test/chaos-backends/), so that the
 * group runs three at a time rather than the five campaigns one after the other in one file.
 */
const afterTheEngineFiles = ["test/code-agent-backends.test.ts", "packages/cli/test/Check.test.ts", "test/chaos-backends/*.test.ts"]

/**
 * The files that took 15 s or more in a clean-clone CI run (e6f47a1, 2026-12-06: 905 s of tests), longest first. On a
 * clean clone vitest has no timings of its own and starts a group's largest files first, so a small file that is
 * slow (test/chaos.test.ts, 53 s; test/resume.test.ts, 47 s) ran last while the other workers had nothing left:
 * these start first, longest first (the other files after them, as vitest orders them). Where vitest has timings of
 * an earlier run here (node_modules/.vite), its own order stands. A stale list only changes the order.
 */
const slowestFirst = [
  "packages/executors/test/SlurmBackend.test.ts", "packages/executors/test/DockerBackend.test.ts",
  "packages/executors/test/GridEngineBackend.test.ts", "packages/executors/test/KubernetesBackend.test.ts",
  "packages/executors/test/SshBackend.test.ts", "packages/cli/test/CliResume.test.ts", "packages/cli/test/CliRuns.test.ts",
  "packages/cli/test/Notify.test.ts", "packages/cli/test/Check.test.ts", "packages/cli/test/KubernetesRun.test.ts",
  "packages/cli/test/CliSignals.test.ts", "test/docs.test.ts", "test/code-agent-backends.test.ts", "test/chaos.test.ts",
  "test/chaos-backends/gridengine.test.ts", "test/chaos-backends/slurm.test.ts", "test/resume.test.ts",
  "packages/cli/test/Follow.test.ts", "test/packaging.test.ts", "test/chaos-backends/podman.test.ts",
  "packages/cli/test/RunAccess.test.ts", "packages/mcts/test/Explorer.test.ts", "test/chaos-backends/docker.test.ts",
  "packages/cli/test/Cli.test.ts", "test/chaos-backends/ssh.test.ts", "packages/executors/test/LocalBackend.test.ts",
  "packages/cli/test/Bench.test.ts", "packages/cli/test/FullDisk.test.ts", "packages/cli/test/List.test.ts",
  "packages/cli/test/HtmlReport.test.ts", "test/code-agent-local.test.ts", "packages/cli/test/Secrets.test.ts",
  "packages/cli/test/Asha.test.ts"
]

class SlowestFirst extends BaseSequencer {
  override async sort(files: Array<TestSpecification>): Promise<Array<TestSpecification>> {
    const sorted = await super.sort(files)
    if (sorted.some((f) => this.ctx.cache.getTestSpecificationResult(f) !== undefined)) return sorted
    const root = this.ctx.config.root
    const rank = (f: TestSpecification) => {
      const i = slowestFirst.indexOf(path.relative(root, f.moduleId).split(path.sep).join("/"))
      return i === -1 ? slowestFirst.length : i
    }
    const at = new Map(sorted.map((f, i) => [f, i]))
    // a group (then a project) runs after the one before it, as vitest ordered them; within one, the slowest first
    return [...sorted].sort((a, b) =>
      a.project.config.sequence.groupOrder - b.project.config.sequence.groupOrder ||
      (a.project.name === b.project.name ? rank(a) - rank(b) : 0) ||
      at.get(a)! - at.get(b)!
    )
  }
}

export default defineConfig({
  resolve: { conditions: ["@trex/source"] },
  ssr: { resolve: { conditions: ["@trex/source"] } },
  test: {
    // starts Docker Engine, Podman, sshd, Slurm and Grid Engine (idempotent; see the file)
    globalSetup: ["test/setup/services.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    // three files at a time on 2 cores (the default is one): the backend files mostly wait on their
    // engines, and no two files share an engine they stop (scripts/services/README.md); a file that
    // shares engines with the files that stop them runs after every other, in a group of its own.
    // Measured on a clean clone (2 cores): the suite's tests in 707 s with three, 999 s with two.
    // Without timings (a clean clone) vitest starts a group's largest files first, so a small file that is slow runs
    // last and alone: split a file of minutes by theme, or by backend, rather than let it grow. The CI run of 2026-12-05
    // (1,041 s in all, 997 s of tests): 810 s for the first group, 187 s for the second, where the five crash
    // campaigns ran one after the other in one file. With them a file each, Cli.test.ts four files and the compile
    // cache above, on this machine beside other work (load 4-6): the second group 278 s -> 167 s (its CPU 180 s ->
    // 156 s); the CLI's 48 tests 285 s -> 234 s of CPU (load 4-14). Measured on a clean clone of e6f47a1: 905 s of
    // tests, 959 s in all; its slow small files then ran last (see SlowestFirst).
    maxWorkers: 3,
    sequence: { sequencer: SlowestFirst },
    projects: [
      {
        extends: true,
        test: {
          name: "trex",
          include: ["packages/*/test/**/*.test.ts", "examples/**/test/**/*.test.ts", "test/**/*.test.ts"],
          exclude: ["**/node_modules/**", ...afterTheEngineFiles]
        }
      },
      { extends: true, test: { name: "shared-engines", include: afterTheEngineFiles, sequence: { groupOrder: 1 } } }
    ]
  }
})
