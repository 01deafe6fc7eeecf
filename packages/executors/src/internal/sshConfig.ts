/**
 * The common subset of OpenSSH's client configuration (`~/.ssh/config`, ssh_config(5)) that users rely on to name
 * their hosts: `Host` blocks (patterns with `*` and `?`, `!` negation, several on a line), and in them `HostName`,
 * `User`, `Port`, `IdentityFile` (`~` and the tokens `%C %d %h %i %j %k %L %l %n %p %r %u %%`), `UserKnownHostsFile` and `GlobalKnownHostsFile`,
 * `HostKeyAlias`, `ProxyJump` and `ProxyCommand` (followed by the SSH backend; an `ssh://` Docker engine warns and goes straight to the host). As in OpenSSH, a
 * keyword's first value obtained wins (`IdentityFile` adds up), keywords are case-insensitive and may be followed by
 * `=`. Read by the SSH backend's hosts and the Docker backend's `ssh://` engines; settings given explicitly win over it.
 *
 * `Include` is followed as OpenSSH follows it (globs; a relative path under `~/.ssh`; the files in place, their `Host`
 * lines holding within each; one under a block that does not apply is still read and checked, none of its blocks
 * applying). A `Match host` compares the `HostName` obtained so far with `%h` expanded, as OpenSSH does. What it cannot honour is said as a warning naming the file and line, never followed
 * silently: a `Match` of another criterion than `all`, `host`, `originalhost`, `user`, `localuser` (its block is not
 * applied), `StrictHostKeyChecking` other than `yes` (host keys are always checked against known_hosts,
 * with no trust on first use), a keyword OpenSSH does not know (a typo: OpenSSH refuses the whole file, here a warning,
 * since the list of keywords here may lag a newer OpenSSH's; `IgnoreUnknown` is honoured). Any other keyword is ignored,
 * as it changes nothing these backends do.
 *
 * What OpenSSH refuses is refused too ({@link SshConfigError}, naming the file and line): a file (the user's, or an
 * included one) that is writable by group or others or owned by another user than this one or root ("Bad owner or
 * permissions"), quotes left open, a keyword without an argument, an empty argument or more than one where OpenSSH takes one
 * (`HostName`, `User`, `Port`, `IdentityFile`, `StrictHostKeyChecking`), a `UserKnownHostsFile` or `GlobalKnownHostsFile` `none` with other files,
 * a `Port` that is neither a number from 1 to 65535 nor a TCP service of /etc/services, an
 * `Include` nested deeper than 16 files, a `%` token of `HostName`, `IdentityFile` or `UserKnownHostsFile` it cannot
 * expand (unless an explicit setting overrides that keyword: then its value is not expanded). Words are split as OpenSSH's `argv_split` splits them: `"..."` and `'...'` quote, `\` escapes a quote, a
 * backslash or (outside quotes) a space.
 */
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"

/** The user's configuration file, as OpenSSH reads it (the system's, /etc/ssh/ssh_config, is not read). */
export const USER_CONFIG = "~/.ssh/config"

/** OpenSSH's default key files, tried in this order when no `IdentityFile` is given. */
export const DEFAULT_KEYS = ["~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"]
/** OpenSSH's default known hosts of the user (then this name with `2` appended, as OpenSSH 9.2 reads both). */
export const DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"

/** Where OpenSSH would refuse the configuration: the message names the file and line, and the fix. */
export class SshConfigError extends Error {
  readonly _tag = "SshConfigError"
  /** The file (and `:line`) at fault. */
  readonly where: string
  constructor(where: string, message: string) {
    super(`${where}: ${message}`)
    this.where = where
  }
}

/** The system's known hosts (OpenSSH's `GlobalKnownHostsFile`), read after the user's (then this name with `2` appended). */
export const GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"

/**
 * One line of a configuration file: its keyword in lower case, its arguments (quotes taken off), and `rest`, what follows
 * the keyword as written (a `ProxyCommand` is that, as OpenSSH takes it: a command for the shell, not words).
 */
interface Line {
  readonly where: string
  readonly keyword: string
  readonly args: ReadonlyArray<string>
  readonly rest: string
}

