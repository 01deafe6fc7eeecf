/**
 * A lazily (re)connected ssh2 client for one host, with promise wrappers for the few operations
 * the SSH backend needs: exec, and SFTP write / ranged read / stat / readdir.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import type { Client, SFTPWrapper } from "ssh2"
import * as KnownHosts from "./sshKnownHosts.ts"
import * as Clients from "./clients.ts"

export interface HostConfig {
  readonly host: string
  readonly port?: number
  readonly username: string
  readonly privateKeyPath: string
  readonly knownHostsPath: string
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
export const expandHome = (path: string): string => (path === "~" || path.startsWith("~/") ? Os.homedir() + path.slice(1) : path)

/** Why a file could not be read, in words (no such file, not readable, a directory), else Node's message. */
const unreadable = (e: unknown): string => {
  const code = (e as { code?: unknown }).code
  return code === "ENOENT" ? "no such file" : code === "EACCES" ? "not readable by this user" : code === "EISDIR" ? "a directory, not a file" : e instanceof Error ? e.message : String(e)
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
}

/**
 * A host's settings checked: its `privateKeyPath` read (the key is kept for its connections), its `knownHostsPath`
 * readable (read again at each connection: a key added meanwhile counts). Either failing gives a message naming the
 * host, the field and the fix.
 */
export const prepare = (config: HostConfig): { readonly ok: PreparedHost } | { readonly refusal: string } => {
  const who = `${config.username}@${config.host}`
  let privateKey: Buffer
  try {
    privateKey = readKey("privateKeyPath", config.privateKeyPath, `~${config.username}/.ssh/authorized_keys on ${config.host}`)
  } catch (e) {
    return { refusal: `${who}: ${(e as Error).message}` }
  }
  try {
    Fs.readFileSync(expandHome(config.knownHostsPath), "utf8")
  } catch (e) {
    const port = config.port ?? 22
    return {
      refusal: `${who}: knownHostsPath ${config.knownHostsPath}: ${unreadable(e)}: give a known_hosts file this user can read that holds the host's key ` +
        `(\`ssh-keyscan -p ${port} ${config.host} >> ${config.knownHostsPath}\`, after checking its fingerprint)`
    }
  }
  return { ok: { ...config, privateKey } }
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

export class Connection {
  private client: Promise<{ readonly client: Client; readonly sftp: SFTPWrapper }> | undefined
  readonly label: string
  private readonly config: PreparedHost
  constructor(config: PreparedHost) {
    this.config = config
    this.label = `${config.username}@${config.host}:${config.port ?? 22}`
  }

  private async connect(): Promise<{ readonly client: Client; readonly sftp: SFTPWrapper }> {
    const { host, username } = this.config
    const port = this.config.port ?? 22
    const ssh2 = await Clients.ssh2()
    return new Promise((resolve, reject) => {
      const { privateKey } = this.config
      let known: Array<KnownHosts.KnownKey>
      try {
        known = KnownHosts.parse(Fs.readFileSync(expandHome(this.config.knownHostsPath), "utf8"))
      } catch (e) {
        return reject(new SshFailure(`${this.label}: cannot read known_hosts ${this.config.knownHostsPath}: ${unreadable(e)}`, false))
      }
      let refused: string | undefined
      const client = new ssh2.Client()
      client.once("ready", () => {
        client.sftp((err, sftp) => (err ? reject(new SshFailure(`${this.label}: SFTP: ${err.message}`, true)) : resolve({ client, sftp })))
      })
      client.once("error", (err: Error & { code?: string; level?: string }) => {
        this.client = undefined
        if (refused !== undefined) return reject(new SshFailure(refused, false))
        if (err.level === "client-authentication") {
          // It used to work (or never did): a key taken out of authorized_keys, or the wrong key. Waiting does not
          // fix it, so it is not retried now; the host is left unused (as one that is down) until it accepts the key.
          const { privateKeyPath: key } = this.config
          return reject(new SshFailure(
            `${this.label}: the key ${key} was not accepted for user ${username} (${err.message}): add its public key (${key}.pub) ` +
              `to ~${username}/.ssh/authorized_keys on ${host}, or set privateKeyPath to a key that is there`,
            false,
            true,
            true
          ))
        }
        const retryable = (err.code !== undefined && CONNECTION_CODES.has(err.code)) || /timed out|keepalive/i.test(err.message)
        reject(new SshFailure(`${this.label}: ${err.message}`, retryable, retryable))
      })
      client.on("close", () => {
        this.client = undefined
      })
      client.connect({
        host,
        port,
        username,
        privateKey,
        readyTimeout: 15_000,
        keepaliveInterval: 10_000,
        keepaliveCountMax: 3,
        // the host-key types known_hosts holds for this host first, as OpenSSH asks
        algorithms: { serverHostKey: KnownHosts.hostKeyAlgorithms(known, host, port) },
        hostVerifier: (key: Buffer) => {
          const v = KnownHosts.verify(known, host, port, key)
          if (v.ok) return true
          refused = KnownHosts.refusal(v.reason, this.label, this.config.knownHostsPath, host, port)
          return false
        }
      })
    })
  }

  private get(): Promise<{ readonly client: Client; readonly sftp: SFTPWrapper }> {
    if (this.client === undefined) {
      const attempt = this.connect()
      this.client = attempt
      attempt.catch(() => {
        if (this.client === attempt) this.client = undefined
      })
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
