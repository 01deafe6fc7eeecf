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
  python: `def train(model, loader, optimizer, epochs=3, lr=3e-4):
    model.train()
    for epoch in range(epochs):
        total = 0.0
        for step, (x, y) in enumerate(loader):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item()
        print(f"epoch {epoch}: loss={total / (step + 1):.4f}")
    return {"loss": total, "lr": lr}`,
  rust: `impl Tree {
    pub fn best(&self) -> Option<&Node> {
        self.nodes.iter().filter(|n| n.score.is_some()).max_by(|a, b| a.score.partial_cmp(&b.score).unwrap())
    }
    fn push(&mut self, parent: usize, node: Node) -> usize {
        let id = self.nodes.len();
        self.nodes[parent].children.push(id);
        self.nodes.push(node);
        id
    }
}`,
  go: `func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	defer r.Body.Close()
	var req struct {
		Model    string \`json:"model"\`
		MaxTokens int   \`json:"max_tokens"\`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "{\\"id\\":%d}", s.next())
}`,
  c: `static int parse_args(int argc, char **argv, struct options *opt) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--lr") == 0 && i + 1 < argc) opt->lr = atof(argv[++i]);
        else if (strncmp(argv[i], "-v", 2) == 0) opt->verbose++;
        else { fprintf(stderr, "unknown flag: %s\\n", argv[i]); return -1; }
    }
    return 0;
}`,
  sql: `SELECT n.id, n.parent_id, MAX(r.score) AS best, COUNT(*) AS trials
FROM nodes n JOIN results r ON r.node_id = n.id
WHERE n.status = 'finished' AND r.metric = 'bleu'
GROUP BY n.id, n.parent_id HAVING COUNT(*) > 2 ORDER BY best DESC LIMIT 10;`,
  json: `{"model":"qwen3:8b","messages":[{"role":"system","content":"You propose strategies."},{"role":"user","content":"Propose a strategy under n3."}],"max_tokens":4096,"tools":[{"type":"function","function":{"name":"propose","parameters":{"type":"object","properties":{"lr":{"type":"number"},"epochs":{"type":"integer"}}}}}]}`,
  shell: `#!/usr/bin/env bash
set -euo pipefail
for f in "$@"; do
  if [[ -f "$f" ]]; then
    sed -n '1,20p' "$f" | grep -E '^(import|export) ' >> /tmp/out.txt || true
  fi
done
echo "done: $(wc -l < /tmp/out.txt) lines"`,
  yaml: `name: nmt-zh-en
metric: { name: bleu, direction: maximize }
budget: { maxTrials: 40, gpuHours: 12 }
recipe:
  command: [python, train.py, --config, "{strategyFile}"]
  resources: { gpus: 1, cpus: 8, memoryMb: 32000 }`,
  html: `<div class="trial" data-id="n12"><span class="score">0.8123</span><a href="/runs/abc123/nodes/n12">details</a><ul><li>lr: 3e-4</li><li>epochs: 2</li></ul></div>`,
  chinese: "学习率是微调语言模型时最重要的超参数。学习率太高，损失会在几百步之内发散；太低，训练会把预算花在几乎不动的参数上。在开始完整训练之前，先用三到四个数值做一次简短的搜索，每个只训练一小部分轮次，通常就能找到一个好的区间。",
  japanese: "学習率は言語モデルを微調整するときに最も重要なハイパーパラメータです。高すぎると損失は数百ステップで発散し、低すぎると予算をほとんど動かないまま使い切ってしまいます。",
  korean: "학습률은 언어 모델을 미세 조정할 때 가장 중요한 하이퍼파라미터입니다. 너무 높으면 손실이 몇백 단계 안에 발산하고, 너무 낮으면 예산을 거의 움직이지 않은 채 써 버립니다.",
  russian: "Скорость обучения — самый важный гиперпараметр при дообучении языковой модели. Слишком высокая, и потери расходятся за несколько сотен шагов; слишком низкая, и запуск тратит бюджет, почти не двигаясь."
}

// each tokenizer built once (a second or more each)
const encodings = new Map<string, ReturnType<typeof getEncoding>>()
const encodingOf = (name: "o200k_base" | "cl100k_base") => encodings.get(name) ?? encodings.set(name, getEncoding(name)).get(name)!

describe("Model.estimatedTokens", () => {
  it("weighs a text by its script, and ASCII by kind: letters and spaces about 4.5 a token, punctuation and digits 2; Chinese, Japanese and Korean about 1, other scripts 2", () => {
    assert.strictEqual(Model.estimatedTokens("abcdefgh"), 2)
    assert.strictEqual(Model.estimatedTokens("abcd efgh"), 2)
    assert.strictEqual(Model.estimatedTokens("x[i] += 2;"), 4)
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
      const encoding = encodingOf(name)
      for (const [sample, text] of Object.entries(samples)) {
        const ratio = Model.estimatedTokens(text) / encoding.encode(text).length
        assert.isTrue(ratio >= 0.7 && ratio <= 1.75, `${name} ${sample}: estimated ${Model.estimatedTokens(text)}, counted ${encoding.encode(text).length}`)
      }
    }
  })

  it("comes within 0.8 to 1.15 times both counts on code of several languages, and English prose (4 characters a token for any ASCII gave 0.77 for C, 0.83 for SQL, 1.19 for English)", () => {
    for (const name of ["o200k_base", "cl100k_base"] as const) {
      const encoding = encodingOf(name)
      for (const sample of ["english", "code", "python", "rust", "go", "c", "sql", "json"] as const) {
        const text = samples[sample]
        const ratio = Model.estimatedTokens(text) / encoding.encode(text).length
        assert.isTrue(ratio >= 0.8 && ratio <= 1.15, `${name} ${sample}: estimated ${Model.estimatedTokens(text)}, counted ${encoding.encode(text).length}`)
      }
    }
  })
})
