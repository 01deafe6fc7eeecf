/**
 * Host-key checking against OpenSSH `known_hosts` files (plain and hashed `|1|salt|hash` host patterns; `[host]:port`
 * for non-standard ports; host names matched in lower case, as OpenSSH does). An unknown host or a different key is
 * refused: there is no trust-on-first-use. A key on a `@revoked` line is refused whatever other lines say (for any
 * host: a revoked key is not trusted anywhere); `@cert-authority` lines name a CA, not a host key, and host
 * certificates are not checked here, so they are left out of the matching.
 */
import { createHmac } from "node:crypto"
import type * as Ssh2 from "ssh2"
import { globMatches, hostMatches } from "./sshConfig.ts"

export interface KnownKey {
  readonly hosts: string
  readonly type: string
  readonly key: string
  /** The line's marker: a revoked key (refused), or a CA's key (not a host key). */
  readonly marker?: "revoked" | "cert-authority" | undefined
}

export const parse = (text: string): Array<KnownKey> =>
  text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .flatMap((l): Array<KnownKey> => {
      const fields = l.split(/\s+/)
      const marker = fields[0] === "@revoked" ? "revoked" as const : fields[0] === "@cert-authority" ? "cert-authority" as const : undefined
      // an unknown marker: OpenSSH skips the line
      if (marker === undefined && fields[0]!.startsWith("@")) return []
      const [hosts, type, key] = marker === undefined ? fields : fields.slice(1)
      return hosts === undefined || type === undefined || key === undefined ? [] : [{ hosts, type, key, marker }]
    })

/**
 * Whether a line's host field takes `name`, as OpenSSH's `match_maybe_hashed`: a field starting `|1|` is one hashed name
 * (`|1|salt|hash`), compared whole (a hash is never part of a list: `|1|...,decoy` takes no name); any other is a
 * comma-separated list of glob patterns (where a `|1|...` part is a pattern, which takes no name either).
 */
const hostsTake = (hosts: string, name: string): boolean => {
  if (hosts.startsWith("|1|")) {
    const [, , salt, hash, ...more] = hosts.split("|")
    if (salt === undefined || hash === undefined || more.length > 0) return false
    return createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64") === hash
  }
  return hostMatches(hosts.split(","), name, (pattern, n) => globMatches(pattern.toLowerCase(), n))
}

/**
 * The name a host has in known_hosts: `host`, or `[host]:port` for a port other than 22; in lower case, without the
 * brackets of a URL's IPv6 address (`[::1]` is `::1`, `[::1]:2222` on port 2222).
 */
export const hostName = (host: string, port: number): string => {
  const bare = host.replace(/^\[(.*)\]$/, "$1").toLowerCase()
  return port === 22 ? bare : `[${bare}]:${port}`
}

/** The host-key lines (neither revoked nor a CA's) whose host patterns take `host:port`. */
const entriesFor = (known: ReadonlyArray<KnownKey>, host: string, port: number): Array<KnownKey> => {
  const name = hostName(host, port)
  return known.filter((k) => k.marker === undefined && hostsTake(k.hosts, name))
}

/** The signature algorithms of each key type (an RSA key signs with SHA-2 first, as OpenSSH asks). */
const ALGORITHMS: Readonly<Record<string, ReadonlyArray<string>>> = {
  "ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
}

/** ssh2's host-key algorithms, in its order (ssh2 1.x), asked for after those known_hosts holds for the host. */
const HOST_KEY_ALGORITHMS = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]

/**
 * The host-key algorithms to ask `host:port` for (ssh2's `algorithms.serverHostKey`), as OpenSSH orders them: those of
 * the key types known_hosts holds for it first, then the rest of ssh2's (which asks for ssh-ed25519 first, and a host
 * known only by its ECDSA or RSA key would otherwise offer a key nobody knows). Used by the SSH backend's connections
 * and the Docker backend's `ssh://` engines.
 */
export const hostKeyAlgorithms = (known: ReadonlyArray<KnownKey>, host: string, port: number): Array<Ssh2.ServerHostKeyAlgorithm> => {
  const first = [...new Set(entriesFor(known, host, port).flatMap((k) => ALGORITHMS[k.type] ?? [k.type]))].filter((a) => HOST_KEY_ALGORITHMS.includes(a))
  return [...first, ...HOST_KEY_ALGORITHMS.filter((a) => !first.includes(a))] as Array<Ssh2.ServerHostKeyAlgorithm>
}

/**
 * The name and port a host's key is looked up under in known_hosts: its `HostKeyAlias` alone (no `[ ]:port`), as
 * OpenSSH looks it up, else the host and its port.
 */
export const keyedAs = (host: string, port: number, alias: string | undefined): { readonly name: string; readonly port: number } =>
  alias !== undefined ? { name: alias, port: 22 } : { name: host, port }

/** Whether `offered` (the raw key blob) is a known key of `host:port`, or why not. */
export const verify = (
  known: ReadonlyArray<KnownKey>,
  host: string,
  port: number,
  offered: Buffer
): { readonly ok: true } | { readonly ok: false; readonly reason: "unknown" | "mismatch" | "revoked" } => {
  const blob = offered.toString("base64")
  if (known.some((k) => k.marker === "revoked" && k.key === blob)) return { ok: false, reason: "revoked" }
  const entries = entriesFor(known, host, port)
  if (entries.length === 0) return { ok: false, reason: "unknown" }
  return entries.some((k) => k.key === blob) ? { ok: true } : { ok: false, reason: "mismatch" }
}

/**
 * Why `host:port`'s key was refused, in words, with the fix: `where` names the connection, `paths` the known hosts read;
 * `through`, the jump host it is reached through (as `ssh` takes it), for a host this machine cannot scan itself.
 * Used by the SSH backend's connections and the Docker backend's `ssh://` engines.
 */
export const refusal = (reason: "unknown" | "mismatch" | "revoked", where: string, paths: string, host: string, port: number, through?: string): string =>
  reason === "unknown"
    ? `${where}: host key not in ${paths} (add it with ${through === undefined ? "" : `ssh ${through} `}ssh-keyscan -p ${port} ${host}` +
      `${through === undefined ? "" : ", run on the jump host, since this machine reaches the host only through it"}, after checking its fingerprint)`
    : reason === "revoked"
    ? `${where}: the host key offered is marked @revoked in ${paths}; refusing to connect`
    : `${where}: HOST KEY MISMATCH: the key offered is not the one in ${paths} (possible man-in-the-middle, or the host was reinstalled); refusing to connect`
