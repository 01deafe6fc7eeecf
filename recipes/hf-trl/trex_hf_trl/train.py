"""Entry point: ``python -m trex_hf_trl.train`` (reads ``$TREX_JOB_DIR``).

Pipeline: read ``job.json`` + ``strategy.json`` -> load the sources -> transforms
-> filters (dedup across sources) -> prompt template -> seeded mixture ->
TRL ``SFTTrainer`` with a PEFT LoRA adapter (QLoRA: 4-bit NF4 base weights;
``full``: no adapter) -> evaluation on the task's evaluation split by greedy
generation plus the eval loss -> save the adapter -> ``result.json``.

Exit codes:

* ``0``   - success, ``result.json`` written;
* ``1``   - any other failure (message on stderr);
* ``2``   - invalid ``strategy.json``/``job.json``/data (message names the field);
* ``137`` - CUDA out of memory (``OOM: ...`` on stderr; the same code the kernel's
  OOM killer produces, so TREX can treat both alike: lower the batch size,
  sequence length or use ``qlora``);
* ``130`` - interrupted.

``--dry-run`` does everything up to loading the model (validation, data
loading, filtering, mixture, templating) and prints the plan as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import metrics as metrics_mod
from .data import DataError, classify_source, has_split_layout, load_records
from .mixture import MixtureError, PipelineStats, prepare_pools, sample_mixture
from .protocol import JOB_FILE, STRATEGY_FILE, ProtocolError, Reporter, job_dir_from_env, write_result
from .recipe import (
    EvalPlan,
    Job,
    LoraSpec,
    MixtureSource,
    RecipeError,
    Source,
    Strategy,
    TrainingSpec,
    canonical_mixture,
    load_job,
    load_strategy,
    parse_eval_transforms,
    resolve_eval_plan,
)
from .templates import Template, TemplateError, to_conversation

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130
EXIT_OOM = 137

DEFAULT_HOLDOUT_FRACTION = 0.05
DEFAULT_HOLDOUT_MAX = 500
HOLDOUT_SPLIT = "holdout"

Loader = Callable[[str, "str | None", "str | None"], list[dict[str, Any]]]


# --------------------------------------------------------------------------- pure helpers


def is_oom(exc: BaseException) -> bool:
    """True when ``exc`` (or anything in its cause/context chain) is an out-of-memory error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ in ("OutOfMemoryError", "OutOfMemoryException") or isinstance(current, MemoryError):
            return True
        text = str(current).lower()
        if "out of memory" in text and any(w in text for w in ("cuda", "hip", "mps", "cublas", "tried to allocate")):
            return True
        current = current.__cause__ or current.__context__
    return False


_SKIPPED_LOG_KEYS = ("runtime", "per_second", "flos", "total_flos")


def log_to_metrics(logs: Mapping[str, Any]) -> list[tuple[str, str, float]]:
    """Trainer ``on_log`` dict -> ``(split, name, value)`` triples.

    ``eval_*`` keys go to split ``eval``, ``train_*`` and bare keys to ``train``;
    throughput/runtime counters and non-finite values are skipped.
    """
    out: list[tuple[str, str, float]] = []
    for key, value in logs.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        if any(part in key for part in _SKIPPED_LOG_KEYS) or key == "step":
            continue
        if key.startswith("eval_"):
            out.append(("eval", key[len("eval_") :], float(value)))
        elif key.startswith("train_"):
            out.append(("train", key[len("train_") :], float(value)))
        else:
            out.append(("train", key, float(value)))
    return out


def lora_kwargs(lora: LoraSpec) -> dict[str, Any]:
    """Keyword arguments for ``peft.LoraConfig``."""
    return {
        "r": lora.rank,
        "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "target_modules": list(lora.target_modules) if lora.target_modules is not None else "all-linear",
        "bias": "none",
        "task_type": "CAUSAL_LM",
    }


