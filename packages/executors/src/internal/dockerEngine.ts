/**
 * dockerode options for the engine: a unix socket, `DOCKER_HOST`, or `ssh://user@host[:port]`
 * with key auth and the host key checked against known_hosts (docker-modem alone checks nothing).
 */
import type Docker from "dockerode"
import * as Fs from "node:fs"
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
