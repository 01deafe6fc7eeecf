"""Dataset loading: local JSONL/JSON/CSV files (stdlib) and Hugging Face Hub datasets (lazy).

Source names:

* ``local:<path>``, ``file://<path>``, an absolute path, ``./relative`` or any
  name ending in ``.jsonl``/``.json``/``.csv`` - a local file. ``{split}`` in
  the path is replaced by the split name; a directory is searched for
  ``<split>.jsonl``, ``<split>.json`` or ``<split>.csv``. Relative paths are
  resolved against the working directory, then against the job directory.
* ``hf:<name>``, ``hf://<name>``, ``hf://datasets/<name>`` or a bare hub name
  such as ``tatsu-lab/alpaca`` - loaded with ``datasets.load_dataset``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Record = dict[str, Any]
LOCAL_SUFFIXES = (".jsonl", ".json", ".csv")


class DataError(RuntimeError):
    """A dataset could not be loaded."""


def classify_source(name: str) -> tuple[str, str]:
    """``("local", path)`` or ``("hub", dataset name)``."""
    if name.startswith("local:"):
        return "local", name[len("local:") :]
    if name.startswith("file://"):
        return "local", name[len("file://") :]
    if name.startswith("hf://"):
        rest = name[len("hf://") :]
        return "hub", rest[len("datasets/") :] if rest.startswith("datasets/") else rest
    if name.startswith("hf:"):
        return "hub", name[len("hf:") :]
    if name.startswith(("/", "./", "../", "~")) or name.lower().endswith(LOCAL_SUFFIXES):
        return "local", name
    return "hub", name


def has_split_layout(name: str, base_dirs: Sequence[Path] = ()) -> bool:
    """Whether ``name`` can serve different splits (hub datasets, ``{split}`` paths, directories).

    A single local file has no splits: it is only used for another split when a
    task dataset declares that split explicitly.
    """
    kind, target = classify_source(name)
    if kind == "hub" or "{split}" in target:
        return True
    path = Path(target).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path] + [base / path for base in base_dirs]
    return any(c.is_dir() for c in candidates)


def _resolve_local(raw: str, split: str | None, base_dirs: Sequence[Path]) -> Path:
    text = raw.replace("{split}", split or "train")
    path = Path(text).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path] + [base / path for base in base_dirs]
    for candidate in candidates:
        if candidate.is_dir():
            names = [f"{split or 'train'}{suffix}" for suffix in LOCAL_SUFFIXES]
            for file_name in names:
                if (candidate / file_name).is_file():
                    return candidate / file_name
            raise DataError(f"{raw}: directory has none of {', '.join(names)}")
        if candidate.is_file():
            return candidate
    raise DataError(f"{raw}: no such file (looked in {', '.join(str(c) for c in candidates)})")


def read_jsonl(path: Path) -> list[Record]:
    records: list[Record] = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from None
            if not isinstance(value, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object per line, got {type(value).__name__}")
            records.append(value)
    return records


def read_json(path: Path, split: str | None) -> list[Record]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if isinstance(value, dict):
        for key in ([split] if split else []) + ["data", "rows", "examples"]:
            if isinstance(value.get(key), list):
                value = value[key]
                break
        else:
            raise DataError(f"{path}: expected a list of objects, or an object with a {split or 'data'!r} list")
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise DataError(f"{path}: expected a list of JSON objects")
    return list(value)


def read_csv(path: Path) -> list[Record]:
    with open(path, encoding="utf-8", newline="") as handle:
        return [dict(row) for row in csv.DictReader(handle)]


def load_local(raw: str, split: str | None = None, base_dirs: Sequence[Path] = ()) -> list[Record]:
    path = _resolve_local(raw, split, base_dirs)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return read_jsonl(path)
    if suffix == ".json":
        return read_json(path, split)
    if suffix == ".csv":
        return read_csv(path)
    # Unknown extension: sniff JSON Lines.
    return read_jsonl(path)


def load_hub(name: str, split: str, config: str | None = None) -> list[Record]:  # pragma: no cover - needs network
    try:
        import datasets  # noqa: PLC0415 - heavy, lazy on purpose
    except ImportError as exc:
        raise DataError(f"{name}: loading hub datasets needs the 'datasets' package ({exc})") from None
    try:
        ds = datasets.load_dataset(name, config, split=split)
    except ValueError as exc:
        raise DataError(f"{name} (split {split!r}, config {config!r}): {exc}") from exc
    return [dict(r) for r in ds.to_list()]


def load_records(name: str, split: str | None, config: str | None = None, base_dirs: Sequence[Path] = ()) -> list[Record]:
    kind, target = classify_source(name)
    if kind == "local":
        return load_local(target, split, base_dirs)
    return load_hub(target, split or "train", config)
