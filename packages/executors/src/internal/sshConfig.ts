/**
 * The common subset of OpenSSH's client configuration (`~/.ssh/config`, ssh_config(5)) that users rely on to name
 * their hosts: `Host` blocks (patterns with `*` and `?`, `!` negation, several on a line), and in them `HostName`,
 * `User`, `Port`, `IdentityFile` (`~` and the tokens `%d %h %n %p %r %u %%`) and `UserKnownHostsFile`. As in OpenSSH, a
 * keyword's first value obtained wins (`IdentityFile` adds up), keywords are case-insensitive and may be followed by
 * `=`. Read by the SSH backend's hosts and the Docker backend's `ssh://` engines; settings given explicitly win over it.
 *
 * `Include` is followed as OpenSSH follows it (globs; a relative path under `~/.ssh`; the files in place, their `Host`
 * lines holding within each). What it cannot honour is said as a warning naming the file and line, never followed
 * silently: a `Match` of another criterion than `all`, `host`, `originalhost`, `user`, `localuser` (its block is not
 * applied), `ProxyJump`/`ProxyCommand` (the connection goes
 * straight to the host), `StrictHostKeyChecking` other than `yes` (host keys are always checked against known_hosts,
 * with no trust on first use). Any other keyword is ignored, as it changes nothing these backends do.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"

/** The user's configuration file, as OpenSSH reads it (the system's, /etc/ssh/ssh_config, is not read). */
export const USER_CONFIG = "~/.ssh/config"

/** OpenSSH's default key files, tried in this order when no `IdentityFile` is given. */
export const DEFAULT_KEYS = ["~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"]
/** OpenSSH's default known hosts of the user. */
export const DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"

/** One line of a configuration file: its keyword in lower case, its arguments (quotes taken off). */
interface Line {
  readonly where: string
  readonly keyword: string
  readonly args: ReadonlyArray<string>
}

/** What the configuration says of one host; each field `undefined` when it says nothing. */
export interface HostSettings {
  readonly hostName?: string | undefined
  readonly user?: string | undefined
  readonly port?: number | undefined
  /** Every `IdentityFile` that applies, in order, `~` and tokens expanded. */
  readonly identityFiles: ReadonlyArray<string>
  /** The first `UserKnownHostsFile` that applies (its files), `~` and tokens expanded. */
  readonly knownHostsFiles?: ReadonlyArray<string> | undefined
  /** What could not be honoured, each naming its file and line. */
  readonly warnings: ReadonlyArray<string>
}

/** Who reads it: the home directory (`$HOME`, Node's `os.homedir()`; OpenSSH takes the passwd entry's) and the local user (for `~`, `%d` and `%u`). */
export interface Local {
  readonly home: string
  readonly user: string
}

const localUser = (): string => {
  try {
    return Os.userInfo().username
  } catch {
    return String(process.getuid?.() ?? "")
  }
}

/** This process's home and user. */
export const here = (): Local => ({ home: Os.homedir(), user: localUser() })

/** A line's words: whitespace-separated, `"..."` one word, an unquoted word starting with `#` ends the line. */
const words = (text: string): Array<string> => {
  const out: Array<string> = []
  const re = /"([^"]*)"|(\S+)/g
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (m[2] !== undefined && m[2].startsWith("#")) break
    out.push(m[1] ?? m[2]!)
  }
  return out
}

/** The lines of a configuration text, named `file:n`. */
export const parse = (text: string, file: string): Array<Line> =>
  text.split("\n").flatMap((raw, i): Array<Line> => {
    const l = raw.trim()
    if (l === "" || l.startsWith("#")) return []
    // the keyword ends at whitespace or `=` (`Port=22`, `Port = 22`)
    const m = /^([^\s=]+)\s*(?:=\s*)?(.*)$/.exec(l)
    if (m === null) return []
    return [{ where: `${file}:${i + 1}`, keyword: m[1]!.toLowerCase(), args: words(m[2]!) }]
  })

