"""Evaluation metrics in pure Python (stdlib only).

All generation metrics are "higher is better" and lie in [0, 1]:

* ``exact_match`` (``em``): mean of ``normalize_answer(pred) == normalize_answer(ref)``
  where normalisation case-folds, drops punctuation and the articles a/an/the,
  and collapses whitespace (SQuAD style);
* ``accuracy`` (``acc``): mean of stripped, case-folded label equality;
* ``macro_f1`` (``f1_macro``): per-label F1 = 2TP / (2TP + FP + FN) over the
  union of reference and predicted labels (stripped, case-folded), averaged
  with equal weight;
* ``rouge1`` (``rouge-1``, ``rouge1_f``): ROUGE-1 F-measure on lower-cased
  whitespace tokens with clipped unigram overlap, averaged over examples
  (both sides empty scores 1, exactly one side empty scores 0);
* ``token_f1``: SQuAD-style token F1 on normalised answers.

A prediction of ``None`` is an example the trial's prompt format cannot render: it
counts, as a failure (0 in every per-example mean; for ``macro_f1`` a miss of its
reference label, and a reference of ``None``, unknown, a label of its own that is
never predicted), so trials of formats that render different examples are still
scored over the same examples.

Loss-based metrics (``eval_loss``, ``perplexity``) come from the trainer, not
from generations; :func:`is_loss_metric` identifies them.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


Prediction = str | None  # None: the example could not be rendered, nothing was generated


def _check(preds: Sequence[Prediction], refs: Sequence[Prediction]) -> None:
    if len(preds) != len(refs):
        raise ValueError(f"predictions ({len(preds)}) and references ({len(refs)}) differ in length")
    if not preds:
        raise ValueError("no examples to score")


def normalize_answer(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(ch for ch in text if ch not in _PUNCT and not unicodedata.category(ch).startswith("P"))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _label(text: str) -> str:
    return text.strip().casefold()


def _mean(one: Callable[[str, str], float], preds: Sequence[Prediction], refs: Sequence[Prediction]) -> float:
    """Mean of ``one`` over the pairs; a pair without a prediction or a reference scores 0."""
    _check(preds, refs)
    return sum(one(p, r) if p is not None and r is not None else 0.0 for p, r in zip(preds, refs)) / len(preds)


def exact_match(preds: Sequence[Prediction], refs: Sequence[Prediction]) -> float:
    return _mean(lambda p, r: float(normalize_answer(p) == normalize_answer(r)), preds, refs)


def accuracy(preds: Sequence[Prediction], refs: Sequence[Prediction]) -> float:
    return _mean(lambda p, r: float(_label(p) == _label(r)), preds, refs)


def macro_f1(preds: Sequence[Prediction], refs: Sequence[Prediction]) -> float:
    _check(preds, refs)
    # labels as (0, text); an unknown reference is (1, ""), a label no prediction ever is; no prediction is no label
    p_labels = [None if p is None else (0, _label(p)) for p in preds]
    r_labels = [(1, "") if r is None else (0, _label(r)) for r in refs]
    scores: list[float] = []
    for label in sorted({p for p in p_labels if p is not None} | set(r_labels)):
        tp = sum(1 for p, r in zip(p_labels, r_labels) if p == label and r == label)
        fp = sum(1 for p, r in zip(p_labels, r_labels) if p == label and r != label)
        fn = sum(1 for p, r in zip(p_labels, r_labels) if p != label and r == label)
        denom = 2 * tp + fp + fn
        scores.append(0.0 if denom == 0 else 2 * tp / denom)
    return sum(scores) / len(scores)


def rouge1_f(pred: str, ref: str) -> float:
    """ROUGE-1 F-measure of one pair on lower-cased whitespace tokens."""
    return _unigram_f1(pred.lower().split(), ref.lower().split())


def rouge1(preds: Sequence[Prediction], refs: Sequence[Prediction]) -> float:
    return _mean(rouge1_f, preds, refs)


def _unigram_f1(p_tokens: list[str], r_tokens: list[str]) -> float:
    """F1 of the unigram overlap of two token lists (1 when both are empty)."""
    if not p_tokens and not r_tokens:
        return 1.0
    overlap = sum((Counter(p_tokens) & Counter(r_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(p_tokens)
    recall = overlap / len(r_tokens)
    return 2 * precision * recall / (precision + recall)


def _token_f1_one(pred: str, ref: str) -> float:
    return _unigram_f1(normalize_answer(pred).split(), normalize_answer(ref).split())


def token_f1(preds: Sequence[Prediction], refs: Sequence[Prediction]) -> float:
    return _mean(_token_f1_one, preds, refs)


MetricFn = Callable[[Sequence[Prediction], Sequence[Prediction]], float]

GENERATION_METRICS: dict[str, MetricFn] = {
    "exact_match": exact_match,
    "accuracy": accuracy,
    "macro_f1": macro_f1,
    "rouge1": rouge1,
    "token_f1": token_f1,
}
LOSS_METRICS: dict[str, str] = {"eval_loss": "minimize", "perplexity": "minimize"}
_ALIASES = {
    "em": "exact_match",
    "exact-match": "exact_match",
    "exactmatch": "exact_match",
    "acc": "accuracy",
    "f1_macro": "macro_f1",
    "macro-f1": "macro_f1",
    "rouge-1": "rouge1",
    "rouge1_f": "rouge1",
    "rouge1-f": "rouge1",
    "f1": "token_f1",
    "loss": "eval_loss",
    "ppl": "perplexity",
}

KNOWN_METRICS: tuple[str, ...] = tuple(sorted(GENERATION_METRICS) + sorted(LOSS_METRICS))


def canonical_metric(name: str) -> str:
    """The canonical metric name; raises ValueError for unknown metrics."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in GENERATION_METRICS and key not in LOSS_METRICS:
        raise ValueError(f"unknown metric {name!r}; this recipe computes {', '.join(KNOWN_METRICS)}")
    return key


def is_loss_metric(name: str) -> bool:
    return canonical_metric(name) in LOSS_METRICS


def metric_direction(name: str) -> str:
    key = canonical_metric(name)
    return LOSS_METRICS.get(key, "maximize")


def compute_metric(name: str, preds: Sequence[Prediction], refs: Sequence[Prediction]) -> float:
    key = canonical_metric(name)
    if key in LOSS_METRICS:
        raise ValueError(f"{key} is computed from the model's loss, not from generations")
    return GENERATION_METRICS[key](preds, refs)


def perplexity_from_loss(loss: float) -> float:
    """exp(loss), capped to stay finite."""
    return math.exp(min(loss, 700.0))