def sft_config_kwargs(training: TrainingSpec, output_dir: Path, *, bf16: bool, fp16: bool, evaluate: bool = True) -> dict[str, Any]:
    """Keyword arguments for ``trl.SFTConfig``; ``training.extra`` overrides the rest.

    ``evaluate=False`` (no evaluation dataset for the loss, :class:`EvalInputs`): no evaluation during
    training whatever ``training.extra`` asks (``Trainer`` refuses an ``eval_strategy`` without a dataset).
    """
    kwargs: dict[str, Any] = {
        "output_dir": str(output_dir),
        "num_train_epochs": training.epochs,
        "per_device_train_batch_size": training.batch_size,
        "per_device_eval_batch_size": training.batch_size,
        "learning_rate": training.learning_rate,
        "lr_scheduler_type": training.schedule,
        "warmup_ratio": training.warmup_ratio,
        "seed": training.seed % 2**32,  # TREX allows any integer; numpy wants 0..2**32-1
        "data_seed": training.seed % 2**32,
        "logging_steps": 10,
        "logging_first_step": True,
        "save_strategy": "no",
        "eval_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "bf16": bf16,
        "fp16": fp16,
    }
    if training.method == "qlora":
        kwargs["gradient_checkpointing"] = True
        kwargs["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    if training.max_seq_length is not None:
        kwargs["max_length"] = training.max_seq_length
    if training.schedule == "cosine_with_min_lr":
        kwargs["lr_scheduler_kwargs"] = {"min_lr_rate": 0.1}
    for key, value in training.extra.items():
        if key == "output_dir":
            continue
        kwargs[key] = value
    if not evaluate:
        kwargs["eval_strategy"] = "no"
        kwargs.pop("load_best_model_at_end", None)  # it needs an evaluation at each save
        kwargs.pop("eval_on_start", None)  # an evaluation before the first step (its default: False)
    return kwargs


@dataclass
class PreparedData:
    train: list[dict[str, Any]]  # prompt/completion records for TRL
    # split -> raw examples (rendered at evaluation time): all of them, whatever the trial's format renders
    eval: dict[str, list[dict[str, Any]]]
    counts: list[int]  # examples drawn from each of ``sources``
    stats: PipelineStats
    sources: list[Source]  # the mixture's sources in canonical order (share 0 left out)
    notes: list[str] = field(default_factory=list)
    unrenderable: dict[str, int] = field(default_factory=dict)  # split -> its examples the format cannot render


def _render_pool(pool: Sequence[dict[str, Any]], template: Template, label: str, notes: list[str]) -> list[dict[str, Any]]:
    rendered: list[dict[str, Any]] = []
    first_error: str | None = None
    for record in pool:
        try:
            rendered.append(template.to_record(record))
        except TemplateError as exc:
            first_error = first_error or str(exc)
    skipped = len(pool) - len(rendered)
    if skipped:
        notes.append(f"{label}: skipped {skipped} of {len(pool)} examples the {template.name!r} template cannot render ({first_error})")
    if pool and not rendered:
        raise RecipeError("data.format", f"{label}: no example fits the {template.name!r} template: {first_error}")
    return rendered


def render_error(record: dict[str, Any], template: Template) -> str | None:
    """Why the template cannot render an evaluation example (its prompt and its reference), or ``None``."""
    try:
        template.prompt(record)
        template.reference(record)
    except TemplateError as exc:
        return str(exc)
    return None


def _eval_ready(examples: Sequence[dict[str, Any]], transforms: Sequence[Any]) -> list[dict[str, Any]]:
    """Evaluation examples as scored: ``evaluation.extra.transforms`` applied (one record in, one out).

    Every example is kept, also one the trial's format cannot render: it is scored as a failure
    (:func:`score_generations`), so trials of every format are scored over the same examples.
    """
    out = [dict(r) for r in examples]
    for transform in transforms:
        out = transform.apply(out)
    return out


def _fallback_reference(record: dict[str, Any]) -> str | None:
    """An example's answer read without the trial's format (for ``macro_f1`` of an example it cannot render)."""
    try:
        return to_conversation(record).answer
    except TemplateError:
        return None


def score_generations(
    names: Sequence[str],
    examples: Sequence[dict[str, Any]],
    template: Template,
    predict: Callable[[list[dict[str, Any]]], list[str]],
) -> tuple[dict[str, float], int]:
    """Each generation metric over all ``examples``, and how many of them the template cannot render.

    ``predict`` generates for the examples the template renders; one it cannot render has no
    prediction and counts as a failure (``metrics``: 0 in a per-example mean), so the metric is
    over the same examples for every format, comparable between trials.
    """
    ok = [i for i, record in enumerate(examples) if render_error(record, template) is None]
    generated = predict([examples[i] for i in ok]) if ok else []
    if len(generated) != len(ok):
        raise RuntimeError(f"{len(generated)} generations for {len(ok)} examples")
    preds: list[str | None] = [None] * len(examples)
    refs: list[str | None] = [_fallback_reference(record) for record in examples]
    for i, text in zip(ok, generated):
        preds[i] = text
        refs[i] = template.reference(examples[i])
    return {name: metrics_mod.compute_metric(name, preds, refs) for name in names}, len(examples) - len(ok)


@dataclass(frozen=True)
class EvalInputs:
    """What the evaluation gets from the prepared data, before a model is loaded."""

    split: str  # the first evaluation split: the loss's, and the primary metric's
    # its examples the format renders, as TRL records, for eval_loss/perplexity; ``None`` when it renders
    # none of them: no evaluation dataset and no loss (``datasets``/TRL cannot take an empty one)
    loss_records: list[dict[str, Any]] | None
    counts: dict[str, float]  # ``<split>/num_examples`` and ``<split>/unrenderable`` of every split, whatever the metrics


def evaluation_inputs(prepared: PreparedData, template: Template) -> EvalInputs:
    """The loss's records and the per-split counts every evaluation reports (loss and generation metrics alike)."""
    split = next(iter(prepared.eval))
    records = [template.to_record(r) for r in prepared.eval[split] if render_error(r, template) is None]
    counts: dict[str, float] = {}
    for name, examples in prepared.eval.items():
        counts[f"{name}/num_examples"] = float(len(examples))
        counts[f"{name}/unrenderable"] = float(prepared.unrenderable.get(name, 0))
    return EvalInputs(split=split, loss_records=records or None, counts=counts)


RawIdentity = tuple[str, str, str | None]


def _prompt_key(record: dict[str, Any], template: Template) -> str | None:
    """A record's prompt as the template renders it, as text (``None`` when it cannot render it)."""
    try:
        return json.dumps(template.prompt(record), sort_keys=True, ensure_ascii=False)
    except TemplateError:
        return None


def _raw_identity(source: Source) -> RawIdentity:
    """What a loader reads for a source: its name, split and config (``maxExamples`` caps it later)."""
    return (source.name, source.split, source.config)


def evaluation_sources(job: Job, mixture: Sequence[MixtureSource]) -> tuple[list[RawIdentity], bool]:
    """The sources evaluated when the task's datasets hold no evaluation split, and whether the task fixed them.

    The task's datasets with a ``train`` split, else the sources it declares (its default strategy's,
    at any weight, and those its search space weighs): the same for every trial, whatever it mixes.
    A task that names none: this trial's own sources (``False``: trials that mix others are scored on
    other examples). By name, then split and config.
    """
    declared = [Source(name=d.uri, split="train") for d in job.task.datasets if d.splits is None or "train" in d.splits]
    if not declared:
        declared = list(job.task.declared_sources)
    fixed = bool(declared)
    if not fixed:
        declared = [m.source for m in mixture]
    idents = {_raw_identity(s) for s in declared}
    return sorted(idents, key=lambda t: (t[0], t[1], t[2] is not None, t[2] or "")), fixed


def prepare_data(
    strategy: Strategy,
    job: Job,
    plan: EvalPlan,
    *,
    loader: Loader,
    log: Callable[[str], None] = lambda _m: None,
    base_dirs: Sequence[Path] = (),
) -> PreparedData:
    """Load, transform, filter, template and mix the data; find the evaluation examples."""
    data = strategy.data
    notes: list[str] = []
    written: tuple[Source, ...] = data.sources
    if not written:
        written = tuple(Source(name=d.uri, split="train") for d in job.task.datasets if d.splits is None or "train" in d.splits)
        if not written:
            raise RecipeError("data.sources", "no sources given and the task has no dataset with a 'train' split; list at least one source")
        notes.append("data.sources empty: training on the task's datasets")
    # The mixture as the fingerprint reads it: by name, sources of share 0 left out. Every step
    # below that depends on a position follows this order, so equal fingerprints get equal data.
    mixture = canonical_mixture(written)
    used = {m.index for m in mixture}
    for index, source in enumerate(written):
        if index not in used:
            notes.append(f"data.sources[{index}] ({source.name}): weight {source.weight:g} is a share of 0, not loaded")
    sources = [m.source for m in mixture]
    raw_pools: list[list[dict[str, Any]]] = []
    for m in mixture:
        try:
            records = loader(m.source.name, m.source.split, m.source.config)
        except DataError as exc:
            raise RecipeError(f"data.sources[{m.index}].name", str(exc)) from None
        log(f"loaded {len(records)} examples from {m.source.name} [{m.source.split}]")
        raw_pools.append(records)

    # Evaluation examples: the task's datasets first, else the evaluation split of each source the task
    # declares, else a held-out slice of each. Those sources are the task's (its datasets, else its
    # default strategy's and search space's), never this trial's mixture, so every trial is scored on
    # the same examples; only a task that names no data at all is evaluated on the trial's own sources.
    eval_sources, fixed = evaluation_sources(job, mixture)
    eval_transforms = parse_eval_transforms(strategy)
    evaluation: dict[str, list[dict[str, Any]]] = {}
    for split in plan.splits:
        candidates = [
            d for d in job.task.datasets if (split in d.splits if d.splits is not None else has_split_layout(d.uri, base_dirs))
        ]
        declared = {d.uri for d in job.task.datasets if d.splits is not None and split in d.splits}
        found: list[dict[str, Any]] = []
        for dataset in candidates:
            try:
                found.extend(loader(dataset.uri, split, None))
            except DataError as exc:
                if dataset.uri in declared:
                    raise RecipeError("task.datasets", f"{dataset.uri}: cannot load declared split {split!r}: {exc}") from None
                log(f"no {split!r} split in {dataset.uri}: {exc}")
        if not found and not job.task.datasets:
            for name, _train_split, config in eval_sources:
                if not has_split_layout(name, base_dirs):
                    continue
                try:
                    found.extend(loader(name, split, config))
                except DataError as exc:
                    log(f"no {split!r} split in {name}: {exc}")
        found = _eval_ready(found, eval_transforms)
        if found:
            evaluation[split] = found[: plan.max_examples] if plan.max_examples else found
        for m in mixture:
            if m.source.split == split and any(d.uri == m.source.name or d.name == m.source.name for d in candidates):
                notes.append(f"warning: data.sources[{m.index}] trains on the evaluation split {split!r} of {m.source.name}")

    if not evaluation:
        fraction = strategy.evaluation.extra.get("holdout", DEFAULT_HOLDOUT_FRACTION)
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise RecipeError("evaluation.extra.holdout", f"expected a fraction between 0 and 1, got {fraction!r}")
        # each source's slice is its own, drawn from its records as loaded (before this trial's transforms
        # and filters) by a seed of the source alone, and taken out of any training pool of it
        per_source = math.ceil((plan.max_examples or DEFAULT_HOLDOUT_MAX) / len(eval_sources))
        held: list[dict[str, Any]] = []
        held_prompts: set[str] = set()
        for ident in eval_sources:
            at = [i for i, m in enumerate(mixture) if _raw_identity(m.source) == ident]
            if at:
                records = raw_pools[at[0]]
            else:
                try:
                    records = loader(*ident)
                except DataError as exc:
                    raise RecipeError("evaluation", f"{ident[0]} [{ident[1]}]: cannot load it to hold out evaluation examples: {exc}") from None
            order = list(range(len(records)))
            random.Random("holdout:" + json.dumps(ident, ensure_ascii=False)).shuffle(order)
            want = min(per_source, max(1, int(len(records) * fraction)))
            # the first records of the seeded order, whatever this trial's format renders (one it cannot
            # render is held out too, and scored as a failure): every trial holds out the same examples
            taken = set(order[:want])
            held.extend(_eval_ready([records[j] for j in sorted(taken)], eval_transforms))
            held_prompts.update(k for k in (_prompt_key(records[j], data.template) for j in taken) if k is not None)
            for i in at:
                raw_pools[i] = [r for j, r in enumerate(raw_pools[i]) if j not in taken]
        # nor is a held-out prompt trained on under another record (a duplicate, another answer, another source)
        raw_pools = [[r for r in pool if _prompt_key(r, data.template) not in held_prompts] for pool in raw_pools]
        if not held:
            raise RecipeError("evaluation.splits", f"no examples for splits {list(plan.splits)} and nothing to hold out")
        evaluation[HOLDOUT_SPLIT] = held
        notes.append(f"no evaluation split {list(plan.splits)} found: evaluating on {len(held)} held-out examples of {len(eval_sources)} source(s)")
    unrenderable: dict[str, int] = {}
    for split, examples in evaluation.items():
        errors = [e for e in (render_error(r, data.template) for r in examples) if e is not None]
        unrenderable[split] = len(errors)
        if errors:
            notes.append(
                f"evaluation {split!r}: the {data.template.name!r} format cannot render {len(errors)} of {len(examples)} examples "
                f"({errors[0]}); each is scored as a failure, 0 (unrenderable: {len(errors)} of {len(examples)})"
            )
    if evaluation and metrics_mod.is_loss_metric(plan.metric):
        first = next(iter(evaluation))
        if unrenderable[first]:
            notes.append(
                f"warning: {plan.metric} is the loss on the {len(evaluation[first]) - unrenderable[first]} {first!r} examples the "
                f"{data.template.name!r} format renders, not all {len(evaluation[first])}: not comparable with trials of other formats"
            )
        if unrenderable[first] == len(evaluation[first]):
            raise RecipeError(
                "data.format",
                f"the {data.template.name!r} format renders none of the {len(evaluation[first])} {first!r} examples, "
                f"so {plan.metric} (from the model's loss on them) cannot be computed; choose a format that renders them",
            )
    elif evaluation:
        first = next(iter(evaluation))
        if unrenderable[first] == len(evaluation[first]):
            notes.append(
                f"warning: the {data.template.name!r} format renders none of the {len(evaluation[first])} {first!r} examples: "
                "no eval_loss or perplexity for this trial (no evaluation dataset for the loss)"
            )
    if fixed:
        # a source the task never names (a researcher's proposal) is trained on but not evaluated: the
        # evaluation is the task's, the same examples for every trial
        named = {ident[0] for ident in eval_sources} | {d.uri for d in job.task.datasets} | {d.name for d in job.task.datasets}
        for m in mixture:
            if m.source.name not in named:
                notes.append(f"data.sources[{m.index}] ({m.source.name}) is not a source the task names: trained on, not evaluated")
    if not fixed and not (job.task.datasets and HOLDOUT_SPLIT not in evaluation):
        notes.append(
            "warning: the task names no data (task.datasets, defaultStrategy.data.sources, searchSpace data.mixture.*): evaluating on "
            "this trial's own sources, so a trial that mixes other sources is scored on other examples; name the data in the task to compare them"
        )

    pools, stats = prepare_pools(raw_pools, data.compiled_transforms, data.compiled_filters)
    for position, m in enumerate(mixture):
        cap = m.source.max_examples
        if cap is not None and len(pools[position]) > cap:
            rng = random.Random(f"cap:{strategy.training.seed}:{m.key}")
            pools[position] = rng.sample(pools[position], cap)
            notes.append(f"data.sources[{m.index}]: capped at maxExamples={cap}")

    rendered = [_render_pool(pool, data.template, sources[i].name, notes) for i, pool in enumerate(pools)]
    weights = [m.share for m in mixture]  # as the fingerprint reads them: equal fingerprints, equal counts
    try:
        mixed = sample_mixture(
            rendered, weights, data.num_examples, strategy.training.seed, keys=[m.key for m in mixture], replacement=data.replacement
        )
    except MixtureError as exc:
        raise RecipeError("data.sources", str(exc)) from None
    if not mixed.records:
        raise RecipeError("data", "no training examples left after filters; loosen data.filters or add sources")
    if data.num_examples is not None and len(mixed.records) < data.num_examples:
        notes.append(f"only {len(mixed.records)} of {data.num_examples} requested examples available without replacement")
    if data.synthesis is not None and data.synthesis.count > 0:
        notes.append(f"data.synthesis ({data.synthesis.method}, {data.synthesis.count}) is not supported by this recipe and was ignored")
    return PreparedData(
        train=mixed.records, eval=evaluation, counts=mixed.counts, stats=stats, sources=sources, notes=notes, unrenderable=unrenderable
    )


def default_loader(job_dir: Path) -> Loader:
    def load(name: str, split: str | None, config: str | None) -> list[dict[str, Any]]:
        return load_records(name, split, config, base_dirs=[job_dir])

    return load


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") in ("", "0")


# --------------------------------------------------------------------------- heavy parts (lazy imports)


def _precision() -> tuple[Any, bool, bool]:  # pragma: no cover - needs torch
    import torch

    if torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, True, False
        return torch.float16, False, True
    return torch.float32, False, False


def load_model_and_tokenizer(base_model: str, training: TrainingSpec) -> tuple[Any, Any, bool, bool]:  # pragma: no cover
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype, bf16, fp16 = _precision()
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs: dict[str, Any] = {"dtype": dtype}
    if training.method == "qlora":
        if not torch.cuda.is_available():
            raise RecipeError("training.method", "qlora needs a CUDA GPU (bitsandbytes 4-bit); use 'lora' or 'full' on this machine")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=True,
        )
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    model = AutoModelForCausalLM.from_pretrained(base_model, **kwargs)
    if training.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=bool(training.extra.get("gradient_checkpointing", True))
        )
    return model, tokenizer, bf16, fp16


