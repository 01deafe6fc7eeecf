import copy
import json
import tempfile
import unittest
from pathlib import Path

from trex_hf_trl.recipe import (
    DEFAULT_FORMAT,
    LoraSpec,
    RecipeError,
    Source,
    Task,
    canonical_mixture,
    fingerprint_shares,
    load_strategy,
    parse_job,
    parse_strategy,
    resolve_eval_plan,
)

FULL = {
    "data": {
        "sources": [
            {"name": "tatsu-lab/alpaca", "weight": 0.7, "split": "train", "config": None},
            {"name": "local:/data/mine.jsonl", "weight": 0.3},
        ],
        "format": "chatml",
        "numExamples": 20000,
        "filters": [
            {"kind": "min_length", "params": {"field": "output", "chars": 10}},
            {"kind": "dedup", "params": {"field": "instruction"}},
        ],
        "transforms": [{"kind": "rename", "params": {"from": "text", "to": "output"}}],
        "synthesis": {"method": "self_instruct", "count": 0, "params": {}},
        "extra": {},
    },
    "training": {
        "method": "lora",
        "learningRate": 0.0002,
        "schedule": "cosine",
        "warmupRatio": 0.03,
        "epochs": 2,
        "batchSize": 16,
        "seed": 0,
        "lora": {"rank": 16, "alpha": 32, "dropout": 0.05, "targetModules": ["q_proj", "v_proj"]},
        "maxSeqLength": 2048,
        "extra": {"gradient_accumulation_steps": 4},
    },
    "evaluation": {"splits": ["test"], "metric": "rouge1", "maxExamples": 500, "extra": {}},
    "rationale": "free text",
}


def with_change(path, value):
    """A deep copy of FULL with the dotted ``path`` set to ``value`` (``...`` deletes)."""
    doc = copy.deepcopy(FULL)
    keys = path.split(".")
    node = doc
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    elif value is ...:
        del node[last]
    else:
        node[last] = value
    return doc


