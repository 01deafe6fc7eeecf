/**
 * dockerode options for the engine: a unix socket, `DOCKER_HOST`, or `ssh://user@host[:port]`
 * with key auth and the host key checked against known_hosts (docker-modem alone checks nothing),
 * over a small pool of SSH connections per engine (docker-modem alone logs in once a request).
 */
import type Docker from "dockerode"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Os from "node:os"
import type * as Ssh2 from "ssh2"
import { expandHome, keyCheck, readKey, unusable } from "./sshConnection.ts"
import * as KnownHosts from "./sshKnownHosts.ts"
import * as SshConfig from "./sshConfig.ts"

export interface SshAccess {
  readonly privateKeyPath: string
  readonly knownHostsPath: string
  /** For a key with a passphrase: the name of an environment variable holding it (read when the backend is made). */
  readonly passphraseEnv?: string | undefined
}

/**
 * An `http.Agent` over SSH for an `ssh://` engine: its connections are `docker system dial-stdio` sessions on a few SSH
 * connections, kept for the next request (HTTP keep-alive) rather than one a request. docker-modem's own `ssh://`
 * transport logs in for every request, and each session runs the login user's shell, rc files and all: 2.2-2.9 s a
 * request here for root (whose .bashrc runs `pyenv init`), 0.4-0.6 s for a user without; a job's submit, watch and exit
 * are about ten requests.
 *
 * sshd allows only `MaxSessions` sessions on one connection (OpenSSH's default: 10), and each running job's
 * `logs follow` holds one: a session the server refuses (a channel-open failure) marks its connection full, and the
 * session is opened on another connection of the pool (made when none has room, up to {@link MAX_CONNECTIONS}). A
 * connection is ended only once it is gone (its close, or its socket no longer writable), and then only its own
 * sessions go with it. Idle sessions close after {@link FREE_SESSION_MS}, a connection without sessions after
 * {@link IDLE_CONNECTION_MS} (unless `idle` says otherwise); SSH keep-alives (every 10 s, 3 unanswered end it, unless `connect` says otherwise)
 * notice a link dropped silently.
 * `destroy()` ends every session and connection (DockerBackend does at the end of its scope); until then an open
 * connection's keep-alive timer holds the process open.
 */
export interface SshAgent extends Http.Agent {
  /** How many SSH logins, and how many sessions, this agent has made; how many connections it has now. */
  readonly made: () => { readonly logins: number; readonly sessions: number; readonly connections: number }
}

/** The most SSH connections one agent keeps to its host (each with up to the server's MaxSessions sessions). */
export const MAX_CONNECTIONS = 8
/** How long an idle session (a `docker system dial-stdio` kept for the next request) is kept. */
export const FREE_SESSION_MS = 15_000
/** How long a connection without sessions is kept. */
export const IDLE_CONNECTION_MS = 10_000

/** Where the SSH connection's socket is wanted (a request under way): counted, the socket ref'd while any is. */
interface Holds {
  hold: (on: boolean) => void
}

/**
 * An SSH channel as the socket `http.Agent` keeps between requests (ref/unref, timeouts, keep-alive). Its timeout runs
 * while it is free (unref'd by the agent), so that the agent's `timeout` closes a session idle that long.
 */
const asSocket = (stream: Ssh2.ClientChannel, holds: Holds): Net.Socket => {
  let held = true
  holds.hold(true)
  let timer: NodeJS.Timeout | undefined
  const arm = () => {
    clearTimeout(timer)
    if (socket.timeout > 0) timer = setTimeout(() => socket.emit("timeout"), socket.timeout).unref()
  }
  const socket = Object.assign(stream, {
    timeout: 0,
    setKeepAlive: () => socket,
    setNoDelay: () => socket,
    setTimeout: (ms: number, callback?: () => void) => {
      socket.timeout = ms
      // as net.Socket's: `setTimeout(0, callback)` takes the callback off (a request's, at its end, on a kept session)
      if (callback !== undefined && ms === 0) socket.removeListener("timeout", callback)
      else if (callback !== undefined) socket.once("timeout", callback)
      arm()
      return socket
    },
    ref: () => {
      clearTimeout(timer)
      if (!held) holds.hold(held = true)
      return socket
    },
    unref: () => {
      arm()
      if (held) holds.hold(held = false)
      return socket
    }
  })
  stream.once("close", () => {
    clearTimeout(timer)
    if (held) holds.hold(held = false)
  })
  return socket as unknown as Net.Socket
}

