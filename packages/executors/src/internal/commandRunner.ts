/**
 * Where a batch scheduler's commands run: on this machine (a login node) through `execFile`, or on
 * a remote login node over SSH (ssh2 exec + SFTP). The Slurm and Grid Engine backends speak only to
 * this interface, so both paths share all of their logic.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Effect, Redacted } from "effect"
import type { Scope } from "effect"
import { Errors } from "@trex/core"
import type { Client, ConnectConfig, SFTPWrapper, Stats } from "ssh2"
import { shellJoin } from "./shell.ts"
import * as Clients from "./clients.ts"

/** The output of one command. */
export interface CommandOutput {
  readonly stdout: string
  readonly stderr: string
  readonly code: number
}

/** Run commands and move files on the machine that talks to the scheduler. */
export interface CommandRunner {
  readonly where: string
  readonly exec: (command: string, args: ReadonlyArray<string>) => Effect.Effect<CommandOutput, Errors.BackendError>
  readonly mkdirp: (dir: string) => Effect.Effect<void, Errors.BackendError>
  readonly writeFile: (file: string, content: string, mode: number) => Effect.Effect<void, Errors.BackendError>
  /**
   * Create `file`, unless it exists (a file already there is never replaced); `false` when it was there. Written under a
   * temporary name, then linked into place: a reader sees all of it or no file. Over SFTP without `hardlink@openssh.com`
   * (a server started with `-P hardlink`), renamed into place where the server is OpenSSH's (it offers
   * `posix-rename@openssh.com`), whose plain rename of a file is link(2) then unlink(2) and never replaces one. Where
   * neither can be done (another SFTP server without the hard link, or that denies it; a file system without hard links),
   * created in place instead: made only if absent (`O_EXCL`), its mode set, its content (at most {@link IN_PLACE_MAX}
   * bytes, or an error) in one write, then synced. A reader may then see it empty for a moment (between the create and the
   * write), never in part; one whose write failed is left empty (never removed by name: by then it may be another's).
   */
  readonly createFile: (file: string, content: string, mode: number) => Effect.Effect<boolean, Errors.BackendError>
  /**
   * Bytes of `file` from `offset` on (at most `max`); `undefined` when the file does not exist (yet),
   * `"truncated"` when it is now shorter than `offset` (rewritten, as by a requeued job).
   */
  readonly readFrom: (file: string, offset: number, max: number) => Effect.Effect<Uint8Array | undefined | "truncated", Errors.BackendError>
  /**
   * Whether `file` exists; a failure other than its absence (a denied search, a lost connection) is an error, not `false`.
   * Over SSH, a path through a file (ENOTDIR) or a symbolic link loop (ELOOP) reads as absent here and in `readFrom`
   * (OpenSSH's sftp-server reports both as NO_SUCH_FILE, which cannot be told from absence); on this machine they are errors.
   */
  readonly exists: (file: string) => Effect.Effect<boolean, Errors.BackendError>
}

/** A temporary name next to `file`, unique to this call. */
const tempNameFor = (file: string) => `${file}.${process.pid}-${Math.random().toString(36).slice(2, 10)}.tmp`

/**
 * The most bytes {@link createInPlace} writes: one SFTP write request (ssh2 splits larger ones, about 34,000 bytes, into
 * several, which a reader could see in part); a cancel marker is about 60.
 */
export const IN_PLACE_MAX = 4096

/** The steps of {@link createInPlace} on one file system, each a promise. */
interface InPlace<H> {
  /** Create `file` with `mode` (exactly, whatever the umask), only if absent (`O_EXCL`): its handle, `undefined` when it was there. */
  readonly open: (file: string, mode: number) => Promise<H | undefined>
  /** Write all of `data` at offset 0, in one request (one `write(2)`), or fail. */
  readonly write: (handle: H, data: Buffer) => Promise<void>
  readonly sync: (handle: H) => Promise<void>
  readonly close: (handle: H) => Promise<void>
}

/**
 * `createFile` where a file cannot be linked into place: created only if absent, its mode set before any byte is in it,
 * the content (at most {@link IN_PLACE_MAX} bytes) in one write (a reader sees no file, an empty one, or all of it: a write
 * of a few bytes is not seen in part), synced, so that a crash of the machine does not leave it empty either. One whose
 * mode or write fails is left as it is (empty): removed by name, it might be another's created since by a cleaner of empty
 * files (as a cancel's, gridengineQuery.ts), and a reader takes an empty one for a writer that stopped.
 */
