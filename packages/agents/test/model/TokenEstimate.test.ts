import { assert, describe, it } from "@effect/vitest"
import { getEncoding } from "js-tiktoken"
import * as Model from "../../src/model/Model.ts"

// Fixed samples, and two real BPE tokenizers (OpenAI's current and previous; Claude's own is not published):
// the estimate, used where a cut call's tokens were never counted, should land near their counts
const samples = {
  english: "The learning rate is the most important hyperparameter when fine-tuning a language model. Too high, and the loss diverges within a few hundred steps; too low, and the run spends its budget barely moving. A short sweep over three or four values, each trained for a fraction of an epoch, usually finds a good region before the full run is started.",
  code: `export const retrySchedule = (options: RetryOptions = {}): Schedule.Schedule<Duration.Duration, ModelError> => {
  const base = Duration.toMillis(Duration.fromInputUnsafe(options.baseDelay ?? "1 second"))
  const cap = Duration.toMillis(Duration.fromInputUnsafe(options.maxDelay ?? "30 seconds"))
  for (let i = 0; i < 10; i++) { if (x[i] !== undefined) total += x[i] * 2 }
  return { lr: 3e-4, batch_size: 32, warmup_ratio: 0.03 }
}`,
  chinese: "学习率是微调语言模型时最重要的超参数。学习率太高，损失会在几百步之内发散；太低，训练会把预算花在几乎不动的参数上。在开始完整训练之前，先用三到四个数值做一次简短的搜索，每个只训练一小部分轮次，通常就能找到一个好的区间。",
  japanese: "学習率は言語モデルを微調整するときに最も重要なハイパーパラメータです。高すぎると損失は数百ステップで発散し、低すぎると予算をほとんど動かないまま使い切ってしまいます。",
  korean: "학습률은 언어 모델을 미세 조정할 때 가장 중요한 하이퍼파라미터입니다. 너무 높으면 손실이 몇백 단계 안에 발산하고, 너무 낮으면 예산을 거의 움직이지 않은 채 써 버립니다.",
  russian: "Скорость обучения — самый важный гиперпараметр при дообучении языковой модели. Слишком высокая, и потери расходятся за несколько сотен шагов; слишком низкая, и запуск тратит бюджет, почти не двигаясь."
}

describe("Model.estimatedTokens", () => {
  it("weighs a text by its script: ASCII 4 characters a token, Chinese, Japanese and Korean about 1, other scripts 2", () => {
    assert.strictEqual(Model.estimatedTokens("abcdefgh"), 2)
    assert.strictEqual(Model.estimatedTokens("学习率是"), 4)
    assert.strictEqual(Model.estimatedTokens("ハイパー"), 4)
    assert.strictEqual(Model.estimatedTokens("학습률은"), 4)
    assert.strictEqual(Model.estimatedTokens("обучения"), 4)
    // an emoji (a surrogate pair) is one character
    assert.strictEqual(Model.estimatedTokens("🙂🙂"), 2)
    // a length whose characters are not known (a body's bytes): 4 a token
    assert.strictEqual(Model.estimatedTokens(10), 3)
    // the pieces of a stream summed, then rounded up
    assert.strictEqual(Math.ceil(Model.tokenWeight("ab") + Model.tokenWeight("cd") + Model.tokenWeight("学")), 2)
  })

  it("comes within 0.75 to 1.75 times the count of o200k_base and cl100k_base on fixed English, code, Chinese, Japanese, Korean and Russian samples", () => {
    for (const name of ["o200k_base", "cl100k_base"] as const) {
      const encoding = getEncoding(name)
      for (const [sample, text] of Object.entries(samples)) {
        const ratio = Model.estimatedTokens(text) / encoding.encode(text).length
        assert.isTrue(ratio >= 0.75 && ratio <= 1.75, `${name} ${sample}: estimated ${Model.estimatedTokens(text)}, counted ${encoding.encode(text).length}`)
      }
    }
  })
})