/** One SSH connection of the pool, with its live sessions. */
interface Connection {
  readonly made: Promise<Ssh2.Client>
  readonly socket: Net.Socket
  readonly streams: Set<Ssh2.ClientChannel>
  readonly holds: Holds
  /** Its sessions open or being opened. */
  sessions: number
  /** The server refused a session on it while it had others (MaxSessions); cleared when one of its sessions closes. */
  full: boolean
  idle: NodeJS.Timeout | undefined
}

/** How long an agent keeps what is idle (the defaults: {@link FREE_SESSION_MS}, {@link IDLE_CONNECTION_MS}). */
export interface IdleTimes {
  /** An idle session. */
  readonly sessionMs?: number
  /** A connection without sessions. */
  readonly connectionMs?: number
}

/**
 * Where an agent connects: ssh2's options, and `hostRefusal`, why the host's key was last refused (said in place of
 * ssh2's bare "Host denied").
 */
export type SshConnect = Ssh2.ConnectConfig & { readonly host: string; readonly port: number; readonly hostRefusal?: () => string | undefined }

export const sshAgent = (ssh2: typeof Ssh2, connect: SshConnect, idle: IdleTimes = {}): SshAgent => {
  const idleConnectionMs = idle.connectionMs ?? IDLE_CONNECTION_MS
  // a few idle sessions kept: each is a `docker system dial-stdio` on the engine's host
  const agent = new Http.Agent({ keepAlive: true, maxFreeSockets: 4, timeout: idle.sessionMs ?? FREE_SESSION_MS }) as Http.Agent & { made: SshAgent["made"] }
  const where = `${connect.host}:${connect.port}`
  let pool: Array<Connection> = []
  let logins = 0
  let sessions = 0
  const forget = (c: Connection) => {
    clearTimeout(c.idle)
    pool = pool.filter((x) => x !== c)
  }
  const end = (c: Connection) => {
    forget(c)
    void c.made.then((client) => client.end(), () => undefined)
  }
  const gone = (c: Connection) => c.socket.destroyed || !c.socket.writable
  /** Each session's connection. */
  const owner = new WeakMap<Net.Socket, Connection>()
  const login = (): Connection => {
    logins++
    const socket = Net.connect(connect.port, connect.host)
    const client = new ssh2.Client()
    let holding = 0
    const holds: Holds = {
      hold: (on) => {
        holding += on ? 1 : -1
        if (holding === 0) socket.unref()
        else if (on && holding === 1) socket.ref()
      }
    }
    let refuse: (e: unknown) => void = () => undefined
    let ready = false
    /** The last way in that failed before `ready` (the agent's, a key's): said if the login fails. */
    let refused: Error | undefined
    const made: Promise<Ssh2.Client> = new Promise((resolve, reject) => {
      refuse = reject
      client.once("ready", () => {
        ready = true
        resolve(client)
      })
      client.on("error", (e: Error & { readonly level?: unknown }) => {
        // a way in that failed (an agent whose socket is gone, a key it could not sign with): ssh2 goes on to the
        // next; when none is left it says so and ends the connection (its close below)
        if (!ready && (e.level === "agent" || e.level === "client-authentication")) {
          refused = e
          return
        }
        // the connection is not kept, nor left to ssh2: its socket would keep the process alive
        forget(c)
        client.end()
        socket.destroy()
        const why = /^Host denied/.test(e.message) ? connect.hostRefusal?.() : undefined
        reject(why !== undefined ? new Error(why) : e)
      })
      // the connection gone, its sessions are too (ssh2 does not end them): none is kept for another request
      client.once("close", () => {
        forget(c)
        for (const stream of c.streams) stream.destroy()
        reject(refused ?? new Error(`the SSH connection to ${where} closed`))
      })
    })
    const c: Connection = { made, socket, streams: new Set(), holds, sessions: 0, full: false, idle: undefined }
    try {
      client.connect({ keepaliveInterval: 10_000, keepaliveCountMax: 3, ...connect, sock: socket })
    } catch (e) {
      // ssh2 throws here on a key it cannot use ("Cannot parse privateKey"): the socket, made first, would stay open
      socket.destroy()
      refuse(e instanceof Error ? e : new Error(String(e)))
      return c
    }
    pool.push(c)
    return c
  }
  /** A session on a connection with room; `retry`: whether a connection found gone may be made again once. */
  const session = (retry: boolean, callback: (err: Error | null, stream?: Net.Socket) => void, tries = 0) => {
    const c = pool.find((x) => !x.full) ?? (pool.length < MAX_CONNECTIONS ? login() : undefined)
    if (c === undefined || tries > 2 * MAX_CONNECTIONS) {
      return callback(new Error(`every one of ${MAX_CONNECTIONS} SSH connections to ${where} has as many sessions as the server allows (sshd's MaxSessions)`))
    }
    c.made.then(
      (client) => {
        const failed = (err: Error & { readonly reason?: unknown }) => {
          c.sessions--
          if (err.reason !== undefined && c.sessions > 0) {
            // the server's MaxSessions: this connection is full, not gone; the session goes on another one
            c.full = true
            return session(retry, callback, tries + 1)
          }
          if (!gone(c)) return callback(err)
          // a connection that dropped unnoticed: once more, on a new one
          end(c)
          return retry ? session(false, callback, tries + 1) : callback(err)
        }
        c.sessions++
        try {
          client.exec("docker system dial-stdio", (err, stream) => {
            if (err !== undefined && err !== null) return failed(err)
            sessions++
            clearTimeout(c.idle)
            c.streams.add(stream)
            stream.once("close", () => {
              c.streams.delete(stream)
              c.sessions--
              c.full = false
              if (c.streams.size === 0 && pool.includes(c)) c.idle = setTimeout(() => end(c), idleConnectionMs).unref()
            })
            const socket = asSocket(stream, c.holds)
            owner.set(socket, c)
            callback(null, socket)
          })
        } catch (e) {
          // ssh2 throws "Not connected" once the socket is no longer writable
          failed(e instanceof Error ? e : new Error(String(e)))
        }
      },
      (e: Error) => callback(e)
    )
  }
  agent.createConnection = ((_: unknown, callback: (err: Error | null, stream?: Net.Socket) => void) => {
    session(true, callback)
    return undefined
  }) as unknown as Http.Agent["createConnection"]
  // A kept session on a connection whose socket no longer writes (ended a moment before ssh2 sees its close) would
  // take the next request down with it ("socket hang up"): it leaves the pool first, as `http.Agent` removes a socket.
  const requests = agent as unknown as { addRequest: (...args: Array<unknown>) => void }
  const addRequest = requests.addRequest.bind(agent)
  requests.addRequest = (...args) => {
    for (const kept of Object.values(agent.freeSockets).flat()) {
      const c = kept === undefined ? undefined : owner.get(kept)
      if (kept === undefined || c === undefined || !gone(c)) continue
      kept.destroy()
      kept.emit("agentRemove")
    }
    addRequest(...args)
  }
  agent.made = () => ({ logins, sessions, connections: pool.length })
  const destroy = agent.destroy.bind(agent)
  agent.destroy = () => {
    destroy()
    for (const c of pool) end(c)
  }
  return agent
}

