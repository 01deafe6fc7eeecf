import { defineConfig } from "vitest/config"

export default defineConfig({
  resolve: { conditions: ["@trex/source"] },
  ssr: { resolve: { conditions: ["@trex/source"] } },
  test: {
    include: ["packages/*/test/**/*.test.ts", "examples/**/test/**/*.test.ts", "test/**/*.test.ts"],
    // starts Docker Engine, Podman, sshd, Slurm and Grid Engine (idempotent; see the file)
    globalSetup: ["test/setup/services.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    // two files at a time (the default on 2 cores is one): the backend files mostly wait on their
    // engines, and no two files share an engine they stop (scripts/services/README.md)
    maxWorkers: 2
  }
})