/** What the configuration says of one host; each field `undefined` when it says nothing. */
export interface HostSettings {
  readonly hostName?: string | undefined
  readonly user?: string | undefined
  readonly port?: number | undefined
  /** The `file:line` of the `HostName`, `Port` and `UserKnownHostsFile` obtained. */
  readonly hostNameWhere?: string | undefined
  readonly portWhere?: string | undefined
  readonly knownHostsWhere?: string | undefined
  /** Every `IdentityFile` that applies, in order, `~` and tokens expanded. */
  readonly identityFiles: ReadonlyArray<string>
  /** The same, each with the `file:line` that gave it. */
  readonly identities: ReadonlyArray<{ readonly file: string; readonly where: string }>
  /**
   * The first `UserKnownHostsFile` that applies (its files), `~` and tokens expanded; `[]` for `none` (OpenSSH then
   * reads no file of the user's), `undefined` when none applies.
   */
  readonly knownHostsFiles?: ReadonlyArray<string> | undefined
  /**
   * The first `GlobalKnownHostsFile` that applies (its files), `~` expanded (no `%` token, as OpenSSH); `[]` for `none` (no
   * system file is read), `undefined` when none applies (then the system's, {@link GLOBAL_KNOWN_HOSTS}).
   */
  readonly globalKnownHostsFiles?: ReadonlyArray<string> | undefined
  readonly globalKnownHostsWhere?: string | undefined
  /** The first `ProxyJump` that applies (its hops, `[user@]host[:port]` separated by commas) and its `file:line`; `undefined` for none. */
  readonly proxyJump?: { readonly value: string; readonly where: string } | undefined
  /** The first `ProxyCommand` that applies (when it comes before any `ProxyJump`, as OpenSSH takes the first of the two); `undefined` for none or `none`. */
  readonly proxyCommand?: ProxyCommand | undefined
  /**
   * The first `HostKeyAlias` that applies and its `file:line`: the name the host's key is looked up under in known_hosts
   * (alone, without `[ ]:port`, as OpenSSH looks it up), and `%k`.
   */
  readonly hostKeyAlias?: { readonly value: string; readonly where: string } | undefined
  /** What could not be honoured, each naming its file and line. */
  readonly warnings: ReadonlyArray<string>
}

/**
 * A `ProxyCommand` line: its `value` as written and its `file:line`; `command`, its tokens expanded (`%h %k %n %p %r %%`,
 * as OpenSSH 9.2 expands them), for the shell to run (the connection runs over its standard input and output), or
 * `refusal`, why it cannot be run (a token OpenSSH does not expand there, a name the shell would read as more than a word).
 */
export interface ProxyCommand {
  readonly value: string
  readonly where: string
  readonly command?: string
  readonly refusal?: string
}

/** Who reads it: the home directory (`$HOME`, Node's `os.homedir()`; OpenSSH takes the passwd entry's) and the local user (for `~`, `%d` and `%u`). */
export interface Local {
  readonly home: string
  readonly user: string
  /** The system's known hosts (default {@link GLOBAL_KNOWN_HOSTS}; a test gives another). */
  readonly globalKnownHosts?: string | undefined
}

const localUser = (): string => {
  try {
    return Os.userInfo().username
  } catch {
    return String(process.getuid?.() ?? "")
  }
}

/** `path` with a leading `~` (alone, or `~/...`) taken as `home`, as OpenSSH takes it; any other path as it is. */
export const tilde = (path: string, home: string): string => (path === "~" || path.startsWith("~/") ? home + path.slice(1) : path)

/** This process's home and user. */
export const here = (): Local => ({ home: Os.homedir(), user: localUser() })

/**
 * A line's words, split as OpenSSH's `argv_split` splits them: whitespace between words, `"..."` and `'...'` quote
 * (within a word too), `\\` before a quote, a backslash or (outside quotes) a space takes it as it is, a word starting
 * with `#` ends the line; `undefined` for a quote left open.
 */
const words = (text: string): Array<string> | undefined => {
  const out: Array<string> = []
  let i = 0
  while (i < text.length) {
    if (text[i] === " " || text[i] === "\t") {
      i++
      continue
    }
    if (text[i] === "#") break
    let word = ""
    let quote = ""
    for (; i < text.length; i++) {
      const c = text[i]!
      const next = text[i + 1]
      if (c === "\\" && (next === "'" || next === '"' || next === "\\" || (quote === "" && next === " "))) word += text[++i]
      else if (quote === "" && (c === " " || c === "\t")) break
      else if (quote === "" && (c === '"' || c === "'")) quote = c
      else if (quote !== "" && c === quote) quote = ""
      else word += c
    }
    if (quote !== "") return undefined
    out.push(word)
  }
  return out
}

