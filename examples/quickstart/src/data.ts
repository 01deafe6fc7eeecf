// Procedural addition data: problems, the three answer formats, held-out sets and training mixtures.
//
// Every problem is written with operands zero-padded to the target width (3 digits), so a 2-digit base problem
// "012+034=" puts its digits at the same offsets as a 3-digit one: with a fixed-window model this is what lets the
// pretrained base weights transfer (see QUICKSTART-NOTES). The answer always has WIDTH+1 digits.
import { makeRng, type Rng } from "./rng.ts"

/** Symbols of the model: digits, '+', '=', end '$', and the scratchpad's carry markers 'C' (carry) and '.' (none). */
export const VOCAB = "0123456789+=$C."
export const VOCAB_SIZE = VOCAB.length
export const END = VOCAB.indexOf("$")
/** Operand width of the target task: every problem is padded to it. */
export const WIDTH = 3
/** Length of the prompt "aaa+bbb=". */
export const PROMPT_LEN = 2 * WIDTH + 2

export const FORMATS = ["plain", "reversed", "scratchpad"] as const
export type Format = (typeof FORMATS)[number]

/** The two data sources: the target task and the base task (replayed to avoid forgetting). */
export const SOURCES = ["add3", "add2"] as const
export type Source = (typeof SOURCES)[number]

export interface Problem {
  readonly a: number
  readonly b: number
}

const pad = (n: number, width: number): string => String(n).padStart(width, "0")

/** The prompt, e.g. {a: 12, b: 34} -> "012+034=". */
export function promptText(p: Problem): string {
  return `${pad(p.a, WIDTH)}+${pad(p.b, WIDTH)}=`
}

/**
 * The answer text including the end marker.
 * - plain:      most significant digit first, "0046$"
 * - reversed:   least significant digit first, "6400$" (each digit then depends only on digits already seen)
 * - scratchpad: reversed digits, each followed by its carry-out ('C' or '.'), then the last digit: "6.4.0.0$".
 *   The carry makes each digit a function of (a_i, b_i, previous carry), all inside the 12-character window.
 */
export function answerText(p: Problem, format: Format): string {
  const sum = p.a + p.b
  const digits = pad(sum, WIDTH + 1)
  if (format === "plain") return `${digits}$`
  const rev = [...digits].reverse().join("")
  if (format === "reversed") return `${rev}$`
  let out = ""
  let carry = 0
  for (let i = 0; i < WIDTH; i++) {
    const da = Math.floor(p.a / 10 ** i) % 10
    const db = Math.floor(p.b / 10 ** i) % 10
    const s = da + db + carry
    carry = s >= 10 ? 1 : 0
    out += `${s % 10}${carry === 1 ? "C" : "."}`
  }
  return `${out}${carry}$`
}

/** Parse an answer text back to the sum, or undefined when malformed (or, for scratchpad, inconsistent carries). */
export function decodeAnswer(text: string, format: Format): number | undefined {
  if (!text.endsWith("$")) return undefined
  const body = text.slice(0, -1)
  if (format === "plain" || format === "reversed") {
    if (!/^[0-9]{4}$/.test(body)) return undefined
    return Number(format === "plain" ? body : [...body].reverse().join(""))
  }
  if (!/^([0-9][C.]){3}[01]$/.test(body)) return undefined
  let sum = 0
  for (let i = 0; i < WIDTH; i++) sum += Number(body[2 * i]) * 10 ** i
  // The final digit is the last carry-out: the two must agree.
  if ((body[2 * WIDTH - 1] === "C" ? "1" : "0") !== body[2 * WIDTH]) return undefined
  return sum + Number(body[2 * WIDTH]) * 10 ** WIDTH
}

/** Encode text as symbol ids. */
export function encode(text: string): number[] {
  return [...text].map((ch) => {
    const id = VOCAB.indexOf(ch)
    if (id < 0) throw new Error(`symbol not in vocabulary: ${ch}`)
    return id
  })
}

export function decode(ids: ReadonlyArray<number>): string {
  return ids.map((i) => VOCAB[i] ?? "?").join("")
}

/** Operand range of a source: add3 = both operands 3-digit (100..999), add2 = both below 100. */
function operandRange(source: Source): readonly [number, number] {
  return source === "add3" ? [100, 999] : [0, 99]
}

export function sampleProblem(source: Source, rng: Rng): Problem {
  const [lo, hi] = operandRange(source)
  return { a: lo + rng.int(hi - lo + 1), b: lo + rng.int(hi - lo + 1) }
}

export const problemKey = (p: Problem): number => p.a * 1000 + p.b

export const HELD_OUT_SIZE = 500
const HELD_OUT_SEEDS: Record<Source, number> = { add3: 0x7e57_0003, add2: 0x7e57_0002 }

const heldOutCache = new Map<Source, ReadonlyArray<Problem>>()

/** The fixed held-out problems of a source: 500 distinct problems from their own seed, the same for every strategy. */
export function heldOut(source: Source): ReadonlyArray<Problem> {
  const cached = heldOutCache.get(source)
  if (cached !== undefined) return cached
  const rng = makeRng(HELD_OUT_SEEDS[source])
  const seen = new Set<number>()
  const out: Problem[] = []
  while (out.length < HELD_OUT_SIZE) {
    const p = sampleProblem(source, rng)
    if (seen.has(problemKey(p))) continue
    seen.add(problemKey(p))
    out.push(p)
  }
  heldOutCache.set(source, out)
  return out
}

const heldOutKeys = (): Set<number> => new Set([...heldOut("add3"), ...heldOut("add2")].map(problemKey))

/**
 * A training set of `n` problems: each source gets round(n * weight / total) problems (the target source takes the
 * remainder), sampled with replacement but never from the held-out sets (add2 first; the trainer shuffles).
 */
export function trainingProblems(
  n: number,
  weights: Readonly<Partial<Record<Source, number>>>,
  rng: Rng
): Array<Problem & { readonly source: Source }> {
  const exclude = heldOutKeys()
  const total = SOURCES.reduce((s, src) => s + (weights[src] ?? 0), 0)
  const nAdd2 = Math.round((n * (weights.add2 ?? 0)) / total)
  const out: Array<Problem & { readonly source: Source }> = []
  for (let i = 0; i < n; i++) {
    const source: Source = i < nAdd2 ? "add2" : "add3"
    let p = sampleProblem(source, rng)
    while (exclude.has(problemKey(p))) p = sampleProblem(source, rng)
    out.push({ ...p, source })
  }
  return out
}
