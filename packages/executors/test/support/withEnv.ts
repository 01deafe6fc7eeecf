/** Environment variables set for the time of one effect (a backend reads them when it is made): DockerBackend.test.ts, SshConfig.test.ts. */
import { Effect } from "effect"

/** `effect` with environment variables set, then as they were. */
export const withEnv = <A, E, R>(vars: Readonly<Record<string, string>>, effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
      Object.assign(process.env, vars)
      return before
    }),
    () => effect,
    (before) => Effect.sync(() => Object.entries(before).forEach(([k, v]) => (v === undefined ? delete process.env[k] : (process.env[k] = v))))
  )
