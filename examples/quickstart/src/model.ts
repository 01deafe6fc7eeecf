// A character-level MLP language model over a fixed window, with hand-written forward and backward passes.
//
// Input: the last WINDOW symbols, one-hot per position (a position before the start of the text is all zeros).
// Because the input is one-hot, the first layer is a sum of WINDOW rows of W1: that sparsity is what makes
// training fast in plain TypeScript. Hidden: ReLU. Output: softmax over the vocabulary.
//
// Modes (what trains):
//   full - everything.
//   lora - a low-rank update of the hidden layer, W1 + (alpha/rank) * (A U^T)^T, plus the output layer; W1, b1 frozen.
//   head - only the output layer.
import { VOCAB_SIZE } from "./data.ts"
import type { Rng } from "./rng.ts"

export const WINDOW = 12
export const INPUTS = WINDOW * VOCAB_SIZE
export const HIDDEN = 256

export type Mode = "full" | "lora" | "head"

/** Frozen-or-trained base weights. Layouts are chosen for the hot loops: W1 row j = input feature j (HIDDEN wide). */
export interface BaseWeights {
  readonly W1: Float32Array // INPUTS x HIDDEN
  readonly b1: Float32Array // HIDDEN
  readonly W2: Float32Array // HIDDEN x VOCAB
  readonly b2: Float32Array // VOCAB
}

/** The low-rank adapter: A is INPUTS x rank (row per input feature), U is HIDDEN x rank. */
export interface Lora {
  readonly rank: number
  readonly scale: number
  readonly dropout: number
  readonly A: Float32Array
  readonly U: Float32Array
}

export interface Model {
  readonly base: BaseWeights
  readonly lora: Lora | undefined
  readonly mode: Mode
}

/** A named trainable tensor and its gradient buffer. */
export interface Param {
  readonly name: string
  readonly data: Float32Array
  readonly grad: Float32Array
}

export function initBase(rng: Rng): BaseWeights {
  // He-style init on the effective fan-in (about WINDOW active inputs), not on INPUTS.
  const s1 = Math.sqrt(2 / WINDOW)
  const s2 = Math.sqrt(1 / HIDDEN)
  const W1 = new Float32Array(INPUTS * HIDDEN).map(() => rng.normal() * s1)
  const W2 = new Float32Array(HIDDEN * VOCAB_SIZE).map(() => rng.normal() * s2)
  return { W1, b1: new Float32Array(HIDDEN), W2, b2: new Float32Array(VOCAB_SIZE) }
}

export function cloneBase(b: BaseWeights): BaseWeights {
  return { W1: b.W1.slice(), b1: b.b1.slice(), W2: b.W2.slice(), b2: b.b2.slice() }
}

/** LoRA init as usual: A random, U zero, so the adapted model starts equal to the base. */
export function initLora(rank: number, alpha: number, dropout: number, rng: Rng): Lora {
  const sa = Math.sqrt(1 / WINDOW)
  return {
    rank,
    scale: alpha / rank,
    dropout,
    A: new Float32Array(INPUTS * rank).map(() => rng.normal() * sa),
    U: new Float32Array(HIDDEN * rank)
  }
}

/** The trainable tensors of a model in its mode, with fresh zero gradients. */
export function trainableParams(m: Model): Param[] {
  const p = (name: string, data: Float32Array): Param => ({ name, data, grad: new Float32Array(data.length) })
  const head = [p("W2", m.base.W2), p("b2", m.base.b2)]
  if (m.mode === "head") return head
  if (m.mode === "lora") {
    if (m.lora === undefined) throw new Error("lora mode needs an adapter")
    return [p("A", m.lora.A), p("U", m.lora.U), ...head]
  }
  return [p("W1", m.base.W1), p("b1", m.base.b1), ...head]
}