/** The system's known hosts, read after the user's (OpenSSH's defaults: sshConfig.ts). */
export const GLOBAL_KNOWN_HOSTS = SshConfig.GLOBAL_KNOWN_HOSTS

/**
 * The engine URL the backend reaches: its `host` setting, else `DOCKER_HOST` when that is an `ssh://` URL (so that it
 * goes through {@link sshAgent}'s pool too, not docker-modem's login a request); `undefined` leaves dockerode to read
 * `DOCKER_HOST` (unix, tcp, TLS) or take /var/run/docker.sock.
 */
export const engineHost = (o: { readonly socketPath?: string | undefined; readonly host?: string | undefined }, env: NodeJS.ProcessEnv = process.env): string | undefined =>
  o.socketPath !== undefined ? undefined : o.host ?? (env["DOCKER_HOST"]?.startsWith("ssh://") === true ? env["DOCKER_HOST"] : undefined)

/** How to log in: each way in turn (ssh2's `authHandler`), given the user name. */
type Logins = (username: string) => Array<Ssh2.AgentAuthMethod | Ssh2.PublicKeyAuthMethod>

/**
 * How to log in to an `ssh://` engine named only by `DOCKER_HOST` without `ssh`, as `docker` itself would through
 * OpenSSH: the SSH agent of `SSH_AUTH_SOCK`, then each key of `files` (the host's `IdentityFile`s in ~/.ssh/config, else
 * OpenSSH's default keys) that can be used (an encrypted one cannot: its passphrase is not asked for, and the agent is
 * the way to use it); none at all is said now.
 */
