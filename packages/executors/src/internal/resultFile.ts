/**
 * What every backend says of a `result.json` over {@link JobProtocol.MAX_RESULT_BYTES}: it is not
 * read (the file, and its parse, would be held in the controller), and the trial fails naming its size.
 */
import { JobProtocol } from "@trex/core"

/** The `resultError` of a `result.json` of `size` bytes, over the cap. */
export const tooBig = (size: number): string =>
  `${JobProtocol.RESULT_FILE} is ${(size / 2 ** 20).toFixed(0)} MB, more than the ${JobProtocol.MAX_RESULT_BYTES / 2 ** 20} MB the controller reads (keep its metrics and a short summary in it; put bulk data in an artifact)`
