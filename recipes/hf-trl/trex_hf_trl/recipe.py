"""Parse and validate ``strategy.json`` and ``job.json`` into typed dataclasses.

Every problem raises :class:`RecipeError` naming the field path and what to
write instead, e.g. ``training.learningRate: expected a positive number, got -1``.
Missing optional fields take the defaults below; unknown fields are ignored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from . import metrics as metrics_mod
from .mixture import REPLACEMENT_MODES, Filter, MixtureError, Transform, compile_filter, compile_transform
from .templates import Template, TemplateError, get_template

METHODS = ("full", "lora", "qlora")
SCHEDULES = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "warmup_stable_decay",
)
DIRECTIONS = ("maximize", "minimize")

DEFAULT_FORMAT = "alpaca"
DEFAULT_METHOD = "full"  # as in TREX's TrainingConfig schema
DEFAULT_LEARNING_RATE = 2e-4
DEFAULT_SCHEDULE = "cosine"
DEFAULT_WARMUP_RATIO = 0.03
DEFAULT_EPOCHS = 1.0
DEFAULT_BATCH_SIZE = 8
DEFAULT_SPLITS = ("test",)


class RecipeError(ValueError):
    """An invalid strategy or job; ``path`` names the offending field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.detail = message


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class Source:
    name: str
    weight: float = 1.0
    split: str = "train"
    config: str | None = None
    max_examples: int | None = None  # cap on this source's examples after filters (seeded sample)


BILLION = 10**9  # the fingerprint keeps a share to 9 decimals


def fingerprint_shares(weights: tuple[float, ...] | list[float]) -> list[int] | None:
    """Each weight's share of their sum in billionths, exactly as ``Fingerprint.mixture`` rounds it.

    As TREX's TypeScript reads it: ``weight / total * 1e9`` to the nearest integer (a half up),
    in exact arithmetic on the numbers the weights are (Python's fractions here), so the order
    they are written in never changes a share. ``None`` when the weights do not sum to a
    positive finite number (the fingerprint then keeps them as written).
    """
    float_total = 0.0
    for weight in weights:
        float_total += float(weight)
    if not float_total > 0 or not math.isfinite(float_total):
        return None
    total = sum((Fraction(float(weight)) for weight in weights), Fraction(0))
    return [math.floor(Fraction(float(weight)) * BILLION / total + Fraction(1, 2)) for weight in weights]


def _simplest_between(lo: Fraction, hi: Fraction) -> Fraction:
    """The fraction of smallest denominator in ``[lo, hi]`` (0 <= lo < hi), by continued fractions."""
    whole = math.floor(lo)
    if whole == lo or whole + 1 <= hi:
        return Fraction(whole if whole == lo else whole + 1)
    return whole + 1 / _simplest_between(1 / (hi - whole), 1 / (lo - whole))


def share_of(billionths: int) -> Fraction:
    """The share the recipe reads for a fingerprint share of ``billionths`` / 1e9.

    The simplest fraction that rounds to it: 0.333333333 is 1/3, 0.5 is 1/2, 0.7 is 7/10. It
    depends on the fingerprint's share alone, so two mixtures with one fingerprint draw the
    same counts (``[1, 2]`` and ``[0.333333333, 0.666666667]`` both read 1/3 and 2/3), and a
    ratio of small numbers is read exactly (its rounded decimals would cost an example: 299 of
    pools of 100 and 200, not 300).
    """
    return _simplest_between(Fraction(2 * billionths - 1, 2 * BILLION), Fraction(2 * billionths + 1, 2 * BILLION))


@dataclass(frozen=True)
class MixtureSource:
    """A source of the mixture in canonical form; ``index`` is its place in ``data.sources`` as written."""

    index: int
    source: Source
    key: str  # the source's identity, weight aside: seeds its draw
    share: Fraction  # its weight as the recipe reads it: see :func:`share_of`


