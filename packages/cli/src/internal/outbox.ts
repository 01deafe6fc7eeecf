/**
 * A run's webhook messages that are due and not yet delivered, kept in its directory: `notify/`, one JSON
 * file a message, written whole (to a temporary file, renamed over the old one). A controller killed
 * while a message was due, being posted or being retried leaves its file, and the run's next session
 * (`trex resume`) posts it. Which webhooks answered is kept as keys, a hash of each address: the address
 * is a secret, never written.
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"

/** One message as it is kept: `at` (ms) orders the messages; `delivered` holds the keys of the webhooks that got it. */
export interface Entry<M> {
  readonly id: string
  readonly at: number
  readonly message: M
  readonly delivered: ReadonlyArray<string>
}

/** The folder of a run's undelivered messages. */
export const dirOf = (runDir: string): string => path.join(runDir, "notify")

/** A message's file: the part of its id after the run's (`best-n3`, `end-1a2b3c4d5e6f`). */
const fileOf = (runDir: string, id: string): string => path.join(dirOf(runDir), `${id.slice(id.lastIndexOf("/") + 1).replace(/[^\w.-]/g, "_")}.json`)

/** A webhook's key: its address hashed, so that what was delivered where is kept without the address. */
export const keyOf = (address: string): string => crypto.createHash("sha256").update(address).digest("hex").slice(0, 16)

const why = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e))

/** Keep (or update) a message; `undefined` when done, else why it could not be written. */
export const put = <M>(runDir: string, entry: Entry<M>): string | undefined => {
  const file = fileOf(runDir, entry.id)
  const tmp = `${file}.${process.pid}.tmp`
  try {
    fs.mkdirSync(dirOf(runDir), { recursive: true })
    fs.writeFileSync(tmp, JSON.stringify(entry))
    fs.renameSync(tmp, file)
    return undefined
  } catch (e) {
    fs.rmSync(tmp, { force: true })
    return `cannot write ${file}: ${why(e)}`
  }
}

/** Forget a message (delivered, or replaced by a later one), and the folder once empty; `undefined` when done, else why not. */
export const remove = (runDir: string, id: string): string | undefined => {
  try {
    fs.rmSync(fileOf(runDir, id), { force: true })
  } catch (e) {
    return `cannot remove ${fileOf(runDir, id)}: ${why(e)}`
  }
  // the folder goes with its last message, so a run with nothing waiting has none; one that still
  // holds a message (ENOTEMPTY) stays, as it should
  try {
    fs.rmdirSync(dirOf(runDir))
  } catch {
    // not empty, or already gone
  }
  return undefined
}

/**
 * The messages kept in a run's directory, in the order they were due, and the files that could not be
 * read as one (named, and left where they are).
 */
export const read = <M>(runDir: string): { readonly entries: ReadonlyArray<Entry<M>>; readonly unreadable: ReadonlyArray<string> } => {
  const dir = dirOf(runDir)
  let names: Array<string>
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith(".json"))
  } catch (e) {
    return { entries: [], unreadable: (e as NodeJS.ErrnoException).code === "ENOENT" ? [] : [`${dir}: ${why(e)}`] }
  }
  const entries: Array<Entry<M>> = []
  const unreadable: Array<string> = []
  for (const name of names.sort()) {
    const file = path.join(dir, name)
    try {
      const v = JSON.parse(fs.readFileSync(file, "utf8")) as Entry<M>
      if (typeof v.id !== "string" || typeof v.at !== "number" || !Array.isArray(v.delivered) || typeof v.message !== "object" || v.message === null) throw new Error("not a kept message")
      entries.push(v)
    } catch (e) {
      unreadable.push(`${file}: ${why(e)}`)
    }
  }
  return { entries: entries.sort((a, b) => a.at - b.at), unreadable }
}