const defaultLogins = (host: string, env: NodeJS.ProcessEnv, ssh2: typeof Ssh2, files: ReadonlyArray<string>): Logins => {
  const agent = env["SSH_AUTH_SOCK"]
  const keys: Array<Buffer> = []
  const skipped: Array<string> = []
  for (const path of files) {
    if (!Fs.existsSync(expandHome(path))) continue
    // one that cannot be read (another user's, a directory of that name) is skipped, as OpenSSH skips it
    let key: Buffer
    try {
      key = Fs.readFileSync(expandHome(path))
    } catch (e) {
      skipped.push(`${path}: ${e instanceof Error ? e.message : String(e)}`)
      continue
    }
    const why = unusable(ssh2, key)
    if (why !== undefined) skipped.push(`${path}: ${why}`)
    else keys.push(key)
  }
  const withAgent = agent !== undefined && agent !== ""
  if (!withAgent && keys.length === 0) {
    throw new Error(
      `DOCKER_HOST=${host}: no SSH agent (SSH_AUTH_SOCK) and no usable key among ${files.join(", ")}` +
        (skipped.length > 0 ? ` (${skipped.join("; ")})` : "") +
        ": start an agent holding the key (`eval $(ssh-agent)`, `ssh-add`), or set backend.docker.ssh { privateKeyPath, knownHostsPath } (DockerBackend's `ssh`)"
    )
  }
  return (username) => [
    ...(withAgent ? [{ type: "agent" as const, username, agent }] : []),
    ...keys.map((key) => ({ type: "publickey" as const, username, key }))
  ]
}

/**
 * The key of `ssh.privateKeyPath`, refused now when it cannot be read or ssh2 cannot use it (a public key, an encrypted
 * key without `ssh.passphraseEnv` or with a passphrase that does not decrypt it, another format).
 */
const givenLogins = (ssh: SshAccess, ssh2: typeof Ssh2, env: NodeJS.ProcessEnv): Logins => {
  const key = readKey("ssh.privateKeyPath", ssh.privateKeyPath, "the engine host's authorized_keys")
  const checked = keyCheck(ssh2, "ssh.privateKeyPath", ssh.privateKeyPath, key, { field: "ssh.passphraseEnv", name: ssh.passphraseEnv }, env)
  if ("refusal" in checked) throw new Error(checked.refusal)
  const { passphrase } = checked
  return (username) => [{ type: "publickey", username, key, ...(passphrase !== undefined ? { passphrase } : {}) }]
}

/** Who this process is, and the system's known hosts, as OpenSSH takes them (a test gives others). */
export interface LocalSsh {
  /** The user name an `ssh://` URL without one logs in as. */
  readonly user: string
  /** The system-wide known hosts, read after `~/.ssh/known_hosts` when `ssh` is not given. */
  readonly globalKnownHosts: string
}

