/**
 * The jobs a batch backend instance submitted whose output no watch has given yet (Grid Engine, Slurm): a job that
 * ends before its first watch's first look (a busy controller: a job of a second ends between its submission and
 * that look) gives its output to that watch as Log events, where a watch of a job that ended long before gives its
 * Exit alone. Bounded: an id leaves when a watch takes it, when the job is cancelled or withdrawn before any watch
 * (nothing waits for its lines), and, past {@link UNWATCHED_LIMIT} ids, the oldest leave first (a job submitted that
 * many submissions ago and still not watched is no job of a second caught by a busy controller).
 */

/** The most ids kept: a few hundred kilobytes at most, whatever the instance's life. */
export const UNWATCHED_LIMIT = 4096

export class Unwatched {
  readonly #ids = new Set<string>()
  readonly #limit: number

  constructor(limit: number = UNWATCHED_LIMIT) {
    this.#limit = Math.max(1, limit)
  }

  /** A job this instance has just submitted. */
  add(id: string): void {
    this.#ids.delete(id)
    this.#ids.add(id)
    // a Set iterates in insertion order: the first is the oldest
    while (this.#ids.size > this.#limit) this.#ids.delete(this.#ids.values().next().value!)
  }

  /** A watch begins: whether its job was submitted here and no watch has given its output yet (once per id). */
  take(id: string): boolean {
    return this.#ids.delete(id)
  }

  /** The job was cancelled or withdrawn, or found ended, before any watch: it leaves the set. */
  drop(id: string): void {
    this.#ids.delete(id)
  }

  get size(): number {
    return this.#ids.size
  }
}