/** The lines of a configuration text, named `file:n`; quotes left open, or a keyword without an argument, are refused as OpenSSH refuses them. */
export const parse = (text: string, file: string): Array<Line> =>
  text.split("\n").flatMap((raw, i): Array<Line> => {
    const l = raw.trim()
    if (l === "" || l.startsWith("#")) return []
    const where = `${file}:${i + 1}`
    // the keyword ends at whitespace or `=` (`Port=22`, `Port = 22`)
    const m = /^([^\s=]+)\s*(?:=\s*)?(.*)$/.exec(l)
    if (m === null) return []
    const keyword = m[1]!.toLowerCase()
    const args = words(m[2]!)
    if (args === undefined) throw new SshConfigError(where, `invalid quotes (a quote is left open): close it, as OpenSSH refuses the file too`)
    if (args.length === 0) throw new SshConfigError(where, `no argument after keyword "${m[1]}": give its value, or remove the line (OpenSSH refuses the file too)`)
    // (as OpenSSH takes a command: what follows the keyword, every space and `=` before it skipped)
    return [{ where, keyword, args, rest: l.slice(m[1]!.length).replace(/^[\s=]+/, "") }]
  })

const globRe = (pattern: string): RegExp =>
  new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replaceAll("*", ".*").replaceAll("?", ".")}$`)

/** Whether a glob pattern (`*` any run of characters, `?` one) takes all of `value`. */
export const globMatches = (pattern: string, value: string): boolean => globRe(pattern).test(value)

/**
 * Whether a pattern list (a `Host` line's, a known_hosts line's) takes `host`: one of its patterns does, and none of
 * its negated ones (`!pattern`); `matches` compares one pattern (default a glob; known_hosts adds hashed names).
 */
export const hostMatches = (patterns: ReadonlyArray<string>, host: string, matches: (pattern: string, host: string) => boolean = globMatches): boolean =>
  patterns.some((p) => !p.startsWith("!") && matches(p, host)) && !patterns.some((p) => p.startsWith("!") && matches(p.slice(1), host))

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
 * The keywords of ssh_config(5) (OpenSSH 9.x, with the older ones it still takes or only warns of), in lower case: any
 * other is a warning naming its line (OpenSSH refuses the file for it; here a warning, as this list may lag the user's
 * OpenSSH, whose newer keyword would otherwise refuse a file their `ssh` reads).
 */
const KEYWORDS = new Set(
  ("host match include ignoreunknown hostname user port identityfile userknownhostsfile globalknownhostsfile stricthostkeychecking " +
    "proxyjump proxycommand proxyusefdpass addkeystoagent addressfamily batchmode bindaddress bindinterface canonicaldomains " +
    "canonicalizefallbacklocal canonicalizehostname canonicalizemaxdots canonicalizepermittedcnames casignaturealgorithms " +
    "certificatefile channeltimeout checkhostip ciphers clearallforwardings compression connectionattempts connecttimeout " +
    "controlmaster controlpath controlpersist dynamicforward enableescapecommandline enablesshkeysign escapechar " +
    "exitonforwardfailure fingerprinthash forkafterauthentication forwardagent forwardx11 forwardx11timeout forwardx11trusted " +
    "gatewayports gssapiauthentication gssapidelegatecredentials gssapikexalgorithms gssapikeyexchange gssapiclientidentity " +
    "gssapiserveridentity gssapirenewalforcesrekey gssapitrustdns hashknownhosts hostbasedacceptedalgorithms hostbasedkeytypes " +
    "hostbasedauthentication hostkeyalgorithms hostkeyalias identityagent identitiesonly ipqos kbdinteractiveauthentication " +
    "kbdinteractivedevices challengeresponseauthentication kexalgorithms knownhostscommand localcommand localforward loglevel " +
    "logverbose macs nohostauthenticationforlocalhost numberofpasswordprompts obscurekeystroketiming passwordauthentication " +
    "permitlocalcommand permitremoteopen pkcs11provider preferredauthentications pubkeyacceptedalgorithms pubkeyacceptedkeytypes " +
    "pubkeyauthentication rekeylimit remotecommand remoteforward requesttty requiredrsasize revokedhostkeys securitykeyprovider " +
    "sendenv serveralivecountmax serveraliveinterval sessiontype setenv smartcarddevice stdinnull streamlocalbindmask " +
    "streamlocalbindunlink tag tcpkeepalive tunnel tunneldevice updatehostkeys usekeychain verifyhostkeydns visualhostkey " +
    "xauthlocation protocol cipher rsaauthentication rhostsrsaauthentication useprivilegedport useroaming compressionlevel " +
    "fallbacktorsh usersh dsaauthentication skeyauthentication tisauthentication kerberosauthentication kerberostgtpassing " +
    "afstokenpassing gssapiauthentication").split(" ")
)

/**
 * A value's tokens expanded (`%C` the SHA-1 of `%l%h%p%r` as OpenSSH 9.2 takes it, `%j` the ProxyJump (empty for none), `%d` home, `%h` the host connected to, `%i` local uid, `%k` the
 * `HostKeyAlias`, else the name given, `%L`/`%l` the local host name (short, full), `%n` the name given,
 * `%p` port, `%r` remote user, `%u` local user, `%%` a `%`), then `~/`; the token it cannot expand, else the value.
 */
const expand = (value: string, tokens: Readonly<Record<string, string>>, home: string): { readonly value: string } | { readonly unknown: string } => {
  let unknown: string | undefined
  const out = value.replace(/%(.?)/g, (all, t: string) => {
    const v = t === "%" ? "%" : tokens[t]
    if (v === undefined) unknown ??= all
    return v ?? ""
  })
  if (unknown !== undefined) return { unknown }
  return { value: tilde(out, home) }
}

/** A TCP service's port in /etc/services (as getservbyname(3) finds it: its name or an alias), else `undefined`. */
const servicePort = (name: string, services = "/etc/services"): number | undefined => {
  let text: string
  try {
    text = Fs.readFileSync(services, "utf8")
  } catch {
    return undefined
  }
  for (const line of text.split("\n")) {
    const [service, portProto, ...aliases] = line.replace(/#.*/, "").trim().split(/\s+/)
    const m = /^([0-9]+)\/tcp$/.exec(portProto ?? "")
    if (m !== null && (service === name || aliases.includes(name))) return Number(m[1])
  }
  return undefined
}

/**
 * `Port`'s value as OpenSSH's `a2port` takes it (a decimal number, 1 to 65535, as strtonum(3) reads it: leading zeros
 * and a `+` allowed; else a TCP service's name), else `undefined`.
 */
const portOf = (arg: string): number | undefined => {
  if (!/^\+?[0-9]+$/.test(arg)) return servicePort(arg)
  const n = Number(arg)
  return n > 0 && n < 65536 ? n : undefined
}

/**
 * A `ProxyCommand`'s command, its tokens expanded as OpenSSH 9.2 expands them (`%h` the host connected to, `%k` the
 * `HostKeyAlias`, else the name given, `%n` the name given, `%p` the port, `%r` the remote user, `%%`; any other token is refused, as OpenSSH's `percent_expand`
 * fails on it). A value put into it that the shell would read as more than a plain word (a quote, `$`, `;`, a space...)
 * is refused, as OpenSSH 9.6 refuses such host and user names (CVE-2023-51385): a name is never run as a command. `-`
 * (OpenSSH's own input and output, for a caller that set them up) is refused: nothing here sets them up.
 */
const commandOf = (line: { readonly where: string; readonly value: string }, tokens: Readonly<Record<string, string>>): ProxyCommand => {
  const allowed = new Set(["h", "k", "n", "p", "r"])
  let unknown: string | undefined
  let unsafe: string | undefined
  const command = line.value.replace(/%(.?)/g, (all, t: string) => {
    if (t === "%") return "%"
    const v = allowed.has(t) ? tokens[t] : undefined
    if (v === undefined) {
      unknown ??= all
      return ""
    }
    if (!/^[A-Za-z0-9_.:@+\[\]-]*$/.test(v) || v.startsWith("-")) unsafe ??= `${all} (${JSON.stringify(v)})`
    return v
  })
  const of = { value: line.value, where: line.where }
  if (line.value === "-") return { ...of, refusal: "`-` (OpenSSH's own standard input and output) is not a connection here: give a command that reaches the host, or ProxyJump" }
  if (unknown !== undefined) return { ...of, refusal: `the token ${unknown} cannot be expanded there (only %h %k %n %p %r %%, as OpenSSH): write it out` }
  if (unsafe !== undefined) {
    return {
      ...of,
      refusal: `the value of ${unsafe} is not a plain host or user name, and the shell would read it as more: ` +
        "give the host and user as plain names (letters, digits, . _ - : @ + [ ]), as OpenSSH requires"
    }
  }
  return { ...of, command }
}

/** A hop of a `ProxyJump` list: `[user@]host[:port]`, or `ssh://[user@]host[:port][/]`; `[...]` around an IPv6 address. */
export interface Hop {
  readonly text: string
  readonly user?: string | undefined
  readonly host: string
  readonly port?: number | undefined
}

