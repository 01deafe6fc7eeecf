/**
 * A lazily (re)connected ssh2 client for one host, with promise wrappers for the few operations
 * the SSH backend needs: exec, and SFTP write / ranged read / stat / readdir.
 */
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import { Duplex } from "node:stream"
import type * as Ssh2 from "ssh2"
import type { Client, SFTPWrapper } from "ssh2"
import * as KnownHosts from "./sshKnownHosts.ts"
import * as SshConfig from "./sshConfig.ts"
import * as Clients from "./clients.ts"

export interface HostConfig {
  readonly host: string
  readonly port?: number
  readonly username: string
  readonly privateKeyPath: string
  /**
   * The known_hosts files read at each connection, in order (the user's, then the system's): a key found in any is
   * trusted, a key `@revoked` in any refused. A file that cannot be read is skipped, as OpenSSH skips it.
   */
  readonly knownHostsFiles: ReadonlyArray<string>
}

/**
 * A host as given: `host` a name or address, or a `Host` alias of `~/.ssh/config`, whose `HostName`, `User`, `Port`,
 * `IdentityFile` and `UserKnownHostsFile` fill in what is not given here.
 */
export interface HostSetting {
  /** The host's name or address, or a `Host` alias of `~/.ssh/config` (whose `HostName` is then connected to). */
  readonly host: string
  /** Default: the config file's `Port`, else 22. */
  readonly port?: number | undefined
  /** Default: the config file's `User`, else the local user. */
  readonly username?: string | undefined
  /** Default: the config file's first `IdentityFile` that exists, else the first of `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`. */
  readonly privateKeyPath?: string | undefined
  /**
   * Default: every file of the config file's `UserKnownHostsFile` (else `~/.ssh/known_hosts` and `known_hosts2`) and of its
   * `GlobalKnownHostsFile` (else the system's `/etc/ssh/ssh_known_hosts` and `ssh_known_hosts2`), as OpenSSH reads them: a key found in any
   * counts; `none` reads none of the user's. Given, this file alone is read.
   */
  readonly knownHostsPath?: string | undefined
  /**
   * For a key with a passphrase: the name of an environment variable holding it (never the passphrase itself: settings
   * files are not secret). Read when the backend is made.
   */
  readonly passphraseEnv?: string | undefined
}

/** An error with whether trying again later may help, and whether the host could not be reached at all. */
export class SshFailure extends Error {
  readonly retryable: boolean
  /** The connection could not be made (refused, timed out, no route): the host is down or cut off, not the command. */
  readonly unreachable: boolean
  /** The host answered but refused the key: it cannot be used until someone fixes its authorized_keys (or the key). */
  readonly refused: boolean
  constructor(message: string, retryable: boolean, unreachable = false, refused = false) {
    super(message)
    this.retryable = retryable
    this.unreachable = unreachable
    this.refused = refused
  }
}

/** `~/x` as a path under the home directory (task files are written by people). */
export const expandHome = (path: string): string => SshConfig.tilde(path, Os.homedir())

/** Why a file could not be read, in words (no such file, not readable, a directory), else Node's message. */
const unreadable = (e: unknown): string => {
  const code = (e as { code?: unknown }).code
  return code === "ENOENT" ? "no such file" : code === "EACCES" ? "not readable by this user" : code === "EISDIR" ? "a directory, not a file" : e instanceof Error ? e.message : String(e)
}

/**
 * The host keys of every known_hosts file of `files` (`~/` expanded) that can be read, merged as OpenSSH merges them;
 * those read, and why the others could not be.
 */
export const readKnownHosts = (files: ReadonlyArray<string>): {
  readonly known: Array<KnownHosts.KnownKey>
  readonly files: Array<string>
  readonly unread: Array<{ readonly file: string; readonly why: string }>
} => {
  const known: Array<KnownHosts.KnownKey> = []
  const read: Array<string> = []
  const unread: Array<{ readonly file: string; readonly why: string }> = []
  for (const file of files) {
    try {
      known.push(...KnownHosts.parse(Fs.readFileSync(expandHome(file), "utf8")))
      read.push(file)
    } catch (e) {
      unread.push({ file, why: unreadable(e) })
    }
  }
  return { known, files: read, unread }
}

/**
 * The private key of `path` (`~/` expanded), given as the setting `field`; one that cannot be read (no such file, not
 * readable, a directory) throws an error naming the field and the fix (`authorizedKeys`: where its `.pub` goes).
 */
