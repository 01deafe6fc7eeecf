/**
 * A run's webhook messages that are due and not yet delivered, kept in its directory: `notify/`, one JSON
 * file a message, written whole and durably (to a temporary file, fsync'd, renamed over the old one, the
 * folder fsync'd). A controller killed (or a machine that lost power) while a message was due, being
 * posted or being retried leaves its file, and the run's next session (`trex resume`) posts it. Which
 * webhooks answered is kept as keys, a hash of each address: the address is a secret, never written.
 * A message too old to post when a session would post it is moved to `notify/expired/`, and stays there.
 * Which webhooks got an end the journal records is kept too, in `notify/delivered/<key>.json` (one
 * file a webhook, durably, holding the id of the latest end it answered 2xx): a resume that runs nothing
 * tells that end again, and is not to post it to a webhook that has it.
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"

/**
 * One message as it is kept: `at` (ms) orders the messages; `delivered` holds the keys of the webhooks
 * that got it. `end`: the message tells a session's end, made before that end (`RunFinished`, at `seq`
 * in the journal, stamped `at`) was journaled: it is posted only if the journal holds that end.
 * `expired` (ms): when it was found too old to post (in `notify/expired/` only). `maxAgeHours`: the
 * `--notify-max-age` (`notify.maxAgeHours`) of the last session with webhooks that kept it, the age a
 * session like it allows (absent in a message an older trex kept: the default).
 */
export interface Entry<M> {
  readonly id: string
  readonly at: number
  readonly message: M
  readonly delivered: ReadonlyArray<string>
  readonly end?: { readonly seq: number; readonly at: number }
  readonly expired?: number
  readonly maxAgeHours?: number
}

/** The folder of a run's undelivered messages. */
export const dirOf = (runDir: string): string => path.join(runDir, "notify")

/** The folder of the messages found too old to post. */
export const expiredDirOf = (runDir: string): string => path.join(dirOf(runDir), "expired")

/** The folder of what each webhook got: one file a webhook, by its key. */
export const deliveredDirOf = (runDir: string): string => path.join(dirOf(runDir), "delivered")

/** A message's file name: the part of its id after the run's (`best-n3`, `end-17`). */
const nameOf = (id: string): string => `${id.slice(id.lastIndexOf("/") + 1).replace(/[^\w.-]/g, "_")}.json`

/** A message's file in `notify/`. */
export const fileOf = (runDir: string, id: string): string => path.join(dirOf(runDir), nameOf(id))

/** A webhook's key: its address hashed, so that what was delivered where is kept without the address. */
export const keyOf = (address: string): string => crypto.createHash("sha256").update(address).digest("hex").slice(0, 16)

const why = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e))

