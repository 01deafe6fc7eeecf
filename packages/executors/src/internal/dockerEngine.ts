/**
 * dockerode options for the engine: a unix socket, `DOCKER_HOST`, or `ssh://user@host[:port]`
 * with key auth and the host key checked against known_hosts (docker-modem alone checks nothing),
 * over one SSH connection per engine (docker-modem alone logs in once a request).
 */
import type Docker from "dockerode"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Os from "node:os"
import type * as Ssh2 from "ssh2"
import { expandHome } from "./sshConnection.ts"
import * as KnownHosts from "./sshKnownHosts.ts"

export interface SshAccess {
  readonly privateKeyPath: string
  readonly knownHostsPath: string
}

/**
 * An `http.Agent` over SSH for an `ssh://` engine: its connections are `docker system dial-stdio` sessions on one SSH
 * connection, made at the first request and again once it dropped, and kept for the next request (HTTP keep-alive)
 * rather than one a request. docker-modem's own `ssh://` transport logs in for every request, and each session runs the
 * login user's shell, rc files and all: 2.2-2.9 s a request here for root (whose .bashrc runs `pyenv init`), 0.4-0.6 s
 * for a user without; a job's submit, watch and exit are about ten requests. The SSH connection holds the process open
 * only while a request is under way.
 */
export interface SshAgent extends Http.Agent {
  /** How many SSH logins, and how many sessions, this agent has made. */
  readonly made: () => { readonly logins: number; readonly sessions: number }
}

/** Where the SSH connection's socket is wanted (a request under way): counted, the socket ref'd while any is. */
interface Holds {
  hold: (on: boolean) => void
}

/** An SSH channel as the socket `http.Agent` keeps between requests (ref/unref, timeouts, keep-alive). */
const asSocket = (stream: Ssh2.ClientChannel, holds: Holds): Net.Socket => {
  let held = true
  holds.hold(true)
  let timer: NodeJS.Timeout | undefined
  const socket = Object.assign(stream, {
    timeout: 0,
    setKeepAlive: () => socket,
    setNoDelay: () => socket,
    setTimeout: (ms: number, callback?: () => void) => {
      clearTimeout(timer)
      socket.timeout = ms
      if (callback !== undefined) socket.once("timeout", callback)
      if (ms > 0) timer = setTimeout(() => socket.emit("timeout"), ms).unref()
      return socket
    },
    ref: () => {
      if (!held) holds.hold(held = true)
      return socket
    },
    unref: () => {
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

export const sshAgent = (ssh2: typeof Ssh2, connect: Ssh2.ConnectConfig & { readonly host: string; readonly port: number }): SshAgent => {
  // a few idle sessions kept: each is a `docker system dial-stdio` on the engine's host
  const agent = new Http.Agent({ keepAlive: true, maxFreeSockets: 4 }) as Http.Agent & { made: SshAgent["made"] }
  let current: Promise<Ssh2.Client> | undefined
  let logins = 0
  let sessions = 0
  let socket: Net.Socket | undefined
  let holding = 0
  const holds: Holds = {
    hold: (on) => {
      holding += on ? 1 : -1
      if (holding === 0) socket?.unref()
      else if (on && holding === 1) socket?.ref()
    }
  }
  const login = (): Promise<Ssh2.Client> => {
    logins++
    const sock = Net.connect(connect.port, connect.host)
    socket = sock
    const client = new ssh2.Client()
    const made: Promise<Ssh2.Client> = new Promise((resolve, reject) => {
      client.once("ready", () => resolve(client))
      client.on("error", (e) => {
        if (current === made) current = undefined
        reject(e)
      })
      client.once("close", () => {
        if (current === made) current = undefined
        reject(new Error(`the SSH connection to ${connect.host}:${connect.port} closed`))
      })
    })
    client.connect({ ...connect, sock })
    return made
  }
  const session = (retry: boolean, callback: (err: Error | null, stream?: Net.Socket) => void) => {
    const made = current ??= login()
    made.then(
      (client) =>
        client.exec("docker system dial-stdio", (err, stream) => {
          if (err !== undefined && err !== null) {
            // a connection that dropped unnoticed: once more, on a new one
            if (current === made) current = undefined
            client.end()
            return retry ? session(false, callback) : callback(err)
          }
          sessions++
          // the connection gone, its sessions are too (ssh2 does not end them): none is kept for another request
          const drop = () => stream.destroy()
          client.once("close", drop)
          stream.once("close", () => client.removeListener("close", drop))
          callback(null, asSocket(stream, holds))
        }),
      (e: Error) => callback(e)
    )
  }
  agent.createConnection = ((_: unknown, callback: (err: Error | null, stream?: Net.Socket) => void) => {
    session(true, callback)
    return undefined
  }) as unknown as Http.Agent["createConnection"]
  agent.made = () => ({ logins, sessions })
  const destroy = agent.destroy.bind(agent)
  agent.destroy = () => {
    destroy()
    void current?.then((client) => client.end(), () => undefined)
    current = undefined
  }
  return agent
}

export const engineOptions = (o: {
  readonly socketPath?: string | undefined
  readonly host?: string | undefined
  readonly ssh?: SshAccess | undefined
}, ssh2?: typeof Ssh2): Docker.DockerOptions | undefined => {
  if (o.socketPath !== undefined) return { socketPath: o.socketPath }
  if (o.host === undefined) return undefined // dockerode reads DOCKER_HOST, else /var/run/docker.sock
  const url = new URL(o.host)
  if (url.protocol === "unix:") return { socketPath: url.pathname }
  if (url.protocol !== "ssh:") return { protocol: url.protocol === "https:" ? "https" : "http", host: url.hostname, port: url.port || 2375 }
  if (o.ssh === undefined) throw new Error(`${o.host}: an ssh:// engine needs ssh.privateKeyPath and ssh.knownHostsPath`)
  if (ssh2 === undefined) throw new Error(`${o.host}: an ssh:// engine needs ssh2 loaded`)
  const port = Number(url.port || 22)
  const known = KnownHosts.parse(Fs.readFileSync(expandHome(o.ssh.knownHostsPath), "utf8"))
  // plain HTTP over the agent's sessions (the host and port are only the Host header's)
  return {
    protocol: "http",
    host: url.hostname,
    port,
    agent: sshAgent(ssh2, {
      host: url.hostname,
      port,
      username: decodeURIComponent(url.username) || "root",
      privateKey: Fs.readFileSync(expandHome(o.ssh.privateKeyPath)),
      hostVerifier: (key: Buffer) => KnownHosts.verify(known, url.hostname, port, key).ok
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
