/**
 * A value handed on once (a resumed run's journal entries): readers may look at it while it is here,
 * the one that takes it holds it from then on, and this holder lets go of it, so that nothing of the
 * session keeps it once its last reader is done.
 */
export class HandOver<A> {
  private value: A | undefined
  constructor(value: A | undefined) {
    this.value = value
  }
  /** The value, still held here (for a reader that does not keep it). */
  peek(): A | undefined {
    return this.value
  }
  /** The value, let go of here. */
  take(): A | undefined {
    const value = this.value
    this.value = undefined
    return value
  }
}
