/**
 * The code agent's restart tests: a controller process (`codeAgentController.ts`) run until `ready`,
 * then SIGKILLed, as after a crash, its jobs left behind.
 */
import { spawn } from "node:child_process"
import * as Path from "node:path"
import { Effect } from "effect"

/** Wait until `check` holds, polling; dies naming `what` after `timeoutMs`. */
export const waitFor = (what: string, check: () => boolean, timeoutMs = 60_000, everyMs = 100) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (!check()) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting: ${what}`))
      yield* Effect.sleep(everyMs)
    }
  })

/**
 * Start `codeAgentController.ts` with `args` (root, Messages API url, node id, and what a resume
 * adds) and `env`; once `ready` holds, SIGKILL it and wait until it is gone. It is killed as well when
 * the scope closes (a failed test leaves no controller behind).
 */
export const killedWhen = (args: ReadonlyArray<string>, ready: () => boolean, options: { readonly env?: Record<string, string>; readonly timeoutMs?: number } = {}) =>
  Effect.gen(function*() {
    const script = Path.join(import.meta.dirname, "codeAgentController.ts")
    const controller = spawn(process.execPath, ["--conditions=@trex/source", script, ...args], {
      stdio: ["ignore", "inherit", "inherit"],
      env: { ...process.env, ...options.env }
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => controller.kill("SIGKILL")))
    yield* waitFor("the killed controller's job runs", () => {
      if (controller.exitCode !== null) throw new Error(`the controller exited early (${controller.exitCode})`)
      return ready()
    }, options.timeoutMs)
    controller.kill("SIGKILL")
    yield* Effect.callback<void>((resume) => {
      if (controller.exitCode !== null || controller.signalCode !== null) resume(Effect.void)
      else controller.on("exit", () => resume(Effect.void))
    })
  })
