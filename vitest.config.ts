import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

// Every Node.js process the tests start (the workers, and the CLI from its sources, which the CLI tests and the chaos
// campaigns start hundreds of times) keeps V8's compiled code of the modules it loads in this folder, keyed by each
// file's contents (Node.js's module compile cache), and starts from it: `trex --help` from its sources took 1.08 s of
// 1.3 s CPU, 0.75 s of 0.85 s so; the 20 tests of packages/cli/test/Cli.test.ts 48-50 s CPU without, 32-33 s with,
// from a cold cache as on a clean clone.
process.env["NODE_COMPILE_CACHE"] ??= fileURLToPath(new URL("node_modules/.cache/node-compile-cache", import.meta.url))

/**
 * Files whose tests use engines that other files stop (dockerd, slurmd, sge_execd): run after them, in a group of
 * their own. The crash campaign on the remote backends is one file per backend (test/chaos-backends/), so that the
 * group runs three at a time rather than the five campaigns one after the other in one file. `trex check`'s tests on
 * those engines are CheckEngines.test.ts; the rest of them (the local backend, model servers, the Kubernetes stand-in:
 * 150 of Check.test.ts's 220 s in the CI run of 2026-12-06, where that file ran last and alone) are in the first group.
 * The CLI over Docker's ssh:// (CliDockerSsh.test.ts, 3 s) uses the dockerd DockerBackend.test.ts kills: it was safe in
 * the first group only because it happened to start after that file ended.
 */
const afterTheEngineFiles = ["test/code-agent-backends.test.ts", "test/retry-resume.test.ts", "packages/cli/test/CheckEngines.test.ts", "packages/cli/test/CliDockerSsh.test.ts", "test/chaos-backends/*.test.ts"]

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
    // 156 s); the CLI's 48 tests 285 s -> 234 s of CPU (load 4-14). Measured on a clean clone of 801f16d: 903 s of
    // tests, 954 s for the whole CI run. On 2026-12-06 (reliability.md FQ) waits that always ran to their end, and real
    // backoffs that run on the test clock now, were taken out of Explorer.test.ts: alone, 34-35 s -> 17 s (idle machine).
    maxWorkers: 3,
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