const createInPlace = async <H>(steps: InPlace<H>, file: string, content: string, mode: number): Promise<boolean> => {
  const data = Buffer.from(content)
  if (data.length > IN_PLACE_MAX) throw new Error(`${data.length} bytes, over the ${IN_PLACE_MAX} written in place (in one request) where the file cannot be linked into place`)
  const handle = await steps.open(file, mode)
  if (handle === undefined) return false
  try {
    await steps.write(handle, data)
    await steps.sync(handle)
  } catch (e) {
    await steps.close(handle).catch(() => undefined)
    throw e
  }
  await steps.close(handle)
  return true
}

/** What `link(2)` says on a file system that makes no hard links (FAT, some FUSE and network file systems). */
const NO_LINKS = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EXDEV"])

const localInPlace: InPlace<fs.FileHandle> = {
  open: async (file, mode) => {
    let handle: fs.FileHandle
    try {
      handle = await fs.open(file, "wx", mode)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") return undefined
      throw e
    }
    try {
      await handle.chmod(mode)
    } catch (e) {
      await handle.close().catch(() => undefined)
      throw e
    }
    return handle
  },
  write: async (handle, data) => {
    const { bytesWritten } = await handle.write(data, 0, data.length, 0)
    if (bytesWritten !== data.length) throw new Error(`wrote ${bytesWritten} of ${data.length} bytes`)
  },
  sync: (handle) => handle.sync(),
  close: (handle) => handle.close()
}

const failFor = (backend: string) => (operation: string, message: string, retryable = true) =>
  new Errors.BackendError({ backend, operation, message, retryable })

// sbatch exports the submitter's environment to the job (--export=ALL), qsub -V would too: hand
// them a login-like environment only, so the controller's own secrets (API keys) never reach a
// job. Grid Engine's clients need SGE_ROOT and SGE_CELL (and the ports, where not in /etc/services).
const KEEP_ENV = /^(PATH|HOME|USER|LOGNAME|SHELL|LANG|LC_[A-Z]+|TZ|TMPDIR|SLURM_CONF|SGE_ROOT|SGE_CELL|SGE_QMASTER_PORT|SGE_EXECD_PORT|SGE_CLUSTER_NAME)$/
const loginEnv = (): NodeJS.ProcessEnv =>
  Object.fromEntries(Object.entries(process.env).filter(([k]) => KEEP_ENV.test(k)))

/** Commands and files on this machine; errors name `backend`. */
export const local = (backend: string): CommandRunner => {
  const fail = failFor(backend)
  return {
    where: "local",
    exec: (command, args) =>
      Effect.callback<CommandOutput, Errors.BackendError>((resume) => {
        execFile(command, [...args], { maxBuffer: 64 * 1024 * 1024, encoding: "utf8", env: loginEnv() }, (error, stdout, stderr) => {
          if (error !== null && typeof error.code !== "number") {
            resume(Effect.fail(fail("exec", `cannot run ${command}: ${error.message}`, error.code !== "ENOENT")))
          } else {
            resume(Effect.succeed({ stdout, stderr, code: error === null ? 0 : Number(error.code) }))
          }
        })
      }),
    mkdirp: (dir) =>
      Effect.tryPromise({ try: () => fs.mkdir(dir, { recursive: true }), catch: (e) => fail("mkdir", `cannot create ${dir}: ${String(e)}`, false) }).pipe(Effect.asVoid),
    writeFile: (file, content, mode) =>
      Effect.tryPromise({
        try: async () => {
          await fs.mkdir(path.dirname(file), { recursive: true })
          await fs.writeFile(file, content, { mode })
          await fs.chmod(file, mode)
        },
        catch: (e) => fail("writeFile", `cannot write ${file}: ${String(e)}`, false)
      }),
    createFile: (file, content, mode) =>
      Effect.tryPromise({
        try: async () => {
          await fs.mkdir(path.dirname(file), { recursive: true })
          const temp = tempNameFor(file)
          try {
            await fs.writeFile(temp, content, { mode })
            await fs.chmod(temp, mode)
            return await fs.link(temp, file).then(
              () => true,
              (e: NodeJS.ErrnoException) =>
                e.code === "EEXIST" ? false : NO_LINKS.has(e.code ?? "") ? createInPlace(localInPlace, file, content, mode) : Promise.reject(e)
            )
          } finally {
            await fs.rm(temp, { force: true })
          }
        },
        catch: (e) => fail("writeFile", `cannot write ${file}: ${String(e)}`, false)
      }),
    readFrom: (file, offset, max) =>
      Effect.tryPromise({
        try: async () => {
          let handle: fs.FileHandle
          try {
            handle = await fs.open(file, "r")
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined
            throw e
          }
          try {
            const { size } = await handle.stat()
            if (size < offset) return "truncated" as const
            if (size === offset) return new Uint8Array(0)
            const buf = Buffer.alloc(Math.min(max, size - offset))
            const { bytesRead } = await handle.read(buf, 0, buf.length, offset)
            return new Uint8Array(buf.subarray(0, bytesRead))
          } finally {
            await handle.close()
          }
        },
        catch: (e) => fail("readFile", `cannot read ${file}: ${String(e)}`)
      }),
    exists: (file) =>
      Effect.tryPromise({
        try: () => fs.stat(file).then(() => true, (e: NodeJS.ErrnoException) => (e.code === "ENOENT" ? false : Promise.reject(e))),
        catch: (e) => fail("stat", `cannot look for ${file}: ${String(e)}`)
      })
  }
}

