/**
 * Host-key checking against an OpenSSH `known_hosts` file (plain and hashed `|1|salt|hash`
 * host patterns; `[host]:port` for non-standard ports). An unknown host or a different key is
 * refused: there is no trust-on-first-use.
 */
import { createHmac } from "node:crypto"

export interface KnownKey {
  readonly hosts: string
  readonly type: string
  readonly key: string
}

export const parse = (text: string): Array<KnownKey> =>
  text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#") && !l.startsWith("@revoked"))
    .map((l) => l.replace(/^@cert-authority\s+/, "").split(/\s+/))
    .filter((f) => f.length >= 3)
    .map(([hosts, type, key]) => ({ hosts: hosts!, type: type!, key: key! }))

const matchesPattern = (pattern: string, name: string): boolean => {
  if (pattern.startsWith("|1|")) {
    const [, , salt, hash] = pattern.split("|")
    if (salt === undefined || hash === undefined) return false
    return createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64") === hash
  }
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replaceAll("*", ".*").replaceAll("?", ".")}$`)
  return re.test(name)
}

/** The name a host has in known_hosts: `host`, or `[host]:port` for a port other than 22. */
export const hostName = (host: string, port: number): string => (port === 22 ? host : `[${host}]:${port}`)

/** Whether `offered` (the raw key blob) is a known key of `host:port`, or why not. */
export const verify = (
  known: ReadonlyArray<KnownKey>,
  host: string,
  port: number,
  offered: Buffer
): { readonly ok: true } | { readonly ok: false; readonly reason: "unknown" | "mismatch" } => {
  const name = hostName(host, port)
  const entries = known.filter((k) => {
    const patterns = k.hosts.split(",")
    return patterns.some((p) => !p.startsWith("!") && matchesPattern(p, name)) &&
      !patterns.some((p) => p.startsWith("!") && matchesPattern(p.slice(1), name))
  })
  if (entries.length === 0) return { ok: false, reason: "unknown" }
  const blob = offered.toString("base64")
  return entries.some((k) => k.key === blob) ? { ok: true } : { ok: false, reason: "mismatch" }
}
