/**
 * dockerode options for the engine: a unix socket, `DOCKER_HOST`, or `ssh://user@host[:port]`
 * with key auth and the host key checked against known_hosts (docker-modem alone checks nothing).
 */
import type Docker from "dockerode"
import * as Fs from "node:fs"
import * as Os from "node:os"
import { expandHome } from "./sshConnection.ts"
import * as KnownHosts from "./sshKnownHosts.ts"

export interface SshAccess {
  readonly privateKeyPath: string
  readonly knownHostsPath: string
}

export const engineOptions = (o: {
  readonly socketPath?: string | undefined
  readonly host?: string | undefined
  readonly ssh?: SshAccess | undefined
}): Docker.DockerOptions | undefined => {
  if (o.socketPath !== undefined) return { socketPath: o.socketPath }
  if (o.host === undefined) return undefined // dockerode reads DOCKER_HOST, else /var/run/docker.sock
  const url = new URL(o.host)
  if (url.protocol === "unix:") return { socketPath: url.pathname }
  if (url.protocol !== "ssh:") return { protocol: url.protocol === "https:" ? "https" : "http", host: url.hostname, port: url.port || 2375 }
  if (o.ssh === undefined) throw new Error(`${o.host}: an ssh:// engine needs ssh.privateKeyPath and ssh.knownHostsPath`)
  const port = Number(url.port || 22)
  const known = KnownHosts.parse(Fs.readFileSync(expandHome(o.ssh.knownHostsPath), "utf8"))
  return {
    protocol: "ssh",
    host: url.hostname,
    port,
    username: decodeURIComponent(url.username) || "root",
    sshOptions: {
      privateKey: Fs.readFileSync(expandHome(o.ssh.privateKeyPath)),
      hostVerifier: (key: Buffer) => KnownHosts.verify(known, url.hostname, port, key).ok
    }
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