/** How to reach a remote login node. The private key is a secret. */
export interface SshOptions {
  readonly host: string
  readonly port?: number | undefined
  readonly username: string
  readonly privateKey: Redacted.Redacted<string>
  /** SHA-256 host key fingerprint (base64, as `ssh-keygen -lf` prints it after `SHA256:`); checked when given. */
  readonly hostKeySha256?: string | undefined
  readonly readyTimeoutMs?: number | undefined
}

/** An SFTP status of `NO_SUCH_FILE`. */
const isMissing = (e: unknown) => (e as { code?: unknown }).code === 2

/**
 * An ssh2 call with one callback, as a promise. ssh2 checks its arguments by throwing (as `sftp.read` does with a length of
 * 0); thrown inside one of its callbacks, that would unwind into its packet parser, which reports a client error and
 * closes the connection without calling anything back, so whatever waited would never resume. Here the callback only
 * settles the promise, and each next step runs after an `await`, outside ssh2's stack: a throw there, or in the call
 * itself, rejects.
 */
const promised = <A>(f: (cb: (err: Error | null | undefined, a: A) => void) => void): Promise<A> =>
  new Promise<A>((resolve, reject) => {
    try {
      f((err, a) => (err ? reject(err) : resolve(a)))
    } catch (e) {
      reject(e)
    }
  })

const message = (e: unknown) => (e instanceof Error ? e.message : String(e))

