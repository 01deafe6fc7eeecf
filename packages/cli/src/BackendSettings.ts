/**
 * The `backend:` section of a task file for each engine, decoded with errors that name the
 * field. Secrets are never written in a task file: SSH keys are paths, tokens are environment
 * variable names.
 *
 * @since 0.1.0
 */
import * as os from "node:os"
import * as path from "node:path"
import { Backend, Errors, TaskFile } from "@trex/core"
import type { DockerBackend, SshBackend } from "@trex/executors"
import { Duration, Effect, Option, Schema } from "effect"

const Str = Schema.String
const opt = Schema.optionalKey
const PosInt = Schema.Int.check(Schema.isGreaterThan(0))
const home = (p: string) => p.replace(/^~(?=\/|$)/, os.homedir())

/** `backend.docker`. @since 0.1.0 @category schemas */
export const Docker = Schema.Struct({
  image: opt(Str),
  socketPath: opt(Str),
  host: opt(Str),
  ssh: opt(Schema.Struct({ privateKeyPath: Str, knownHostsPath: Str, passphraseEnv: opt(Str) })),
  network: opt(Str),
  keep: opt(Schema.Boolean),
  gpus: opt(Schema.Array(Str)),
  slots: opt(PosInt),
  init: opt(Schema.Boolean),
  mounts: opt(Schema.Array(Schema.Struct({ source: Str, target: Str, readOnly: opt(Schema.Boolean) }))),
  shmSizeMb: opt(PosInt),
  stopGraceSeconds: opt(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)))
})

/** A duration as Effect reads one (`500 millis`, `2 seconds`): checked here, else the first poll of a trial would fail. */
const DurationString = Str.check(Schema.makeFilter((s: string) =>
  Option.isSome(Duration.fromInput(s as Duration.Input))
    ? undefined
    : `expected a duration such as "500 millis" or "2 seconds" (a number, a space, then nanos, micros, millis, seconds, minutes, hours, days or weeks), got ${JSON.stringify(s)}`
))

/** `backend.ssh`. @since 0.1.0 @category schemas */
export const Ssh = Schema.Struct({
  remoteRoot: Str,
  pollInterval: opt(DurationString),
  killGraceSeconds: opt(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))),
  hostRetryAfter: opt(DurationString),
  hostLostAfter: opt(DurationString),
  hosts: Schema.Array(Schema.Struct({
    name: opt(Str),
    host: Str,
    port: opt(PosInt),
    // each may come from ~/.ssh/config's Host block for `host` (User, IdentityFile, UserKnownHostsFile)
    username: opt(Str),
    privateKeyPath: opt(Str),
    knownHostsPath: opt(Str),
    // the name of an environment variable holding the key's passphrase (never the passphrase itself)
    passphraseEnv: opt(Str),
    gpus: opt(Schema.Array(Str)),
    slots: opt(PosInt)
  })).check(Schema.isMinLength(1))
})

/** A task's `backend.<name>` section (an empty object when absent). @since 0.1.0 @category decoding */
export const section = (backend: unknown, name: string): unknown =>
  backend !== null && typeof backend === "object" ? (backend as Record<string, unknown>)[name] ?? {} : {}

const decode = <S extends Schema.Constraint>(schema: S, input: unknown, name: string) =>
  Schema.decodeUnknownEffect(schema)(input, { errors: "all", onExcessProperty: "error" }).pipe(
    Effect.mapError((e) => new Errors.InvalidInput({ source: `backend.${name}`, message: `invalid backend.${name} in the task file:\n${TaskFile.formatIssues(e, schema.ast).replace(/^ {2}/gm, `  backend.${name}.`)}` }))
  ) as Effect.Effect<S["Type"], Errors.InvalidInput>

/**
 * The Docker backend's config: the task's `backend.docker` plus the run's jobs directory.
 * @since 0.1.0 @category decoding
 */
export const docker = (backend: unknown, root: string): Effect.Effect<DockerBackend.Config, Errors.InvalidInput> =>
  Effect.map(decode(Docker, section(backend, "docker"), "docker"), (d) => ({
    ...d,
    root,
    ...(d.ssh !== undefined ? { ssh: { ...d.ssh, privateKeyPath: home(d.ssh.privateKeyPath), knownHostsPath: home(d.ssh.knownHostsPath) } } : {}),
    ...(d.mounts !== undefined ? { mounts: d.mounts.map((m) => ({ ...m, source: path.resolve(home(m.source)) })) } : {})
  }))

/**
 * The SSH backend's config from the task's `backend.ssh`.
 * @since 0.1.0 @category decoding
 */
export const ssh = (backend: unknown): Effect.Effect<SshBackend.Config, Errors.InvalidInput> =>
  Effect.map(decode(Ssh, section(backend, "ssh"), "ssh"), (s) => ({
    remoteRoot: s.remoteRoot,
    ...(s.pollInterval !== undefined ? { pollInterval: s.pollInterval as SshBackend.Config["pollInterval"] & string } : {}),
    ...(s.killGraceSeconds !== undefined ? { killGraceSeconds: s.killGraceSeconds } : {}),
    ...(s.hostRetryAfter !== undefined ? { hostRetryAfter: s.hostRetryAfter as Duration.Input & string } : {}),
    ...(s.hostLostAfter !== undefined ? { hostLostAfter: s.hostLostAfter as Duration.Input & string } : {}),
    hosts: s.hosts.map((h) => ({
      ...h,
      ...(h.privateKeyPath !== undefined ? { privateKeyPath: home(h.privateKeyPath) } : {}),
      ...(h.knownHostsPath !== undefined ? { knownHostsPath: home(h.knownHostsPath) } : {})
    }))
  }))

/**
 * The prices of the task's `backend.pricing`, if it has that section (`Backend.Pricing` of `@trex/core`).
 * @since 0.1.0 @category decoding
 */
export const pricing = (backend: unknown): Effect.Effect<Backend.Pricing | undefined, Errors.InvalidInput> => {
  const raw = backend !== null && typeof backend === "object" ? (backend as Record<string, unknown>)["pricing"] : undefined
  return raw === undefined ? Effect.undefined : decode(Backend.Pricing, raw, "pricing")
}