/**
 * One hop as OpenSSH 9.2 reads it (`ssh -G -o ProxyJump=...` to compare): `ssh://` a URI (a user before the only `@`, its
 * `;` parameters left out; no `[...]` host; an empty path only); else the user before the last `@`, then `[address]`
 * or a name up to the first `:` (no `/`), then a port, a number or a TCP service, empty for none. `undefined`: invalid.
 */
const hop = (text: string): Hop | undefined => {
  const port = (p: string | undefined): number | undefined | null => (p === undefined || p === "" ? undefined : portOf(p) ?? null)
  if (text.startsWith("ssh://")) {
    const m = /^ssh:\/\/(?:([^@/]*)@)?([^@:/?#[\]]+)(?::([^@/]*))?\/?$/.exec(text)
    const user = m?.[1]?.split(";")[0]
    const p = port(m?.[3])
    return m === null || user === "" || p === null ? undefined : { text, user, host: m[2]!, port: p }
  }
  const at = text.lastIndexOf("@")
  const user = at < 0 ? undefined : text.slice(0, at)
  const rest = text.slice(at + 1)
  const m = /^\[([^\]]+)\](?::(.*))?$/.exec(rest) ?? /^([^:/[\]]+)(?::([^:/]*))?$/.exec(rest)
  const p = port(m?.[2])
  return m === null || user === "" || p === null ? undefined : { text, user, host: m[1]!, port: p }
}

/** The hops of a `ProxyJump` value (comma-separated), or why one cannot be read (OpenSSH refuses the file for it). */
export const hops = (value: string): Array<Hop> | string => {
  const out: Array<Hop> = []
  for (const text of value.split(",")) {
    const h = hop(text)
    if (h === undefined) {
      return `the hop ${JSON.stringify(text)} is not [user@]host[:port] nor ssh://[user@]host[:port] (a port from 1 to 65535 or a TCP service; ` +
        "an IPv6 address in [ ]; no path): write each jump host so, separated by commas (OpenSSH refuses it too)"
    }
    out.push(h)
  }
  return out
}

/** The keywords read here that take exactly one argument: more is refused, as OpenSSH refuses it ("extra arguments at end of line"). */
const ONE_ARGUMENT = new Set(["hostname", "user", "port", "identityfile", "stricthostkeychecking"])

/**
 * What is set explicitly, winning over the file: `user` and `port` (also for the tokens of paths); with
 * `privateKeyPath` or `knownHostsPath` given, the file's `IdentityFile` or `UserKnownHostsFile` is not expanded nor
 * checked (a token OpenSSH would expand but this reader cannot does not refuse a host that does not use it).
 */
export interface Explicit {
  readonly user?: string | undefined
  readonly port?: number | undefined
  readonly privateKeyPath?: string | undefined
  readonly knownHostsPath?: string | undefined
}

/**
 * What the lines say of `host` (the name as given: an alias, or the host itself), given what is set explicitly
 * (`user`, `port`: for the tokens of paths). Read top to bottom; the first value of each keyword wins. What OpenSSH
 * refuses throws a {@link SshConfigError}.
 */
export const settingsFor = (
  lines: ReadonlyArray<Line>,
  host: string,
  local: Local,
  explicit: Explicit = {},
  include?: (arg: string) => ReadonlyArray<ReadonlyArray<Line>>
): HostSettings => {
  const warnings: Array<string> = []
  let applies = true // lines before the first Host apply to every host
  let hostName: { readonly where: string; readonly value: string } | undefined
  let user: string | undefined
  let port: { readonly where: string; readonly value: number } | undefined
  let knownHosts: { readonly where: string; readonly files: ReadonlyArray<string> } | undefined
  let globalKnownHosts: { readonly where: string; readonly files: ReadonlyArray<string> } | undefined
  const identities: Array<{ readonly where: string; readonly file: string }> = []
  const ignoreUnknown: Array<string> = []
  let strict = false
  let proxied = false
  let proxyJump = ""
  let proxyJumpWhere: string | undefined
  let proxyCommand: { readonly where: string; readonly value: string } | undefined
  let hostKeyAlias: { readonly where: string; readonly value: string } | undefined
  // as OpenSSH: HostName takes %h and %% only (expanded before a Match host compares it), and is connected to in lower case
  const named = (h: { readonly where: string; readonly value: string }): string => {
    const e = expand(h.value, { h: host }, "")
    if ("value" in e) return e.value.toLowerCase()
    throw new SshConfigError(h.where, `HostName ${h.value}: the token ${e.unknown} is not one of %h %% (OpenSSH refuses it too): write it out`)
  }
  // `never`: an Include read under a block that does not apply (OpenSSH reads and checks it, but none of its blocks applies)
  const walk = (lines: ReadonlyArray<Line>, depth: number, never: boolean): void => {
    for (const l of lines) {
      // checked in every block, applying or not, as OpenSSH checks them
      if (!KEYWORDS.has(l.keyword) && !ignoreUnknown.some((p) => listMatches(p, l.keyword))) {
        warnings.push(`${l.where}: unknown keyword ${l.keyword}: ignored (OpenSSH refuses the file for it: check its spelling)`)
        continue
      }
      if (ONE_ARGUMENT.has(l.keyword) && l.args.length > 1) {
        throw new SshConfigError(l.where, `keyword ${l.keyword} extra arguments at end of line (${l.args.slice(1).join(" ")}): give one value, quoted if it holds a space (OpenSSH refuses the file too)`)
      }
      if (ONE_ARGUMENT.has(l.keyword) && l.args[0] === "") {
        throw new SshConfigError(l.where, `keyword ${l.keyword} has an empty argument: give its value, or remove the line (OpenSSH refuses the file too)`)
      }
      const filesKeyword = l.keyword === "userknownhostsfile" || l.keyword === "globalknownhostsfile"
      if (filesKeyword && l.args.some((a) => a === "")) {
        throw new SshConfigError(l.where, `keyword ${l.keyword} empty argument: give a file, or remove the line (OpenSSH refuses the file too)`)
      }
      if (filesKeyword && l.args.length > 1 && l.args.some((a) => a.toLowerCase() === "none")) {
        throw new SshConfigError(l.where, `keyword ${l.keyword} "none" argument must appear alone: write either none or files (OpenSSH refuses the file too)`)
      }
      if (l.keyword === "proxyjump" && l.args[0] !== undefined && l.args[0].toLowerCase() !== "none") {
        const list = hops(l.args[0])
        if (typeof list === "string") throw new SshConfigError(l.where, `ProxyJump ${l.args[0]}: ${list}`)
      }
      if (l.keyword === "port" && portOf(l.args[0]!) === undefined) {
        throw new SshConfigError(
          l.where,
          `Bad port ${JSON.stringify(l.args[0])}: give a decimal number from 1 to 65535, or a TCP service of /etc/services (OpenSSH refuses the file too)`
        )
      }
      if (l.keyword === "host") {
        // as OpenSSH: the name as given, case and all
        applies = !never && hostMatches(l.args, host)
        continue
      }
      if (l.keyword === "match") {
        const m = matchApplies(l.args, {
          host: hostName === undefined ? host : named(hostName),
          originalhost: host,
          user: explicit.user ?? user ?? local.user,
          localuser: local.user
        })
        if (typeof m === "string") {
          warnings.push(`${l.where}: Match ${m} is not supported: the settings under it are not applied (write them in a Host block, or a Match of host, originalhost, user, localuser or all)`)
        }
        applies = !never && m === true
        continue
      }
      if (l.keyword === "include") {
        if (include === undefined) {
          if (!applies || never) continue
          warnings.push(`${l.where}: Include is not supported here: ${l.args.join(" ")} not read`)
          continue
        }
        if (depth >= MAX_INCLUDE_DEPTH) {
          throw new SshConfigError(l.where, `Too many recursive configuration includes (deeper than ${MAX_INCLUDE_DEPTH} files: a file that includes itself?): break the loop`)
        }
        // as OpenSSH: each file read in place, its Host lines holding within it; then the including block's state again.
        // Under a block that does not apply it is still read and checked, none of its blocks applying
        const active = applies
        for (const arg of l.args) {
          for (const included of include(arg)) {
            walk(included, depth + 1, never || !active)
            applies = active
          }
        }
        continue
      }
      if (!applies) continue
      const first = l.args[0]!
      switch (l.keyword) {
        case "ignoreunknown":
          ignoreUnknown.push(first.toLowerCase())
          break
        case "hostname":
          hostName ??= { where: l.where, value: first }
          break
        case "hostkeyalias":
          hostKeyAlias ??= { where: l.where, value: first }
          break
        case "user":
          user ??= first
          break
        case "port":
          port ??= { where: l.where, value: portOf(first)! }
          break
        case "identityfile":
          if (first.toLowerCase() !== "none") identities.push({ where: l.where, file: first })
          break
        case "userknownhostsfile":
          knownHosts ??= { where: l.where, files: l.args }
          break
        case "globalknownhostsfile":
          globalKnownHosts ??= { where: l.where, files: l.args }
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
          // as OpenSSH: the first of ProxyJump and ProxyCommand obtained wins (`none` for a direct connection)
          if (!proxied) {
            proxied = true
            if (l.keyword === "proxyjump" && first.toLowerCase() !== "none") {
              proxyJump = first
              proxyJumpWhere = l.where
            }
            // (the rest of the line as written, as OpenSSH keeps it: the shell reads it; `none` alone is none, `"none"` or
            // `none # comment` a command, as for OpenSSH)
            if (l.keyword === "proxycommand" && l.rest.toLowerCase() !== "none") proxyCommand = { where: l.where, value: l.rest }
          }
          break
      }
    }
  }
  walk(lines, 0, false)
  const connectName = hostName === undefined ? undefined : named(hostName)
  // as OpenSSH: the name given is connected to (and is %h, %C) in lower case
  const connectTo = connectName ?? host.toLowerCase()
  const localHost = Os.hostname()
  const p = String(explicit.port ?? port?.value ?? 22)
  const r = explicit.user ?? user ?? local.user
  const tokens: Record<string, string> = {
    // as OpenSSH 9.2: the SHA-1 of %l%h%p%r, in hex
    C: Crypto.createHash("sha1").update(`${localHost}${connectTo}${p}${r}`).digest("hex"),
    d: local.home,
    h: connectTo,
    i: String(process.getuid?.() ?? ""),
    j: proxyJump,
    // as OpenSSH: the host key alias when one is given
    k: hostKeyAlias?.value ?? host,
    L: localHost.split(".")[0]!,
    l: localHost,
    n: host,
    p,
    r,
    u: local.user
  }
  const expanded = (where: string, keyword: string, file: string): string => {
    const e = expand(file, tokens, local.home)
    if ("value" in e) return e.value
    throw new SshConfigError(
      where,
      `${keyword} ${file}: the token ${e.unknown} cannot be expanded here (only %C %d %h %i %j %k %L %l %n %p %r %u %%): write the path out, so that no other file is read in its place`
    )
  }
  // what an explicit setting overrides is neither expanded nor checked (nor returned)
  const filesOf = (k: { readonly files: ReadonlyArray<string> } | undefined, expand: (file: string) => string) =>
    explicit.knownHostsPath !== undefined ? undefined : k?.files.flatMap((f) => f.toLowerCase() === "none" ? [] : [expand(f)])
  const knownHostsFiles = filesOf(knownHosts, (f) => expanded(knownHosts!.where, "UserKnownHostsFile", f))
  // as OpenSSH 9.2 (`ssh -v` names the files it opens): GlobalKnownHostsFile takes `~`, no `%` token
  const globalKnownHostsFiles = filesOf(globalKnownHosts, (f) => tilde(f, local.home))
  const identityList = explicit.privateKeyPath !== undefined ? [] : identities.map((i) => ({ where: i.where, file: expanded(i.where, "IdentityFile", i.file) }))
  return {
    hostName: connectName,
    hostNameWhere: hostName?.where,
    user,
    port: port?.value,
    portWhere: port?.where,
    identityFiles: identityList.map((i) => i.file),
    identities: identityList,
    knownHostsFiles,
    knownHostsWhere: knownHosts?.where,
    globalKnownHostsFiles,
    globalKnownHostsWhere: globalKnownHosts?.where,
    proxyJump: proxyJumpWhere === undefined ? undefined : { value: proxyJump, where: proxyJumpWhere },
    proxyCommand: proxyCommand === undefined ? undefined : commandOf(proxyCommand, tokens),
    hostKeyAlias,
    warnings
  }
}

/**
 * What a connection to `host` (the name given) uses, for the SSH backend's hosts and the Docker backend's `ssh://`
 * engines alike: what is given, else the file's settings, else OpenSSH's defaults (port 22, the local user). Its known
 * hosts, as OpenSSH reads them (a key in any counts): a `knownHostsPath` given alone; else the user's
 * (`UserKnownHostsFile`'s files, `[]` for `none`, else `~/.ssh/known_hosts` and `~/.ssh/known_hosts2`) and the system's
 * (`GlobalKnownHostsFile`'s, else {@link GLOBAL_KNOWN_HOSTS} and the same name with `2`), as `ssh -G` lists them.
 * `secondDefaults`: the `2` files of those defaults, which seldom exist (a reader skips them when they do not, as
 * OpenSSH does, without saying so).
 */
export const resolve = (host: string, given: Explicit, file: HostSettings, local: Local) => {
  const user = tilde(DEFAULT_KNOWN_HOSTS, local.home)
  const system = local.globalKnownHosts ?? GLOBAL_KNOWN_HOSTS
  const defaultUser = given.knownHostsPath === undefined && file.knownHostsFiles === undefined
  const defaultSystem = given.knownHostsPath === undefined && file.globalKnownHostsFiles === undefined
  return {
    hostName: file.hostName ?? host,
    port: given.port ?? file.port ?? 22,
    user: given.user ?? file.user ?? local.user,
    userKnownHosts: given.knownHostsPath !== undefined ? [given.knownHostsPath] : file.knownHostsFiles ?? [user, `${user}2`],
    globalKnownHosts: given.knownHostsPath !== undefined ? [] : file.globalKnownHostsFiles ?? [system, `${system}2`],
    secondDefaults: [...(defaultUser ? [`${user}2`] : []), ...(defaultSystem ? [`${system}2`] : [])]
  }
}

/**
 * Where the file moves `host` (the name given, `port` the port given) to, with the lines that move it, as said once
 * when a backend is made: `name -> host:port (file:line, ...)`; `undefined` when it connects where it is named.
 */
export const moved = (host: string, port: number | undefined, file: HostSettings): string | undefined => {
  const hostMoved = file.hostName !== undefined && file.hostName !== host.toLowerCase()
  const portMoved = port === undefined && file.port !== undefined && file.port !== 22
  if (!hostMoved && !portMoved) return undefined
  const where = [...(hostMoved ? [file.hostNameWhere] : []), ...(portMoved ? [file.portWhere] : [])].join(", ")
  return `${host} -> ${file.hostName ?? host}:${port ?? file.port ?? 22} (${where})`
}

/** As OpenSSH (`READCONF_MAX_DEPTH`): an `Include` nested deeper than this is refused. */
const MAX_INCLUDE_DEPTH = 16

/**
 * The files an `Include` argument names, sorted as glob(3) sorts them: `~` expanded, a relative path under `~/.ssh`
 * (the user's file's directory), `*` and `?` in any component matched. None is nothing (OpenSSH says nothing either).
 */
const includedFiles = (arg: string, home: string): Array<string> => {
  const full = arg === "~" || arg.startsWith("~/") || arg.startsWith("/") ? tilde(arg, home) : `${home}/.ssh/${arg}`
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
 * A configuration file's text, read as OpenSSH reads the user's and every included one: refused (a
 * {@link SshConfigError}) when the file, as opened, is writable by its group or others, or owned by another user than
 * this one or root, since whoever can write it chooses where this user connects and which host keys are trusted.
 */
const readChecked = (file: string): string => {
  const fd = Fs.openSync(file, "r")
  try {
    const st = Fs.fstatSync(fd)
    const uid = process.getuid?.()
    if (uid !== undefined && st.uid !== 0 && st.uid !== uid) {
      throw new SshConfigError(file, `Bad owner or permissions: owned by uid ${st.uid}, not by this user (uid ${uid}) or root, so OpenSSH refuses it too: \`chown ${uid} ${file}\` (after checking what it says)`)
    }
    if ((st.mode & 0o022) !== 0) {
      throw new SshConfigError(
        file,
        `Bad owner or permissions: writable by ${(st.mode & 0o020) !== 0 ? "its group" : "others"} (mode ${(st.mode & 0o777).toString(8)}), so OpenSSH refuses it too: \`chmod go-w ${file}\` (after checking what it says)`
      )
    }
    return Fs.readFileSync(fd, "utf8")
  } finally {
    Fs.closeSync(fd)
  }
}

/** Files parsed, by name and contents: a file read again for each host (and jump host) is parsed once while it is unchanged. */
const parsed = new Map<string, Array<Line>>()
const PARSED_MAX = 64

/** {@link parse}, once per file name and contents. */
const parseOnce = (text: string, file: string): Array<Line> => {
  const key = `${file}\0${text}`
  const hit = parsed.get(key)
  if (hit !== undefined) return hit
  const lines = parse(text, file)
  if (parsed.size >= PARSED_MAX) parsed.clear()
  parsed.set(key, lines)
  return lines
}

/**
 * What `path` (default {@link USER_CONFIG}) says of `host`; nothing when there is no such file. A file that exists
 * but cannot be read is a warning; what OpenSSH refuses throws a {@link SshConfigError}.
 */
export const forHost = (
  host: string,
  explicit: Explicit = {},
  local: Local = here(),
  path = USER_CONFIG
): HostSettings => {
  const file = tilde(path, local.home)
  let text: string
  try {
    text = readChecked(file)
  } catch (e) {
    if (e instanceof SshConfigError) throw e
    const code = (e as { code?: unknown }).code
    return { identityFiles: [], identities: [], warnings: code === "ENOENT" ? [] : [`${file}: not read (${e instanceof Error ? e.message : String(e)})`] }
  }
  // an included file that cannot be read is skipped, as OpenSSH skips it; one it would refuse is refused
  const include = (arg: string) =>
    includedFiles(arg, local.home).flatMap((f) => {
      try {
        return [parseOnce(readChecked(f), f)]
      } catch (e) {
        if (e instanceof SshConfigError) throw e
        return []
      }
    })
  return settingsFor(parseOnce(text, file), host, local, explicit, include)
}
