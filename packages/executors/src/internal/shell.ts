/**
 * Shell quoting and the checks on names and paths that a batch script (Slurm's, Grid Engine's) and a
 * pod's command line need: every argv word reaches the job as one word, whatever it holds.
 */

/**
 * Quote one word for a POSIX shell: wrap it in single quotes and write every single quote
 * as `'\''`. The result is one word whatever the input holds (spaces, `$`, backquotes,
 * newlines, globs, quotes), so an argv entry can never run a command of its own.
 */
export const shellQuote = (word: string): string => {
  if (word.includes("\0")) throw new Error("a shell word cannot contain a NUL byte")
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`
}

/** Quote every word of an argv and join them with spaces. */
export const shellJoin = (argv: ReadonlyArray<string>): string => argv.map(shellQuote).join(" ")

/** Environment variable names a shell can export. */
export const isEnvName = (name: string): boolean => /^[A-Za-z_][A-Za-z0-9_]*$/.test(name)

/** A relative path inside the job directory (no absolute path, no `..`, no empty segment). */
export const isSafeRelativePath = (p: string): boolean =>
  p.length > 0 && !p.startsWith("/") && !p.includes("\0") && p.split("/").every((s) => s !== "" && s !== "." && s !== "..")

/** The env file a batch script sources: one `export NAME='value'` per variable. */
export const renderEnvFile = (env: Readonly<Record<string, string>>): string =>
  Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}\n`).join("")

/** A run or node label as one directory name: safe characters only, at most 80. */
export const pathSegment = (s: string): string => s.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^\.+/, "_").slice(0, 80) || "_"
