// The pretrained base model (2-digit addition), trained once and shared by all trials through $TREX_CACHE_DIR.
//
// The file name carries a hash of the pretraining config, so a changed config never reads a stale model. Writers
// take an exclusive lock file (open "wx") holding their pid; the others poll until the model appears. A lock whose
// pid is gone (a killed trial) or that is older than LOCK_STALE_MS is removed and the race is run again.
import { createHash } from "node:crypto"
import { mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, closeSync, writeSync } from "node:fs"
import { join } from "node:path"
import { heldOut, trainingProblems, VOCAB } from "./data.ts"
import { HIDDEN, INPUTS, initBase, WINDOW, type BaseWeights } from "./model.ts"
import { makeRng } from "./rng.ts"
import { exactMatch, train, type TrainConfig } from "./train-loop.ts"

/** Bump when the model or data code changes in a way that invalidates cached base models. */
const MODEL_VERSION = 1
export const DEFAULT_PRETRAIN_EPOCHS = 10
const LOCK_STALE_MS = 5 * 60_000
const POLL_MS = 100

export interface PretrainConfig {
  readonly version: number
  readonly vocab: string
  readonly window: number
  readonly hidden: number
  readonly numExamples: number
  readonly epochs: number
  readonly learningRate: number
  readonly batchSize: number
  readonly seed: number
}

export function pretrainConfig(epochs: number = DEFAULT_PRETRAIN_EPOCHS): PretrainConfig {
  return { version: MODEL_VERSION, vocab: VOCAB, window: WINDOW, hidden: HIDDEN, numExamples: 8000, epochs, learningRate: 0.01, batchSize: 32, seed: 1234 }
}

export function cacheKey(cfg: PretrainConfig): string {
  return createHash("sha256").update(JSON.stringify(cfg)).digest("hex").slice(0, 16)
}

/** Pretrain from scratch on 2-digit addition in the reversed format (the only base that transfers; see the notes). */
export function pretrain(cfg: PretrainConfig): BaseWeights {
  const rng = makeRng(cfg.seed)
  const base = initBase(rng)
  const model = { base, lora: undefined, mode: "full" as const }
  const tc: TrainConfig = { format: "reversed", learningRate: cfg.learningRate, schedule: "cosine", warmupRatio: 0, epochs: cfg.epochs, batchSize: cfg.batchSize }
  if (cfg.epochs > 0) train(model, trainingProblems(cfg.numExamples, { add2: 1 }, rng), tc, rng)
  return base
}

const TENSORS = ["W1", "b1", "W2", "b2"] as const
const sizes = (): number[] => [INPUTS * HIDDEN, HIDDEN, HIDDEN * VOCAB.length, VOCAB.length]

export function serialize(b: BaseWeights): Buffer {
  const parts = TENSORS.map((t) => Buffer.from(b[t].buffer, b[t].byteOffset, b[t].byteLength))
  return Buffer.concat(parts)
}

export function deserialize(buf: Buffer): BaseWeights {
  const s = sizes()
  const total = s.reduce((a, b) => a + b, 0)
  if (buf.byteLength !== total * 4) throw new Error(`cached base model has ${buf.byteLength} bytes, expected ${total * 4}`)
  // Copy into fresh aligned arrays (a Buffer's offset into its pool need not be 4-aligned).
  const all = new Float32Array(total)
  new Uint8Array(all.buffer).set(buf)
  let off = 0
  const take = (n: number): Float32Array => all.slice(off, (off += n))
  const [W1, b1, W2, b2] = s.map(take) as [Float32Array, Float32Array, Float32Array, Float32Array]
  return { W1, b1, W2, b2 }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    // EPERM: exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * Remove `lock` if its owner is dead or it is too old. Returns true when it was removed. The judging and the removal
 * are one step, under a second lock (`<lock>.break`): two trials that both read a dead owner's lock would otherwise
 * both remove it, the second removing the lock the first had just taken, and both pretrain (a CI run saw it).
 */
function breakStaleLock(lock: string): boolean {
  const breaker = `${lock}.break`
  let fd: number
  try {
    fd = openSync(breaker, "wx")
  } catch {
    // Another trial judges the lock now; a breaker left by a trial killed while it judged goes after 10 s.
    try {
      if (Date.now() - statSync(breaker).mtimeMs > 10_000) rmSync(breaker, { force: true })
    } catch {
      // gone meanwhile
    }
    return false
  }
  closeSync(fd)
  try {
    const pid = Number(readFileSync(lock, "utf8").trim())
    const age = Date.now() - statSync(lock).mtimeMs
    // An empty lock (owner killed between open and write) is judged by its age only.
    const dead = Number.isInteger(pid) && pid > 0 ? !pidAlive(pid) : age > 10_000
    if (dead || age > LOCK_STALE_MS) {
      rmSync(lock, { force: true })
      return true
    }
  } catch {
    // The lock vanished meanwhile: the next round decides.
  } finally {
    rmSync(breaker, { force: true })
  }
  return false
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

export interface BaseModelInfo {
  readonly weights: BaseWeights
  readonly path: string
  /** True when this process pretrained it (false when read from the cache). */
  readonly trained: boolean
  readonly seconds: number
}

/** Load the base model from the cache, or pretrain it under the lock and cache it atomically. */
export async function loadOrPretrain(cacheDir: string, cfg: PretrainConfig, log: (msg: string) => void = () => {}): Promise<BaseModelInfo> {
  mkdirSync(cacheDir, { recursive: true })
  const key = cacheKey(cfg)
  const path = join(cacheDir, `quickstart-base-${key}.f32`)
  const lock = `${path}.lock`
  const t0 = performance.now()
  const elapsed = (): number => (performance.now() - t0) / 1000
  let waited = false
  for (;;) {
    try {
      return { weights: deserialize(readFileSync(path)), path, trained: false, seconds: elapsed() }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e
    }
    let fd: number
    try {
      fd = openSync(lock, "wx")
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
      if (!waited) log(`waiting for another trial to pretrain the base model (${lock})`)
      waited = true
      if (!breakStaleLock(lock)) await sleep(POLL_MS)
      continue
    }
    try {
      writeSync(fd, `${process.pid}\n`)
      closeSync(fd)
      // Someone may have finished between our read and our lock.
      try {
        return { weights: deserialize(readFileSync(path)), path, trained: false, seconds: elapsed() }
      } catch {
        // not there: we train
      }
      log(`pretraining the base model (${cfg.epochs} epochs) into ${path}`)
      const weights = pretrain(cfg)
      const tmp = `${path}.${process.pid}.tmp`
      writeFileSync(tmp, serialize(weights))
      renameSync(tmp, path)
      return { weights, path, trained: true, seconds: elapsed() }
    } finally {
      rmSync(lock, { force: true })
    }
  }
}

/** Held-out accuracy of a base model on its own task (for the README and tests). */
export function baseAccuracy(weights: BaseWeights): number {
  return exactMatch({ base: weights, lora: undefined, mode: "full" }, heldOut("add2"), "reversed")
}