export const readKey = (field: string, path: string, authorizedKeys: string): Buffer => {
  try {
    return Fs.readFileSync(expandHome(path))
  } catch (e) {
    throw new Error(
      `${field} ${path}: ${unreadable(e)}: give the path of a private key this user can read ` +
        `(\`ssh-keygen -t ed25519 -f ${path}\` makes one, then add its .pub to ${authorizedKeys})`
    )
  }
}

/** A host's settings checked at make: its key read once (and used for every connection), its known_hosts readable. */
export interface PreparedHost extends HostConfig {
  readonly privateKey: Buffer
  /** Where the key's path came from (the field, the config file's line, or a default key), said when the host refuses it. */
  readonly keyFrom: string
  /** The key's passphrase (from the variable `passphraseEnv` names), for an encrypted key. */
  readonly passphrase?: string | undefined
  /** The host connected to first (`ProxyJump`), and the line that says so; the connection goes on through it. */
  readonly jump?: (PreparedHost & { readonly via: string; readonly destination: string }) | undefined
  /**
   * The command the connection runs over (`ProxyCommand`, its tokens expanded), the line that says so, and the name
   * given (for `ssh`, which runs the same command, in advice).
   */
  readonly proxyCommand?: { readonly command: string; readonly via: string; readonly name: string } | undefined
  /** The name the host's key is looked up under in known_hosts (`HostKeyAlias`), alone (no `[ ]:port`), as OpenSSH. */
  readonly keyAlias?: string | undefined
}

/** A chain of jump hosts longer than this is refused (a loop, a host met again the same way, is refused as such before). */
const MAX_JUMPS = 8

/**
 * ssh2's `parseKey`: an Error for a key it cannot use. `import("ssh2")` under Node names only some of the CommonJS
 * exports (`Client`, not `utils`): `utils` is on its `default`.
 */
const parseKey = (ssh2: typeof Ssh2, key: Buffer, passphrase: string | undefined): ReturnType<typeof Ssh2.utils.parseKey> => {
  const utils = (ssh2 as { readonly utils?: typeof Ssh2.utils }).utils ?? (ssh2 as unknown as { readonly default: typeof Ssh2 }).default.utils
  return utils.parseKey(key, passphrase)
}

/** Why ssh2 cannot log in with `key` (one it cannot parse, an encrypted one without its passphrase, a public key), else `undefined`. */
export const unusable = (ssh2: typeof Ssh2, key: Buffer, passphrase?: string): string | undefined => {
  // an OpenSSH file of several keys parses to an array (ssh2's client takes the first)
  const parsed: ReturnType<typeof parseKey> | ReadonlyArray<Ssh2.ParsedKey> = parseKey(ssh2, key, passphrase)
  if (parsed instanceof Error) return parsed.message
  const first = Array.isArray(parsed) ? parsed[0] : parsed as Ssh2.ParsedKey
  return first?.isPrivateKey() === true ? undefined : PUBLIC_KEY
}

const PUBLIC_KEY = "a public key, not a private one"

/**
 * The passphrase `passphraseEnv` names, and why the key of `field` (`path`) cannot be used with it, naming the field and
 * the fix: a public key, an encrypted key without `passphraseEnv` (or its variable unset, or a passphrase that does not
 * decrypt it), a key ssh2 cannot read.
 */
export const keyCheck = (
  ssh2: typeof Ssh2,
  field: string,
  path: string,
  key: Buffer,
  passphraseEnv: { readonly field: string; readonly name: string | undefined },
  env: NodeJS.ProcessEnv
): { readonly passphrase: string | undefined } | { readonly refusal: string } => {
  const name = passphraseEnv.name
  const passphrase = name === undefined ? undefined : env[name]
  if (name !== undefined && passphrase === undefined) {
    return { refusal: `${passphraseEnv.field} ${name}: no such environment variable: set it to the passphrase of ${path} before starting` }
  }
  // an empty passphrase is no passphrase (ssh2 takes "" for none): said as such, not as a key it cannot read
  if (name !== undefined && passphrase === "") {
    return { refusal: `${passphraseEnv.field} ${name} is empty: set it to the passphrase of ${path} before starting (or leave ${passphraseEnv.field} out for a key without one)` }
  }
  const why = unusable(ssh2, key, passphrase)
  if (why === undefined) return { passphrase }
  if (why === PUBLIC_KEY) {
    return { refusal: `${field} ${path}: ${why}: give the private key's file (${path.replace(/\.pub$/, "")}, without .pub), not its public half` }
  }
  if (/no passphrase given/.test(why)) {
    return {
      refusal: `${field} ${path}: an encrypted key (it has a passphrase): set ${passphraseEnv.field} to the name of an environment variable ` +
        "holding the passphrase (never the passphrase itself in a settings file), or give a key without one"
    }
  }
  if (passphrase !== undefined && /passphrase/i.test(why)) {
    return { refusal: `${field} ${path}: the passphrase in ${passphraseEnv.field} ${name} does not decrypt it (${why}): set ${name} to the key's passphrase` }
  }
  return { refusal: `${field} ${path}: ${why}: give an OpenSSH or PEM private key` }
}

