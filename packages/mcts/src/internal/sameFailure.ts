/**
 * Trials that all fail the same way (findings AX and BC): a setup error — a trainer command that
 * does not exist, a Python module or data path missing, a Docker image or Slurm partition that does
 * not exist, a trainer that writes no metric — fails every strategy alike, and a run that goes on
 * spends its whole budget learning nothing about its strategies. So does a setup that breaks under
 * a run that was working (a disk that fills, a data or model path deleted or unmounted, a
 * credential that expires, a package upgraded under it). This folds the journal into what the
 * explorer needs to stop such a run early, and to run those strategies again when it is resumed
 * after the mistake is mended.
 */
import { type ExperimentNode, Fingerprint, type JournalEvent, Result } from "@trex/core"

/** How the reason of a run begins when its trials failed the same way before any worked. */
export const SAME_FAILURE = "every trial failed the same way"

/** How the reason of a run begins when its trials failed the same way, one after another, after some had worked. */
export const SAME_FAILURE_SINCE = "the latest trials all failed the same way"

/**
 * How the reason of a run begins when a trial failed on the executor's own settings, refused by the
 * service it calls (an API key, its permissions, a model name: `Result.Failure.setup`): every trial
 * would fail alike, so one is enough.
 */
export const SETTINGS_REFUSED = "the executor's settings were refused"

/**
 * How many times longer a streak of failures alike must be, once trials have worked, than the count
 * that stops a run where none has: a region of the search space can fail alike (a data format the
 * recipe cannot read fails every strategy that picks it), and in the toy task, where a third of
 * the space does, healthy runs met streaks of 3 (finding BC).
 */
const SINCE_FACTOR = 2

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

/**
 * A failure as it reads to a user: its kind, message and the last line of its log (where a
 * trainer's own error usually is: `exited with code 1` alone says little).
 */
