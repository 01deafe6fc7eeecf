/**
 * Run the chaos campaigns and print their figures (a table and a JSON line each).
 *
 *   node --conditions=@trex/source test/chaos/run.ts [--quick] [--seed N] [--backends local,ssh,...] [crash|faults|badinput|secrets|concurrency ...]
 *
 * --backends: the crash campaign's backends, of local, simulator, docker, podman, slurm, gridengine, ssh
 * (default: local and simulator with --quick, every one without).
 *
 * Exits 1 when a figure that must be zero is not.
 */
import * as BadInput from "./badinput.ts"
import * as Concurrency from "./concurrency.ts"
import * as Crash from "./crash.ts"
import * as Faults from "./faults.ts"
import { type CampaignOptions, type CampaignResult, print, violations } from "./lib.ts"
import * as Secrets from "./secrets.ts"

const argv = process.argv.slice(2)
const valueOf = (flag: string) => (argv.indexOf(flag) >= 0 ? argv[argv.indexOf(flag) + 1] : undefined)
const kinds = ["local", "simulator", ...Crash.remotes] as const
const backends = valueOf("--backends")?.split(",")
const badBackends = (backends ?? []).filter((b) => !(kinds as ReadonlyArray<string>).includes(b))
if (badBackends.length > 0) {
  process.stderr.write(`unknown backend(s) in --backends: ${badBackends.join(", ")}; choose from ${kinds.join(", ")}\n`)
  process.exit(2)
}

const campaigns: Record<string, (options: CampaignOptions) => Promise<CampaignResult>> = {
  crash: (options) => Crash.run(backends === undefined ? options : { ...options, backends: backends as Array<(typeof kinds)[number]> }),
  faults: Faults.run,
  badinput: BadInput.run,
  secrets: Secrets.run,
  concurrency: Concurrency.run
}

const quick = argv.includes("--quick")
const seed = Number(valueOf("--seed") ?? 1)
const names = argv.filter((a, i) => !a.startsWith("--") && argv[i - 1] !== "--seed" && argv[i - 1] !== "--backends")
const unknown = names.filter((n) => !(n in campaigns))
if (unknown.length > 0) {
  process.stderr.write(`unknown campaign(s): ${unknown.join(", ")}; choose from ${Object.keys(campaigns).join(", ")}\n`)
  process.exit(2)
}
const bad: Array<string> = []
process.stdout.write(`chaos campaigns (${quick ? "quick" : "full"}, seed ${seed}) on ${new Date().toISOString()}\n`)
for (const name of names.length > 0 ? names : Object.keys(campaigns)) {
  const result = await campaigns[name]!({ quick, seed, log: (l) => process.stderr.write(`${l}\n`) })
  print(result)
  bad.push(...violations(result))
}
if (bad.length > 0) {
  process.stdout.write(`\nFAILED:\n${bad.map((b) => `  ${b}`).join("\n")}\n`)
  process.exitCode = 1
}