def canonical_mixture(sources: tuple[Source, ...]) -> list[MixtureSource]:
    """The sources as TREX's fingerprint reads a mixture (``Fingerprint.mixture``).

    Only a weight's share counts, the list's order means nothing and a source of
    weight 0 is no source. Each share is rounded to 9 decimals as the fingerprint
    rounds it (:func:`fingerprint_shares`) and read as the simplest fraction that
    rounds so (:func:`share_of`); sources whose share rounds to 0 are left out
    (never loaded): a weight of 0, or a share under 5e-10. The rest are put in
    the order of their names, then of their other fields (``split``, ``config``,
    ``maxExamples``, then the share): everything that
    depends on a position (which copy ``dedup`` keeps, the held-out slice, the
    evaluation source, a tie in the example counts) follows that order, and a
    source's draw is seeded by its key (name, split, config, maxExamples), not
    by its place. ``[a 1, b 1]``, ``[b 1, a 1]``, ``[a 2, b 2]``,
    ``[a 1, z 0, b 1]`` and ``[a 0.5000000001, b 0.4999999999]`` give the same data.
    """
    billionths = fingerprint_shares([s.weight for s in sources])
    if billionths is None:
        return []
    kept = [(i, s, billionths[i]) for i, s in enumerate(sources) if billionths[i] > 0]

    def identity(s: Source) -> tuple[str, str, bool, str, bool, int]:
        return (s.name, s.split, s.config is not None, s.config or "", s.max_examples is not None, s.max_examples or 0)

    kept.sort(key=lambda entry: (identity(entry[1]), entry[2]))
    out: list[MixtureSource] = []
    seen: dict[tuple[str, str, bool, str, bool, int], int] = {}
    for index, source, share in kept:
        ident = identity(source)
        repeat = seen.get(ident, 0)  # a source listed twice alike: its copies draw apart
        seen[ident] = repeat + 1
        key = json.dumps([source.name, source.split, source.config, source.max_examples, repeat], ensure_ascii=False)
        out.append(MixtureSource(index=index, source=source, key=key, share=share_of(share)))
    return out


