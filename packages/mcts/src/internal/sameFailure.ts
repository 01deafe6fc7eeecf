/**
 * Trials that all fail the same way (finding AX): a setup error — a trainer command that does not
 * exist, a Python module or data path missing, a Docker image or Slurm partition that does not
 * exist, a trainer that writes no metric — fails every strategy alike, and a run that goes on
 * spends its whole budget learning nothing about its strategies. This folds the journal into
 * what the explorer needs to stop such a run early, and to run those strategies again when it
 * is resumed after the mistake is mended.
 */
import type { ExperimentNode, JournalEvent, Result } from "@trex/core"

/** How the reason of a run stopped by its trials' same failure begins. */
export const SAME_FAILURE = "every trial failed the same way"

/**
 * Kinds a strategy can cause by itself (too big a batch, too many epochs, a scheduler's cancel):
 * never taken for the setup's, however alike their messages read.
 */
const STRATEGY_KINDS: ReadonlySet<Result.FailureKind> = new Set(["OOM", "Timeout", "Cancelled"])

/**
 * What a failure says once the parts that differ from trial to trial of one setup error are
 * taken out: node ids (`n12`), the random and hexadecimal ids of job directories and containers
 * (`n3-mx9znxt9tw7k`, `3f9a...`), and numbers of four digits or more (job ids, pids, ports).
 * Small numbers stay (exit codes, line numbers): `exited with code 1` and `code 2` differ.
 */
export const normalise = (text: string): string =>
  text
    .replace(/\bn\d+\b/g, "n#")
    .replace(/\b(?=[a-z0-9]*\d)(?=[a-z0-9]*[a-z])[a-z0-9]{8,}\b/gi, "#")
    .replace(/\d{4,}/g, "#")
    .replace(/\s+/g, " ")
    .trim()

/** The last line of a log tail that says something (the error line of a traceback, say). */
const lastLine = (tail: ReadonlyArray<string>): string | undefined => {
  for (let i = tail.length - 1; i >= 0; i--) {
    const line = tail[i]!.trim()
    if (line !== "") return line
  }
  return undefined
}

/**
 * A failure as it reads to a user: its kind, message and the last line of its log (where a
 * trainer's own error usually is: `exited with code 1` alone says little).
 */
export const describe = (failure: Result.Failure): string => {
  const line = lastLine(failure.logTail)
  return `${failure.kind}: ${failure.message}${line !== undefined && !failure.message.includes(line) ? ` (${line})` : ""}`
}

/**
 * The cause of a failed result, normalised, that trials of one setup error share; `undefined` for
 * a failure its strategy may have caused (`OOM`, `Timeout`, `Cancelled`).
 */
export const causeOf = (result: Result.Result | undefined): string | undefined => {
  const failure = result?.failure
  if (failure === undefined || STRATEGY_KINDS.has(failure.kind)) return undefined
  return normalise(describe(failure))
}

/** A cause that stops the run: its trials, in the order they finished, and how the first read. */
export interface Alike {
  readonly cause: string
  readonly nodes: ReadonlyArray<string>
  readonly shown: string
}

/**
 * The fold. Fed every journal event in order (a replay's, then the live run's), it knows:
 * - the trials of this session (since the run started, or since it was resumed after a stop of
 *   this kind) that failed, by cause, as long as no trial of the run has worked (succeeded, or
 *   been pruned: it ran and reported); results reused from other runs are not trials of this setup;
 * - after a stop of this kind, the nodes whose strategies a resumed run runs again (the trials of
 *   each cause that stopped it), until a node with the same fingerprint is proposed.
 */
export class SameFailures {
  private worked = false
  private readonly byCause = new Map<string, { nodes: Array<string>; shown: string }>()
  private pending: Array<ExperimentNode.NodeSpec> = []

  private readonly threshold: number
  private readonly node: (id: string) => ExperimentNode.NodeSpec | undefined

  constructor(threshold: number, node: (id: string) => ExperimentNode.NodeSpec | undefined) {
    this.threshold = threshold
    this.node = node
  }

  apply(event: JournalEvent.JournalEvent): void {
    switch (event._tag) {
      case "NodeFinished": {
        if (this.worked || event.outcome === "Cancelled" || event.result?.reusedFrom !== undefined) return
        if (event.outcome === "Succeeded" || event.outcome === "Pruned") {
          this.worked = true
          this.byCause.clear()
          return
        }
        const cause = causeOf(event.result)
        if (cause === undefined) return
        const known = this.byCause.get(cause)
        if (known !== undefined) known.nodes.push(event.nodeId)
        else this.byCause.set(cause, { nodes: [event.nodeId], shown: describe(event.result!.failure!) })
        return
      }
      case "RunFinished": {
        if (!event.reason.startsWith(SAME_FAILURE)) return
        // the strategies of the stop's trials run again on resume, in the order they first ran: those of
        // the cause that failed the most (the one that stopped the run, whatever threshold this fold has)
        const most = Math.max(0, ...[...this.byCause.values()].map(({ nodes }) => nodes.length))
        const again = new Set<string>()
        for (const { nodes } of this.byCause.values()) if (nodes.length === most) for (const id of nodes) again.add(id)
        // (added to those not yet run again, should a resumed run have stopped again before it ran them all)
        const fresh = [...again].map((id) => this.node(id)).filter((n): n is ExperimentNode.NodeSpec => n !== undefined)
        const known = new Set(this.pending.map((n) => n.fingerprint))
        this.pending = [...this.pending, ...fresh.filter((n) => !known.has(n.fingerprint))]
          .sort((a, b) => Number(a.id.slice(1)) - Number(b.id.slice(1)))
        this.byCause.clear()
        return
      }
      case "NodeProposed": {
        if (this.pending.length === 0) return
        const fp = event.node.fingerprint
        this.pending = this.pending.filter((n) => n.fingerprint !== fp)
        return
      }
      default:
        return
    }
  }

  /**
   * The cause that has failed `threshold` trials with nothing working, if one has. Asked after each
   * finished trial, so the first cause to get there is the one found.
   */
  stop(): Alike | undefined {
    if (this.worked || this.threshold <= 0) return undefined
    for (const [cause, { nodes, shown }] of this.byCause) if (nodes.length >= this.threshold) return { cause, nodes: [...nodes], shown }
    return undefined
  }

  /**
   * The next strategy to run again after a stop of this kind, if any; none when the stop is turned
   * off (`0`: the failures were the strategies' own, as the user says).
   */
  next(): ExperimentNode.NodeSpec | undefined {
    return this.threshold > 0 ? this.pending[0] : undefined
  }
}
