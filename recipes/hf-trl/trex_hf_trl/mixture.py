"""Deterministic data mixtures, filters, transforms and deduplication (stdlib only).

* :func:`allocate` splits an exact integer total across weighted sources by the
  largest-remainder method, in exact rational arithmetic (ties go to the
  earlier source; :func:`sample_mixture` lists them by key first), so counts
  always sum to the total.
* :func:`sample_mixture` draws each source's share with a ``random.Random``
  seeded from the strategy seed and the source's key (its name), then shuffles
  the union with the seed: the same seed gives the same mixture on every
  machine, and the order the sources are listed in changes nothing.
* Filters and transforms are compiled from ``{"kind": ..., "params": {...}}``
  specs; an invalid spec raises :class:`MixtureError` naming the parameter.
"""

from __future__ import annotations

import json
import math
import random
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

Record = dict[str, Any]
Weight = float | Fraction  # a sampling weight; only its share of the sum counts


class MixtureError(ValueError):
    """An invalid mixture, filter or transform specification."""


# --------------------------------------------------------------------------- weights


def _as_fraction(value: object, what: str) -> Fraction:
    if isinstance(value, Fraction):  # exact already (the recipe's shares, ``recipe.share_of``)
        if value < 0:
            raise MixtureError(f"{what}: expected a non-negative number, got {value}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MixtureError(f"{what}: expected a finite number, got {value!r}")
    if value < 0:
        raise MixtureError(f"{what}: expected a non-negative number, got {value!r}")
    # repr() is the shortest decimal that round-trips, so 0.7 means exactly 7/10 here.
    return Fraction(repr(value)) if isinstance(value, float) else Fraction(value)


def normalise_weights(weights: Sequence[Weight]) -> list[float]:
    """Weights scaled to sum to 1. All must be finite and >= 0, and one > 0."""
    if not weights:
        raise MixtureError("weights: expected at least one weight")
    fracs = [_as_fraction(w, f"weights[{i}]") for i, w in enumerate(weights)]
    total = sum(fracs, Fraction(0))
    if total == 0:
        raise MixtureError("weights: all weights are 0; give at least one source a positive weight")
    return [float(f / total) for f in fracs]


def allocate(total: int, weights: Sequence[Weight]) -> list[int]:
    """Split ``total`` into integer counts proportional to ``weights``.

    Largest-remainder (Hamilton) method with exact fractions: each source gets
    ``floor(total * p_i)``, and the leftover units go to the largest fractional
    remainders, ties broken by source order. ``sum(result) == total`` always.
    """
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise MixtureError(f"total: expected a non-negative integer, got {total!r}")
    fracs = [_as_fraction(w, f"weights[{i}]") for i, w in enumerate(weights)]
    weight_sum = sum(fracs, Fraction(0))
    if not fracs or weight_sum == 0:
        raise MixtureError("weights: all weights are 0; give at least one source a positive weight")
    quotas = [total * f / weight_sum for f in fracs]
    counts = [math.floor(q) for q in quotas]
    leftover = total - sum(counts)
    order = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[:leftover]:
        counts[i] += 1
    return counts


def default_total(pool_sizes: Sequence[int], weights: Sequence[Weight]) -> int:
    """The largest mixture honouring ``weights`` without repeating any example."""
    fracs = [_as_fraction(w, f"weights[{i}]") for i, w in enumerate(weights)]
    weight_sum = sum(fracs, Fraction(0))
    if weight_sum == 0:
        raise MixtureError("weights: all weights are 0; give at least one source a positive weight")
    limits = [Fraction(size) / (f / weight_sum) for size, f in zip(pool_sizes, fracs) if f > 0]
    return math.floor(min(limits)) if limits else 0


# --------------------------------------------------------------------------- sampling

REPLACEMENT_MODES = ("auto", "never", "always")


@dataclass(frozen=True)
class MixtureResult:
    records: list[Record]
    counts: list[int]  # examples drawn from each source
    requested: int


def _source_rng(seed: int, key: str) -> random.Random:
    # A str seed is hashed with SHA-512: the same on every machine and Python run.
    return random.Random(f"mix:{seed}:{key}")


def _draw(pool: Sequence[Record], k: int, rng: random.Random, replacement: str) -> list[Record]:
    if k == 0:
        return []
    if replacement == "always":
        return rng.choices(list(pool), k=k)
    n = len(pool)
    if k <= n:
        return rng.sample(list(pool), k)
    # "auto": whole shuffled copies, then a sample without replacement for the rest.
    out: list[Record] = []
    for _ in range(k // n):
        copy = list(pool)
        rng.shuffle(copy)
        out.extend(copy)
    out.extend(rng.sample(list(pool), k % n))
    return out


def _cap_counts(counts: list[int], capacities: list[int | None], weights: Sequence[Weight]) -> list[int]:
    """Move units beyond a source's capacity to sources with room, by weight."""
    counts = list(counts)
    while True:
        overflow = 0
        for i, cap in enumerate(capacities):
            if cap is not None and counts[i] > cap:
                overflow += counts[i] - cap
                counts[i] = cap
        if overflow == 0:
            return counts
        room = [i for i, cap in enumerate(capacities) if weights[i] > 0 and (cap is None or counts[i] < cap)]
        if not room:
            return counts
        extra = allocate(overflow, [weights[i] for i in room])
        for i, add in zip(room, extra):
            counts[i] += add


def sample_mixture(
    pools: Sequence[Sequence[Record]],
    weights: Sequence[Weight],
    total: int | None,
    seed: int,
    *,
    keys: Sequence[str],
    replacement: str = "auto",
) -> MixtureResult:
    """Draw a mixture of ``total`` examples from ``pools`` in proportion to ``weights``.

    ``keys`` name the sources (distinct strings, such as their names). The
    result depends on the sources and not on their order: sources are taken in
    the order of their keys, so a tie in the largest-remainder split goes to the
    smaller key, each source's draw is seeded by ``seed`` and its key, and the
    union is shuffled with ``seed``. ``counts`` follow the order given.

    ``replacement``: ``"never"`` draws without replacement and moves any shortfall
    to sources with examples left (the result may be smaller than ``total`` when
    all run out); ``"always"`` draws with replacement; ``"auto"`` (default) draws
    without replacement when a source has enough examples and otherwise repeats
    whole shuffled copies before sampling the remainder. Empty sources always
    hand their share to the others. ``total=None`` means :func:`default_total`.
    """
    if len(pools) != len(weights):
        raise MixtureError(f"sources: {len(pools)} pools but {len(weights)} weights")
    if len(keys) != len(pools) or len(set(keys)) != len(keys):
        raise MixtureError(f"keys: expected {len(pools)} distinct keys, one a source, got {list(keys)!r}")
    if replacement not in REPLACEMENT_MODES:
        raise MixtureError(f"replacement: expected one of {', '.join(REPLACEMENT_MODES)}, got {replacement!r}")
    normalise_weights(weights)  # validates
    order = sorted(range(len(pools)), key=lambda i: keys[i])
    sizes = [len(pools[i]) for i in order]
    ordered_weights = [weights[i] for i in order]
    requested = default_total(sizes, ordered_weights) if total is None else total
    counts = allocate(requested, ordered_weights)
    capacities: list[int | None] = [
        size if (replacement == "never" or size == 0) else None for size in sizes
    ]
    counts = _cap_counts(counts, capacities, ordered_weights)
    records: list[Record] = []
    for i, k in zip(order, counts):
        records.extend(_draw(pools[i], k, _source_rng(seed, keys[i]), replacement))
    random.Random(seed).shuffle(records)
    given_order = [0] * len(pools)
    for position, i in enumerate(order):
        given_order[i] = counts[position]
    return MixtureResult(records=records, counts=given_order, requested=requested)


# --------------------------------------------------------------------------- text helpers

_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Normalised form for dedup: NFKC, case-folded, punctuation dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return _WS.sub(" ", text).strip()


def field_text(record: Mapping[str, Any], name: str | None) -> str:
    """A field as text; ``None`` means all fields joined. Missing fields are empty."""
    if name is None:
        return " ".join(_value_text(v) for v in record.values() if v is not None)
    return _value_text(record.get(name))


def _value_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(m, Mapping) for m in value):
        return "\n".join(_value_text(m.get("content", m.get("value"))) for m in value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def dedup(records: Iterable[Record], field_name: str | None = None, mode: str = "exact") -> list[Record]:
    """Keep the first record for each key (``exact`` text or ``normalized`` text).

    Records whose key is empty (field missing or blank) are always kept.
    """
    keyer = _dedup_keyer(mode)
    seen: set[str] = set()
    out: list[Record] = []
    for record in records:
        key = keyer(field_text(record, field_name))
        if key == "":  # missing or empty field: nothing to compare, keep
            out.append(record)
        elif key not in seen:
            seen.add(key)
            out.append(record)
    return out


def _dedup_keyer(mode: str) -> Callable[[str], str]:
    if mode == "exact":
        return lambda s: s
    if mode in ("normalized", "normalised"):
        return normalize_text
    raise MixtureError(f"dedup.params.mode: expected 'exact' or 'normalized', got {mode!r}")


# --------------------------------------------------------------------------- param helpers


def _opt_str(params: Mapping[str, Any], key: str, kind: str) -> str | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise MixtureError(f"{kind}.params.{key}: expected a non-empty string, got {value!r}")
    return value


def _req_str(params: Mapping[str, Any], key: str, kind: str) -> str:
    value = _opt_str(params, key, kind)
    if value is None:
        raise MixtureError(f"{kind}.params.{key}: required (a non-empty string)")
    return value


def _fields(params: Mapping[str, Any], kind: str) -> list[str] | None:
    """``field`` (one) or ``fields`` (a list); None means every string field."""
    single = _opt_str(params, "field", kind)
    many = params.get("fields")
    if single is not None and many is not None:
        raise MixtureError(f"{kind}.params: give either 'field' or 'fields', not both")
    if single is not None:
        return [single]
    if many is None:
        return None
    if not isinstance(many, list) or not many or not all(isinstance(f, str) and f for f in many):
        raise MixtureError(f"{kind}.params.fields: expected a non-empty list of field names, got {many!r}")
    return list(many)


def _length_param(params: Mapping[str, Any], kind: str) -> tuple[str, int]:
    given = [unit for unit in ("chars", "words") if params.get(unit) is not None]
    if len(given) != 1:
        raise MixtureError(f"{kind}.params: set exactly one of 'chars' or 'words' (a non-negative integer)")
    unit = given[0]
    value = params[unit]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MixtureError(f"{kind}.params.{unit}: expected a non-negative integer, got {value!r}")
    return unit, value


def _measure(text: str, unit: str) -> int:
    return len(text) if unit == "chars" else len(text.split())


# --------------------------------------------------------------------------- filters

Mask = Callable[[Sequence[Record]], list[bool]]


@dataclass(frozen=True)
class Filter:
    kind: str
    mask: Mask  # True = keep

    def apply(self, records: Sequence[Record]) -> list[Record]:
        return [r for r, keep in zip(records, self.mask(records)) if keep]


def _length_filter(kind: str, params: Mapping[str, Any]) -> Filter:
    name = _opt_str(params, "field", kind)
    unit, limit = _length_param(params, kind)
    if kind == "min_length":
        return Filter(kind, lambda rs: [_measure(field_text(r, name), unit) >= limit for r in rs])
    return Filter(kind, lambda rs: [_measure(field_text(r, name), unit) <= limit for r in rs])


def _regex_filter(kind: str, params: Mapping[str, Any]) -> Filter:
    name = _opt_str(params, "field", kind)
    pattern = _req_str(params, "pattern", kind)
    ignore_case = params.get("ignoreCase", params.get("ignore_case", False))
    if not isinstance(ignore_case, bool):
        raise MixtureError(f"{kind}.params.ignoreCase: expected true or false, got {ignore_case!r}")
    try:
        regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise MixtureError(f"{kind}.params.pattern: invalid regular expression {pattern!r}: {exc}") from None
    include = kind == "regex_include"
    return Filter(kind, lambda rs: [(regex.search(field_text(r, name)) is not None) == include for r in rs])


def _dedup_filter(kind: str, params: Mapping[str, Any]) -> Filter:
    name = _opt_str(params, "field", kind)
    mode = params.get("mode", "exact")
    keyer = _dedup_keyer(mode) if isinstance(mode, str) else _dedup_keyer(repr(mode))

    def mask(records: Sequence[Record]) -> list[bool]:
        seen: set[str] = set()
        keep: list[bool] = []
        for r in records:
            key = keyer(field_text(r, name))
            keep.append(key == "" or key not in seen)  # missing/empty field: keep
            seen.add(key)
        return keep

    return Filter(kind, mask)


def _non_empty_filter(kind: str, params: Mapping[str, Any]) -> Filter:
    names = _fields(params, kind)
    if names is None:
        raise MixtureError(f"{kind}.params: set 'field' or 'fields' to the fields that must be non-empty")
    return Filter(kind, lambda rs: [all(field_text(r, n).strip() != "" for n in names) for r in rs])


_FILTERS: dict[str, Callable[[str, Mapping[str, Any]], Filter]] = {
    "min_length": _length_filter,
    "max_length": _length_filter,
    "regex_include": _regex_filter,
    "regex_exclude": _regex_filter,
    "dedup": _dedup_filter,
    "non_empty": _non_empty_filter,
}
_FILTER_ALIASES = {"regex": "regex_include", "include": "regex_include", "exclude": "regex_exclude", "required": "non_empty"}
FILTER_KINDS: tuple[str, ...] = tuple(sorted(_FILTERS))


def compile_filter(kind: str, params: Mapping[str, Any] | None = None) -> Filter:
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise MixtureError(f"{kind}.params: expected an object, got {params!r}")
    canonical = _FILTER_ALIASES.get(kind, kind)
    builder = _FILTERS.get(canonical)
    if builder is None:
        raise MixtureError(f"unknown filter kind {kind!r}; expected one of {', '.join(FILTER_KINDS)}")
    return builder(canonical, params)


# --------------------------------------------------------------------------- transforms


@dataclass(frozen=True)
class Transform:
    kind: str
    fn: Callable[[Record], Record]  # returns a new record; never mutates its input

    def apply(self, records: Iterable[Record]) -> list[Record]:
        return [self.fn(r) for r in records]


def _map_strings(names: list[str] | None, op: Callable[[str], str]) -> Callable[[Record], Record]:
    def fn(record: Record) -> Record:
        out = dict(record)
        for key in (names if names is not None else list(out)):
            if isinstance(out.get(key), str):
                out[key] = op(out[key])
        return out

    return fn


def _rename(kind: str, params: Mapping[str, Any]) -> Transform:
    src = _req_str(params, "from", kind)
    dst = _req_str(params, "to", kind)

    def fn(record: Record) -> Record:
        if src not in record or src == dst:
            return dict(record)
        return {(dst if k == src else k): v for k, v in record.items() if k != dst}

    return Transform(kind, fn)


def _truncate(kind: str, params: Mapping[str, Any]) -> Transform:
    names = _fields(params, kind)
    unit, limit = _length_param(params, kind)
    if unit == "chars":
        return Transform(kind, _map_strings(names, lambda s: s[:limit]))
    return Transform(kind, _map_strings(names, lambda s: " ".join(s.split()[:limit])))


def _drop(kind: str, params: Mapping[str, Any]) -> Transform:
    names = _fields(params, kind)
    if names is None:
        raise MixtureError(f"{kind}.params: set 'field' or 'fields' to the fields to drop")
    gone = set(names)
    return Transform(kind, lambda r: {k: v for k, v in r.items() if k not in gone})


_TRANSFORMS: dict[str, Callable[[str, Mapping[str, Any]], Transform]] = {
    "rename": _rename,
    "lowercase": lambda kind, p: Transform(kind, _map_strings(_fields(p, kind), str.lower)),
    "strip": lambda kind, p: Transform(kind, _map_strings(_fields(p, kind), str.strip)),
    "truncate": _truncate,
    "drop": _drop,
}
TRANSFORM_KINDS: tuple[str, ...] = tuple(sorted(_TRANSFORMS))


def compile_transform(kind: str, params: Mapping[str, Any] | None = None) -> Transform:
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise MixtureError(f"{kind}.params: expected an object, got {params!r}")
    builder = _TRANSFORMS.get(kind)
    if builder is None:
        raise MixtureError(f"unknown transform kind {kind!r}; expected one of {', '.join(TRANSFORM_KINDS)}")
    return builder(kind, params)


# --------------------------------------------------------------------------- pipeline


@dataclass
class PipelineStats:
    loaded: list[int] = field(default_factory=list)
    after_filters: list[int] = field(default_factory=list)
    removed_by: dict[str, int] = field(default_factory=dict)


def prepare_pools(
    pools: Sequence[Sequence[Record]],
    transforms: Sequence[Transform] = (),
    filters: Sequence[Filter] = (),
) -> tuple[list[list[Record]], PipelineStats]:
    """Apply transforms to every record, then filters across all sources in order.

    Filters see the sources concatenated, so ``dedup`` also removes duplicates
    across sources (the earlier source keeps its copy: the recipe passes the
    sources in their canonical order, by name, see ``recipe.canonical_mixture``).
    """
    stats = PipelineStats(loaded=[len(p) for p in pools])
    tagged: list[tuple[int, Record]] = []
    for index, pool in enumerate(pools):
        records: list[Record] = [dict(r) for r in pool]
        for transform in transforms:
            records = transform.apply(records)
        tagged.extend((index, r) for r in records)
    for flt in filters:
        mask = flt.mask([r for _, r in tagged])
        before = len(tagged)
        tagged = [pair for pair, keep in zip(tagged, mask) if keep]
        stats.removed_by[flt.kind] = stats.removed_by.get(flt.kind, 0) + before - len(tagged)
    out: list[list[Record]] = [[] for _ in pools]
    for index, record in tagged:
        out[index].append(record)
    stats.after_filters = [len(p) for p in out]
    return out, stats