/**
 * A unix socket's options. docker-modem lays the options given over those it reads from `DOCKER_HOST`, and a host
 * there (`tcp://`, `ssh://`) wins over a `socketPath` here: its host and protocol are taken out.
 */
const onSocket = (socketPath: string): Docker.DockerOptions => ({ socketPath, host: undefined, protocol: "http" }) as Docker.DockerOptions

export const engineOptions = (o: {
  readonly socketPath?: string | undefined
  readonly host?: string | undefined
  readonly ssh?: SshAccess | undefined
}, ssh2?: typeof Ssh2, env: NodeJS.ProcessEnv = process.env, local: LocalSsh = { user: userName(), globalKnownHosts: GLOBAL_KNOWN_HOSTS }, warn: (message: string) => void = () => undefined, info: (message: string) => void = () => undefined): Docker.DockerOptions | undefined => {
  if (o.socketPath !== undefined) return onSocket(o.socketPath)
  const host = engineHost(o, env)
  if (host === undefined) return undefined // dockerode reads DOCKER_HOST, else /var/run/docker.sock
  const url = new URL(host)
  if (url.protocol === "unix:") return onSocket(url.pathname)
  if (url.protocol !== "ssh:") return { protocol: url.protocol === "https:" ? "https" : "http", host: url.hostname, port: url.port || 2375 }
  if (o.ssh === undefined && o.host !== undefined) throw new Error(`${host}: an ssh:// engine needs ssh.privateKeyPath and ssh.knownHostsPath`)
  if (ssh2 === undefined) throw new Error(`${host}: an ssh:// engine needs ssh2 loaded`)
  // a URL's IPv6 address is in brackets ([::1]): not in the address connected to
  const alias = url.hostname.replace(/^\[(.*)\]$/, "$1")
  // ~/.ssh/config fills in what the URL does not say (its host may be a Host alias), as for `docker` through OpenSSH
  const given = { user: decodeURIComponent(url.username) || undefined, port: url.port === "" ? undefined : Number(url.port) }
  // what `ssh` gives overrides the file's IdentityFile and UserKnownHostsFile: not expanded nor checked
  const explicit = { ...given, privateKeyPath: o.ssh?.privateKeyPath, knownHostsPath: o.ssh?.knownHostsPath }
  const file = SshConfig.forHost(alias, explicit, { home: Os.homedir(), user: local.user })
  for (const w of file.warnings) warn(`${host}: ${w}`)
  // the SSH backend follows a ProxyJump and a ProxyCommand; an engine's connection does not
  if (file.proxyJump !== undefined) warn(`${host}: ${file.proxyJump.where}: ProxyJump is not supported: the connection goes straight to the host, not through ${file.proxyJump.value}`)
  if (file.proxyCommand !== undefined) {
    warn(`${host}: ${file.proxyCommand.where}: ProxyCommand is not supported for an ssh:// engine: the connection goes straight to the host, not through ${file.proxyCommand.value}`)
  }
  // the address the config file moves the URL's host to, said once (as the SSH backend says it)
  const moved = SshConfig.moved(alias, given.port, file)
  if (moved !== undefined) info(`${host}: ~/.ssh/config connects ${moved}`)
  // as the SSH backend's hosts: the name, port, user and known hosts
  const { hostName: hostname, port, user: username, userKnownHosts, globalKnownHosts: globals, secondDefaults } = SshConfig.resolve(alias, explicit, file, {
    home: Os.homedir(),
    user: local.user,
    globalKnownHosts: local.globalKnownHosts
  })
  const logins = o.ssh !== undefined
    ? givenLogins(o.ssh, ssh2, env)
    : defaultLogins(host, env, ssh2, file.identityFiles.length > 0 ? file.identityFiles : SshConfig.DEFAULT_KEYS)
  // with `ssh`, its known hosts only; else OpenSSH's (the user's two, or UserKnownHostsFile), the system's read when there is one
  // (GlobalKnownHostsFile's, if the file says: `none` for no system file); a default known_hosts2 that is not there is skipped
  const paths = [...userKnownHosts, ...globals]
  const known: Array<KnownHosts.KnownKey> = []
  const unread: Array<string> = []
  for (const path of paths) {
    try {
      known.push(...KnownHosts.parse(Fs.readFileSync(expandHome(path), "utf8")))
    } catch (e) {
      const absentSecond = secondDefaults.includes(path) && (e as { code?: unknown }).code === "ENOENT"
      if (!absentSecond && (o.ssh !== undefined || !globals.includes(path))) unread.push(e instanceof Error ? e.message : String(e))
    }
  }
  if (o.ssh === undefined && file.knownHostsFiles?.length === 0 && known.length === 0) {
    // `UserKnownHostsFile none`: the system's file only, never the broader ~/.ssh/known_hosts
    throw new Error(
      `${host}: UserKnownHostsFile none (${file.knownHostsWhere}) leaves only the system's ${globals.length > 0 ? globals.join(" ") : `none (GlobalKnownHostsFile none, ${file.globalKnownHostsWhere})`}, which holds no key ` +
        "(or cannot be read): nothing to check the engine host's key against: set ssh.knownHostsPath, or name a file in that UserKnownHostsFile"
    )
  }
  if (unread.length === paths.length || (unread.length > 0 && known.length === 0)) {
    throw new Error(
      `cannot read the known hosts ${paths[0]} (${unread.join("; ")}): the engine host's key must be known ` +
        `(\`ssh-keyscan -p ${port} ${hostname} >> ${paths[0]}\`, after checking its fingerprint)`
    )
  }
  let hostRefused: string | undefined
  const { name: keyName, port: keyPort } = KnownHosts.keyedAs(hostname, port, file.hostKeyAlias?.value)
  // plain HTTP over the agent's sessions (the host and port are only the Host header's)
  return {
    protocol: "http",
    host: hostname,
    port,
    agent: sshAgent(ssh2, {
      host: hostname,
      port,
      username,
      authHandler: logins(username),
      // the host-key types known_hosts holds for this host first, as OpenSSH asks
      algorithms: { serverHostKey: KnownHosts.hostKeyAlgorithms(known, keyName, keyPort) },
      hostVerifier: (key: Buffer) => {
        const v = KnownHosts.verify(known, keyName, keyPort, key)
        if (!v.ok) hostRefused = KnownHosts.refusal(v.reason, `${username}@${hostname}:${port}`, paths.join(", "), keyName, keyPort)
        return v.ok
      },
      hostRefusal: () => hostRefused
    })
  } as Docker.DockerOptions
}

