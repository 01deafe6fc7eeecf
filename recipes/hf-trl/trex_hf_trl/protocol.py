"""The TREX job protocol, standard library only.

A trial talks to TREX through:

* ``$TREX_JOB_DIR`` - a directory holding ``strategy.json`` and ``job.json``;
* stdout lines ``TREX_METRIC {"step":120,"split":"train","name":"loss","value":0.53}``
  (also appended to ``$TREX_JOB_DIR/metrics.jsonl``);
* stdout lines ``TREX_PROGRESS {"fraction":0.4,"message":"..."}``;
* ``$TREX_JOB_DIR/result.json`` written atomically (temporary file + rename) at
  the end: ``{"metrics": {...}, "primary": <score>, "artifacts": [...], "summary": "..."}``;
* the exit status: 0 on success, non-zero on failure.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

ENV_JOB_DIR = "TREX_JOB_DIR"
METRIC_PREFIX = "TREX_METRIC"
PROGRESS_PREFIX = "TREX_PROGRESS"
STRATEGY_FILE = "strategy.json"
JOB_FILE = "job.json"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"


class ProtocolError(Exception):
    """The job directory or a value to report does not follow the protocol."""


def is_finite_number(value: object) -> bool:
    """True for ints and floats that are finite; booleans are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value)


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def job_dir_from_env(environ: Mapping[str, str] | None = None) -> Path:
    """The job directory named by ``$TREX_JOB_DIR``; it must exist."""
    env = os.environ if environ is None else environ
    raw = env.get(ENV_JOB_DIR, "").strip()
    if not raw:
        raise ProtocolError(
            f"{ENV_JOB_DIR} is not set: run this recipe through TREX, or set "
            f"{ENV_JOB_DIR} to a directory holding {STRATEGY_FILE} and {JOB_FILE}"
        )
    path = Path(raw)
    if not path.is_dir():
        raise ProtocolError(f"{ENV_JOB_DIR}={raw!r} is not a directory")
    return path


