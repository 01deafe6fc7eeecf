import type { Backend, ExperimentNode } from "@trex/core"

/**
 * The job of node `nodeId` to adopt after a restart, from the jobs the backend lists: one the journal does not hold
 * (`journaled`: the node's jobs on record, followed already; one of them adopted again would have its end read twice,
 * or a lost one's loss read as the node's again); given `after` (the job on record being reattached), listed, and every
 * listed job's `submittedAt`, only those submitted after it. Of those, one not finished if one is (it must never be
 * submitted again), else the last submitted (by `submittedAt` where the backend gives it for every job, else in the
 * order listed). The order listed is no submission order on most backends (Kubernetes lists Jobs by name, Docker newest
 * first, SSH by host), so without `submittedAt` a job is never judged earlier than `after` by its place in the list.
 */
export const adoptable = (
  known: ReadonlyArray<Backend.JobInfo>,
  nodeId: string,
  journaled: ReadonlyArray<ExperimentNode.JobRef> = [],
  after?: ExperimentNode.JobRef
): Backend.JobInfo | undefined => {
  const recorded = new Set(journaled.map((j) => j.id))
  const jobs = known.filter((j) => j.labels.node === nodeId)
  const timed = jobs.every((j) => j.submittedAt !== undefined)
  const ordered = timed ? [...jobs].sort((a, b) => a.submittedAt! - b.submittedAt!) : jobs
  const from = after !== undefined && timed ? ordered.findIndex((j) => j.ref.id === after.id) + 1 : 0
  const later = ordered.slice(from).filter((j) => !recorded.has(j.ref.id))
  return later.findLast((j) => j.state !== "Finished") ?? later.at(-1)
}