def build_sft_config(
    training: TrainingSpec, output_dir: Path, bf16: bool, fp16: bool, log: Callable[[str], None], *, evaluate: bool
) -> Any:  # pragma: no cover
    import dataclasses

    from trl import SFTConfig

    kwargs = sft_config_kwargs(training, output_dir, bf16=bf16, fp16=fp16, evaluate=evaluate)
    known = {f.name for f in dataclasses.fields(SFTConfig)}
    unknown = sorted(k for k in kwargs if k not in known)
    if unknown:
        log(f"ignoring options this TRL version does not know: {', '.join(unknown)}")
    return SFTConfig(**{k: v for k, v in kwargs.items() if k in known})


def make_callback(reporter: Reporter, span: tuple[float, float] = (0.1, 0.85)) -> Any:  # pragma: no cover
    from transformers import TrainerCallback

    lo, hi = span

    class TrexCallback(TrainerCallback):  # type: ignore[misc]
        def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
            if not state.is_world_process_zero or not logs:
                return
            for split, name, value in log_to_metrics(logs):
                reporter.metric(name, value, step=state.global_step, split=split)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not state.is_world_process_zero or not state.max_steps:
                return
            every = max(1, int(getattr(args, "logging_steps", 10) or 10))
            if state.global_step % every == 0 or state.global_step == state.max_steps:
                fraction = lo + (hi - lo) * state.global_step / state.max_steps
                reporter.progress(fraction, f"training step {state.global_step}/{state.max_steps}")

    return TrexCallback()


