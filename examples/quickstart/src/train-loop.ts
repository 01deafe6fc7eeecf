// Training (Adam, learning-rate schedule, mini-batches, loss on answer tokens only) and greedy-decoding evaluation.
import { answerText, decode, encode, END, PROMPT_LEN, promptText, type Format, type Problem } from "./data.ts"
import { backward, contextFeatures, forward, gradMap, makeWorkspace, trainableParams, type Model } from "./model.ts"
import { shuffle, type Rng } from "./rng.ts"

export type Schedule = "constant" | "linear" | "cosine"

export interface TrainConfig {
  readonly format: Format
  readonly learningRate: number
  readonly schedule: Schedule
  readonly warmupRatio: number
  readonly epochs: number
  readonly batchSize: number
}

/** Learning rate at `step` of `total`: linear warmup, then constant / linear decay / cosine decay to zero. */
export function learningRateAt(cfg: TrainConfig, step: number, total: number): number {
  const warm = Math.floor(cfg.warmupRatio * total)
  if (step < warm) return (cfg.learningRate * (step + 1)) / warm
  const t = total - warm <= 1 ? 0 : (step - warm) / (total - warm)
  if (cfg.schedule === "constant") return cfg.learningRate
  if (cfg.schedule === "linear") return cfg.learningRate * (1 - t)
  return cfg.learningRate * 0.5 * (1 + Math.cos(Math.PI * t))
}

/** One training example as the model sees it: one (context features, target symbol) pair per answer token. */
interface Encoded {
  readonly contexts: ReadonlyArray<ReadonlyArray<number>>
  readonly targets: ReadonlyArray<number>
}

export function encodeExample(p: Problem, format: Format): Encoded {
  const tokens = encode(promptText(p) + answerText(p, format))
  const contexts: number[][] = []
  const targets: number[] = []
  // Loss on answer tokens only: positions from the end of the prompt on.
  for (let pos = PROMPT_LEN; pos < tokens.length; pos++) {
    contexts.push(contextFeatures(tokens, pos))
    targets.push(tokens[pos] as number)
  }
  return { contexts, targets }
}

export interface TrainHooks {
  /** Called every `every` optimizer steps with the mean training loss since the last call. */
  readonly onLoss?: (step: number, loss: number) => void
  readonly lossEvery?: number
  /** Called after each epoch (1-based) with the step count so far. */
  readonly onEpoch?: (epoch: number, step: number, meanLoss: number) => void
}

export interface TrainOutcome {
  readonly steps: number
  /** Mean training loss per answer token over the last epoch. */
  readonly finalLoss: number
}

/** Train `model` in place with Adam (beta1 0.9, beta2 0.999, eps 1e-8). Deterministic for a given `rng`. */
export function train(
  model: Model,
  problems: ReadonlyArray<Problem>,
  cfg: TrainConfig,
  rng: Rng,
  hooks: TrainHooks = {}
): TrainOutcome {
  const data = problems.map((p) => encodeExample(p, cfg.format))
  const params = trainableParams(model)
  const grads = gradMap(params)
  const m1 = params.map((p) => new Float32Array(p.data.length))
  const m2 = params.map((p) => new Float32Array(p.data.length))
  const ws = makeWorkspace(model.lora?.rank ?? 0)
  const order = data.map((_, i) => i)
  const batchesPerEpoch = Math.ceil(data.length / cfg.batchSize)
  const total = batchesPerEpoch * cfg.epochs
  const lossEvery = hooks.lossEvery ?? 100
  const dropoutRng = model.mode === "lora" && (model.lora?.dropout ?? 0) > 0 ? rng : undefined
  let step = 0
  let windowLoss = 0
  let windowTokens = 0
  let epochLoss = 0
  for (let epoch = 1; epoch <= cfg.epochs; epoch++) {
    shuffle(order, rng)
    let epochSum = 0
    let epochTokens = 0
    for (let b = 0; b < batchesPerEpoch; b++) {
      const batch = order.slice(b * cfg.batchSize, (b + 1) * cfg.batchSize)
      let tokens = 0
      for (const i of batch) tokens += (data[i] as Encoded).targets.length
      for (const p of params) p.grad.fill(0)
      let batchLoss = 0
      for (const i of batch) {
        const ex = data[i] as Encoded
        for (let t = 0; t < ex.targets.length; t++) {
          const ctx = ex.contexts[t] as ReadonlyArray<number>
          forward(model, ctx, ws, dropoutRng)
          batchLoss += backward(model, ctx, ex.targets[t] as number, 1 / tokens, ws, grads)
        }
      }
      const lr = learningRateAt(cfg, step, total)
      step++
      adamStep(params, m1, m2, lr, step)
      windowLoss += batchLoss * tokens
      windowTokens += tokens
      epochSum += batchLoss * tokens
      epochTokens += tokens
      if (step % lossEvery === 0 && hooks.onLoss !== undefined) {
        hooks.onLoss(step, windowLoss / windowTokens)
        windowLoss = 0
        windowTokens = 0
      }
    }
    epochLoss = epochSum / Math.max(epochTokens, 1)
    hooks.onEpoch?.(epoch, step, epochLoss)
  }
  return { steps: step, finalLoss: epochLoss }
}

function adamStep(
  params: ReadonlyArray<{ readonly data: Float32Array; readonly grad: Float32Array }>,
  m1: ReadonlyArray<Float32Array>,
  m2: ReadonlyArray<Float32Array>,
  lr: number,
  t: number
): void {
  const b1 = 0.9
  const b2 = 0.999
  const eps = 1e-8
  const c1 = 1 - b1 ** t
  const c2 = 1 - b2 ** t
  for (let i = 0; i < params.length; i++) {
    const { data, grad } = params[i] as { data: Float32Array; grad: Float32Array }
    const m = m1[i] as Float32Array
    const v = m2[i] as Float32Array
    for (let j = 0; j < data.length; j++) {
      const g = grad[j] as number
      const mj = b1 * (m[j] as number) + (1 - b1) * g
      const vj = b2 * (v[j] as number) + (1 - b2) * g * g
      m[j] = mj
      v[j] = vj
      data[j] = (data[j] as number) - (lr * (mj / c1)) / (Math.sqrt(vj / c2) + eps)
    }
  }
}

/** Greedy decoding of the answer of one problem (stops at the end marker or after `maxLen` symbols). */
export function generate(model: Model, p: Problem, maxLen = 10): string {
  const ws = makeWorkspace(model.lora?.rank ?? 0)
  const tokens = encode(promptText(p))
  for (let i = 0; i < maxLen; i++) {
    forward(model, contextFeatures(tokens, tokens.length), ws)
    let best = 0
    for (let v = 1; v < ws.logits.length; v++) if ((ws.logits[v] as number) > (ws.logits[best] as number)) best = v
    tokens.push(best)
    if (best === END) break
  }
  return decode(tokens.slice(PROMPT_LEN))
}

/** Fraction of problems whose generated answer equals the expected answer text exactly (end marker included). */
export function exactMatch(model: Model, problems: ReadonlyArray<Problem>, format: Format): number {
  let ok = 0
  for (const p of problems) if (generate(model, p) === answerText(p, format)) ok++
  return problems.length === 0 ? 0 : ok / problems.length
}