/** The SFTP calls the runner makes, each a {@link promised} call. */
const sftpCalls = (sftp: SFTPWrapper) => ({
  open: (file: string, flags: "r") => promised<Buffer>((cb) => sftp.open(file, flags, cb)),
  fstat: (handle: Buffer) => promised<Stats>((cb) => sftp.fstat(handle, cb)),
  stat: (file: string) => promised<Stats>((cb) => sftp.stat(file, cb)),
  read: (handle: Buffer, buf: Buffer, position: number) => promised<number>((cb) => sftp.read(handle, buf, 0, buf.length, position, (err, bytesRead) => cb(err, bytesRead))),
  close: (handle: Buffer) => promised<void>((cb) => sftp.close(handle, (err) => cb(err, undefined))),
  writeFile: (file: string, content: string, mode: number) => promised<void>((cb) => sftp.writeFile(file, content, { mode }, (err) => cb(err, undefined))),
  chmod: (file: string, mode: number) => promised<void>((cb) => sftp.chmod(file, mode, (err) => cb(err, undefined))),
  link: (target: string, file: string) => promised<void>((cb) => sftp.ext_openssh_hardlink(target, file, (err) => cb(err, undefined))),
  unlink: (file: string) => promised<void>((cb) => sftp.unlink(file, (err) => cb(err, undefined))),
  // SSH_FXP_RENAME, not posix-rename@openssh.com (rename(2), which replaces)
  rename: (from: string, to: string) => promised<void>((cb) => sftp.rename(from, to, (err) => cb(err, undefined))),
  // the extensions the server announced (ssh2 keeps them, unexported, to check its ext_* calls against)
  offers: (extension: string) => Object.hasOwn((sftp as unknown as { _extensions?: object })._extensions ?? {}, extension),
  // SSH_FXF_CREAT | SSH_FXF_EXCL: OpenSSH's sftp-server opens with O_EXCL, and answers FAILURE for a file there
  inPlace: {
    open: async (file, mode) => {
      let handle: Buffer
      try {
        handle = await promised<Buffer>((cb) => sftp.open(file, "wx", { mode }, cb))
      } catch (e) {
        return promised<Stats>((cb) => sftp.stat(file, cb)).then(() => undefined, () => Promise.reject(e))
      }
      try {
        await promised<void>((cb) => sftp.fchmod(handle, mode, (err) => cb(err, undefined)))
      } catch (e) {
        await promised<void>((cb) => sftp.close(handle, (err) => cb(err, undefined))).catch(() => undefined)
        throw e
      }
      return handle
    },
    // a few bytes are one SSH_FXP_WRITE, which sftp-server makes one write(2)
    write: (handle, data) => promised<number>((cb) => sftp.write(handle, data, 0, data.length, 0, (err) => cb(err, data.length))).then(() => undefined),
    // fsync@openssh.com where the server offers and allows it (ssh2 throws when it is not offered; a server started with
    // `-P fsync` answers PERMISSION_DENIED): without it, the written bytes are the server's to keep
    sync: (handle) =>
      promised<void>((cb) => sftp.ext_openssh_fsync(handle, (err) => cb(err, undefined))).catch((e: unknown) =>
        /does not support/.test(message(e)) || (e as { code?: unknown }).code === 3 ? undefined : Promise.reject(e)
      ),
    close: (handle) => promised<void>((cb) => sftp.close(handle, (err) => cb(err, undefined)))
  } satisfies InPlace<Buffer>
})