def generate_predictions(
    model: Any, tokenizer: Any, template: Template, examples: Sequence[dict[str, Any]], *, max_new_tokens: int, batch_size: int
) -> list[str]:  # pragma: no cover - needs torch
    import torch

    tokenizer.padding_side = "left"
    prompts: list[str] = []
    for record in examples:
        prompt = template.prompt(record)
        if template.conversational:
            prompt = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        prompts.append(prompt)
    stops = [s for s in (*template.stop, tokenizer.eos_token, tokenizer.pad_token) if s]
    gen_kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    if template.stop:
        gen_kwargs["stop_strings"] = list(template.stop)
        gen_kwargs["tokenizer"] = tokenizer
    model.eval()
    outputs: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=not template.conversational).to(model.device)
        with torch.no_grad():
            out = model.generate(**enc, **gen_kwargs)
        texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=False)
        for text in texts:
            end = len(text)
            for marker in stops:
                pos = text.find(marker)
                if pos != -1:
                    end = min(end, pos)
            outputs.append(text[:end].strip())
    return outputs


def train_and_evaluate(
    job_dir: Path, strategy: Strategy, job: Job, plan: EvalPlan, prepared: PreparedData, reporter: Reporter
) -> tuple[dict[str, float], float, list[dict[str, str]], str]:  # pragma: no cover - needs a GPU stack
    from datasets import Dataset
    from trl import SFTTrainer

    training = strategy.training
    template = strategy.data.template
    reporter.progress(0.06, f"loading {job.task.base_model}")
    model, tokenizer, bf16, fp16 = load_model_and_tokenizer(job.task.base_model, training)
    peft_config = None
    if training.method in ("lora", "qlora"):
        from peft import LoraConfig

        peft_config = LoraConfig(**lora_kwargs(training.lora))
    # the loss needs the example rendered: over those the format renders (prepare_data refuses a loss metric
    # when it renders none; otherwise no loss); the generation metrics below count the others as failures
    inputs = evaluation_inputs(prepared, template)
    first_split = inputs.split
    config = build_sft_config(training, job_dir / "checkpoints", bf16, fp16, reporter.log, evaluate=inputs.loss_records is not None)
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(prepared.train),
        eval_dataset=Dataset.from_list(inputs.loss_records) if inputs.loss_records is not None else None,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[make_callback(reporter)],
    )
    reporter.progress(0.1, f"training on {len(prepared.train)} examples")
    started = time.monotonic()
    output = trainer.train()
    metrics: dict[str, float] = {
        "train_loss": float(output.training_loss),
        "train_runtime_seconds": time.monotonic() - started,
        "num_train_examples": float(len(prepared.train)),
    }
    reporter.progress(0.85, "evaluating")
    metrics.update(inputs.counts)
    eval_out = trainer.evaluate() if inputs.loss_records is not None else {}
    if "eval_loss" in eval_out:
        metrics["eval_loss"] = float(eval_out["eval_loss"])
        metrics["perplexity"] = metrics_mod.perplexity_from_loss(metrics["eval_loss"])
        reporter.metric("loss", metrics["eval_loss"], step=trainer.state.global_step, split=first_split)
    generation_metrics = [m for m in (plan.metric, *plan.extra_metrics) if not metrics_mod.is_loss_metric(m)]
    model_for_eval = trainer.model
    config_obj = getattr(model_for_eval, "config", None)
    if config_obj is not None:
        config_obj.use_cache = True  # training may have turned the KV cache off (gradient checkpointing)
    batch_size = int(strategy.evaluation.extra.get("batchSize", training.batch_size))
    unrenderable: list[str] = []
    for index, (split, examples) in enumerate(prepared.eval.items()):
        if not generation_metrics:
            break
        scores, missing = score_generations(
            generation_metrics,
            examples,
            template,
            lambda ready: generate_predictions(
                model_for_eval, tokenizer, template, ready, max_new_tokens=plan.max_new_tokens, batch_size=batch_size
            ),
        )
        if missing:
            unrenderable.append(f"unrenderable: {missing} of {len(examples)} on {split}")
        for name, value in scores.items():
            metrics[f"{split}/{name}"] = value
            if index == 0:
                metrics[name] = value
            reporter.metric(name, value, step=trainer.state.global_step, split=split)
        reporter.progress(0.85 + 0.12 * (index + 1) / len(prepared.eval), f"evaluated {split}")
    primary = metrics.get(plan.metric)
    if primary is None:
        raise RuntimeError(f"the primary metric {plan.metric!r} was not computed")
    artifact = "adapter" if peft_config is not None else "model"
    trainer.save_model(str(job_dir / artifact))
    tokenizer.save_pretrained(str(job_dir / artifact))
    summary = (
        f"{training.method} on {job.task.base_model}: {len(prepared.train)} examples, "
        f"{training.epochs:g} epochs, lr {training.learning_rate:g}; {plan.metric}={primary:.4f} on {first_split}"
    )
    if unrenderable:
        summary += " (" + ", ".join(unrenderable) + ", each scored as a failure)"
    if prepared.notes:
        summary += " | " + "; ".join(prepared.notes)
    return metrics, primary, [{"name": artifact, "path": artifact}], summary


