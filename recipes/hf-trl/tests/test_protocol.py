import contextlib
import io
import json
import math
import os
import tempfile
import unittest
from pathlib import Path
from unittest import mock

from trex_hf_trl import protocol
from trex_hf_trl.protocol import ProtocolError, Reporter, job_dir_from_env, parse_protocol_line, write_result


class ReporterTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self._tmp.name)

    def tearDown(self):
        self._tmp.cleanup()

    def test_metric_line_format_and_jsonl(self):
        out, err = io.StringIO(), io.StringIO()
        r = Reporter(self.dir, stream=out, errors=err)
        self.assertTrue(r.metric("loss", 0.53, step=120, split="train"))
        self.assertTrue(r.metric("rouge1", 1, step=0, split="test"))
        lines = out.getvalue().splitlines()
        self.assertEqual(lines[0], 'TREX_METRIC {"step":120,"split":"train","name":"loss","value":0.53}')
        kind, payload = parse_protocol_line(lines[1])
        self.assertEqual((kind, payload), ("TREX_METRIC", {"step": 0, "split": "test", "name": "rouge1", "value": 1}))
        jsonl = [json.loads(l) for l in (self.dir / "metrics.jsonl").read_text().splitlines()]
        self.assertEqual(jsonl, [{"step": 120, "split": "train", "name": "loss", "value": 0.53}, {"step": 0, "split": "test", "name": "rouge1", "value": 1}])

    def test_metric_requires_valid_step_and_split(self):
        r = Reporter(None, stream=io.StringIO())
        for step, split in ((-1, "train"), (1.5, "train"), (True, "train"), (3, "")):
            with self.assertRaises(ProtocolError, msg=(step, split)):
                r.metric("loss", 0.1, step=step, split=split)

    def test_non_finite_metrics_are_skipped(self):
        out, err = io.StringIO(), io.StringIO()
        r = Reporter(None, stream=out, errors=err)
        for bad in (math.nan, math.inf, "0.5", None, True):
            self.assertFalse(r.metric("loss", bad, step=1, split="train"))
        self.assertEqual(out.getvalue(), "")
        self.assertIn("skipping", err.getvalue())
        with self.assertRaises(ProtocolError):
            r.metric("", 1.0, step=0, split="train")

    def test_progress_clamped(self):
        out = io.StringIO()
        r = Reporter(None, stream=out)
        r.progress(0.4, "training")
        r.progress(1.7)
        r.progress(-1)
        lines = out.getvalue().splitlines()
        self.assertEqual(lines[0], 'TREX_PROGRESS {"fraction":0.4,"message":"training"}')
        self.assertEqual([parse_protocol_line(l)[1]["fraction"] for l in lines], [0.4, 1.0, 0.0])
        self.assertIsNone(parse_protocol_line("loss=0.3"))


class ResultTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self._tmp.name)

    def tearDown(self):
        self._tmp.cleanup()

    def test_writes_valid_result(self):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            path = write_result(
                self.dir,
                metrics={"rouge1": 0.41, "train_loss": 1.2, "bad": math.nan},
                primary=0.41,
                artifacts=[{"name": "adapter", "path": "adapter"}, {"name": "abs", "path": str(self.dir / "sub" / "x.bin")}],
                summary="ok",
            )
        self.assertIn("bad", err.getvalue())
        self.assertEqual(path, self.dir / "result.json")
        data = json.loads(path.read_text())
        self.assertEqual(data["metrics"], {"rouge1": 0.41, "train_loss": 1.2})
        self.assertEqual(data["primary"], 0.41)
        self.assertEqual(data["artifacts"], [{"name": "adapter", "path": "adapter"}, {"name": "abs", "path": "sub/x.bin"}])
        self.assertEqual(data["summary"], "ok")
        self.assertEqual(sorted(p.name for p in self.dir.iterdir()), ["result.json"])  # no temp files left

    def test_rejects_bad_values_without_touching_previous_result(self):
        write_result(self.dir, metrics={"a": 1}, primary=1.0)
        before = (self.dir / "result.json").read_text()
        for kwargs in (
            {"metrics": {}, "primary": math.nan},
            {"metrics": {}, "primary": "0.5"},
            {"metrics": {}, "primary": 1.0, "artifacts": [{"name": "x", "path": "../escape"}]},
            {"metrics": {}, "primary": 1.0, "artifacts": [{"name": "x", "path": "/elsewhere/file"}]},
            {"metrics": {}, "primary": 1.0, "artifacts": [{"name": "", "path": "a"}]},
        ):
            with self.assertRaises(ProtocolError, msg=kwargs):
                write_result(self.dir, **kwargs)
        self.assertEqual((self.dir / "result.json").read_text(), before)

    def test_atomic_write_is_all_or_nothing(self):
        target = self.dir / "result.json"
        target.write_text('{"old": true}')
        with mock.patch.object(protocol.os, "replace", side_effect=OSError("disk full")):
            with self.assertRaises(OSError):
                protocol.atomic_write_json(target, {"new": True})
        self.assertEqual(json.loads(target.read_text()), {"old": True})
        self.assertEqual([p.name for p in self.dir.iterdir()], ["result.json"])  # temp file removed
        # the write goes through a temporary file that is renamed into place
        seen = []
        real_replace = os.replace

        def spy(src, dst):
            seen.append((Path(src).parent, Path(src).name, Path(dst)))
            return real_replace(src, dst)

        with mock.patch.object(protocol.os, "replace", side_effect=spy):
            protocol.atomic_write_json(target, {"new": True})
        self.assertEqual(len(seen), 1)
        self.assertEqual(seen[0][0], self.dir)
        self.assertNotEqual(seen[0][1], "result.json")
        self.assertEqual(seen[0][2], target)
        self.assertEqual(json.loads(target.read_text()), {"new": True})


class JobDirTest(unittest.TestCase):
    def test_env(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.assertEqual(job_dir_from_env({"TREX_JOB_DIR": tmp}), Path(tmp))
            with self.assertRaises(ProtocolError):
                job_dir_from_env({})
            with self.assertRaises(ProtocolError):
                job_dir_from_env({"TREX_JOB_DIR": str(Path(tmp) / "missing")})


if __name__ == "__main__":
    unittest.main()