def read_json_file(path: Path) -> Any:
    """Parse a JSON file, naming the file and the position on errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProtocolError(f"{path}: file not found") from None
    except OSError as exc:
        raise ProtocolError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def _relative_artifact_path(job_dir: Path | None, raw: str, index: int) -> str:
    if not raw:
        raise ProtocolError(f"artifacts[{index}].path: expected a non-empty path")
    candidate = Path(raw)
    if candidate.is_absolute():
        if job_dir is None:
            raise ProtocolError(f"artifacts[{index}].path: {raw!r} must be relative to the job directory")
        try:
            candidate = candidate.resolve().relative_to(job_dir.resolve())
        except ValueError:
            raise ProtocolError(
                f"artifacts[{index}].path: {raw!r} is outside the job directory {str(job_dir)!r}"
            ) from None
    if ".." in candidate.parts:
        raise ProtocolError(f"artifacts[{index}].path: {raw!r} must not leave the job directory")
    return candidate.as_posix()


def build_result(
    *,
    metrics: Mapping[str, object],
    primary: float,
    artifacts: Sequence[Mapping[str, str]] = (),
    summary: str = "",
    job_dir: Path | None = None,
) -> tuple[dict[str, object], list[str]]:
    """Validate and assemble a result object.

    Returns the result and the names of metrics dropped for not being finite
    numbers (JSON cannot carry NaN or infinities). A non-finite ``primary`` is an
    error: TREX could not rank the trial.
    """
    if not is_finite_number(primary):
        raise ProtocolError(f"primary: expected a finite number, got {primary!r}")
    clean: dict[str, float | int] = {}
    dropped: list[str] = []
    for name, value in metrics.items():
        if not isinstance(name, str) or not name:
            raise ProtocolError(f"metrics: names must be non-empty strings, got {name!r}")
        if is_finite_number(value):
            clean[name] = value  # type: ignore[assignment]
        else:
            dropped.append(name)
    arts: list[dict[str, str]] = []
    for index, art in enumerate(artifacts):
        name = art.get("name")
        if not isinstance(name, str) or not name:
            raise ProtocolError(f"artifacts[{index}].name: expected a non-empty string")
        arts.append({"name": name, "path": _relative_artifact_path(job_dir, str(art.get("path", "")), index)})
    result: dict[str, object] = {
        "metrics": clean,
        "primary": primary,
        "artifacts": arts,
        "summary": str(summary),
    }
    return result, dropped


def write_result(
    job_dir: Path,
    *,
    metrics: Mapping[str, object],
    primary: float,
    artifacts: Sequence[Mapping[str, str]] = (),
    summary: str = "",
) -> Path:
    """Validate and atomically write ``$TREX_JOB_DIR/result.json``; returns its path."""
    result, dropped = build_result(
        metrics=metrics, primary=primary, artifacts=artifacts, summary=summary, job_dir=job_dir
    )
    if dropped:
        print(f"[trex-hf-trl] dropped non-finite metrics from result.json: {', '.join(dropped)}", file=sys.stderr)
    path = job_dir / RESULT_FILE
    atomic_write_json(path, result)
    return path


def format_metric_line(name: str, value: float, *, step: int, split: str) -> str:
    """TREX requires all four fields: a non-negative integer step, non-empty split and name, a finite value."""
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ProtocolError(f"metric {name!r}: step must be a non-negative integer, got {step!r}")
    if not isinstance(split, str) or not split:
        raise ProtocolError(f"metric {name!r}: split must be a non-empty string, got {split!r}")
    payload = {"step": step, "split": split, "name": name, "value": value}
    return f"{METRIC_PREFIX} {_dumps(payload)}"


def format_progress_line(fraction: float, message: str | None = None) -> str:
    payload: dict[str, object] = {"fraction": round(min(1.0, max(0.0, float(fraction))), 6)}
    if message:
        payload["message"] = message
    return f"{PROGRESS_PREFIX} {_dumps(payload)}"


class Reporter:
    """Emits metric and progress lines; thread safe.

    ``job_dir`` set: metrics are also appended to ``metrics.jsonl`` there.
    """

    def __init__(self, job_dir: Path | None = None, *, stream: TextIO | None = None, errors: TextIO | None = None) -> None:
        self._job_dir = job_dir
        self._stream = stream
        self._errors = errors
        self._lock = threading.Lock()

    @property
    def job_dir(self) -> Path | None:
        return self._job_dir

    def _out(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stdout

    def _err(self) -> TextIO:
        return self._errors if self._errors is not None else sys.stderr

    def metric(self, name: str, value: object, *, step: int, split: str) -> bool:
        """Report one metric. Non-finite or non-numeric values are skipped (returns False)."""
        if not isinstance(name, str) or not name:
            raise ProtocolError(f"metric name must be a non-empty string, got {name!r}")
        if not is_finite_number(value):
            self.log(f"skipping non-finite metric {name}={value!r}")
            return False
        line = format_metric_line(name, value, step=step, split=split)  # type: ignore[arg-type]
        with self._lock:
            out = self._out()
            out.write(line + "\n")
            out.flush()
            if self._job_dir is not None:
                with open(self._job_dir / METRICS_FILE, "a", encoding="utf-8") as handle:
                    handle.write(line[len(METRIC_PREFIX) + 1 :] + "\n")
        return True

    def progress(self, fraction: float, message: str | None = None) -> None:
        if not is_finite_number(fraction):
            return
        line = format_progress_line(fraction, message)
        with self._lock:
            out = self._out()
            out.write(line + "\n")
            out.flush()

    def log(self, message: str) -> None:
        with self._lock:
            err = self._err()
            err.write(f"[trex-hf-trl] {message}\n")
            err.flush()


def parse_protocol_line(line: str) -> tuple[str, dict[str, Any]] | None:
    """Parse a ``TREX_METRIC``/``TREX_PROGRESS`` line; None for any other line."""
    for prefix in (METRIC_PREFIX, PROGRESS_PREFIX):
        if line.startswith(prefix + " "):
            payload = json.loads(line[len(prefix) + 1 :])
            if not isinstance(payload, dict):
                raise ProtocolError(f"{prefix}: payload must be a JSON object")
            return prefix, payload
    return None