# --------------------------------------------------------------------------- main


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m trex_hf_trl.train", description="TREX HF TRL recipe")
    parser.add_argument("--job-dir", type=Path, default=None, help="defaults to $TREX_JOB_DIR")
    parser.add_argument("--dry-run", action="store_true", help="validate and prepare the data, print the plan, do not train")
    return parser.parse_args(argv)


def run(job_dir: Path, *, dry_run: bool, reporter: Reporter, loader: Loader | None = None) -> int:
    reporter.progress(0.0, "reading strategy")
    strategy = load_strategy(job_dir / STRATEGY_FILE)
    job = load_job(job_dir / JOB_FILE)
    plan = resolve_eval_plan(strategy, job.task)
    if strategy.training.method == "full" and strategy.training.lora != LoraSpec():
        reporter.log("training.method is 'full': training.lora is ignored")
    prepared = prepare_data(
        strategy, job, plan, loader=loader or default_loader(job_dir), log=reporter.log, base_dirs=[job_dir]
    )
    for note in prepared.notes:
        reporter.log(note)
    reporter.progress(0.05, f"prepared {len(prepared.train)} training examples")
    if dry_run:
        report = {
            "baseModel": job.task.base_model,
            "method": strategy.training.method,
            "format": strategy.data.format,
            "train": len(prepared.train),
            "perSource": [
                {"name": s.name, "kind": classify_source(s.name)[0], "loaded": prepared.stats.loaded[i], "sampled": prepared.counts[i]}
                for i, s in enumerate(prepared.sources)
            ],
            "removedBy": prepared.stats.removed_by,
            "eval": {split: len(ex) for split, ex in prepared.eval.items()},
            "unrenderable": prepared.unrenderable,
            "plan": asdict(plan),
            "sftConfig": sft_config_kwargs(
                strategy.training,
                job_dir / "checkpoints",
                bf16=False,
                fp16=False,
                evaluate=evaluation_inputs(prepared, strategy.data.template).loss_records is not None,
            ),
            "lora": lora_kwargs(strategy.training.lora) if strategy.training.method != "full" else None,
            "notes": prepared.notes,
            "firstExample": prepared.train[0],
        }
        print(json.dumps(report, indent=2, ensure_ascii=False, default=str))
        return EXIT_OK
    metrics, primary, artifacts, summary = train_and_evaluate(job_dir, strategy, job, plan, prepared, reporter)
    if is_main_process():
        write_result(job_dir, metrics=metrics, primary=primary, artifacts=artifacts, summary=summary)
        reporter.progress(1.0, "done")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    reporter = Reporter(None)
    try:
        job_dir = args.job_dir if args.job_dir is not None else job_dir_from_env()
        if not job_dir.is_dir():
            raise ProtocolError(f"job directory {str(job_dir)!r} does not exist")
        reporter = Reporter(job_dir)
        return run(job_dir, dry_run=args.dry_run, reporter=reporter)
    except (RecipeError, ProtocolError) as exc:
        print(f"[trex-hf-trl] invalid job: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        print("[trex-hf-trl] interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BaseException as exc:  # noqa: BLE001 - the protocol wants an exit code, not a traceback crash
        if isinstance(exc, SystemExit):
            raise
        if is_oom(exc):
            print(
                f"[trex-hf-trl] OOM: out of GPU memory ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "lower training.batchSize or training.maxSeqLength, raise gradient_accumulation_steps, or use qlora",
                file=sys.stderr,
            )
            return EXIT_OOM
        traceback.print_exc(file=sys.stderr)
        print(f"[trex-hf-trl] failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