const globRe = (pattern: string): RegExp =>
  new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replaceAll("*", ".*").replaceAll("?", ".")}$`)

/** Whether a `Host` line's patterns take `host`: one of them does, and none of its negated ones (`!pattern`). */
export const hostMatches = (patterns: ReadonlyArray<string>, host: string): boolean =>
  patterns.some((p) => !p.startsWith("!") && globRe(p).test(host)) && !patterns.some((p) => p.startsWith("!") && globRe(p.slice(1)).test(host))

/** Whether `value` is taken by a comma-separated pattern list: one of its patterns takes it, and none of its `!` ones. */
const listMatches = (list: string, value: string): boolean => hostMatches(list.split(","), value)

/**
 * Whether a `Match` line's criteria all hold (`all`; `host`, the host connected to so far, and `originalhost`, the name
 * given, in lower case; `user`, the remote user so far; `localuser`; each may be negated with `!`), or the criterion it
 * cannot evaluate (`canonical`, `final`, `exec`, `localnetwork`, `tagged`...), whose block is then not applied.
 */
const matchApplies = (args: ReadonlyArray<string>, of: { readonly host: string; readonly originalhost: string; readonly user: string; readonly localuser: string }): boolean | string => {
  let all = true
  for (let i = 0; i < args.length; i++) {
    const raw = args[i]!
    const negated = raw.startsWith("!")
    const criterion = (negated ? raw.slice(1) : raw).toLowerCase()
    if (criterion === "all" && !negated && args.length === 1) continue
    if (criterion !== "host" && criterion !== "originalhost" && criterion !== "user" && criterion !== "localuser") return raw
    const list = args[++i]
    if (list === undefined) return `${raw} (without its patterns)`
    const hostly = criterion === "host" || criterion === "originalhost"
    const holds = listMatches(hostly ? list.toLowerCase() : list, hostly ? of[criterion].toLowerCase() : of[criterion])
    if (holds === negated) all = false
  }
  return all
}

/**
 * `~/` and the tokens of a path (`%d` home, `%h` the host connected to, `%n` the name given, `%p` port, `%r` remote
 * user, `%u` local user, `%%`); `undefined` for a token it does not know.
 */
const expand = (value: string, tokens: Readonly<Record<string, string>>, home: string): string | undefined => {
  let unknown = false
  const out = value.replace(/%(.)/g, (_, t: string) => {
    const v = t === "%" ? "%" : tokens[t]
    if (v === undefined) unknown = true
    return v ?? ""
  })
  if (unknown) return undefined
  return out === "~" || out.startsWith("~/") ? home + out.slice(1) : out
}

/**
 * What the lines say of `host` (the name as given: an alias, or the host itself), given what is set explicitly
 * (`user`, `port`: for the tokens of paths). Read top to bottom; the first value of each keyword wins.
 */
export const settingsFor = (
  lines: ReadonlyArray<Line>,
  host: string,
  local: Local,
  explicit: { readonly user?: string | undefined; readonly port?: number | undefined } = {},
  include?: (arg: string) => ReadonlyArray<ReadonlyArray<Line>>
): HostSettings => {
  const warnings: Array<string> = []
  let applies = true // lines before the first Host apply to every host
  let hostName: string | undefined
  let user: string | undefined
  let port: number | undefined
  let knownHosts: { readonly where: string; readonly files: ReadonlyArray<string> } | undefined
  const identities: Array<{ readonly where: string; readonly file: string }> = []
  let strict = false
  let proxied = false
  const walk = (lines: ReadonlyArray<Line>, depth: number): void => {
    for (const l of lines) {
      if (l.keyword === "host") {
        // as OpenSSH: the name as given, case and all
        applies = hostMatches(l.args, host)
        continue
      }
      if (l.keyword === "match") {
        const m = matchApplies(l.args, { host: hostName ?? host, originalhost: host, user: explicit.user ?? user ?? local.user, localuser: local.user })
        if (typeof m === "string") {
          warnings.push(`${l.where}: Match ${m} is not supported: the settings under it are not applied (write them in a Host block, or a Match of host, originalhost, user, localuser or all)`)
        }
        applies = m === true
        continue
      }
      if (l.keyword === "include" && applies) {
        if (include === undefined || depth >= MAX_INCLUDE_DEPTH) {
          warnings.push(`${l.where}: Include ${depth >= MAX_INCLUDE_DEPTH ? `nested deeper than ${MAX_INCLUDE_DEPTH} files` : "is not supported here"}: ${l.args.join(" ")} not read`)
          continue
        }
        // as OpenSSH: each file read in place, its Host lines holding within it; then the including block's state again
        for (const arg of l.args) {
          for (const included of include(arg)) {
            walk(included, depth + 1)
            applies = true
          }
        }
        continue
      }
      if (!applies) continue
      const first = l.args[0]
      if (first === undefined) continue
      switch (l.keyword) {
        case "hostname":
          // in lower case, as OpenSSH connects to it
          hostName ??= first.replaceAll("%h", host).replaceAll("%%", "%").toLowerCase()
          break
        case "user":
          user ??= first
          break
        case "port": {
          if (port !== undefined) break
          const n = Number(first)
          if (Number.isInteger(n) && n > 0 && n < 65536) port = n
          else warnings.push(`${l.where}: Port ${first} is not a port number: ignored`)
          break
        }
        case "identityfile":
          if (first.toLowerCase() !== "none") identities.push({ where: l.where, file: first })
          break
        case "userknownhostsfile":
          knownHosts ??= { where: l.where, files: l.args }
          break
        case "stricthostkeychecking":
          if (!strict) {
            strict = true
            if (first.toLowerCase() !== "yes") {
              warnings.push(
                `${l.where}: StrictHostKeyChecking ${first} is not followed: host keys are always checked against known_hosts ` +
                  "(an unknown or changed key is refused; no key is added)"
              )
            }
          }
          break
        case "proxyjump":
        case "proxycommand":
          if (!proxied) {
            proxied = true
            if (first.toLowerCase() !== "none") {
              warnings.push(`${l.where}: ${l.keyword === "proxyjump" ? "ProxyJump" : "ProxyCommand"} is not supported: the connection goes straight to the host, not through ${l.args.join(" ")}`)
            }
          }
          break
      }
    }
  }
  walk(lines, 0)
  const connectTo = hostName ?? host
  const tokens: Record<string, string> = {
    d: local.home,
    h: connectTo,
    n: host,
    p: String(explicit.port ?? port ?? 22),
    r: explicit.user ?? user ?? local.user,
    u: local.user
  }
  const expanded = (where: string, file: string): Array<string> => {
    const e = expand(file, tokens, local.home)
    if (e !== undefined) return [e]
    warnings.push(`${where}: ${file}: a % token other than %d %h %n %p %r %u %% is not supported: ignored`)
    return []
  }
  const knownHostsFiles = knownHosts?.files.flatMap((f) => f.toLowerCase() === "none" ? [] : expanded(knownHosts!.where, f))
  return {
    hostName,
    user,
    port,
    identityFiles: identities.flatMap((i) => expanded(i.where, i.file)),
    knownHostsFiles: knownHostsFiles !== undefined && knownHostsFiles.length > 0 ? knownHostsFiles : undefined,
    warnings
  }
}

/** As OpenSSH: an `Include` nested deeper than this is not followed. */
const MAX_INCLUDE_DEPTH = 16

/**
 * The files an `Include` argument names, sorted as glob(3) sorts them: `~` expanded, a relative path under `~/.ssh`
 * (the user's file's directory), `*` and `?` in any component matched. None is nothing (OpenSSH says nothing either).
 */
const includedFiles = (arg: string, home: string): Array<string> => {
  const full = arg === "~" || arg.startsWith("~/") ? home + arg.slice(1) : arg.startsWith("/") ? arg : `${home}/.ssh/${arg}`
  let found = ["/"]
  for (const part of full.split("/").filter((p) => p !== "")) {
    if (!/[*?]/.test(part)) {
      found = found.map((d) => `${d === "/" ? "" : d}/${part}`)
      continue
    }
    const re = globRe(part)
    found = found.flatMap((d) => {
      try {
        return Fs.readdirSync(d).filter((n) => re.test(n) && !(n.startsWith(".") && !part.startsWith("."))).sort().map((n) => `${d === "/" ? "" : d}/${n}`)
      } catch {
        return []
      }
    })
  }
  return found.filter((f) => {
    try {
      return Fs.statSync(f).isFile()
    } catch {
      return false
    }
  })
}

/**
 * What `path` (default {@link USER_CONFIG}) says of `host`; nothing when there is no such file. A file that exists
 * but cannot be read is a warning.
 */
export const forHost = (
  host: string,
  explicit: { readonly user?: string | undefined; readonly port?: number | undefined } = {},
  local: Local = here(),
  path = USER_CONFIG
): HostSettings => {
  const file = path === "~" || path.startsWith("~/") ? local.home + path.slice(1) : path
  let text: string
  try {
    text = Fs.readFileSync(file, "utf8")
  } catch (e) {
    const code = (e as { code?: unknown }).code
    return { identityFiles: [], warnings: code === "ENOENT" ? [] : [`${file}: not read (${e instanceof Error ? e.message : String(e)})`] }
  }
  // an included file that cannot be read is skipped, as OpenSSH skips it
  const include = (arg: string) =>
    includedFiles(arg, local.home).flatMap((f) => {
      try {
        return [parse(Fs.readFileSync(f, "utf8"), f)]
      } catch {
        return []
      }
    })
  return settingsFor(parse(text, file), host, local, explicit, include)
}
