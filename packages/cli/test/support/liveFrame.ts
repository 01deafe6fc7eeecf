// Draws LiveView's frame on this process's terminal, as `trex run` does, for a task named by the first
// argument: a trial in flight, then three that finish (each redraws the frame below its line), then END.
// LiveView.test.ts runs it in a real terminal (tmux) and reads the screen.
import { ExperimentNode } from "@trex/core"
import { TreeBuilder } from "@trex/core/testing"
import { Effect } from "effect"
import * as LiveView from "../../src/LiveView.ts"

// as trex run makes it: the width of East Asian Ambiguous characters from TREX_AMBIGUOUS_WIDTH, tmux or the locale
const view = LiveView.make({
  tty: true,
  write: (s) => void process.stdout.write(s),
  intervalMs: 60_000,
  columns: () => process.stdout.columns,
  ...Effect.runSync(LiveView.terminalWidths())
})
const b = new TreeBuilder.TreeBuilder(TreeBuilder.task({ name: process.argv[2]!, budget: { maxTrials: 40, gpuHours: 10, dollars: 50, tokens: 100_000, wallClockHours: 2 } }))
view.onEvent({ seq: 1, event: b.events[0]! }, b.view)
b.start(b.propose(ExperimentNode.ROOT, { "training.learningRate": 0.02 }))
for (const [i, event] of b.events.slice(1).entries()) view.onEvent({ seq: i + 2, event }, b.view)
for (let i = 0; i < 3; i++) {
  b.succeed(ExperimentNode.ROOT, { "training.learningRate": 0.001 * (i + 1) }, 0.5 + i / 10)
  view.onEvent({ seq: b.events.length, event: b.events.at(-1)! }, b.view)
}
view.close()
process.stdout.write("END\n")
