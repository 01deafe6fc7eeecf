"""TREX job-protocol reporter for Python 3.8+ (standard library only).

A trial script imports this module to read its inputs and report metrics, progress and its result.
The protocol is described in docs/job-protocol.md. Copy this single file next to your script or put its
directory on PYTHONPATH.
"""
import json
import math
import os
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

__all__ = [
    "TrexReporterError",
    "job_dir",
    "read_strategy",
    "read_job",
    "metric",
    "progress",
    "write_result",
]

Number = Union[int, float]


class TrexReporterError(ValueError):
    """Raised for any misuse of the protocol (bad input, missing job dir)."""


def _check_finite(value: Any, what: str) -> float:
    # bool is an int subclass in Python: reject it explicitly, it is never a meaningful metric value.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TrexReporterError("{} must be a finite number, got {!r}".format(what, value))
    return value


def job_dir() -> str:
    """The absolute job directory from $TREX_JOB_DIR."""
    d = os.environ.get("TREX_JOB_DIR", "")
    if d == "":
        raise TrexReporterError("TREX_JOB_DIR is not set")
    if not os.path.isabs(d):
        raise TrexReporterError("TREX_JOB_DIR must be an absolute path, got {}".format(d))
    if not os.path.isdir(d):
        raise TrexReporterError("TREX_JOB_DIR is not a directory: {}".format(d))
    return d


def _read_json_object(name: str) -> Dict[str, Any]:
    path = os.path.join(job_dir(), name)
    try:
        with open(path, "r", encoding="utf-8") as f:
            value = json.load(f)
    except OSError as e:
        raise TrexReporterError("cannot read {}: {}".format(path, e)) from e
    except ValueError as e:
        raise TrexReporterError("{} is not valid JSON: {}".format(path, e)) from e
    if not isinstance(value, dict):
        raise TrexReporterError("{} must hold a JSON object".format(path))
    return value


def read_strategy() -> Dict[str, Any]:
    """The parsed strategy.json of this job (unvalidated)."""
    return _read_json_object("strategy.json")


def read_job() -> Dict[str, Any]:
    """The parsed job.json of this job: {"run", "node", "task"?}."""
    return _read_json_object("job.json")


def metric(step: int, split: str, name: str, value: Number) -> None:
    """Report one metric point: prints `TREX_METRIC {json}` and appends it to metrics.jsonl."""
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise TrexReporterError("metric step must be a non-negative integer, got {!r}".format(step))
    if not isinstance(split, str) or split == "":
        raise TrexReporterError("metric split must be a non-empty string, got {!r}".format(split))
    if not isinstance(name, str) or name == "":
        raise TrexReporterError("metric name must be a non-empty string, got {!r}".format(name))
    _check_finite(value, "metric {} value".format(name))
    line = json.dumps({"step": step, "split": split, "name": name, "value": value}, allow_nan=False)
    d = job_dir()
    sys.stdout.write("TREX_METRIC " + line + "\n")
    sys.stdout.flush()
    with open(os.path.join(d, "metrics.jsonl"), "a", encoding="utf-8") as f:
        f.write(line + "\n")


def progress(fraction: Number, message: Optional[str] = None) -> None:
    """Report progress: prints `TREX_PROGRESS {"fraction": f, "message": m}`; fraction in [0, 1]."""
    _check_finite(fraction, "progress fraction")
    if fraction < 0 or fraction > 1:
        raise TrexReporterError("progress fraction must be in [0, 1], got {!r}".format(fraction))
    obj = {"fraction": fraction}  # type: Dict[str, Any]
    if message is not None:
        if not isinstance(message, str):
            raise TrexReporterError("progress message must be a string")
        obj["message"] = message
    sys.stdout.write("TREX_PROGRESS " + json.dumps(obj, allow_nan=False) + "\n")
    sys.stdout.flush()


def _check_artifact_path(path: Any, i: int) -> str:
    if not isinstance(path, str) or path == "":
        raise TrexReporterError("result artifacts[{}].path must be a non-empty string".format(i))
    if os.path.isabs(path):
        raise TrexReporterError("artifact path must be relative to the job dir, got {}".format(path))
    norm = os.path.normpath(path)
    if norm == ".." or norm.startswith(".." + os.sep):
        raise TrexReporterError("artifact path must stay inside the job dir, got {}".format(path))
    return path


def write_result(
    metrics: Mapping[str, Number],
    primary: Optional[Number] = None,
    artifacts: Optional[Sequence[Mapping[str, str]]] = None,
    summary: Optional[str] = None,
) -> Dict[str, Any]:
    """Write result.json atomically (temporary file, then rename) and return the object written.

    `primary` (the score the search maximises) defaults to metrics["score"] when that exists.
    """
    if not isinstance(metrics, Mapping):
        raise TrexReporterError("result metrics must be a mapping of names to finite numbers")
    clean = {}  # type: Dict[str, Number]
    for k, v in metrics.items():
        if not isinstance(k, str):
            raise TrexReporterError("result metric names must be strings, got {!r}".format(k))
        clean[k] = _check_finite(v, "result metric {}".format(k))
    out = {"metrics": clean}  # type: Dict[str, Any]
    if primary is not None:
        out["primary"] = _check_finite(primary, "result primary")
    elif "score" in clean:
        out["primary"] = clean["score"]
    if artifacts is not None:
        items = []  # type: List[Dict[str, str]]
        for i, a in enumerate(artifacts):
            if not isinstance(a, Mapping):
                raise TrexReporterError("result artifacts[{}] must be a mapping {{name, path}}".format(i))
            name = a.get("name")
            if not isinstance(name, str) or name == "":
                raise TrexReporterError("result artifacts[{}].name must be a non-empty string".format(i))
            items.append({"name": name, "path": _check_artifact_path(a.get("path"), i)})
        out["artifacts"] = items
    if summary is not None:
        if not isinstance(summary, str):
            raise TrexReporterError("result summary must be a string")
        out["summary"] = summary
    d = job_dir()
    tmp = os.path.join(d, ".result.json.{}.tmp".format(os.getpid()))
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(out, indent=2, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(d, "result.json"))
    return out
