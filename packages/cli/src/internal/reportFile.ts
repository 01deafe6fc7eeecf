/**
 * Writing a report into a run directory (`report.md`, `report.html`): whole or not at all. Written to a
 * temporary file and renamed over the old one, so a disk that fills up part way leaves the previous
 * report as it was, not an empty or cut file.
 */
import { Errors } from "@trex/core"
import * as fs from "node:fs"
import * as path from "node:path"

/** Write `text` to `file`; `undefined` when done, else what went wrong, naming the file and the fix. */
export const writeReportFile = (file: string, text: string): string | undefined => {
  const tmp = `${file}.${process.pid}.tmp`
  try {
    fs.writeFileSync(tmp, text)
    fs.renameSync(tmp, file)
    return undefined
  } catch (e) {
    fs.rmSync(tmp, { force: true })
    const dir = path.dirname(file)
    const why = Errors.noSpace(e)
    if (why !== undefined && !why.includes("read-only")) {
      // the command that writes this very report: report.html is written by `--html`
      const command = `trex report ${dir}${file.endsWith(".html") ? " --html" : ""}`
      return `cannot write ${file} (${why}): the disk holding ${dir} is full: free space there, then \`${command}\` writes it${fs.existsSync(file) ? " (the previous one is kept)" : ""}`
    }
    return `cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)} (is the run directory writable?)`
  }
}