/** Commands over one SSH connection (exec) and files over SFTP; the connection closes with the scope. Errors name `backend`. */
export const ssh = (options: SshOptions, backend: string): Effect.Effect<CommandRunner, Errors.BackendError, Scope.Scope> =>
  Effect.gen(function*() {
    const fail = failFor(backend)
    const ssh2 = yield* Effect.promise(Clients.ssh2)
    const client = yield* Effect.acquireRelease(
      Effect.callback<Client, Errors.BackendError>((resume) => {
        const c = new ssh2.Client()
        const config: ConnectConfig = {
          host: options.host,
          port: options.port ?? 22,
          username: options.username,
          privateKey: Redacted.value(options.privateKey),
          readyTimeout: options.readyTimeoutMs ?? 20_000,
          keepaliveInterval: 15_000
        }
        if (options.hostKeySha256 !== undefined) {
          const expected = options.hostKeySha256.replace(/^SHA256:/, "").replace(/=+$/, "")
          config.hostHash = "sha256"
          config.hostVerifier = (hash: string) => Buffer.from(hash, "hex").toString("base64").replace(/=+$/, "") === expected
        }
        c.once("ready", () => resume(Effect.succeed(c)))
        c.once("error", (e) => resume(Effect.fail(fail("connect", `ssh ${options.username}@${options.host}: ${e.message}`))))
        c.connect(config)
      }),
      (c) => Effect.sync(() => c.end())
    )
    const sftp = sftpCalls(yield* Effect.tryPromise({ try: () => promised<SFTPWrapper>((cb) => client.sftp(cb)), catch: (e) => fail("sftp", `cannot open an SFTP session on ${options.username}@${options.host}: ${message(e)}`) }))
    const call = <A>(operation: string, what: string, f: () => Promise<A>) => Effect.tryPromise({ try: f, catch: (e) => fail(operation, `${what}: ${message(e)}`) })
    const runner: CommandRunner = {
      where: `${options.username}@${options.host}`,
      exec: (command, args) =>
        Effect.callback<CommandOutput, Errors.BackendError>((resume) => {
          client.exec(shellJoin([command, ...args]), (err, channel) => {
            if (err) return resume(Effect.fail(fail("exec", `ssh exec ${command}: ${err.message}`)))
            const out: Array<Buffer> = []
            const errOut: Array<Buffer> = []
            let code = -1
            channel.on("data", (d: Buffer) => out.push(d))
            channel.stderr.on("data", (d: Buffer) => errOut.push(d))
            channel.on("exit", (c: number | null) => (code = c ?? -1))
            channel.on("close", () =>
              resume(Effect.succeed({ stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(errOut).toString("utf8"), code }))
            )
          })
        }),
      mkdirp: (dir) =>
        runner.exec("mkdir", ["-p", "--", dir]).pipe(
          Effect.flatMap((o) => (o.code === 0 ? Effect.void : Effect.fail(fail("mkdir", `cannot create ${dir}: ${o.stderr.trim()}`, false))))
        ),
      writeFile: (file, content, mode) =>
        runner.mkdirp(path.posix.dirname(file)).pipe(
          Effect.andThen(call("writeFile", `cannot write ${file}`, () => sftp.writeFile(file, content, mode))),
          Effect.andThen(call("chmod", `cannot chmod ${file}`, () => sftp.chmod(file, mode)))
        ),
      // OpenSSH's hardlink@openssh.com: link(2), which never replaces a file; its failure says no more than "failure" (or
      // "permission denied": link(2)'s EPERM, a file system without links): with no file there, created in place. Not
      // offered (ssh2 throws "does not support": OpenSSH started with `-P hardlink`), renamed into place where the server
      // is OpenSSH's (it offers posix-rename@openssh.com): its SSH_FXP_RENAME of a regular file is link(2) then
      // unlink(2), never a replace, and `-P hardlink` does not refuse it (only where link(2) fails, a file system without
      // links, does it rename(2) when no file is there, racily: not tried then, as hardlink@openssh.com failed the same
      // way). Another server's rename may be rename(2), which replaces: not tried
      createFile: (file, content, mode) =>
        Effect.gen(function*() {
          yield* runner.mkdirp(path.posix.dirname(file))
          const temp = tempNameFor(file)
          return yield* Effect.gen(function*() {
            yield* call("writeFile", `cannot write ${file}`, () => sftp.writeFile(temp, content, mode))
            yield* call("chmod", `cannot chmod ${file}`, () => sftp.chmod(temp, mode))
            const there = () => sftp.stat(file).then(() => true, () => false)
            return yield* call("link", `cannot write ${file}`, async () => {
              const linked = await sftp.link(temp, file).then(() => undefined, (e: unknown) => e)
              if (linked === undefined) return true
              if (await there()) return false
              if (/does not support/.test(message(linked)) && sftp.offers("posix-rename@openssh.com")) {
                if (await sftp.rename(temp, file).then(() => true, () => false)) return true
                if (await there()) return false
              }
              return createInPlace(sftp.inPlace, file, content, mode)
            })
          }).pipe(Effect.ensuring(Effect.promise(() => sftp.unlink(temp).catch(() => undefined))))
        }),
      readFrom: (file, offset, max) =>
        Effect.tryPromise({
          try: async (): Promise<Uint8Array | undefined | "truncated"> => {
            let handle: Buffer
            try {
              handle = await sftp.open(file, "r")
            } catch (e) {
              if (isMissing(e)) return undefined
              throw e
            }
            try {
              const { size } = await sftp.fstat(handle)
              if (size < offset) return "truncated"
              // nothing to read (the file ends at `offset`, or `max` is 0): ssh2 refuses a read of 0 bytes
              const length = Math.min(max, size - offset)
              if (length <= 0) return new Uint8Array(0)
              const buf = Buffer.alloc(length)
              const bytesRead = await sftp.read(handle, buf, offset)
              return new Uint8Array(buf.subarray(0, bytesRead))
            } finally {
              await sftp.close(handle).catch(() => undefined)
            }
          },
          catch: (e) => fail("readFile", `${file}: ${message(e)}`)
        }),
      exists: (file) =>
        Effect.tryPromise({
          try: () => sftp.stat(file).then(() => true, (e: unknown) => (isMissing(e) ? false : Promise.reject(e))),
          catch: (e) => fail("stat", `cannot look for ${file}: ${message(e)}`)
        })
    }
    return runner
  })
