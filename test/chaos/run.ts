/**
 * Run the chaos campaigns and print their figures (a table and a JSON line each).
 *
 *   node --conditions=@trex/source test/chaos/run.ts [--quick] [--seed N] [crash|faults|badinput|secrets|concurrency ...]
 *
 * Exits 1 when a figure that must be zero is not.
 */
import * as BadInput from "./badinput.ts"
import * as Concurrency from "./concurrency.ts"
import * as Crash from "./crash.ts"
import * as Faults from "./faults.ts"
import { type CampaignOptions, type CampaignResult, print, violations } from "./lib.ts"
import * as Secrets from "./secrets.ts"

const campaigns: Record<string, (options: CampaignOptions) => Promise<CampaignResult>> = {
  crash: Crash.run,
  faults: Faults.run,
  badinput: BadInput.run,
  secrets: Secrets.run,
  concurrency: Concurrency.run
}

const argv = process.argv.slice(2)
const quick = argv.includes("--quick")
const seedAt = argv.indexOf("--seed")
const seed = seedAt >= 0 ? Number(argv[seedAt + 1]) : 1
const names = argv.filter((a, i) => !a.startsWith("--") && (seedAt < 0 || i !== seedAt + 1))
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
