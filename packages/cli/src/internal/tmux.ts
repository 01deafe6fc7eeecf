/**
 * Whether this process's terminal is a tmux pane, asked of the tmux server that `TMUX` names, and what
 * that server says of characters' widths. tmux sets `TMUX` (its socket, its pid, the session) in its
 * panes, and every process started from one inherits it: a terminal window opened from a pane too
 * (`xterm &`), where tmux lays out nothing. So `TMUX` alone does not say the frame is drawn in tmux:
 * the terminal it is drawn on (stdout's) is asked for among the server's panes.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"

/** A width tmux's `codepoint-widths` gives code points `from` to `to`: 0, 1 or 2 columns. */
export type Width = readonly [from: number, to: number, columns: 0 | 1 | 2]

/** What the tmux server of `TMUX` says: whether `tty` is one of its panes, its version, and its `codepoint-widths`. */
export interface Server {
  readonly pane: boolean
  readonly version: string
  readonly widths: ReadonlyArray<Width>
}

/** The device of the terminal stdout is (`/dev/pts/3`), or `undefined` when stdout is no terminal or it cannot be told. */
export const stdoutTty = (): string | undefined => {
  if (process.stdout.isTTY !== true) return undefined
  try {
    const linked = fs.readlinkSync("/proc/self/fd/1")
    if (linked.startsWith("/dev/")) return linked
  } catch {
    // no /proc (macOS, the BSDs): tty(1) names its standard input, given stdout's
  }
  const named = spawnSync("tty", [], { stdio: [1, "pipe", "ignore"], encoding: "utf8", timeout: 2_000 })
  const name = named.status === 0 ? named.stdout.trim() : ""
  return name.startsWith("/dev/") ? name : undefined
}

/** Whether tmux `version` (`3.3a`, `3.5`, `next-3.6`, `master`) is `major.minor` or later; a version not numbered is taken as the newest. */
export const atLeast = (version: string, major: number, minor: number): boolean => {
  const m = /(\d+)\.(\d+)/.exec(version)
  if (m === null) return true
  const [a, b] = [Number(m[1]), Number(m[2])]
  return a > major || (a === major && b >= minor)
}

/**
 * The entries of tmux's `codepoint-widths` option as `show -sv` prints an array option (one a line):
 * `U+XXXX=W`, `U+XXXX-U+YYYY=W` or the character itself, `é=W`, with W 0, 1 or 2. Those tmux passes
 * over (no `=`, a width not 0 to 2, a code point 0 or past U+10FFFF, a range backwards, more than one
 * character) are passed over here too; a later entry for a code point takes the place of an earlier one.
 */
export const parseWidths = (text: string): ReadonlyArray<Width> => {
  const out: Array<Width> = []
  for (const line of text.split("\n")) {
    const at = line.indexOf("=")
    if (at <= 0) continue
    const spec = line.slice(0, at)
    const w = line.slice(at + 1)
    if (!/^[012]$/.test(w)) continue
    const columns = Number(w) as 0 | 1 | 2
    const range = /^U\+([0-9a-fA-F]+)(?:-U\+([0-9a-fA-F]+))?$/.exec(spec)
    if (range !== null) {
      const from = parseInt(range[1]!, 16)
      const to = range[2] !== undefined ? parseInt(range[2], 16) : from
      if (from > 0 && to <= 0x10ffff && from <= to) out.push([from, to, columns])
    } else if ([...spec].length === 1) {
      const cp = spec.codePointAt(0)!
      out.push([cp, cp, columns])
    }
  }
  return out
}

/**
 * Ask the tmux server of `tmuxVar` (the value of `TMUX`: `<socket>,<pid>,<session>`) whether `tty` is one
 * of its panes, and, from 3.5 on, its `codepoint-widths`. `undefined` when it cannot be asked (no tmux
 * here, a server gone or another user's): then `TMUX` is all there is to go by.
 */
export const ask = (tmuxVar: string, tty: string, env: Readonly<Record<string, string | undefined>> = process.env): Server | undefined => {
  const socket = tmuxVar.replace(/,[^,]*,[^,]*$/, "")
  if (socket === "" || socket === tmuxVar) return undefined
  const tmux = (...args: ReadonlyArray<string>) =>
    spawnSync("tmux", ["-S", socket, ...args], { encoding: "utf8", timeout: 2_000, env: { PATH: process.env["PATH"], ...env }, stdio: ["ignore", "pipe", "ignore"] })
  const panes = tmux("list-panes", "-a", "-F", "#{pane_tty} #{version}")
  if (panes.status !== 0 || typeof panes.stdout !== "string") return undefined
  const rows = panes.stdout.split("\n").filter((l) => l !== "").map((l) => l.split(" "))
  const version = rows[0]?.[1] ?? ""
  const pane = rows.some(([device]) => device === tty)
  // the option is read only in a pane, and only of a tmux that has it
  const shown = pane && atLeast(version, 3, 5) ? tmux("show-options", "-sv", "codepoint-widths") : undefined
  return { pane, version, widths: shown?.status === 0 ? parseWidths(shown.stdout) : [] }
}