export const describe = (failure: Result.Failure): string => {
  const line = Result.errorLine(failure)
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

/**
 * The fingerprint of a node's strategy now: a journal written before 2026-12-05 recorded a mixture as
 * written (`Fingerprint.changed`), and the explorer proposes a strategy run again under the one of now.
 */
const now = (node: ExperimentNode.NodeSpec): string => Fingerprint.of(node.strategy)

/** A cause that stops the run: its trials, in the order they finished, and how the first read. */
export interface Alike {
  readonly cause: string
  readonly nodes: ReadonlyArray<string>
  readonly shown: string
  /** Trials of the run that had worked (succeeded or were pruned) before: 0 for a setup broken from the start. */
  readonly worked: number
  /** Set when the trials failed on the executor's own settings (`Result.Failure.setup`), which one trial is enough to stop on. */
  readonly refused?: true
}

/** The reason journaled in `RunFinished` for a stop on `alike`. */
export const reasonOf = (alike: Alike): string =>
  `${alike.refused === true ? SETTINGS_REFUSED : alike.worked === 0 ? SAME_FAILURE : SAME_FAILURE_SINCE} (${alike.nodes.join(", ")}): ${alike.shown}`

/** What the run's `SetupFailure` says of a stop on `alike`; `best` the best trial so far, as its id and score. */
export const messageOf = (alike: Alike, best: string | undefined): string => {
  const n = alike.nodes.length
  const trials = `${n} trials (${alike.nodes.join(", ")})`
  if (alike.refused === true) {
    return `${n === 1 ? `trial ${alike.nodes[0]}` : trials} failed on the executor's own settings, which the service it calls refused: ${alike.shown}. ` +
      `Every trial would fail alike, so the run stopped at once${best !== undefined ? `, its best so far (${best}) kept` : ""}: ` +
      `mend the settings (the API key, its permissions, the model's name), then resume the run; ${n === 1 ? "this trial's strategy runs" : "these trials' strategies run"} again`
  }
  return alike.worked === 0
    ? `${trials} failed the same way, and none succeeded: ${alike.shown}. ` +
      `A failure that strategies this different all meet is the setup's, not theirs: the trainer's command or its environment ` +
      `(a module missing), a data path, the backend's settings (an image, a partition, a queue), a trainer that writes no metric. ` +
      `The run stopped rather than spend its budget on it: mend the setup, then resume the run; these trials' strategies run again`
    : `the latest ${trials} failed the same way, one after another, after ${alike.worked} had worked: ${alike.shown}. ` +
      `Strategies this different that fail alike where trials worked point to a setup that changed under the run: a disk that filled, ` +
      `a data or model path deleted or unmounted, a credential that expired, a package upgraded, a GPU driver gone. ` +
      `The run stopped rather than spend its budget on it${best !== undefined ? `, its best so far (${best}) kept` : ""}: ` +
      `mend the setup, then resume the run; these trials' strategies run again`
}

/**
 * The fold. Fed every journal event in order (a replay's, then the live run's), it knows:
 * - as long as no trial of the run has worked (succeeded, or been pruned: it ran and reported), the
 *   trials of this session (since the run started, or since it was resumed after a stop of this
 *   kind) that failed, by cause;
 * - once one has, the latest trials that failed with one cause, one after another: a trial that
 *   works, fails otherwise or fails as a strategy may (`OOM`, `Timeout`) ends the streak;
 * - after a stop of either kind, the nodes whose strategies a resumed run runs again (the trials
 *   that stopped it), until a node of the same strategy (its fingerprint now) is proposed.
 * Results reused from other runs, and trials cancelled, are not trials of this setup: they count for nothing.
 */
export class SameFailures {
  private worked = 0
  private readonly byCause = new Map<string, { nodes: Array<string>; shown: string }>()
  private streak: { cause: string; nodes: Array<string>; shown: string } | undefined
  /** Trials that failed on the executor's settings (`Result.Failure.setup`) since the last that worked, and how the first read. */
  private refused: { cause: string; nodes: Array<string>; shown: string } | undefined
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
        if (event.outcome === "Cancelled" || event.result?.reusedFrom !== undefined) return
        if (event.outcome === "Succeeded" || event.outcome === "Pruned") {
          this.worked++
          this.byCause.clear()
          this.streak = undefined
          this.refused = undefined
          return
        }
        const cause = causeOf(event.result)
        if (cause !== undefined && event.result?.failure?.setup === true) {
          if (this.refused !== undefined) this.refused.nodes.push(event.nodeId)
          else this.refused = { cause, nodes: [event.nodeId], shown: describe(event.result.failure) }
        }
        if (this.worked > 0) {
          if (cause !== undefined && this.streak?.cause === cause) this.streak.nodes.push(event.nodeId)
          else this.streak = cause === undefined ? undefined : { cause, nodes: [event.nodeId], shown: describe(event.result!.failure!) }
          return
        }
        if (cause === undefined) return
        const known = this.byCause.get(cause)
        if (known !== undefined) known.nodes.push(event.nodeId)
        else this.byCause.set(cause, { nodes: [event.nodeId], shown: describe(event.result!.failure!) })
        return
      }
      case "RunFinished": {
        const again = event.reason.startsWith(SETTINGS_REFUSED) ? this.refused?.nodes ?? []
          : event.reason.startsWith(SAME_FAILURE) ? this.mostAlike()
          : event.reason.startsWith(SAME_FAILURE_SINCE) ? this.streak?.nodes ?? []
          : []
        if (again.length === 0) return
        // the strategies of the stop's trials run again on resume, in the order they first ran
        // (added to those not yet run again, should a resumed run have stopped again before it ran them all)
        const fresh = again.map((id) => this.node(id)).filter((n): n is ExperimentNode.NodeSpec => n !== undefined)
        const known = new Set(this.pending.map(now))
        this.pending = [...this.pending, ...fresh.filter((n) => !known.has(now(n)))]
          .sort((a, b) => Number(a.id.slice(1)) - Number(b.id.slice(1)))
        this.byCause.clear()
        this.streak = undefined
        this.refused = undefined
        return
      }
      case "NodeProposed": {
        if (this.pending.length === 0) return
        const fp = now(event.node)
        this.pending = this.pending.filter((n) => now(n) !== fp)
        return
      }
      default:
        return
    }
  }

  /** The trials of the cause that failed the most (the one that stopped the run, whatever threshold this fold has). */
  private mostAlike(): ReadonlyArray<string> {
    const most = Math.max(0, ...[...this.byCause.values()].map(({ nodes }) => nodes.length))
    return [...this.byCause.values()].flatMap(({ nodes }) => (nodes.length === most ? nodes : []))
  }

  /**
   * The cause that has failed `threshold` trials with nothing working, or `SINCE_FACTOR` times as
   * many one after another since trials worked, if one has. Asked after each finished trial, so
   * the first cause to get there is the one found.
   */
  stop(): Alike | undefined {
    if (this.threshold <= 0) return undefined
    const r = this.refused
    if (r !== undefined) return { cause: r.cause, nodes: [...r.nodes], shown: r.shown, worked: this.worked, refused: true }
    if (this.worked > 0) {
      const s = this.streak
      return s !== undefined && s.nodes.length >= this.threshold * SINCE_FACTOR ? { cause: s.cause, nodes: [...s.nodes], shown: s.shown, worked: this.worked } : undefined
    }
    for (const [cause, { nodes, shown }] of this.byCause) if (nodes.length >= this.threshold) return { cause, nodes: [...nodes], shown, worked: 0 }
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