@dataclass(frozen=True)
class StepSpec:
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Synthesis:
    method: str
    count: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataSpec:
    sources: tuple[Source, ...] = ()
    format: str = DEFAULT_FORMAT
    num_examples: int | None = None
    filters: tuple[StepSpec, ...] = ()
    transforms: tuple[StepSpec, ...] = ()
    synthesis: Synthesis | None = None
    replacement: str = "auto"  # data.extra.replacement
    extra: Mapping[str, Any] = field(default_factory=dict)
    template: Template = field(default_factory=lambda: get_template(DEFAULT_FORMAT), compare=False, repr=False)
    compiled_filters: tuple[Filter, ...] = field(default=(), compare=False, repr=False)
    compiled_transforms: tuple[Transform, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class LoraSpec:
    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    target_modules: tuple[str, ...] | None = None  # None = every linear layer ("all-linear")


@dataclass(frozen=True)
class TrainingSpec:
    method: str = DEFAULT_METHOD
    learning_rate: float = DEFAULT_LEARNING_RATE
    schedule: str = DEFAULT_SCHEDULE
    warmup_ratio: float = DEFAULT_WARMUP_RATIO
    epochs: float = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    seed: int = 0
    lora: LoraSpec = field(default_factory=LoraSpec)
    max_seq_length: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationSpec:
    """``None`` fields were not set by the strategy (the task's plan then applies)."""

    splits: tuple[str, ...] | None = None
    metric: str | None = None
    max_examples: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Strategy:
    data: DataSpec = field(default_factory=DataSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    rationale: str = ""


@dataclass(frozen=True)
class TaskDataset:
    name: str
    uri: str
    splits: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Task:
    base_model: str
    metric_name: str | None = None
    direction: str = "maximize"
    datasets: tuple[TaskDataset, ...] = ()
    evaluation: Mapping[str, Any] = field(default_factory=dict)
    # the sources the task itself names for training: its default strategy's (at any weight) and those its
    # search space weighs (``data.mixture.<name>``); the evaluation draws on them, whatever a trial mixes
    declared_sources: tuple[Source, ...] = ()


@dataclass(frozen=True)
class Job:
    run: str
    node: str
    task: Task


# --------------------------------------------------------------------------- primitive checks


def _describe(value: object) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _obj(value: object, path: str, *, required: bool = False) -> Mapping[str, Any]:
    if value is None:
        if required:
            raise RecipeError(path, "required: expected an object")
        return {}
    if not isinstance(value, Mapping):
        raise RecipeError(path, f"expected an object, got {_describe(value)}")
    return value


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _number(value: object, path: str, *, positive: bool = False, lo: float | None = None, hi: float | None = None, hi_open: bool = False) -> float:
    if positive and (not _is_number(value) or value <= 0):  # type: ignore[operator]
        raise RecipeError(path, f"expected a positive number, got {_describe(value)}")
    if not _is_number(value):
        raise RecipeError(path, f"expected a number, got {_describe(value)}")
    number = float(value)  # type: ignore[arg-type]
    if lo is not None and number < lo or hi is not None and (number >= hi if hi_open else number > hi):
        bounds = []
        if lo is not None:
            bounds.append(f">= {lo:g}")
        if hi is not None:
            bounds.append(f"{'<' if hi_open else '<='} {hi:g}")
        raise RecipeError(path, f"expected a number {' and '.join(bounds)}, got {_describe(value)}")
    return number


def _int(value: object, path: str, *, minimum: int | None = 0) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        what = "an integer" if minimum is None else "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise RecipeError(path, f"expected {what}, got {_describe(value)}")
    return value


def _str(value: object, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RecipeError(path, f"expected a non-empty string, got {_describe(value)}")
    return value


def _choice(value: object, path: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise RecipeError(path, f"expected one of {options}, got {_describe(value)}")
    return value


def _opt_str_list(value: object, path: str) -> tuple[str, ...] | None:
    """Like :func:`_str_list`, but ``null`` and ``[]`` mean "not set"."""
    if value is None or value == []:
        return None
    return _str_list(value, path)


def _str_list(value: object, path: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise RecipeError(path, f"expected a non-empty list of strings, got {_describe(value)}")
    return tuple(_str(item, f"{path}[{i}]") for i, item in enumerate(value))


# --------------------------------------------------------------------------- strategy


def _parse_source(raw: object, path: str) -> Source:
    if isinstance(raw, str):
        return Source(name=_str(raw, path))
    obj = _obj(raw, path, required=True)
    name = _str(obj.get("name"), f"{path}.name")
    weight = 1.0 if obj.get("weight") is None else _number(obj.get("weight"), f"{path}.weight", lo=0.0)
    split = "train" if obj.get("split") is None else _str(obj.get("split"), f"{path}.split")
    config = None if obj.get("config") is None else _str(obj.get("config"), f"{path}.config")
    cap = None if obj.get("maxExamples") is None else _int(obj.get("maxExamples"), f"{path}.maxExamples", minimum=1)
    return Source(name=name, weight=weight, split=split, config=config, max_examples=cap)


def parse_steps(raw: object, path: str, compiler: Any) -> tuple[tuple[StepSpec, ...], tuple[Any, ...]]:
    if raw is None:
        return (), ()
    if not isinstance(raw, list):
        raise RecipeError(path, f"expected a list of {{kind, params}} objects, got {_describe(raw)}")
    specs: list[StepSpec] = []
    compiled: list[Any] = []
    for index, item in enumerate(raw):
        item_path = f"{path}[{index}]"
        obj = _obj(item, item_path, required=True)
        kind = _str(obj.get("kind"), f"{item_path}.kind")
        params = _obj(obj.get("params"), f"{item_path}.params")
        try:
            compiled.append(compiler(kind, params))
        except MixtureError as exc:
            message = str(exc)
            prefix = f"{kind}."
            if message.startswith(prefix):  # "kind.params.x: ..." -> "<path>.params.x: ..."
                sub, _, detail = message[len(prefix) :].partition(": ")
                raise RecipeError(f"{item_path}.{sub}", detail) from None
            raise RecipeError(f"{item_path}.kind" if message.startswith("unknown") else item_path, message) from None
        specs.append(StepSpec(kind=kind, params=dict(params)))
    return tuple(specs), tuple(compiled)


def parse_eval_transforms(strategy: Strategy) -> tuple[Transform, ...]:
    """``evaluation.extra.transforms``: transforms applied to evaluation examples only."""
    _, compiled = parse_steps(strategy.evaluation.extra.get("transforms"), "evaluation.extra.transforms", compile_transform)
    return compiled  # type: ignore[return-value]


def parse_data(raw: object, path: str = "data") -> DataSpec:
    obj = _obj(raw, path)
    sources_raw = obj.get("sources")
    sources: tuple[Source, ...] = ()
    if sources_raw is not None:
        if not isinstance(sources_raw, list):
            raise RecipeError(f"{path}.sources", f"expected a list of sources, got {_describe(sources_raw)}")
        sources = tuple(_parse_source(s, f"{path}.sources[{i}]") for i, s in enumerate(sources_raw))
        if sources and all(s.weight == 0 for s in sources):
            raise RecipeError(f"{path}.sources", "all weights are 0; give at least one source a positive weight")
    fmt = DEFAULT_FORMAT if obj.get("format") is None else _str(obj.get("format"), f"{path}.format")
    try:
        template = get_template(fmt)
    except TemplateError as exc:
        raise RecipeError(f"{path}.format", str(exc)) from None
    num = None if obj.get("numExamples") is None else _int(obj.get("numExamples"), f"{path}.numExamples", minimum=1)
    filters, compiled_filters = parse_steps(obj.get("filters"), f"{path}.filters", compile_filter)
    transforms, compiled_transforms = parse_steps(obj.get("transforms"), f"{path}.transforms", compile_transform)
    synthesis: Synthesis | None = None
    if obj.get("synthesis") is not None:
        syn = _obj(obj.get("synthesis"), f"{path}.synthesis")
        synthesis = Synthesis(
            method=_str(syn.get("method"), f"{path}.synthesis.method"),
            count=0 if syn.get("count") is None else _int(syn.get("count"), f"{path}.synthesis.count"),
            params=dict(_obj(syn.get("params"), f"{path}.synthesis.params")),
        )
    extra = dict(_obj(obj.get("extra"), f"{path}.extra"))
    replacement = "auto"
    if extra.get("replacement") is not None:
        replacement = _choice(extra.get("replacement"), f"{path}.extra.replacement", REPLACEMENT_MODES)
    return DataSpec(
        sources=sources,
        format=fmt,
        num_examples=num,
        filters=filters,
        transforms=transforms,
        synthesis=synthesis,
        replacement=replacement,
        extra=extra,
        template=template,
        compiled_filters=compiled_filters,  # type: ignore[arg-type]
        compiled_transforms=compiled_transforms,  # type: ignore[arg-type]
    )


def parse_lora(raw: object, path: str = "training.lora") -> LoraSpec:
    obj = _obj(raw, path)
    d = LoraSpec()
    targets_raw = obj.get("targetModules")
    targets: tuple[str, ...] | None
    if targets_raw is None or targets_raw == "all-linear":
        targets = None
    else:
        targets = _str_list(targets_raw, f"{path}.targetModules")
    return LoraSpec(
        rank=d.rank if obj.get("rank") is None else _int(obj.get("rank"), f"{path}.rank", minimum=1),
        alpha=d.alpha if obj.get("alpha") is None else _number(obj.get("alpha"), f"{path}.alpha", positive=True),
        dropout=d.dropout if obj.get("dropout") is None else _number(obj.get("dropout"), f"{path}.dropout", lo=0.0, hi=1.0, hi_open=True),
        target_modules=targets,
    )


def parse_training(raw: object, path: str = "training") -> TrainingSpec:
    obj = _obj(raw, path)
    d = TrainingSpec()

    def opt(key: str, default: Any, check: Any) -> Any:
        return default if obj.get(key) is None else check(obj.get(key), f"{path}.{key}")

    return TrainingSpec(
        method=opt("method", d.method, lambda v, p: _choice(v, p, METHODS)),
        learning_rate=opt("learningRate", d.learning_rate, lambda v, p: _number(v, p, positive=True)),
        schedule=opt("schedule", d.schedule, lambda v, p: _choice(v, p, SCHEDULES)),
        warmup_ratio=opt("warmupRatio", d.warmup_ratio, lambda v, p: _number(v, p, lo=0.0, hi=1.0, hi_open=True)),
        epochs=opt("epochs", d.epochs, lambda v, p: _number(v, p, positive=True)),
        batch_size=opt("batchSize", d.batch_size, lambda v, p: _int(v, p, minimum=1)),
        seed=opt("seed", d.seed, lambda v, p: _int(v, p, minimum=None)),
        lora=parse_lora(obj.get("lora"), f"{path}.lora"),
        max_seq_length=opt("maxSeqLength", None, lambda v, p: _int(v, p, minimum=1)),
        extra=dict(_obj(obj.get("extra"), f"{path}.extra")),
    )


def _check_metric(value: object, path: str) -> str:
    name = _str(value, path)
    try:
        metrics_mod.canonical_metric(name)
    except ValueError as exc:
        raise RecipeError(path, str(exc)) from None
    return name


def parse_evaluation(raw: object, path: str = "evaluation") -> EvaluationSpec:
    obj = _obj(raw, path)
    splits = _opt_str_list(obj.get("splits"), f"{path}.splits")
    metric = None if obj.get("metric") is None else _check_metric(obj.get("metric"), f"{path}.metric")
    max_examples = None if obj.get("maxExamples") is None else _int(obj.get("maxExamples"), f"{path}.maxExamples", minimum=1)
    return EvaluationSpec(splits=splits, metric=metric, max_examples=max_examples, extra=dict(_obj(obj.get("extra"), f"{path}.extra")))


def parse_strategy(raw: object) -> Strategy:
    obj = _obj(raw, "strategy", required=True)
    rationale = obj.get("rationale")
    if rationale is not None and not isinstance(rationale, str):
        raise RecipeError("rationale", f"expected a string, got {_describe(rationale)}")
    strategy = Strategy(
        data=parse_data(obj.get("data")),
        training=parse_training(obj.get("training")),
        evaluation=parse_evaluation(obj.get("evaluation")),
        rationale=rationale or "",
    )
    parse_eval_transforms(strategy)  # validate early
    return strategy


# --------------------------------------------------------------------------- job


def _base_model(raw: object) -> str:
    """``baseModel`` as a string, or TREX's ``{name, uri?}`` (the uri wins; ``hf://`` is dropped)."""
    if isinstance(raw, Mapping):
        if raw.get("uri"):
            uri = _str(raw.get("uri"), "task.baseModel.uri")
            for prefix in ("hf://models/", "hf://", "hf:"):
                if uri.startswith(prefix):
                    return uri[len(prefix) :]
            return uri[len("local:") :] if uri.startswith("local:") else uri
        return _str(raw.get("name"), "task.baseModel.name")
    if raw is None:
        raise RecipeError("task.baseModel", "required: the model to fine-tune, e.g. \"Qwen/Qwen2.5-0.5B\" or {\"name\": ...}")
    return _str(raw, "task.baseModel")


def parse_job(raw: object) -> Job:
    obj = _obj(raw, "job", required=True)
    task_obj = _obj(obj.get("task"), "task", required=True)
    base_model = _base_model(task_obj.get("baseModel"))
    metric_name: str | None = None
    direction = "maximize"
    metric = task_obj.get("metric")
    if metric is not None:
        if isinstance(metric, str):
            metric_name = _str(metric, "task.metric")
        else:
            mobj = _obj(metric, "task.metric")
            metric_name = _str(mobj.get("name"), "task.metric.name")
            if mobj.get("direction") is not None:
                direction = _choice(mobj.get("direction"), "task.metric.direction", DIRECTIONS)
    datasets: list[TaskDataset] = []
    raw_datasets = task_obj.get("datasets")
    if raw_datasets is not None:
        if not isinstance(raw_datasets, list):
            raise RecipeError("task.datasets", f"expected a list, got {_describe(raw_datasets)}")
        for i, item in enumerate(raw_datasets):
            dobj = _obj(item, f"task.datasets[{i}]", required=True)
            name = _str(dobj.get("name"), f"task.datasets[{i}].name")
            uri = name if dobj.get("uri") is None else _str(dobj.get("uri"), f"task.datasets[{i}].uri")
            splits = _opt_str_list(dobj.get("splits"), f"task.datasets[{i}].splits")
            datasets.append(TaskDataset(name=name, uri=uri, splits=splits))
    declared = _declared_sources(task_obj)
    run = obj.get("run")
    node = obj.get("node")
    return Job(
        run="" if run is None else str(run),
        node="" if node is None else str(node),
        task=Task(
            base_model=base_model,
            metric_name=metric_name,
            direction=direction,
            datasets=tuple(datasets),
            evaluation=dict(_obj(task_obj.get("evaluation"), "task.evaluation")),
            declared_sources=declared,
        ),
    )


def _declared_sources(task_obj: Mapping[str, Any]) -> tuple[Source, ...]:
    """``task.defaultStrategy.data.sources`` (any weight) and the sources ``task.searchSpace`` weighs."""
    out: list[Source] = []
    default = _obj(task_obj.get("defaultStrategy"), "task.defaultStrategy")
    sources = _obj(default.get("data"), "task.defaultStrategy.data").get("sources")
    if isinstance(sources, list):
        out.extend(_parse_source(raw, f"task.defaultStrategy.data.sources[{i}]") for i, raw in enumerate(sources))
    space = task_obj.get("searchSpace")
    parameters = space.get("parameters") if isinstance(space, Mapping) else None
    for parameter in parameters if isinstance(parameters, list) else []:
        path = parameter.get("path") if isinstance(parameter, Mapping) else None
        if isinstance(path, str) and path.startswith("data.mixture.") and len(path) > len("data.mixture."):
            name = path[len("data.mixture.") :]
            if not any(s.name == name for s in out):
                out.append(Source(name=name))
    return tuple(out)


def _load(path: Path, label: str) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(label, f"file not found at {path}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecipeError(label, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def load_strategy(path: Path) -> Strategy:
    return parse_strategy(_load(path, "strategy.json"))


def load_job(path: Path) -> Job:
    return parse_job(_load(path, "job.json"))


# --------------------------------------------------------------------------- resolved evaluation plan


@dataclass(frozen=True)
class EvalPlan:
    splits: tuple[str, ...]
    metric: str  # canonical name of the metric reported as "primary"
    extra_metrics: tuple[str, ...]  # other canonical metrics to report
    max_examples: int | None
    max_new_tokens: int
    direction: str


def resolve_eval_plan(strategy: Strategy, task: Task) -> EvalPlan:
    """Merge the strategy's evaluation with the task's plan and metric.

    The primary score is the task's metric (TREX ranks trials by it); the
    strategy's ``evaluation.metric`` is reported as well when different. Fields
    the strategy leaves unset fall back to ``task.evaluation`` and then to
    defaults (split ``test``, metric ``rouge1``, max new tokens 256).
    """
    ev = strategy.evaluation
    te = task.evaluation
    splits = ev.splits
    if splits is None:
        splits = _opt_str_list(te.get("splits"), "task.evaluation.splits")
    if splits is None and te.get("split") is not None:
        splits = (_str(te.get("split"), "task.evaluation.split"),)
    max_examples = ev.max_examples
    if max_examples is None and te.get("maxExamples") is not None:
        max_examples = _int(te.get("maxExamples"), "task.evaluation.maxExamples", minimum=1)
    strategy_metric = ev.metric
    if strategy_metric is None and te.get("metric") is not None:
        strategy_metric = _check_metric(te.get("metric"), "task.evaluation.metric")
    if task.metric_name is not None:
        primary = metrics_mod.canonical_metric(_check_metric(task.metric_name, "task.metric.name"))
    elif strategy_metric is not None:
        primary = metrics_mod.canonical_metric(strategy_metric)
    else:
        primary = "rouge1"
    extras: list[str] = []
    if strategy_metric is not None:
        canonical = metrics_mod.canonical_metric(strategy_metric)
        if canonical != primary:
            extras.append(canonical)
    task_extra = _obj(te.get("extra"), "task.evaluation.extra")
    raw_tokens = ev.extra.get("maxNewTokens", task_extra.get("maxNewTokens", te.get("maxNewTokens", 256)))
    max_new_tokens = _int(raw_tokens, "evaluation.extra.maxNewTokens", minimum=1)
    direction = task.direction if task.metric_name is not None else metrics_mod.metric_direction(primary)
    return EvalPlan(
        splits=splits or DEFAULT_SPLITS,
        metric=primary,
        extra_metrics=tuple(extras),
        max_examples=max_examples,
        max_new_tokens=max_new_tokens,
        direction=direction,
    )
