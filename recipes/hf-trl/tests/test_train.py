import contextlib
import io
import json
import subprocess
import sys
import tempfile
import unittest
import unittest.mock
from pathlib import Path

from trex_hf_trl import train
from trex_hf_trl.data import DataError, classify_source, has_split_layout, load_local
from trex_hf_trl.recipe import RecipeError, parse_job, parse_strategy, resolve_eval_plan

RECIPE_ROOT = Path(__file__).resolve().parents[1]


class HelpersTest(unittest.TestCase):
    def test_is_oom(self):
        class OutOfMemoryError(RuntimeError):  # same name as torch.cuda.OutOfMemoryError
            pass

        self.assertTrue(train.is_oom(OutOfMemoryError("boom")))
        self.assertTrue(train.is_oom(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")))
        try:
            try:
                raise OutOfMemoryError("inner")
            except OutOfMemoryError as inner:
                raise ValueError("wrapped") from inner
        except ValueError as outer:
            self.assertTrue(train.is_oom(outer))
        self.assertFalse(train.is_oom(RuntimeError("shape mismatch")))
        self.assertFalse(train.is_oom(ValueError("key 'out of memory' not found in the config")))

    def test_log_to_metrics(self):
        logs = {"loss": 0.5, "learning_rate": 1e-4, "epoch": 0.25, "eval_loss": 0.7, "train_runtime": 12.0,
                "train_samples_per_second": 3.0, "total_flos": 1e12, "grad_norm": float("nan"), "note": "x", "train_loss": 0.6}
        self.assertEqual(
            sorted(train.log_to_metrics(logs)),
            sorted([("train", "loss", 0.5), ("train", "learning_rate", 1e-4), ("train", "epoch", 0.25),
                    ("eval", "loss", 0.7), ("train", "loss", 0.6)]),
        )

    def test_config_kwargs(self):
        s = parse_strategy({"training": {"method": "qlora", "learningRate": 1e-4, "schedule": "linear", "epochs": 3,
                                         "batchSize": 4, "seed": 9, "maxSeqLength": 512,
                                         "lora": {"rank": 8, "alpha": 16, "dropout": 0.1},
                                         "extra": {"gradient_accumulation_steps": 4, "output_dir": "/evil"}}})
        kw = train.sft_config_kwargs(s.training, Path("/job/checkpoints"), bf16=True, fp16=False)
        self.assertEqual(kw["output_dir"], "/job/checkpoints")
        self.assertEqual((kw["learning_rate"], kw["lr_scheduler_type"], kw["num_train_epochs"]), (1e-4, "linear", 3.0))
        self.assertEqual((kw["per_device_train_batch_size"], kw["seed"], kw["max_length"]), (4, 9, 512))
        self.assertEqual(kw["gradient_accumulation_steps"], 4)
        self.assertTrue(kw["gradient_checkpointing"])
        self.assertEqual(kw["report_to"], "none")
        lk = train.lora_kwargs(s.training.lora)
        self.assertEqual((lk["r"], lk["lora_alpha"], lk["lora_dropout"], lk["target_modules"]), (8, 16.0, 0.1, "all-linear"))
        self.assertEqual(lk["task_type"], "CAUSAL_LM")

    def test_source_classification(self):
        self.assertEqual(classify_source("tatsu-lab/alpaca"), ("hub", "tatsu-lab/alpaca"))
        self.assertEqual(classify_source("hf://datasets/openai/gsm8k"), ("hub", "openai/gsm8k"))
        self.assertEqual(classify_source("local:/data/mine.jsonl"), ("local", "/data/mine.jsonl"))
        self.assertEqual(classify_source("file:///x.csv"), ("local", "/x.csv"))
        self.assertEqual(classify_source("data/rows.jsonl"), ("local", "data/rows.jsonl"))
        self.assertTrue(has_split_layout("tatsu-lab/alpaca"))
        self.assertTrue(has_split_layout("local:/data/{split}.jsonl"))
        self.assertFalse(has_split_layout("local:/data/only.jsonl"))


def write_job(root: Path, strategy: dict, job: dict) -> None:
    (root / "strategy.json").write_text(json.dumps(strategy))
    (root / "job.json").write_text(json.dumps(job))


class PipelineTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.root = Path(self._tmp.name)
        (self.root / "data").mkdir()
        with open(self.root / "data" / "train.jsonl", "w") as f:
            for i in range(60):
                f.write(json.dumps({"instruction": f"Repeat {i}", "output": f"The value is {i}."}) + "\n")
            f.write("\n")
            for _ in range(3):
                f.write(json.dumps({"instruction": "Repeat 0", "output": "duplicate answer"}) + "\n")
        with open(self.root / "data" / "test.jsonl", "w") as f:
            for i in range(20):
                f.write(json.dumps({"instruction": f"Repeat {i}", "output": f"The value is {i}."}) + "\n")
        (self.root / "extra.csv").write_text("prompt,text\nhello,world and more words\nhi,short\n")
        self.job = {"run": "r", "node": "n", "task": {"metric": {"name": "rouge1", "direction": "maximize"},
                    "baseModel": "tiny/model",
                    "datasets": [{"name": "nums", "uri": "local:data/{split}.jsonl", "splits": ["train", "test"]}]}}
        self.strategy = {"data": {"sources": [{"name": "local:data/train.jsonl", "weight": 0.75},
                                              {"name": "local:extra.csv", "weight": 0.25}],
                                  "format": "chatml", "numExamples": 40,
                                  "filters": [{"kind": "min_length", "params": {"field": "output", "chars": 10}},
                                              {"kind": "dedup", "params": {"field": "instruction"}}],
                                  "transforms": [{"kind": "rename", "params": {"from": "text", "to": "output"}}]},
                         "training": {"seed": 3}, "evaluation": {"splits": ["test"], "maxExamples": 5}}

    def tearDown(self):
        self._tmp.cleanup()

    def loader(self, name, split, config):
        from trex_hf_trl.data import load_records
        return load_records(name, split, config, base_dirs=[self.root])

    def prepare(self, strategy=None, job=None):
        s = parse_strategy(strategy or self.strategy)
        j = parse_job(job or self.job)
        plan = resolve_eval_plan(s, j.task)
        return train.prepare_data(s, j, plan, loader=self.loader, base_dirs=[self.root])

    def test_prepare_data(self):
        prepared = self.prepare()
        self.assertEqual(len(prepared.train), 40)
        self.assertEqual(prepared.counts, [30, 10])
        self.assertEqual(prepared.stats.loaded, [63, 2])
        self.assertEqual(prepared.stats.removed_by, {"min_length": 1, "dedup": 3})
        self.assertEqual(list(prepared.eval), ["test"])
        self.assertEqual(len(prepared.eval["test"]), 5)
        self.assertEqual(prepared.eval["test"][0]["instruction"], "Repeat 0")
        csv_rows = [r for r in prepared.train if "hello" in r["prompt"]]
        self.assertEqual(len(csv_rows), 10)  # one surviving CSV row upsampled to its share
        self.assertEqual(csv_rows[0]["completion"], "world and more words<|im_end|>")
        self.assertEqual(prepared.train, self.prepare().train)  # deterministic for the seed

    def test_source_max_examples_caps_the_pool(self):
        strategy = json.loads(json.dumps(self.strategy))
        strategy["data"]["sources"][0]["maxExamples"] = 5
        strategy["data"]["numExamples"] = 20
        strategy["data"]["extra"] = {"replacement": "never"}
        prepared = self.prepare(strategy=strategy)
        from_jsonl = {r["prompt"] for r in prepared.train if "Repeat" in r["prompt"]}
        self.assertEqual(len(from_jsonl), 5)
        self.assertEqual(prepared.counts, [5, 1])  # both sources exhausted without replacement
        self.assertTrue(any("maxExamples=5" in n for n in prepared.notes))

    def test_holdout_when_no_eval_split(self):
        job = json.loads(json.dumps(self.job))
        job["task"]["datasets"] = []
        prepared = self.prepare(job=job)
        self.assertEqual(list(prepared.eval), ["holdout"])
        self.assertTrue(any("held-out" in n for n in prepared.notes))
        held = {r.get("instruction", r.get("prompt")) for r in prepared.eval["holdout"]}  # the CSV's row: "prompt"
        trained = {r["prompt"] for r in prepared.train}
        self.assertFalse(any(f"user\n{h}<|im_end|>" in p for h in held for p in trained))

    def test_holdout_runs_each_record_through_the_evaluation_transforms_once(self):
        job = json.loads(json.dumps(self.job))
        job["task"]["datasets"] = []
        strategy = json.loads(json.dumps(self.strategy))
        strategy["evaluation"]["extra"] = {"transforms": [{"kind": "lowercase", "params": {"field": "instruction"}}]}
        seen: list[int] = []
        ready = train._eval_ready

        def counted(examples, transforms):
            seen.extend(id(r) for r in examples)
            return ready(examples, transforms)

        with unittest.mock.patch.object(train, "_eval_ready", counted):
            prepared = self.prepare(strategy=strategy, job=job)
        held = prepared.eval["holdout"]
        # three of the JSONL file's rows and one of the CSV's, which renders only once renamed (evaluation does not
        # rename it): held out all the same, and scored as a failure
        self.assertEqual(len(held), 4)
        self.assertEqual(sorted(r.get("instruction", "")[:7] for r in held), ["", "repeat ", "repeat ", "repeat "])
        self.assertEqual(prepared.unrenderable, {"holdout": 1})
        # a candidate's ready result is what is held out: no record runs through the transforms a second time
        self.assertEqual(len(seen), len(set(seen)), f"{len(seen) - len(set(seen))} records ran through the evaluation transforms twice")

    def test_single_file_is_not_reused_as_test_split(self):
        with self.assertRaises(DataError):
            load_local("data", "validation", [self.root])
        self.assertEqual(len(load_local("data", "test", [self.root])), 20)

    def run_main(self, *args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = train.main(["--job-dir", str(self.root), *args])
        return code, out.getvalue(), err.getvalue()

    def test_dry_run(self):
        write_job(self.root, self.strategy, self.job)
        code, out, err = self.run_main("--dry-run")  # relative source paths resolve against the job dir
        self.assertEqual(code, 0, err)
        progress = [l for l in out.splitlines() if l.startswith("TREX_PROGRESS ")]
        self.assertGreaterEqual(len(progress), 2)
        report = json.loads(out[out.index("\n{") + 1 :])
        self.assertEqual(report["train"], 40)
        self.assertEqual(report["eval"], {"test": 5})
        self.assertEqual(report["plan"]["metric"], "rouge1")
        self.assertFalse((self.root / "result.json").exists())

    def test_invalid_strategy_exit_code_names_field(self):
        bad = json.loads(json.dumps(self.strategy))
        bad["training"]["learningRate"] = -1
        write_job(self.root, bad, self.job)
        code, _out, err = self.run_main("--dry-run")
        self.assertEqual(code, train.EXIT_CONFIG)
        self.assertIn("training.learningRate: expected a positive number, got -1", err)

    def test_missing_strategy_file(self):
        code, _out, err = self.run_main()
        self.assertEqual(code, train.EXIT_CONFIG)  # no strategy.json
        self.assertIn("strategy.json", err)


class CanonicalMixtureTest(unittest.TestCase):
    """The data depend on the mixture as TREX fingerprints it: shares, no order, weight 0 is no source."""

    ROWS = {
        ("org/a", "train"): [{"instruction": f"a question {i}", "output": f"a answer {i}"} for i in range(10)]
        + [{"instruction": "shared question", "output": "copy from a"}],
        ("org/b", "train"): [{"instruction": f"b question {i}", "output": f"b answer {i}"} for i in range(10)]
        + [{"instruction": "shared question", "output": "copy from b"}],
        ("org/a", "test"): [{"instruction": "a test", "output": "a reference"}],
        ("org/b", "test"): [{"instruction": "b test", "output": "b reference"}],
    }
    JOB = {"run": "r", "node": "n", "task": {"metric": {"name": "rouge1", "direction": "maximize"}, "baseModel": "tiny/model"}}

    def prepare(self, sources, *, evaluation=None, rows=None, num_examples=7, job=None, fmt="chatml"):
        calls = []

        def loader(name, split, config):
            calls.append(name)
            try:
                return [dict(r) for r in (rows or self.ROWS)[(name, split)]]
            except KeyError:
                raise DataError(f"{name}: no {split!r} split") from None

        strategy = parse_strategy({
            "data": {"sources": sources, "format": fmt, **({} if num_examples is None else {"numExamples": num_examples}),
                     "filters": [{"kind": "dedup", "params": {"field": "instruction"}}]},
            "training": {"seed": 0},
            "evaluation": evaluation or {"splits": ["test"]},
        })
        job = parse_job(job or self.JOB)
        prepared = train.prepare_data(strategy, job, resolve_eval_plan(strategy, job.task), loader=loader)
        return prepared, calls

    def summary(self, prepared):
        return {
            "train": prepared.train,
            "eval": prepared.eval,
            "counts": dict(zip([s.name for s in prepared.sources], prepared.counts)),
        }

    def test_order_and_scale_of_the_sources_change_no_example(self):
        # 7 over two equal sources: 3.5 each, a tie; no task dataset: evaluation from a source;
        # a duplicate across the sources: dedup keeps one copy.
        for evaluation in ({"splits": ["test"]}, {"splits": ["validation"]}):  # the second: a held-out slice
            with self.subTest(evaluation=evaluation):
                ab, _ = self.prepare([{"name": "org/a", "weight": 1}, {"name": "org/b", "weight": 1}], evaluation=evaluation)
                ba, _ = self.prepare([{"name": "org/b", "weight": 1}, {"name": "org/a", "weight": 1}], evaluation=evaluation)
                doubled, _ = self.prepare([{"name": "org/a", "weight": 2}, {"name": "org/b", "weight": 2}], evaluation=evaluation)
                self.assertEqual(self.summary(ba), self.summary(ab))
                self.assertEqual(self.summary(doubled), self.summary(ab))
                self.assertEqual(self.summary(ab)["counts"], {"org/a": 4, "org/b": 3})  # the tie to the first by name

    def test_mixtures_with_one_fingerprint_draw_the_same_counts(self):
        # Shares the fingerprint rounds to the same 9 decimals: [1, 1] against a tilt of 4e-10 (7 examples:
        # 3.5 each, the tie to org/a; read exactly, the tilt gave org/b 4), and [1, 2] against its decimals
        # (no numExamples: read exactly, 1/3 and 2/3 of pools of 100 and 200 drew 300, the decimals 299).
        for same in ([{"name": "org/a", "weight": 0.4999999996}, {"name": "org/b", "weight": 0.5000000004}],
                     [{"name": "org/b", "weight": 0.5000000004}, {"name": "org/a", "weight": 0.4999999996}]):
            with self.subTest(sources=same):
                even, _ = self.prepare([{"name": "org/a", "weight": 1}, {"name": "org/b", "weight": 1}])
                tilted, _ = self.prepare(same)
                self.assertEqual(self.summary(tilted), self.summary(even))
        rows = {("org/a", "train"): [{"instruction": f"a {i}", "output": "x"} for i in range(100)],
                ("org/b", "train"): [{"instruction": f"b {i}", "output": "x"} for i in range(200)],
                ("org/a", "test"): [{"instruction": "a test", "output": "x"}]}
        ratio, _ = self.prepare([{"name": "org/a", "weight": 1}, {"name": "org/b", "weight": 2}], rows=rows, num_examples=None)
        decimals, _ = self.prepare([{"name": "org/b", "weight": 0.666666667}, {"name": "org/a", "weight": 0.333333333}],
                                   rows=rows, num_examples=None)
        self.assertEqual(self.summary(ratio)["counts"], {"org/a": 100, "org/b": 200})
        self.assertEqual(self.summary(decimals), self.summary(ratio))

    def test_dedup_keeps_the_copy_of_the_source_first_by_name(self):
        rows = {(name, "train"): [{"instruction": "shared question", "output": f"copy from {name}"},
                                  {"instruction": f"{name} only", "output": "its own"}] for name in ("org/a", "org/b")}
        rows.update({key: value for key, value in self.ROWS.items() if key[1] == "test"})
        for sources in (["org/a", "org/b"], ["org/b", "org/a"]):
            with self.subTest(sources=sources):
                # 40 from pools of 1 and 2: whole copies, so every example that survives dedup is drawn
                prepared, _ = self.prepare([{"name": n, "weight": 1} for n in sources], rows=rows, num_examples=40)
                kept = {r["completion"] for r in prepared.train if "shared question" in r["prompt"]}
                self.assertEqual(kept, {"copy from org/a<|im_end|>"})
                self.assertEqual(prepared.stats.removed_by, {"dedup": 1})

    def test_without_task_datasets_every_source_is_evaluated_in_name_order(self):
        for sources in (["org/a", "org/b"], ["org/b", "org/a"]):
            with self.subTest(sources=sources):
                prepared, _ = self.prepare([{"name": n, "weight": 1} for n in sources])
                self.assertEqual(prepared.eval, {"test": [{"instruction": "a test", "output": "a reference"},
                                                          {"instruction": "b test", "output": "b reference"}]})
                # the task names no data: the evaluation is this trial's sources', and a note says so
                self.assertTrue(any(n.startswith("warning: the task names no data") for n in prepared.notes), prepared.notes)

    def test_trials_that_mix_other_sources_are_evaluated_on_the_same_examples(self):
        # the task declares its data without an evaluation dataset: its default strategy's sources (org/b at 0)
        # and one its search space weighs (org/c); a trial of org/a alone, of org/b alone, or of both
        rows = dict(self.ROWS)
        rows[("org/c", "train")] = [{"instruction": f"c question {i}", "output": f"c answer {i}"} for i in range(10)]
        job = json.loads(json.dumps(self.JOB))
        job["task"]["defaultStrategy"] = {"data": {"sources": [{"name": "org/a", "weight": 1}, {"name": "org/b", "weight": 0}]},
                                          "training": {"learningRate": 1e-4, "epochs": 1, "batchSize": 8}}
        job["task"]["searchSpace"] = {"parameters": [{"path": "data.mixture.org/c", "kind": "ordinal", "values": [0, 0.5]}]}
        mixtures = ([{"name": "org/a", "weight": 1}], [{"name": "org/b", "weight": 1}],
                    [{"name": "org/b", "weight": 3}, {"name": "org/a", "weight": 1}])
        # a test split where the sources have one (org/c has none); a held-out slice of each source where none does
        for evaluation in ({"splits": ["test"]}, {"splits": ["validation"]}):
            with self.subTest(evaluation=evaluation):
                trials = [self.prepare(m, evaluation=evaluation, rows=rows, job=job)[0] for m in mixtures]
                for prepared in trials[1:]:
                    self.assertEqual(prepared.eval, trials[0].eval)
                for prepared in trials:
                    self.assertFalse(any(n.startswith("warning: the task names no data") for n in prepared.notes))
                    trained = "".join(r["prompt"] for r in prepared.train)
                    for held in prepared.eval.get("holdout", []):
                        self.assertNotIn(f"user\n{held['instruction']}<|im_end|>", trained)
                if "test" in trials[0].eval:
                    self.assertEqual([r["instruction"] for r in trials[0].eval["test"]], ["a test", "b test"])
                else:
                    # one of each source's 11 rows (5%, at least one), drawn by a seed of the source alone
                    self.assertEqual(sorted(r["instruction"][0] for r in trials[0].eval["holdout"]), ["a", "b", "c"])

    def test_trials_of_formats_that_render_different_examples_are_evaluated_on_the_same_examples(self):
        # org/a's rows are half question/answer (both formats render them) and half instruction/output (only alpaca
        # does): each trial is scored over every example, the template's counting the ones it cannot render as failures
        def rows_of(split, n):
            return [{"question": f"{split} q{i}", "answer": f"{split} a{i}"} if i % 2 == 0
                    else {"instruction": f"{split} i{i}", "output": f"{split} o{i}"} for i in range(n)]

        rows = {("org/a", "train"): rows_of("train", 40), ("org/a", "test"): rows_of("test", 6)}
        job = json.loads(json.dumps(self.JOB))
        job["task"]["defaultStrategy"] = {"data": {"sources": [{"name": "org/a", "weight": 1}]},
                                          "training": {"learningRate": 1e-4, "epochs": 1, "batchSize": 8}}
        formats = ("alpaca", "template:Q: {question}\nA: {answer}")

        def echo(examples):  # a model that answers every prompt it is given right
            return [train._fallback_reference(r) for r in examples]

        for evaluation in ({"splits": ["test"], "maxExamples": 4}, {"splits": ["validation"], "extra": {"holdout": 0.25}}):
            with self.subTest(evaluation=evaluation):
                alpaca, template = (self.prepare([{"name": "org/a", "weight": 1}], evaluation=evaluation, rows=rows,
                                                 job=job, fmt=fmt)[0] for fmt in formats)
                split = next(iter(alpaca.eval))
                n = len(alpaca.eval[split])
                self.assertEqual(n, 4 if split == "test" else 10)
                self.assertEqual(template.eval, alpaca.eval)
                k = sum(1 for r in alpaca.eval[split] if "instruction" in r)
                self.assertGreater(k, 0)
                self.assertEqual((alpaca.unrenderable, template.unrenderable), ({split: 0}, {split: k}))
                self.assertIn(f"(unrenderable: {k} of {n})", " ".join(template.notes))
                # the metric counts all n: the template's k are failures, not left out
                fmt = parse_strategy({"data": {"format": formats[1]}}).data.template
                scores, missing = train.score_generations(["exact_match", "macro_f1"], template.eval[split], fmt, echo)
                self.assertEqual(missing, k)
                self.assertAlmostEqual(scores["exact_match"], (n - k) / n)
                full, none = train.score_generations(["exact_match"], alpaca.eval[split],
                                                     parse_strategy({"data": {"format": "alpaca"}}).data.template, echo)
                self.assertEqual((full, none), ({"exact_match": 1.0}, 0))

    def loss_task(self):
        """Rows half of which the Q/A format renders, a task of ``eval_loss`` only, and that format."""
        rows = {("org/a", "train"): [{"question": "q", "answer": "a"}, {"instruction": "i", "output": "o"}],
                ("org/a", "test"): [{"question": "q", "answer": "a"}, {"instruction": "i", "output": "o"}]}
        job = json.loads(json.dumps(self.JOB))
        job["task"]["metric"] = {"name": "eval_loss", "direction": "minimize"}
        return rows, job, "template:Q: {question}\nA: {answer}"

    def test_a_loss_metric_is_over_the_examples_the_format_renders_and_says_so(self):
        # the loss needs the example rendered, so it cannot count the others: a warning, and an error when none renders
        rows, job, fmt = self.loss_task()
        prepared, _ = self.prepare([{"name": "org/a", "weight": 1}], rows=rows, job=job, fmt=fmt)
        self.assertIn("warning: eval_loss is the loss on the 1 'test' examples the 'template:Q: {question}\\nA: {answer}' "
                      "format renders, not all 2: not comparable with trials of other formats", prepared.notes)
        rows[("org/a", "test")] = rows[("org/a", "test")][1:]
        with self.assertRaises(RecipeError) as caught:
            self.prepare([{"name": "org/a", "weight": 1}], rows=rows, job=job, fmt=fmt)
        self.assertEqual(caught.exception.path, "data.format")
        self.assertIn("renders none of the 1 'test' examples, so eval_loss", str(caught.exception))

    def test_a_format_that_renders_no_evaluation_example_scores_0_without_a_loss(self):
        # a generation metric: the trial gets no evaluation dataset (TRL cannot prepare an empty one, nor Trainer
        # evaluate without one) and scores every example as a failure, instead of dying after the model is loaded
        rows = {("org/a", "train"): [{"question": f"q{i}", "answer": f"a{i}"} for i in range(4)],
                ("org/a", "test"): [{"instruction": f"i{i}", "output": f"o{i}"} for i in range(3)]}
        fmt = "template:Q: {question}\nA: {answer}"
        prepared, _ = self.prepare([{"name": "org/a", "weight": 1}], rows=rows, fmt=fmt)
        template = parse_strategy({"data": {"format": fmt}}).data.template
        inputs = train.evaluation_inputs(prepared, template)
        self.assertEqual((inputs.split, inputs.loss_records), ("test", None))
        self.assertEqual(inputs.counts, {"test/num_examples": 3.0, "test/unrenderable": 3.0})
        self.assertIn("warning: the 'template:Q: {question}\\nA: {answer}' format renders none of the 3 'test' examples: "
                      "no eval_loss or perplexity for this trial (no evaluation dataset for the loss)", prepared.notes)
        training = parse_strategy({"training": {"extra": {"eval_strategy": "steps", "load_best_model_at_end": True,
                                                          "eval_on_start": True}}}).training
        kw = train.sft_config_kwargs(training, Path("/job/checkpoints"), bf16=False, fp16=False, evaluate=False)
        self.assertEqual(kw["eval_strategy"], "no")
        self.assertNotIn("load_best_model_at_end", kw)
        self.assertFalse(kw.get("eval_on_start", False))  # Trainer would evaluate before the first step, with no dataset
        with_eval = train.sft_config_kwargs(training, Path("/job"), bf16=False, fp16=False)
        self.assertEqual((with_eval["eval_strategy"], with_eval["eval_on_start"]), ("steps", True))

        def never(examples):  # nothing to generate for
            raise AssertionError(f"asked to generate for {len(examples)} examples")

        self.assertEqual(train.score_generations(["exact_match", "rouge1"], prepared.eval["test"], template, never),
                         ({"exact_match": 0.0, "rouge1": 0.0}, 3))

    def test_every_evaluation_reports_its_unrenderable_examples_also_a_loss_only_one(self):
        # <split>/unrenderable and <split>/num_examples come from the prepared data, not from the generation loop
        # that a task of loss metrics only never enters; the loss is over the example the format renders
        rows, job, fmt = self.loss_task()
        strategy = parse_strategy({"data": {"format": fmt}})
        self.assertEqual(resolve_eval_plan(strategy, parse_job(job).task).extra_metrics, ())
        prepared, _ = self.prepare([{"name": "org/a", "weight": 1}], rows=rows, job=job, fmt=fmt)
        inputs = train.evaluation_inputs(prepared, strategy.data.template)
        self.assertEqual(inputs.counts, {"test/num_examples": 2.0, "test/unrenderable": 1.0})
        self.assertEqual(inputs.loss_records, [strategy.data.template.to_record(rows[("org/a", "test")][0])])
        full = train.evaluation_inputs(self.prepare([{"name": "org/a", "weight": 1}], rows=rows, job=job, fmt="alpaca")[0],
                                       parse_strategy({"data": {"format": "alpaca"}}).data.template)
        self.assertEqual((full.counts["test/unrenderable"], len(full.loss_records or [])), (0.0, 2))

    def test_a_source_the_task_never_names_is_trained_on_not_evaluated(self):
        rows = dict(self.ROWS)
        rows[("org/new", "train")] = [{"instruction": f"new question {i}", "output": f"new answer {i}"} for i in range(10)]
        job = json.loads(json.dumps(self.JOB))
        job["task"]["defaultStrategy"] = {"data": {"sources": [{"name": "org/a", "weight": 1}]},
                                          "training": {"learningRate": 1e-4, "epochs": 1, "batchSize": 8}}
        for evaluation in ({"splits": ["test"]}, {"splits": ["validation"]}):
            with self.subTest(evaluation=evaluation):
                alone, _ = self.prepare([{"name": "org/a", "weight": 1}], evaluation=evaluation, rows=rows, job=job)
                both, _ = self.prepare([{"name": "org/a", "weight": 1}, {"name": "org/new", "weight": 1}],
                                       evaluation=evaluation, rows=rows, job=job)
                self.assertEqual(both.eval, alone.eval)
                self.assertTrue(any("new question" in r["prompt"] for r in both.train))
                self.assertIn("data.sources[1] (org/new) is not a source the task names: trained on, not evaluated", both.notes)
                self.assertFalse(any("is not a source the task names" in n for n in alone.notes))

    def test_a_source_of_weight_0_is_never_loaded(self):
        alone, _ = self.prepare([{"name": "org/b", "weight": 1}])
        for zero in ("org/a", "org/missing"):  # org/a would evaluate first by name and dedup; org/missing would fail
            for sources in ([{"name": zero, "weight": 0}, {"name": "org/b", "weight": 1}],
                            [{"name": "org/b", "weight": 3}, {"name": zero, "weight": 0}],
                            # a share the fingerprint rounds to 0 (under 5e-10): the same mixture as [b]
                            [{"name": "org/b", "weight": 1}, {"name": zero, "weight": 4e-10}]):
                with self.subTest(sources=sources):
                    prepared, calls = self.prepare(sources)
                    self.assertNotIn(zero, calls)
                    self.assertEqual(self.summary(prepared), self.summary(alone))
                    note = next(n for n in prepared.notes if f"({zero})" in n)
                    self.assertTrue(note.endswith("is a share of 0, not loaded"), note)


class LazyImportTest(unittest.TestCase):
    def test_pure_modules_do_not_import_heavy_stack(self):
        code = (
            "import sys\n"
            "import trex_hf_trl.protocol, trex_hf_trl.recipe, trex_hf_trl.templates, trex_hf_trl.mixture\n"
            "import trex_hf_trl.metrics, trex_hf_trl.data, trex_hf_trl.train\n"
            "heavy = [m for m in ('torch', 'transformers', 'datasets', 'trl', 'peft', 'accelerate', 'bitsandbytes') if m in sys.modules]\n"
            "print(','.join(heavy))\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], cwd=RECIPE_ROOT, capture_output=True, text=True, check=False)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout.strip(), "")


if __name__ == "__main__":
    unittest.main()
