/**
 * Bounds on what a watch holds of a job's output, shared by the backends: a job that prints
 * gigabytes is read a slice at a time, and a watch's events wait in a bounded queue (its producer
 * suspends while the consumer is behind), so the controller's memory does not grow with the output.
 */

/** Events a watch's queue holds before its producer waits for the consumer. */
export const WATCH_BUFFER = 4096
