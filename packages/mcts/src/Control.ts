/**
 * A handle for steering a running search from outside: pause (no new trials start; running
 * ones finish), resume, and stop (`"drain"`: let running trials finish, and withdraw those whose
 * executor reports their job waiting in its backend's queue, to run on resume; `"cancel"`: cancel them all).
 *
 * @since 0.1.0
 */

/** @since 0.1.0 @category models */
export type StopMode = "drain" | "cancel"

/**
 * @example
 * ```ts
 * import { Control } from "@trex/mcts"
 * const control = new Control.Control()
 * control.pause()
 * control.resume()
 * control.stop("drain")
 * ```
 * @since 0.1.0 @category models
 */
export class Control {
  private pausedFlag = false
  private stopMode: StopMode | undefined
  private readonly listeners = new Set<() => void>()

  get paused(): boolean {
    return this.pausedFlag
  }

  get stopRequested(): StopMode | undefined {
    return this.stopMode
  }

  pause(): void {
    this.pausedFlag = true
    this.notify()
  }

  resume(): void {
    this.pausedFlag = false
    this.notify()
  }

  stop(mode: StopMode = "drain"): void {
    if (this.stopMode !== "cancel") this.stopMode = mode
    this.notify()
  }

  /** Called by the explorer to be woken on any change. Returns an unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  private notify(): void {
    for (const l of this.listeners) l()
  }
}