/** fsync a folder, so that a file made, renamed or removed in it is there after a power loss too. */
const syncDir = (dir: string): void => {
  const fd = fs.openSync(dir, "r")
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

/** Make a folder (and its parent's entry for it, and so on up to a folder that was there) durably, when it is not there. */
const makeDir = (dir: string): void => {
  if (fs.existsSync(dir)) return
  makeDir(path.dirname(dir))
  fs.mkdirSync(dir)
  syncDir(path.dirname(dir))
}

/**
 * Write `file` whole: a temporary file renamed over it (a kill leaves the old or the new one); with
 * `sync` (the default) durably too, the temporary file fsync'd before its rename, its folder after it.
 */
export const writeDurably = (file: string, text: string, sync = true): void => {
  const tmp = `${file}.${process.pid}.tmp`
  try {
    const fd = fs.openSync(tmp, "w")
    try {
      fs.writeSync(fd, text)
      if (sync) fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, file)
    if (sync) syncDir(path.dirname(file))
  } catch (e) {
    fs.rmSync(tmp, { force: true })
    throw e
  }
}

/**
 * Remove the temporary files a kill mid-write left (`<name>.json.<pid>.tmp`, of another process, in
 * `notify/`, `notify/delivered/` and `notify/expired/`): never read, they would stay for ever. Only for
 * a caller that holds the run (no other process can be writing them); the rest of those folders is left
 * as it is. What could not be removed, said.
 */
export const removeStale = (runDir: string): ReadonlyArray<string> => {
  const failed: Array<string> = []
  for (const dir of [dirOf(runDir), deliveredDirOf(runDir), expiredDirOf(runDir)]) {
    let names: Array<string>
    try {
      names = fs.readdirSync(dir)
    } catch {
      continue // none
    }
    for (const name of names) {
      const pid = /^.+\.json\.(\d+)\.tmp$/.exec(name)?.[1]
      if (pid === undefined || Number(pid) === process.pid) continue
      try {
        fs.rmSync(path.join(dir, name), { force: true })
      } catch (e) {
        failed.push(`cannot remove ${path.join(dir, name)}: ${why(e)}`)
      }
    }
  }
  return failed
}

/** Keep (or update) a message; `undefined` when done, else why it could not be written. */
export const put = <M>(runDir: string, entry: Entry<M>): string | undefined => {
  const file = fileOf(runDir, entry.id)
  try {
    makeDir(dirOf(runDir))
    writeDurably(file, JSON.stringify(entry))
    return undefined
  } catch (e) {
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
  // holds a message (ENOTEMPTY), expired ones or what webhooks got, stays, as it should
  try {
    fs.rmdirSync(dirOf(runDir))
  } catch {
    // not empty, or already gone
  }
  return undefined
}

/**
 * Move a message found too old to post to `notify/expired/`, stamped with when (`expired`); `undefined`
 * when done, else why not.
 */
export const expire = <M>(runDir: string, entry: Entry<M>, now: number): string | undefined => {
  const file = path.join(expiredDirOf(runDir), nameOf(entry.id))
  try {
    makeDir(expiredDirOf(runDir))
    writeDurably(file, JSON.stringify({ ...entry, expired: now }))
  } catch (e) {
    return `cannot write ${file}: ${why(e)}`
  }
  return remove(runDir, entry.id)
}

/** Update a message in `notify/expired/` (the webhooks that got it when posted again); `undefined` when done, else why not. */
export const putExpired = <M>(runDir: string, entry: Entry<M>): string | undefined => {
  const file = path.join(expiredDirOf(runDir), nameOf(entry.id))
  try {
    writeDurably(file, JSON.stringify(entry))
    return undefined
  } catch (e) {
    return `cannot write ${file}: ${why(e)}`
  }
}

/**
 * Forget a message of `notify/expired/` (posted after all, or dropped), and the folder once empty (and
 * `notify/` then, when empty too); `undefined` when done, else why not.
 */
export const removeExpired = (runDir: string, id: string): string | undefined => {
  const file = path.join(expiredDirOf(runDir), nameOf(id))
  try {
    fs.rmSync(file, { force: true })
  } catch (e) {
    return `cannot remove ${file}: ${why(e)}`
  }
  for (const dir of [expiredDirOf(runDir), dirOf(runDir)]) {
    try {
      fs.rmdirSync(dir)
    } catch {
      // not empty, or already gone
    }
  }
  return undefined
}

/** The ids of the ends the webhook of `key` answered 2xx (none when its file is missing or unreadable: they are posted again). */
export const deliveredTo = (runDir: string, key: string): ReadonlyArray<string> => {
  try {
    const v = JSON.parse(fs.readFileSync(path.join(deliveredDirOf(runDir), `${key}.json`), "utf8")) as { readonly ends?: unknown }
    return Array.isArray(v.ends) ? v.ends.filter((id): id is string => typeof id === "string") : []
  } catch {
    return []
  }
}

/**
 * The journal position an end's id names (`.../end-<seq>`), or `undefined` for an end the journal does
 * not record (`.../end-<12 hex digits>`, a session that ended without `RunFinished`). A position is
 * written without leading zeros and never has 12 digits (10^11 entries), so a random id whose 12 hex
 * digits happen to be all decimal (1 in 282) is not taken for one.
 */
export const endSeq = (id: string): number | undefined => {
  const digits = /\/end-([1-9]\d{0,10})$/.exec(id)?.[1]
  return digits === undefined ? undefined : Number(digits)
}

/**
 * Record that the webhook of `key` answered 2xx to the end `id`; `undefined` when done, else why not.
 * Written durably, as a kept message (the file fsync'd before its rename, its folder after it): a kill or
 * a power loss leaves the record or the one before. Only the run's last end is told again (by a resume
 * that runs nothing), so a record holds one id, the latest end (by its journal position) the webhook got:
 * a later end replaces it (and any id that names no position), an end the journal does not record
 * (`end-<12 hex digits>`, never told again) is not recorded, an earlier one (a kept message of an earlier session, which keeps its own
 * list of the webhooks that got it) leaves it. A kill between the answer and the record posts that end
 * once more (at least once).
 */
export const markDelivered = (runDir: string, key: string, id: string): string | undefined => {
  const file = path.join(deliveredDirOf(runDir), `${key}.json`)
  const seq = endSeq(id)
  // an end the journal does not record is never told again: nothing to record
  if (seq === undefined) return undefined
  // one recorded that is not a journal's end (an older trex took a random id of decimal digits for one) is replaced
  if (deliveredTo(runDir, key).some((e) => (endSeq(e) ?? -1) >= seq)) return undefined
  try {
    makeDir(deliveredDirOf(runDir))
    writeDurably(file, JSON.stringify({ ends: [id] }))
    return undefined
  } catch (e) {
    return `cannot write ${file}: ${why(e)}`
  }
}

/** The kept messages of a folder, in the order they were due, and the files that could not be read as one. */
const readDir = <M>(dir: string): { readonly entries: ReadonlyArray<Entry<M>>; readonly unreadable: ReadonlyArray<string> } => {
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

/**
 * The messages kept in a run's directory, in the order they were due, and the files that could not be
 * read as one (named, and left where they are).
 */
export const read = <M>(runDir: string) => readDir<M>(dirOf(runDir))

/** The messages found too old to post (`notify/expired/`), in the order they were due. */
export const readExpired = <M>(runDir: string) => readDir<M>(expiredDirOf(runDir))