/**
 * A host's settings completed and checked: what is not given taken from `~/.ssh/config` (`local` and `configPath` say
 * whose; explicit settings win; else the local user, port 22, the first of OpenSSH's default keys that exists,
 * `~/.ssh/known_hosts`), its key read (kept for its connections), its known_hosts readable (read again at each
 * connection: a key added meanwhile counts). A failure gives a message naming the host, the field and the fix;
 * `warnings` say what of the configuration file could not be honoured.
 */
export const prepare = (
  given: HostSetting,
  ssh2: typeof Ssh2,
  env: NodeJS.ProcessEnv = process.env,
  local: SshConfig.Local = SshConfig.here(),
  configPath = SshConfig.USER_CONFIG,
  through?: { readonly value: string; readonly where: string },
  chain: ReadonlyArray<{ readonly name: string; readonly through: string | undefined; readonly where: string }> = []
): { readonly ok: PreparedHost; readonly warnings: ReadonlyArray<string>; readonly moved?: string | undefined } | { readonly refusal: string; readonly whole?: true } => {
  let file: SshConfig.HostSettings
  const explicit = { user: given.username, port: given.port, privateKeyPath: given.privateKeyPath, knownHostsPath: given.knownHostsPath }
  try {
    file = SshConfig.forHost(given.host, explicit, local, configPath)
  } catch (e) {
    if (e instanceof SshConfig.SshConfigError) return { refusal: `${given.host}: ${e.message}` }
    throw e
  }
  const home = (p: string) => SshConfig.tilde(p, local.home)
  const { hostName: host, user: username, port, userKnownHosts: users, globalKnownHosts: globals } = SshConfig.resolve(given.host, explicit, file, local)
  const who = `${username}@${host}`
  const identity = file.identities.find((i) => Fs.existsSync(i.file)) ?? file.identities[0]
  const defaultKey = SshConfig.DEFAULT_KEYS.map(home).find((f) => Fs.existsSync(f))
  const [keyField, privateKeyPath, keyFrom] = given.privateKeyPath !== undefined
    ? ["privateKeyPath", given.privateKeyPath, "the host's privateKeyPath"]
    : identity !== undefined
    ? [`IdentityFile (${configPath})`, identity.file, `the IdentityFile of ${identity.where}`]
    : ["privateKeyPath (none given: a default key)", defaultKey, "a default key (no privateKeyPath, no IdentityFile)"]
  if (privateKeyPath === undefined) {
    return {
      refusal: `${who}: no privateKeyPath, no IdentityFile for ${given.host} in ${configPath}, and none of ${SshConfig.DEFAULT_KEYS.join(", ")}: ` +
        `set privateKeyPath to the private key to log in with (\`ssh-keygen -t ed25519\` makes one)`
    }
  }
  // as OpenSSH: every file of UserKnownHostsFile (default ~/.ssh/known_hosts and known_hosts2) and of GlobalKnownHostsFile
  // (default the system's /etc/ssh/ssh_known_hosts and ssh_known_hosts2) counts, a key found in any (and a key @revoked in any refused); `UserKnownHostsFile
  // none` reads no file of the user's (the system's only, never the broader ~/.ssh/known_hosts). A knownHostsPath given
  // is the one file read
  if (users.length === 0 && globals.length === 0) {
    return {
      refusal: `${who}: UserKnownHostsFile none (${file.knownHostsWhere}) and GlobalKnownHostsFile none (${file.globalKnownHostsWhere}) ` +
        `leave no known hosts: nothing to check the host's key against: set knownHostsPath, or name a file in either`
    }
  }
  const knownHostsFiles = [...users, ...globals]
  const config: HostConfig = { host, port, username, privateKeyPath, knownHostsFiles }
  let privateKey: Buffer
  try {
    privateKey = readKey(keyField, privateKeyPath, `~${username}/.ssh/authorized_keys on ${host}`)
  } catch (e) {
    return { refusal: `${who}: ${(e as Error).message}` }
  }
  const checked = keyCheck(ssh2, keyField, privateKeyPath, privateKey, { field: "passphraseEnv", name: given.passphraseEnv }, env)
  if ("refusal" in checked) return { refusal: `${who}: ${checked.refusal}` }
  // nothing to check the host's key against when no file can be read (OpenSSH skips a file it cannot read)
  const read = readKnownHosts(knownHostsFiles)
  if (read.files.length === 0) {
    const why = read.unread[0]!.why
    if (users.length === 0) {
      return {
        refusal: `${who}: UserKnownHostsFile none (${file.knownHostsWhere}) leaves only the system's ${globals.join(" ")}, and it cannot be read ` +
          `(${why}): nothing to check the host's key against: set knownHostsPath, or name a file in that UserKnownHostsFile`
      }
    }
    const field = given.knownHostsPath !== undefined ? "knownHostsPath" : file.knownHostsFiles !== undefined ? `UserKnownHostsFile (${file.knownHostsWhere})` : "knownHostsPath (none given: ~/.ssh/known_hosts)"
    const others = knownHostsFiles.length > 1 ? ` (nor can ${knownHostsFiles.slice(1).join(", ")})` : ""
    return {
      refusal: `${who}: ${field} ${users[0]}: ${why}${others}: give a known_hosts file this user can read that holds the host's key ` +
        `(\`ssh-keyscan -p ${port} ${host} >> ${users[0]}\`, after checking its fingerprint)`
    }
  }
  const warnings = file.warnings.map((w) => `${given.host}: ${w}`)
  // ProxyJump, as OpenSSH follows it: the last hop is connected to through the ones before it (a list given here, or
  // the first hop's own ProxyJump), each a host of its own (its config lines, key and known_hosts)
  const proxy = through ?? file.proxyJump
  let jump: PreparedHost["jump"]
  if (proxy !== undefined) {
    const list = SshConfig.hops(proxy.value)
    if (typeof list === "string") return { refusal: `${who}: ProxyJump ${proxy.value} (${proxy.where}): ${list}` }
    // `chain`: the hosts this one is reached from, each with the jump list it is reached through (none: its own
    // ProxyJump) and the ProxyJump line that leads on. A host met again the same way (its name, and the list it is
    // reached through) is a loop, said once as a whole (as OpenSSH's "jumphost loop via"), not wrapped in each host's
    // words; met again another way it is not (`ProxyJump b,c,b` reaches b first directly, then through c: OpenSSH runs it)
    const onward = [...chain, { name: given.host, through: through?.value, where: proxy.where }]
    const last = list[list.length - 1]!
    const before = list.slice(0, -1).map((h) => h.text).join(",")
    const next = { name: last.host.toLowerCase(), through: before === "" ? undefined : before.toLowerCase() }
    if (onward.some((c) => c.name.toLowerCase() === next.name && c.through?.toLowerCase() === next.through)) {
      const refusal = `ProxyJump loop: ${[...onward.map((c) => c.name), last.host].join(" -> ")} (${onward.map((c) => c.where).join(", ")}): give ${last.host} \`ProxyJump none\` in its own Host block`
      return { refusal: chain.length === 0 ? `${who}: ${refusal}` : refusal, whole: true }
    }
    if (onward.length > MAX_JUMPS) {
      return {
        refusal: `${who}: ProxyJump ${proxy.value} (${proxy.where}): more than ${MAX_JUMPS} jump hosts in a row: ` +
          "give the first jump host `ProxyJump none` in its own Host block"
      }
    }
    const p = prepare(
      { host: last.host, port: last.port, username: last.user, passphraseEnv: given.passphraseEnv },
      ssh2,
      env,
      local,
      configPath,
      before === "" ? undefined : { value: before, where: proxy.where },
      onward
    )
    if ("refusal" in p && p.whole === true) return { refusal: chain.length === 0 ? `${who}: ${p.refusal}` : p.refusal, whole: true }
    const via = `ProxyJump ${proxy.value}, ${proxy.where}`
    if ("refusal" in p) return { refusal: `${who}: jump host ${last.text} (${via}): ${p.refusal}` }
    // how `ssh` is told to reach it: the hop as written (an alias takes its Host block), a port as ssh:// takes it; an
    // IPv6 address (ssh takes neither `[::1]` nor `ssh://[::1]:22` as a destination) bare, its port as -p; a hop of a
    // list through the hops before it (-J), as it is reached here
    const bare = last.text.replace(/^ssh:\/\//, "")
    const to = last.host.includes(":")
      ? `${last.port === undefined ? "" : `-p ${last.port} `}${last.user === undefined ? "" : `${last.user}@`}${last.host}`
      : last.port === undefined ? bare : `ssh://${bare}`
    const destination = before === "" ? to : `-J ${before} ${to}`
    jump = { ...p.ok, via, destination }
    warnings.push(...p.warnings.map((w) => `jump host ${w}`))
  }
  // ProxyCommand, when it came first (OpenSSH takes the first of the two), for a host not reached through hops (the
  // hops' own are not followed, as `ssh -J` does not)
  let proxyCommand: PreparedHost["proxyCommand"]
  const command = proxy === undefined ? file.proxyCommand : undefined
  if (command !== undefined) {
    if (command.command === undefined) return { refusal: `${who}: ProxyCommand ${command.value} (${command.where}): ${command.refusal}` }
    proxyCommand = { command: command.command, via: `ProxyCommand ${command.value}, ${command.where}`, name: given.host }
  }
  // the address the config file moved the name to, said once at make (ssh connects there too, or its command does)
  const movedTo = SshConfig.moved(given.host, given.port, file)
  const moved = movedTo !== undefined && proxyCommand !== undefined ? `${movedTo}, through its ProxyCommand (${command!.where})` : movedTo
  const keyAlias = file.hostKeyAlias?.value
  return { ok: { ...config, privateKey, keyFrom, passphrase: checked.passphrase, jump, proxyCommand, keyAlias }, warnings, moved }
}

const CONNECTION_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EPIPE", "EAI_AGAIN"])

/**
 * An SFTP request the server answered with no such file (2), permission denied (3) or failure (4: a full
 * disk, among others): asking again soon gives the same answer. A lost connection (6, 7, or no status) may not.
 */
const refusedByServer = (err: Error): boolean => {
  const code = (err as { code?: unknown }).code
  return code === 2 || code === 3 || code === 4
}

/** The name of a connection in messages: `user@host:port`. */
const labelOf = (config: HostConfig) => `${config.username}@${config.host}:${config.port ?? 22}`

/**
 * An ssh2 client logged in to `config`'s host, its key checked against its known_hosts (read now: a key added
 * meanwhile counts); over `sock` (a channel through its jump host) when given. `label` names it in errors; `lost` is
 * told when it fails after login.
 */
const login = (ssh2: typeof Ssh2, config: PreparedHost, label: string, lost: () => void, sock?: Duplex): Promise<Client> =>
  new Promise((resolve, reject) => {
    const { host, username, privateKey } = config
    const port = config.port ?? 22
    const { name: keyName, port: keyPort } = KnownHosts.keyedAs(host, port, config.keyAlias)
    const { known, files, unread } = readKnownHosts(config.knownHostsFiles)
    if (files.length === 0) {
      return reject(new SshFailure(`${label}: cannot read known_hosts ${unread.map((u) => `${u.file} (${u.why})`).join(", ")}`, false))
    }
    let refused: string | undefined
    let settled = false
    const client = new ssh2.Client()
    client.once("ready", () => {
      settled = true
      resolve(client)
    })
    client.on("error", (err: Error & { code?: string; level?: string }) => {
      lost()
      if (settled) return
      settled = true
      if (refused !== undefined) return reject(new SshFailure(refused, false))
      if (err.level === "client-authentication") {
        // It used to work (or never did): a key taken out of authorized_keys, or the wrong key. Waiting does not
        // fix it, so it is not retried now; the host is left unused (as one that is down) until it accepts the key.
        const { privateKeyPath: key, keyFrom } = config
        return reject(new SshFailure(
          `${label}: the key ${key} was not accepted for user ${username} (${err.message}); it is ${keyFrom}, read when the backend ` +
            `was made (a key file changed since, say a rotated key, is read at the next start): add its public key (${key}.pub) ` +
            `to ~${username}/.ssh/authorized_keys on ${host}, or give a key that is there (privateKeyPath, or an IdentityFile) and start again`,
          false,
          true,
          true
        ))
      }
      const retryable = (err.code !== undefined && CONNECTION_CODES.has(err.code)) || /timed out|keepalive/i.test(err.message)
      reject(new SshFailure(`${label}: ${err.message}`, retryable, retryable))
    })
    // (an end without a close: see Connection's). Before login it is an answer too: a host that closes the connection
    // right after its banner sends no error, and ssh2 clears its readyTimeout at the end, which would leave this waiting
    const ended = () => {
      lost()
      if (settled) return
      settled = true
      reject(new SshFailure(`${label}: the host closed the connection before login`, true, true))
    }
    client.on("end", ended)
    client.on("close", ended)
    client.connect({
      host,
      port,
      username,
      privateKey,
      ...(sock !== undefined ? { sock } : {}),
      ...(config.passphrase !== undefined ? { passphrase: config.passphrase } : {}),
      readyTimeout: 15_000,
      keepaliveInterval: 10_000,
      keepaliveCountMax: 3,
      // the host-key types known_hosts holds for this host first, as OpenSSH asks
      algorithms: { serverHostKey: KnownHosts.hostKeyAlgorithms(known, keyName, keyPort) },
      hostVerifier: (key: Buffer) => {
        const v = KnownHosts.verify(known, keyName, keyPort, key)
        if (v.ok) return true
        const proxy = config.proxyCommand
        refused = proxy !== undefined && v.reason === "unknown"
          // (ssh-keyscan cannot go through a command: ssh itself, asked once, shows the key and adds it to the file named)
          ? `${label}: host key not in ${files.join(", ")} (add it with ssh -o UserKnownHostsFile=${files[0]} -p ${port} ${username}@${proxy.name} true, ` +
            `which runs the same ${proxy.via}, after checking the fingerprint it shows: ssh-keyscan does not go through a ProxyCommand)`
          : KnownHosts.refusal(v.reason, label, files.join(", "), keyName, keyPort, config.jump?.destination)
        return false
      }
    })
  })

/**
 * A client logged in to `config`'s host, through its jump hosts first when it has some (`ProxyJump`, as OpenSSH's:
 * each logged in to as a host of its own, then a direct-tcpip channel from it to the next, which the next connection
 * runs over). Every client made is pushed to `opened` (the jump hosts first), for the caller to end.
 */
const open = async (ssh2: typeof Ssh2, config: PreparedHost, label: string, opened: Array<Client>, lost: () => void): Promise<Client> => {
  let sock: Duplex | undefined
  if (config.jump !== undefined) {
    const jump = config.jump
    const jumpLabel = `${label}: jump host ${labelOf(jump)} (${jump.via})`
    const through = await open(ssh2, jump, jumpLabel, opened, lost)
    const port = config.port ?? 22
    sock = await new Promise<Duplex>((resolve, reject) =>
      through.forwardOut("127.0.0.1", 0, config.host, port, (err, stream) =>
        !err
          ? resolve(stream)
          : (err as { reason?: unknown }).reason === 1
          // SSH_OPEN_ADMINISTRATIVELY_PROHIBITED: the jump host's sshd forbids it; asking again gets the same answer
          ? reject(new SshFailure(
            `${jumpLabel}: its sshd refuses to open a connection from it to ${config.host}:${port} (${err.message}): ` +
              "set AllowTcpForwarding yes (or local) in its sshd_config, and a PermitOpen that includes this host, or reach the host another way",
            false
          ))
          : reject(new SshFailure(`${jumpLabel}: could not open a connection from it to ${config.host}:${port} (${err.message}): is the host up, and does the jump host's sshd allow TCP forwarding?`, true, true))
      )
    )
  }
  if (config.proxyCommand !== undefined) return overCommand(ssh2, config, config.proxyCommand, label, opened, lost)
  const client = await login(ssh2, config, label, lost, sock)
  opened.push(client)
  return client
}

/** The last bytes a proxy command wrote to its standard error, kept for messages. */
const STDERR_KEPT = 2_000

/** How long a failed login waits for its proxy command's exit, to say it; and a stopped command's grace before SIGKILL. */
const PROXY_EXIT_WAIT_MS = 2_000

/** A login failure that is the connection's end (the proxy command's output ended), whatever ssh2 called it. */
const CONNECTION_ENDED = /closed the connection before login|lost before handshake|Premature close|ECONNRESET|EPIPE|socket hang up/

/**
 * A client logged in over a `ProxyCommand`, as OpenSSH runs it: `exec <command>` by the user's shell (`$SHELL`, else
 * /bin/sh), the connection over its standard input and output. The command is stopped with the client (its input
 * closed, SIGHUP as OpenSSH sends it, then SIGKILL after a grace for one that ignores it). One that ends before the login
 * fails the attempt with its exit and the end of what it wrote to its standard error: retried, as a host that closed the
 * connection (a proxy's network may come back), unless the shell could not run it (exit 126 or 127, or no such shell).
 * Any other failure names the command's line.
 */
const overCommand = (
  ssh2: typeof Ssh2,
  config: PreparedHost,
  proxy: NonNullable<PreparedHost["proxyCommand"]>,
  label: string,
  opened: Array<Client>,
  lost: () => void
): Promise<Client> => {
  const shell = process.env["SHELL"] || "/bin/sh"
  const child = spawn(shell, ["-c", `exec ${proxy.command}`], { stdio: ["pipe", "pipe", "pipe"] })
  let stderr = ""
  child.stderr.setEncoding("utf8")
  child.stderr.on("data", (d: string) => {
    stderr = (stderr + d).slice(-STDERR_KEPT)
  })
  const ended = new Promise<{ readonly code: number | null; readonly signal: string | null } | { readonly error: string }>((resolve) => {
    child.once("error", (e) => resolve({ error: e.message }))
    child.once("exit", (code, signal) => resolve({ code, signal }))
  })
  let stopped = false
  const stop = () => {
    if (stopped) return
    stopped = true
    child.stdin.destroy()
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill("SIGHUP")
    const kill = setTimeout(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"), PROXY_EXIT_WAIT_MS)
    kill.unref()
    child.once("exit", () => clearTimeout(kill))
  }
  const sock = Duplex.from({ readable: child.stdout, writable: child.stdin })
  // (a write after the command ended fails with EPIPE: the client sees the connection's end, and its error here)
  sock.on("error", () => undefined)
  return login(ssh2, config, label, lost, sock).then(
    (client) => {
      // when the client ends its side, not only at its close: the close waits for the command's output to end, which a
      // command that outlives the connection never ends
      sock.once("finish", stop)
      client.once("close", stop)
      opened.push(client)
      return client
    },
    async (e: unknown) => {
      const failure = e instanceof SshFailure ? e : new SshFailure(`${label}: ${String(e)}`, false)
      // (a refusal, of the host key or of the login, is said as it is: the command ended because the client did)
      const end = CONNECTION_ENDED.test(failure.message)
        ? await Promise.race([ended, new Promise<undefined>((r) => setTimeout(() => r(undefined), PROXY_EXIT_WAIT_MS).unref())])
        : undefined
      stop()
      if (end === undefined) {
        if (failure.message.includes(proxy.via)) throw failure
        throw new SshFailure(`${failure.message} (over ${proxy.via})`, failure.retryable, failure.unreachable, failure.refused)
      }
      const said = stderr.trim().split("\n").slice(-3).join(" / ")
      const how = "error" in end ? `could not be started by ${shell} (${end.error})` : `exited ${end.signal ?? end.code}`
      // the shell could not run it (no such command, not executable), or there is no shell: the same next time
      const broken = "error" in end || end.code === 126 || end.code === 127
      throw new SshFailure(
        `${label}: ${proxy.via}: the command ${how} before the login${said !== "" ? `: ${said}` : ""}: ` +
          (broken ? "fix the command (or set SHELL to a shell that runs it)" : "is the host up, and does the command reach it?"),
        !broken,
        !broken
      )
    }
  )
}

export class Connection {
  private client: Promise<{ readonly client: Client; readonly sftp: SFTPWrapper }> | undefined
  readonly label: string
  private readonly config: PreparedHost
  constructor(config: PreparedHost) {
    this.config = config
    this.label = labelOf(config)
  }

  /**
   * One attempt: `lost` forgets it (and only it) when one of its clients fails or closes, for a late event (a jump host's
   * connection closing a round trip after the host's, once a new attempt has begun) must not drop the new attempt,
   * which would then never be ended.
   */
  private async connect(lost: () => void): Promise<{ readonly client: Client; readonly sftp: SFTPWrapper }> {
    const ssh2 = await Clients.ssh2()
    const opened: Array<Client> = []
    const endAll = () => {
      for (const c of opened) c.end()
    }
    const client = await open(ssh2, this.config, this.label, opened, lost).catch((e: unknown) => {
      lost()
      endAll()
      throw e
    })
    // the jump hosts' connections go with the host's. Its end counts as its close: over a jump host's channel, ssh2
    // stops the keepalive at the channel's end, and the channel's close may never come, which would leave a client that
    // is "Not connected" for every request, kept for good
    const gone = () => {
      lost()
      endAll()
    }
    client.on("end", gone)
    client.on("close", gone)
    return new Promise((resolve, reject) =>
      client.sftp((err, sftp) => {
        if (!err) return resolve({ client, sftp })
        // the host's client (and with it its jump hosts') is ended, not left logged in
        lost()
        endAll()
        reject(new SshFailure(`${this.label}: SFTP: ${err.message}`, true))
      })
    )
  }

  private get(): Promise<{ readonly client: Client; readonly sftp: SFTPWrapper }> {
    if (this.client === undefined) {
      const token: { attempt?: Promise<{ readonly client: Client; readonly sftp: SFTPWrapper }> } = {}
      const forget = () => {
        if (token.attempt !== undefined && this.client === token.attempt) this.client = undefined
      }
      const attempt = this.connect(forget)
      token.attempt = attempt
      this.client = attempt
      attempt.catch(forget)
    }
    return this.client
  }

  /** Run a command; resolves with its exit code and output (never rejects on a non-zero exit). */
  async exec(command: string): Promise<{ readonly code: number; readonly stdout: string; readonly stderr: string }> {
    const { client } = await this.get()
    return new Promise((resolve, reject) => {
      client.exec(command, (err, stream) => {
        if (err) return reject(new SshFailure(`${this.label}: exec: ${err.message}`, true))
        let stdout = ""
        let stderr = ""
        stream.on("data", (d: Buffer) => (stdout += d.toString("utf8")))
        stream.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")))
        // neither an exit code nor a signal: the connection went before the command ended
        stream.once("close", (code: number | null | undefined, signal?: string) =>
          code == null && signal == null
            ? reject(new SshFailure(`${this.label}: the connection closed before the command ended`, true, true))
            : resolve({ code: code ?? -1, stdout, stderr }))
      })
    })
  }

  async writeFile(path: string, data: string, mode: number): Promise<void> {
    const { sftp } = await this.get()
    return new Promise((resolve, reject) =>
      sftp.writeFile(path, data, { mode }, (err) => (err ? reject(new SshFailure(`${this.label}: write ${path}: ${err.message}`, !refusedByServer(err))) : resolve()))
    )
  }

  /** The bytes of `path` from `offset` to its end (at most `max`); `undefined` if it does not exist. */
  async readFrom(path: string, offset: number, max = 4 * 1024 * 1024): Promise<Buffer | undefined> {
    const { sftp } = await this.get()
    const handle = await new Promise<Buffer | undefined>((resolve, reject) =>
      sftp.open(path, "r", (err, h) => (err ? ((err as { code?: number }).code === 2 ? resolve(undefined) : reject(new SshFailure(`${this.label}: open ${path}: ${err.message}`, true))) : resolve(h)))
    )
    if (handle === undefined) return undefined
    try {
      const size = await new Promise<number>((resolve, reject) => sftp.fstat(handle, (err, st) => (err ? reject(err) : resolve(st.size))))
      const length = Math.min(max, size - offset)
      if (length <= 0) return Buffer.alloc(0)
      const buf = Buffer.alloc(length)
      let done = 0
      while (done < length) {
        const n = await new Promise<number>((resolve, reject) =>
          sftp.read(handle, buf, done, length - done, offset + done, (err, bytes) => (err ? reject(err) : resolve(bytes)))
        )
        if (n === 0) break
        done += n
      }
      return buf.subarray(0, done)
    } finally {
      sftp.close(handle, () => {})
    }
  }

  /** The size of `path` in bytes; `undefined` if it does not exist. */
  async size(path: string): Promise<number | undefined> {
    const { sftp } = await this.get()
    return new Promise((resolve, reject) =>
      sftp.stat(path, (err, st) =>
        err ? ((err as { code?: number }).code === 2 ? resolve(undefined) : reject(new SshFailure(`${this.label}: stat ${path}: ${err.message}`, true))) : resolve(st.size)
      )
    )
  }

  async readdir(path: string): Promise<Array<string>> {
    const { sftp } = await this.get()
    return new Promise((resolve, reject) =>
      sftp.readdir(path, (err, list) =>
        err ? ((err as { code?: number }).code === 2 ? resolve([]) : reject(new SshFailure(`${this.label}: readdir ${path}: ${err.message}`, true))) : resolve(list.map((e) => e.filename))
      )
    )
  }

  /** Close the connection (jobs keep running on the host). */
  close(): void {
    const c = this.client
    this.client = undefined
    c?.then(({ client }) => client.end(), () => {})
  }
}