class ParseStrategyTest(unittest.TestCase):
    def test_full_example_parses(self):
        s = parse_strategy(FULL)
        self.assertEqual(len(s.data.sources), 2)
        self.assertEqual(s.data.sources[0].name, "tatsu-lab/alpaca")
        self.assertAlmostEqual(s.data.sources[0].weight, 0.7)
        self.assertEqual(s.data.sources[1].split, "train")  # default
        self.assertIsNone(s.data.sources[1].config)
        self.assertEqual(s.data.format, "chatml")
        self.assertEqual(s.data.template.name, "chatml")
        self.assertEqual(s.data.num_examples, 20000)
        self.assertEqual([f.kind for f in s.data.filters], ["min_length", "dedup"])
        self.assertEqual(len(s.data.compiled_filters), 2)
        self.assertEqual(s.data.synthesis.method, "self_instruct")
        t = s.training
        self.assertEqual((t.method, t.learning_rate, t.schedule, t.epochs, t.batch_size, t.seed), ("lora", 0.0002, "cosine", 2.0, 16, 0))
        self.assertEqual(t.lora.target_modules, ("q_proj", "v_proj"))
        self.assertEqual(t.lora.alpha, 32.0)
        self.assertEqual(t.max_seq_length, 2048)
        self.assertEqual(t.extra, {"gradient_accumulation_steps": 4})
        self.assertEqual(s.evaluation.splits, ("test",))
        self.assertEqual(s.evaluation.max_examples, 500)
        self.assertEqual(s.rationale, "free text")

    def test_defaults_for_missing_optional_fields(self):
        s = parse_strategy({})
        self.assertEqual(s.data.sources, ())
        self.assertEqual(s.data.format, DEFAULT_FORMAT)
        self.assertIsNone(s.data.num_examples)
        self.assertEqual(s.training.method, "full")  # TREX's schema default
        self.assertGreater(s.training.learning_rate, 0)
        self.assertEqual(s.training.lora, LoraSpec())
        self.assertIsNone(s.training.lora.target_modules)
        self.assertIsNone(s.training.max_seq_length)
        self.assertIsNone(s.evaluation.splits)
        self.assertEqual(s.data.replacement, "auto")

    def test_unknown_fields_ignored(self):
        doc = copy.deepcopy(FULL)
        doc["somethingNew"] = {"x": 1}
        doc["training"]["futureKnob"] = 3
        doc["data"]["sources"][0]["license"] = "cc"
        self.assertEqual(parse_strategy(doc).training.batch_size, 16)

    def test_integral_floats_accepted_for_integers(self):
        self.assertEqual(parse_strategy(with_change("training.batchSize", 8.0)).training.batch_size, 8)

    def assertRecipeError(self, doc, path, *fragments):
        with self.assertRaises(RecipeError) as ctx:
            parse_strategy(doc)
        self.assertEqual(ctx.exception.path, path, str(ctx.exception))
        self.assertTrue(str(ctx.exception).startswith(path + ": "), str(ctx.exception))
        for fragment in fragments:
            self.assertIn(fragment, str(ctx.exception))

    def test_errors_name_the_field(self):
        self.assertRecipeError(with_change("training.learningRate", -1), "training.learningRate", "expected a positive number, got -1")
        self.assertRecipeError(with_change("training.learningRate", "fast"), "training.learningRate", "positive number", '"fast"')
        self.assertRecipeError(with_change("training.learningRate", True), "training.learningRate")
        self.assertRecipeError(with_change("training.method", "adapter"), "training.method", "'full', 'lora', 'qlora'", '"adapter"')
        self.assertRecipeError(with_change("training.schedule", "cosin"), "training.schedule", "'cosine'")
        self.assertRecipeError(with_change("training.batchSize", 0), "training.batchSize", "positive integer")
        self.assertRecipeError(with_change("training.batchSize", 2.5), "training.batchSize", "positive integer")
        self.assertRecipeError(with_change("training.epochs", 0), "training.epochs", "positive number")
        self.assertRecipeError(with_change("training.warmupRatio", 1.5), "training.warmupRatio", ">= 0", "< 1")
        self.assertRecipeError(with_change("training.seed", 1.5), "training.seed", "an integer")
        self.assertEqual(parse_strategy(with_change("training.seed", -3)).training.seed, -3)  # TREX allows any int
        self.assertRecipeError(with_change("training.lora.rank", 0), "training.lora.rank", "positive integer")
        self.assertRecipeError(with_change("training.lora.dropout", 1), "training.lora.dropout")
        self.assertRecipeError(with_change("training.lora.targetModules", []), "training.lora.targetModules", "non-empty list")
        self.assertRecipeError(with_change("training.lora.targetModules", ["q_proj", 3]), "training.lora.targetModules[1]")
        self.assertRecipeError(with_change("training.maxSeqLength", -5), "training.maxSeqLength")
        self.assertRecipeError(with_change("training", [1]), "training", "expected an object")

    def test_data_errors_name_the_field(self):
        self.assertRecipeError(with_change("data.sources.0.weight", -0.5), "data.sources[0].weight", ">= 0")
        self.assertRecipeError(with_change("data.sources.1", {"weight": 1}), "data.sources[1].name", "non-empty string")
        both_zero = with_change("data.sources.0.weight", 0)
        both_zero["data"]["sources"][1]["weight"] = 0
        self.assertRecipeError(both_zero, "data.sources", "all weights are 0")
        self.assertRecipeError(with_change("data.format", "vicuna-ish"), "data.format", "unknown prompt format", "alpaca", "template:")
        self.assertRecipeError(with_change("data.format", "template:{}"), "data.format", "placeholder")
        self.assertRecipeError(with_change("data.numExamples", 0), "data.numExamples", "positive integer")
        self.assertRecipeError(with_change("data.filters.0", {"kind": "min_lenght", "params": {}}), "data.filters[0].kind", "unknown filter kind", "min_length")
        self.assertRecipeError(with_change("data.filters.0", {"kind": "min_length", "params": {"chars": -1}}), "data.filters[0].params.chars", "non-negative integer")
        self.assertRecipeError(with_change("data.filters.0", {"kind": "min_length", "params": {}}), "data.filters[0].params", "exactly one of")
        self.assertRecipeError(with_change("data.filters.0", {"kind": "regex_include", "params": {"pattern": "("}}), "data.filters[0].params.pattern", "invalid regular expression")
        self.assertRecipeError(with_change("data.filters.1", {"kind": "dedup", "params": {"mode": "fuzzy"}}), "data.filters[1].params.mode", "'exact' or 'normalized'")
        self.assertRecipeError(with_change("data.transforms.0", {"kind": "rename", "params": {"from": "a"}}), "data.transforms[0].params.to", "required")
        self.assertRecipeError(with_change("data.transforms.0", {"kind": "upper"}), "data.transforms[0].kind", "rename")
        self.assertRecipeError(with_change("data.extra", {"replacement": "sometimes"}), "data.extra.replacement", "'auto'")
        self.assertRecipeError(with_change("data.synthesis", {"method": "x", "count": -1}), "data.synthesis.count")

    def test_evaluation_errors(self):
        self.assertRecipeError(with_change("evaluation.metric", "bleurt"), "evaluation.metric", "unknown metric", "rouge1")
        self.assertRecipeError(with_change("evaluation.splits", "test"), "evaluation.splits", "list of strings")
        self.assertRecipeError(with_change("evaluation.maxExamples", 0), "evaluation.maxExamples")
        self.assertRecipeError(
            with_change("evaluation.extra", {"transforms": [{"kind": "nope"}]}), "evaluation.extra.transforms[0].kind"
        )

    def test_load_strategy_reports_bad_json(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "strategy.json"
            path.write_text('{"training": {"learningRate": 1e-4,}}')
            with self.assertRaises(RecipeError) as ctx:
                load_strategy(path)
            self.assertEqual(ctx.exception.path, "strategy.json")
            self.assertIn("line 1", str(ctx.exception))
            path.write_text(json.dumps(FULL))
            self.assertEqual(load_strategy(path).training.epochs, 2.0)


class CanonicalMixtureTest(unittest.TestCase):
    def test_by_name_weight_0_left_out_places_as_written(self):
        written = (Source("web", 1.0), Source("toy", 0.0), Source("code", 3.0, split="dev"), Source("code", 3.0))
        mixture = canonical_mixture(written)
        self.assertEqual([(m.index, m.source.name, m.source.split) for m in mixture], [(2, "code", "dev"), (3, "code", "train"), (0, "web", "train")])
        reverse = canonical_mixture(tuple(reversed(written)))
        self.assertEqual([(m.source, m.key) for m in reverse], [(m.source, m.key) for m in mixture])
        self.assertEqual([m.index for m in reverse], [1, 0, 3])
        twice = canonical_mixture((Source("web", 1.0), Source("web", 1.0)))
        self.assertEqual(len({m.key for m in twice}), 2)  # a source listed twice alike: two keys, two draws

    def test_shares_do_not_depend_on_the_order_the_weights_are_summed_in(self):
        # summed in floating point these differ in the last bit with their order, and 0.345's share is a hair from a
        # half billionth: read that way it was 112304687 one way and 112304688 the other
        weights = [0.86, 0.95, 0.917, 0.345]
        self.assertEqual(fingerprint_shares(weights), [279947917, 309244792, 298502604, 112304687])
        self.assertEqual(fingerprint_shares(list(reversed(weights))), [112304687, 298502604, 309244792, 279947917])
        # 1 / (1 + 5.000001e-10) is 0.99999999949999990...: 999999999 billionths, though the float quotient reads .5
        self.assertEqual(fingerprint_shares([1, 5.000001e-10]), [999999999, 1])
        self.assertIsNone(fingerprint_shares([0, 0]))


class ParseJobTest(unittest.TestCase):
    JOB = {
        "run": "r1",
        "node": "n7",
        "task": {
            "metric": {"name": "exact_match", "direction": "maximize"},
            "baseModel": "Qwen/Qwen2.5-0.5B",
            "datasets": [{"name": "gsm", "uri": "hf://openai/gsm8k", "splits": ["train", "test"]}],
            "evaluation": {"maxExamples": 100},
        },
    }

    def test_parses(self):
        job = parse_job(self.JOB)
        self.assertEqual((job.run, job.node), ("r1", "n7"))
        self.assertEqual(job.task.base_model, "Qwen/Qwen2.5-0.5B")
        self.assertEqual(job.task.metric_name, "exact_match")
        self.assertEqual(job.task.datasets[0].splits, ("train", "test"))

    def test_trex_shaped_task(self):
        job = copy.deepcopy(self.JOB)
        job["task"]["baseModel"] = {"name": "qwen-small", "uri": "hf://Qwen/Qwen2.5-0.5B", "parameters": "0.5B"}
        job["task"]["datasets"].append({"name": "extra", "splits": []})
        job["task"]["evaluation"] = {"splits": [], "extra": {"maxNewTokens": 32}}
        parsed = parse_job(job)
        self.assertEqual(parsed.task.base_model, "Qwen/Qwen2.5-0.5B")
        self.assertEqual(parsed.task.datasets[1].uri, "extra")
        self.assertIsNone(parsed.task.datasets[1].splits)
        plan = resolve_eval_plan(parse_strategy({"evaluation": {"splits": [], "extra": {}}}), parsed.task)
        self.assertEqual(plan.splits, ("test",))
        self.assertEqual(plan.max_new_tokens, 32)
        job["task"]["baseModel"] = {"name": "org/model"}
        self.assertEqual(parse_job(job).task.base_model, "org/model")
        self.assertEqual(parse_strategy({"data": {"sources": [], "format": "default"}}).data.template.name, "alpaca")

    def test_errors(self):
        bad = copy.deepcopy(self.JOB)
        del bad["task"]["baseModel"]
        with self.assertRaises(RecipeError) as ctx:
            parse_job(bad)
        self.assertEqual(ctx.exception.path, "task.baseModel")
        bad = copy.deepcopy(self.JOB)
        bad["task"]["metric"]["direction"] = "up"
        with self.assertRaises(RecipeError) as ctx:
            parse_job(bad)
        self.assertEqual(ctx.exception.path, "task.metric.direction")

    def test_eval_plan_uses_task_metric_as_primary(self):
        job = parse_job(self.JOB)
        plan = resolve_eval_plan(parse_strategy(FULL), job.task)
        self.assertEqual(plan.metric, "exact_match")
        self.assertEqual(plan.extra_metrics, ("rouge1",))
        self.assertEqual(plan.splits, ("test",))
        self.assertEqual(plan.max_examples, 500)  # the strategy's value wins over the task's
        plan = resolve_eval_plan(parse_strategy({}), job.task)
        self.assertEqual(plan.max_examples, 100)  # falls back to the task's plan
        self.assertEqual(plan.extra_metrics, ())

    def test_eval_plan_rejects_unknown_task_metric(self):
        with self.assertRaises(RecipeError) as ctx:
            resolve_eval_plan(parse_strategy({}), Task(base_model="m", metric_name="bleu"))
        self.assertEqual(ctx.exception.path, "task.metric.name")

    def test_eval_plan_loss_metric_direction(self):
        plan = resolve_eval_plan(parse_strategy({"evaluation": {"metric": "loss"}}), Task(base_model="m"))
        self.assertEqual((plan.metric, plan.direction), ("eval_loss", "minimize"))


if __name__ == "__main__":
    unittest.main()