/** The name of the group that owns `path` (an engine's socket: `docker`), where /etc/group says. */
const groupOf = (path: string): string | undefined => {
  try {
    const gid = String(Fs.statSync(path).gid)
    return Fs.readFileSync("/etc/group", "utf8").split("\n").map((l) => l.split(":")).find((f) => f[2] === gid)?.[0]
  } catch {
    return undefined
  }
}

/** The user this process runs as, by name where the system knows it. */
const userName = (): string => {
  try {
    return Os.userInfo().username
  } catch {
    return String(process.getuid?.() ?? "this user")
  }
}

/**
 * What to do when `user` (this process's) may not use the engine's local socket (`connect EACCES
 * /var/run/docker.sock`): join the group that owns it, or use an engine of its own; `undefined` for
 * any other error.
 */
export const socketRefusal = (message: string, user = userName()): string | undefined => {
  const path = /\bconnect EACCES (\S+)/.exec(message)?.[1]
  if (path === undefined) return undefined
  const group = groupOf(path) ?? "docker"
  return `this user (${user}) may not use the engine's socket ${path} (its group: ${group}). Add the user to that group ` +
    `(\`sudo usermod -aG ${group} ${user}\`, then log in again: \`docker info\` must answer as this user), or point TREX at an engine ` +
    "it may use (rootless Docker, Podman's user socket) with DOCKER_HOST or backend.docker.host / socketPath"
}
