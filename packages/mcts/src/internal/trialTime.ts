import type { JournalEvent } from "@trex/core"

/**
 * How long a run's trials took on its wall clock, from admission to end, as its journal tells it:
 * the mean is what admission expects a trial to take under a wall-clock budget. Only whole trials
 * (succeeded or failed; not reused, pruned or cancelled) admitted and finished in the same session
 * count: across a restart, the time between the sessions was not the trial's.
 */
export class TrialTime {
  private readonly admitted = new Map<string, number>()
  private total = 0
  private count = 0

  apply(event: JournalEvent.JournalEvent): void {
    switch (event._tag) {
      case "RunStarted":
      case "RunResumed":
        this.admitted.clear()
        return
      case "NodeAdmitted":
        this.admitted.set(event.nodeId, event.at)
        return
      case "NodeFinished": {
        const at = this.admitted.get(event.nodeId)
        this.admitted.delete(event.nodeId)
        if (at === undefined || (event.outcome !== "Succeeded" && event.outcome !== "Failed") || event.result?.reusedFrom !== undefined) return
        this.total += Math.max(0, event.at - at) / 1000
        this.count++
        return
      }
      default:
        return
    }
  }

  /** The mean seconds of the trials counted; 0 before any. */
  get mean(): number {
    return this.count === 0 ? 0 : this.total / this.count
  }
}
