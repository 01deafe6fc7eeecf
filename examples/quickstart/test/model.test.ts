// Finite-difference gradient checks of the hand-written backward pass, in every training mode.
import { assert, describe, it } from "vitest"
import { trainingProblems } from "../src/data.ts"
import { backward, forward, gradMap, initBase, initLora, makeWorkspace, mergeLora, trainableParams, type Model, type Workspace } from "../src/model.ts"
import { makeRng } from "../src/rng.ts"
import { encodeExample } from "../src/train-loop.ts"

// The check runs in float64: the model code only indexes, fills and sets its arrays, so Float64Array buffers can stand
// in for Float32Array ones. In float32, rounding of the loss swamps the finite differences of small gradients.
const f64 = (a: Float32Array): Float32Array => Float64Array.from(a) as unknown as Float32Array

function workspace64(rank: number): Workspace {
  const ws = makeWorkspace(rank)
  return { h: f64(ws.h), a: f64(ws.a), logits: f64(ws.logits), z: f64(ws.z), mask: f64(ws.mask), da: f64(ws.da), dz: f64(ws.dz) }
}

function setup(mode: Model["mode"]): { model: Model; contexts: number[][]; targets: number[] } {
  const rng = makeRng(42)
  const lora = mode === "lora" ? initLora(4, 8, 0, rng) : undefined
  // A fresh adapter has U = 0, which would make A's gradient zero: randomise U so both factors are checked.
  if (lora !== undefined) lora.U.forEach((_, i) => (lora.U[i] = rng.normal() * 0.3))
  const b = initBase(rng)
  const base = { W1: f64(b.W1), b1: f64(b.b1), W2: f64(b.W2), b2: f64(b.b2) }
  // Small random hidden biases so some units sit near (but not at) zero, as after training.
  base.b1.forEach((_, i) => (base.b1[i] = rng.normal() * 0.1))
  const model: Model = { base, lora: lora === undefined ? undefined : { ...lora, A: f64(lora.A), U: f64(lora.U) }, mode }
  const contexts: number[][] = []
  const targets: number[] = []
  for (const p of trainingProblems(3, { add3: 0.5, add2: 0.5 }, rng)) {
    const ex = encodeExample(p, "scratchpad")
    ex.contexts.forEach((c, i) => {
      contexts.push([...c])
      targets.push(ex.targets[i] as number)
    })
  }
  return { model, contexts, targets }
}

function lossOf(model: Model, contexts: number[][], targets: number[]): number {
  const ws = workspace64(model.lora?.rank ?? 0)
  let loss = 0
  contexts.forEach((c, i) => {
    forward(model, c, ws)
    loss -= Math.log(ws.logits[targets[i] as number] as number)
  })
  return loss / contexts.length
}

function gradCheck(mode: Model["mode"]): void {
  const { model, contexts, targets } = setup(mode)
  const params = trainableParams(model)
  const grads = gradMap(params)
  const ws = workspace64(model.lora?.rank ?? 0)
  let analyticLoss = 0
  contexts.forEach((c, i) => {
    forward(model, c, ws)
    analyticLoss += backward(model, c, targets[i] as number, 1 / contexts.length, ws, grads)
  })
  assert.closeTo(analyticLoss, lossOf(model, contexts, targets), 1e-9)
  const rng = makeRng(9)
  let checked = 0
  for (const p of params) {
    // Check the largest-gradient coordinates (well above float32 noise) plus a few random ones.
    const idx = [...p.grad.keys()].sort((a, b) => Math.abs(p.grad[b] as number) - Math.abs(p.grad[a] as number)).slice(0, 12)
    for (let r = 0; r < 4; r++) idx.push(rng.int(p.data.length))
    for (const j of idx) {
      const old = p.data[j] as number
      const analytic = p.grad[j] as number
      // Central differences at two step sizes; a ReLU kink inside one step can spoil it, so the best one counts.
      let err = Infinity
      let numeric = Number.NaN
      for (const eps of [1e-5, 1e-4]) {
        p.data[j] = old + eps
        const up = lossOf(model, contexts, targets)
        p.data[j] = old - eps
        const down = lossOf(model, contexts, targets)
        p.data[j] = old
        const n = (up - down) / (2 * eps)
        const e = Math.abs(n - analytic) / Math.max(Math.abs(n) + Math.abs(analytic), 1e-7)
        if (e < err) [err, numeric] = [e, n]
      }
      assert.isBelow(err, 1e-4, `${mode} ${p.name}[${j}]: numeric ${numeric} vs analytic ${analytic}`)
      checked++
    }
  }
  assert.isAbove(checked, 30)
  assert.deepEqual(
    params.map((p) => p.name),
    mode === "full" ? ["W1", "b1", "W2", "b2"] : mode === "lora" ? ["A", "U", "W2", "b2"] : ["W2", "b2"]
  )
}

describe("MLP gradients", () => {
  it("match finite differences in full mode", () => gradCheck("full"))
  it("match finite differences in lora mode", () => gradCheck("lora"))
  it("match finite differences in head mode", () => gradCheck("head"))

  it("merging a LoRA adapter gives the same outputs", () => {
    const { model, contexts } = setup("lora")
    const merged: Model = { base: mergeLora(model), lora: undefined, mode: "full" }
    const a = makeWorkspace(4)
    const b = makeWorkspace(4)
    for (const c of contexts.slice(0, 5)) {
      forward(model, c, a)
      forward(merged, c, b)
      for (let v = 0; v < a.logits.length; v++) assert.closeTo(a.logits[v] as number, b.logits[v] as number, 1e-5)
    }
  })
})