/** Gradient buffers by parameter name, built once per training run (not in the hot loop). */
export function gradMap(params: ReadonlyArray<Param>): ReadonlyMap<string, Float32Array> {
  return new Map(params.map((p) => [p.name, p.grad]))
}

/** Scratch buffers for one forward/backward, reused across calls to avoid allocation in the hot loop. */
export interface Workspace {
  readonly h: Float32Array // pre-activation
  readonly a: Float32Array // ReLU output
  readonly logits: Float32Array
  readonly z: Float32Array // LoRA: A^T x (after dropout)
  readonly mask: Float32Array // LoRA dropout mask (scaled)
  readonly da: Float32Array
  readonly dz: Float32Array
}

export function makeWorkspace(rank = 0): Workspace {
  return {
    h: new Float32Array(HIDDEN),
    a: new Float32Array(HIDDEN),
    logits: new Float32Array(VOCAB_SIZE),
    z: new Float32Array(Math.max(rank, 1)),
    mask: new Float32Array(Math.max(rank, 1)).fill(1),
    da: new Float32Array(HIDDEN),
    dz: new Float32Array(Math.max(rank, 1))
  }
}

/**
 * Forward pass for one context. `features` are the active input indices (position * VOCAB + symbol).
 * Leaves probabilities (softmax) in ws.logits. With `rng`, LoRA dropout is applied (training only).
 */
export function forward(m: Model, features: ArrayLike<number>, ws: Workspace, rng?: Rng): void {
  const { W1, b1, W2, b2 } = m.base
  const { h, a, logits } = ws
  h.set(b1)
  for (let f = 0; f < features.length; f++) {
    const off = (features[f] as number) * HIDDEN
    for (let k = 0; k < HIDDEN; k++) h[k] = (h[k] as number) + (W1[off + k] as number)
  }
  const lora = m.mode === "lora" ? m.lora : undefined
  if (lora !== undefined) {
    const { rank: r, A, U, scale } = lora
    const z = ws.z
    z.fill(0)
    for (let f = 0; f < features.length; f++) {
      const off = (features[f] as number) * r
      for (let q = 0; q < r; q++) z[q] = (z[q] as number) + (A[off + q] as number)
    }
    if (rng !== undefined && lora.dropout > 0) {
      const keep = 1 / (1 - lora.dropout)
      for (let q = 0; q < r; q++) ws.mask[q] = rng.next() < lora.dropout ? 0 : keep
    } else ws.mask.fill(1)
    for (let q = 0; q < r; q++) z[q] = (z[q] as number) * (ws.mask[q] as number) * scale
    for (let k = 0; k < HIDDEN; k++) {
      let s = 0
      for (let q = 0; q < r; q++) s += (U[k * r + q] as number) * (z[q] as number)
      h[k] = (h[k] as number) + s
    }
  }
  logits.set(b2)
  for (let k = 0; k < HIDDEN; k++) {
    const hk = h[k] as number
    const ak = hk > 0 ? hk : 0
    a[k] = ak
    if (ak === 0) continue
    const off = k * VOCAB_SIZE
    for (let v = 0; v < VOCAB_SIZE; v++) logits[v] = (logits[v] as number) + ak * (W2[off + v] as number)
  }
  softmaxInPlace(logits)
}

export function softmaxInPlace(x: Float32Array): void {
  let max = -Infinity
  for (let i = 0; i < x.length; i++) if ((x[i] as number) > max) max = x[i] as number
  let sum = 0
  for (let i = 0; i < x.length; i++) {
    const e = Math.exp((x[i] as number) - max)
    x[i] = e
    sum += e
  }
  for (let i = 0; i < x.length; i++) x[i] = (x[i] as number) / sum
}

/**
 * Backward pass of the cross-entropy loss `weight * -log p[target]` for the context of the last forward().
 * Accumulates into `grads` (see gradMap: gradient buffers by parameter name). Returns the loss.
 */
export function backward(
  m: Model,
  features: ArrayLike<number>,
  target: number,
  weight: number,
  ws: Workspace,
  grads: ReadonlyMap<string, Float32Array>
): number {
  const { W2 } = m.base
  const { h, a, logits: probs, da } = ws
  const loss = -Math.log(Math.max(probs[target] as number, 1e-30)) * weight
  const gW2 = grads.get("W2") as Float32Array
  const gb2 = grads.get("b2") as Float32Array
  // dlogits = weight * (p - onehot); stored back into probs to avoid another buffer.
  for (let v = 0; v < VOCAB_SIZE; v++) {
    const d = ((probs[v] as number) - (v === target ? 1 : 0)) * weight
    probs[v] = d
    gb2[v] = (gb2[v] as number) + d
  }
  const needHidden = m.mode !== "head"
  for (let k = 0; k < HIDDEN; k++) {
    const ak = a[k] as number
    let s = 0
    const off = k * VOCAB_SIZE
    for (let v = 0; v < VOCAB_SIZE; v++) {
      const d = probs[v] as number
      if (ak !== 0) gW2[off + v] = (gW2[off + v] as number) + ak * d
      s += (W2[off + v] as number) * d
    }
    // ReLU gate: dh = da where h > 0.
    da[k] = needHidden && (h[k] as number) > 0 ? s : 0
  }
  if (m.mode === "full") {
    const gW1 = grads.get("W1") as Float32Array
    const gb1 = grads.get("b1") as Float32Array
    for (let k = 0; k < HIDDEN; k++) gb1[k] = (gb1[k] as number) + (da[k] as number)
    for (let f = 0; f < features.length; f++) {
      const off = (features[f] as number) * HIDDEN
      for (let k = 0; k < HIDDEN; k++) gW1[off + k] = (gW1[off + k] as number) + (da[k] as number)
    }
  } else if (m.mode === "lora" && m.lora !== undefined) {
    const { rank: r, U, scale } = m.lora
    const gA = grads.get("A") as Float32Array
    const gU = grads.get("U") as Float32Array
    const { z, dz, mask } = ws
    dz.fill(0)
    for (let k = 0; k < HIDDEN; k++) {
      const d = da[k] as number
      if (d === 0) continue
      const off = k * r
      for (let q = 0; q < r; q++) {
        gU[off + q] = (gU[off + q] as number) + d * (z[q] as number)
        dz[q] = (dz[q] as number) + d * (U[off + q] as number)
      }
    }
    // z = scale * mask * (A^T x): chain back through the scale and the dropout mask.
    for (let q = 0; q < r; q++) dz[q] = (dz[q] as number) * scale * (mask[q] as number)
    for (let f = 0; f < features.length; f++) {
      const off = (features[f] as number) * r
      for (let q = 0; q < r; q++) gA[off + q] = (gA[off + q] as number) + (dz[q] as number)
    }
  }
  return loss
}

/** Active input features for predicting position `pos` of `tokens` (the WINDOW symbols before it). */
export function contextFeatures(tokens: ReadonlyArray<number>, pos: number): number[] {
  const out: number[] = []
  for (let w = 0; w < WINDOW; w++) {
    const i = pos - WINDOW + w
    if (i >= 0) out.push(w * VOCAB_SIZE + (tokens[i] as number))
  }
  return out
}

/** Fold a LoRA adapter into the hidden-layer weights (for exporting a plain model). */
export function mergeLora(m: Model): BaseWeights {
  const out = cloneBase(m.base)
  if (m.mode !== "lora" || m.lora === undefined) return out
  const { rank: r, A, U, scale } = m.lora
  for (let j = 0; j < INPUTS; j++) {
    for (let k = 0; k < HIDDEN; k++) {
      let s = 0
      for (let q = 0; q < r; q++) s += (A[j * r + q] as number) * (U[k * r + q] as number)
      out.W1[j * HIDDEN + k] = (out.W1[j * HIDDEN + k] as number) + scale * s
    }
  }
  return out
}
