import random
import unittest
from collections import Counter

from trex_hf_trl.mixture import (
    MixtureError,
    allocate,
    compile_filter,
    compile_transform,
    dedup,
    default_total,
    normalise_weights,
    normalize_text,
    prepare_pools,
    sample_mixture,
)


AB = ["a", "b"]


def pool(tag, n):
    return [{"id": f"{tag}{i}", "src": tag} for i in range(n)]


class AllocateTest(unittest.TestCase):
    def test_hand_computed(self):
        # quotas 7.0 / 3.0 -> exact
        self.assertEqual(allocate(10, [0.7, 0.3]), [7, 3])
        # quotas 3.333.. each -> floors 3,3,3, one leftover to the first (tie -> earlier source)
        self.assertEqual(allocate(10, [1, 1, 1]), [4, 3, 3])
        # quotas 4.2, 3.5, 2.3 -> floors 4,3,2 (9), leftover 1 -> largest remainder .5 (source 1)
        self.assertEqual(allocate(10, [0.42, 0.35, 0.23]), [4, 4, 2])
        # weights need not sum to 1: 2:1:1 of 7 -> 3.5, 1.75, 1.75 -> 3,1,1 + 2 leftovers -> sources 1,2
        self.assertEqual(allocate(7, [2, 1, 1]), [3, 2, 2])
        self.assertEqual(allocate(5, [0, 1]), [0, 5])
        self.assertEqual(allocate(0, [1, 2]), [0, 0])

    def test_float_weights_that_do_not_divide_exactly(self):
        # 0.7 * 20000 is 13999.999... in floating point; exact arithmetic must still give 14000.
        self.assertEqual(allocate(20000, [0.7, 0.3]), [14000, 6000])
        self.assertEqual(allocate(3, [0.1, 0.2]), [1, 2])

    def test_sum_is_exact(self):
        rng = random.Random(1234)
        for _ in range(500):
            weights = [rng.choice([0, rng.random(), rng.randint(1, 9)]) for _ in range(rng.randint(1, 7))]
            if sum(weights) == 0:
                weights[0] = 1
            total = rng.randint(0, 10_000)
            counts = allocate(total, weights)
            self.assertEqual(sum(counts), total)
            self.assertTrue(all(c >= 0 for c in counts))
            for w, c in zip(weights, counts):
                if w == 0:
                    self.assertEqual(c, 0)
                else:
                    quota = total * w / sum(weights)
                    self.assertLessEqual(abs(c - quota), 1.0 + 1e-9)

    def test_invalid(self):
        for total, weights in ((10, [0, 0]), (10, []), (-1, [1]), (10, [-1, 2]), (10, [float("nan")]), (2.5, [1])):
            with self.assertRaises(MixtureError):
                allocate(total, weights)

    def test_normalise_and_default_total(self):
        self.assertEqual(normalise_weights([2, 6]), [0.25, 0.75])
        # 70/30 mixture of pools of 100 and 30 without repeats: min(100/0.7, 30/0.3) = 100
        self.assertEqual(default_total([100, 30], [0.7, 0.3]), 100)
        self.assertEqual(default_total([100, 0], [1, 0]), 100)


class SampleMixtureTest(unittest.TestCase):
    def test_counts_and_determinism(self):
        pools = [pool("a", 100), pool("b", 50)]
        first = sample_mixture(pools, [0.7, 0.3], 40, keys=AB, seed=7)
        second = sample_mixture(pools, [0.7, 0.3], 40, keys=AB, seed=7)
        other = sample_mixture(pools, [0.7, 0.3], 40, keys=AB, seed=8)
        self.assertEqual(first.counts, [28, 12])
        self.assertEqual(Counter(r["src"] for r in first.records), {"a": 28, "b": 12})
        self.assertEqual(first.records, second.records)
        self.assertNotEqual([r["id"] for r in first.records], [r["id"] for r in other.records])
        # without replacement when the pools are big enough: no repeats
        self.assertEqual(len({r["id"] for r in first.records}), 40)

    def test_auto_upsamples_whole_copies_first(self):
        result = sample_mixture([pool("a", 10), pool("b", 3)], [0.5, 0.5], 20, keys=AB, seed=1)
        self.assertEqual(result.counts, [10, 10])
        b_ids = Counter(r["id"] for r in result.records if r["src"] == "b")
        # 10 from a pool of 3: three full copies + 1 -> every id 3 or 4 times
        self.assertEqual(sorted(b_ids.values()), [3, 3, 4])

    def test_never_moves_shortfall(self):
        result = sample_mixture([pool("a", 10), pool("b", 3)], [0.5, 0.5], 12, keys=AB, seed=1, replacement="never")
        self.assertEqual(result.counts, [9, 3])
        self.assertEqual(len({r["id"] for r in result.records}), 12)
        exhausted = sample_mixture([pool("a", 2), pool("b", 3)], [0.5, 0.5], 10, keys=AB, seed=1, replacement="never")
        self.assertEqual(exhausted.counts, [2, 3])

    def test_always_draws_with_replacement(self):
        result = sample_mixture([pool("a", 2)], [1], 50, keys=["a"], seed=3, replacement="always")
        self.assertEqual(len(result.records), 50)
        self.assertEqual({r["id"] for r in result.records}, {"a0", "a1"})

    def test_empty_source_hands_its_share_over(self):
        result = sample_mixture([pool("a", 10), []], [0.5, 0.5], 8, keys=AB, seed=0)
        self.assertEqual(result.counts, [8, 0])

    def test_default_total(self):
        result = sample_mixture([pool("a", 100), pool("b", 30)], [0.7, 0.3], None, keys=AB, seed=0)
        self.assertEqual(result.counts, [70, 30])
        self.assertEqual(result.requested, 100)

    def test_a_source_draws_the_same_examples_wherever_it_is_listed(self):
        # Seeded by the source's key, not its place: [a, b] and [b, a] draw the same examples
        # (by index, a4 a6 a8 b3 b8 b9 against a3 a8 a9 b4 b6 b8), and so does [2a, 2b].
        a, b = pool("a", 10), pool("b", 10)
        forward = sample_mixture([a, b], [1, 1], 6, keys=["a", "b"], seed=0)
        reverse = sample_mixture([b, a], [1, 1], 6, keys=["b", "a"], seed=0)
        scaled = sample_mixture([a, b], [2, 2], 6, keys=["a", "b"], seed=0)
        self.assertEqual(forward.counts, [3, 3])
        self.assertEqual(reverse.counts, [3, 3])
        self.assertEqual(reverse.records, forward.records)
        self.assertEqual(scaled.records, forward.records)
        # and a source keeps its examples when another source joins the mixture
        with_c = sample_mixture([b, pool("c", 10), a], [1, 1, 1], 9, keys=["b", "c", "a"], seed=0)
        drawn_from_a = lambda result: sorted(r["id"] for r in result.records if r["src"] == "a")  # noqa: E731
        self.assertEqual(drawn_from_a(with_c), drawn_from_a(forward))

    def test_a_tie_in_the_counts_goes_by_key_not_by_place(self):
        # 3 over two equal sources: 1.5 each, the leftover unit to the smaller key ("a") in either order
        forward = sample_mixture([pool("a", 10), pool("b", 10)], [1, 1], 3, keys=["a", "b"], seed=0)
        reverse = sample_mixture([pool("b", 10), pool("a", 10)], [1, 1], 3, keys=["b", "a"], seed=0)
        self.assertEqual(forward.counts, [2, 1])
        self.assertEqual(reverse.counts, [1, 2])  # counts follow the order given
        self.assertEqual(Counter(r["src"] for r in reverse.records), {"a": 2, "b": 1})
        self.assertEqual(reverse.records, forward.records)

    def test_errors(self):
        with self.assertRaises(MixtureError):
            sample_mixture([pool("a", 1)], [1, 2], 3, keys=["a"], seed=0)
        with self.assertRaises(MixtureError):
            sample_mixture([pool("a", 1), pool("b", 1)], [1, 1], 2, keys=["a", "a"], seed=0)
        with self.assertRaises(MixtureError):
            sample_mixture([pool("a", 1)], [1], 3, keys=["a"], seed=0, replacement="maybe")


ROWS = [
    {"instruction": "Say hi", "output": "Hello there, friend!"},
    {"instruction": "say  HI!", "output": "Hi"},
    {"instruction": "Say hi", "output": "Another answer here"},
    {"instruction": "Count", "output": "one two three four"},
]


class FilterTest(unittest.TestCase):
    def apply(self, kind, params, rows=ROWS):
        return compile_filter(kind, params).apply(rows)

    def test_min_max_length(self):
        self.assertEqual(len(self.apply("min_length", {"field": "output", "chars": 10})), 3)
        self.assertEqual([r["output"] for r in self.apply("max_length", {"field": "output", "chars": 2})], ["Hi"])
        self.assertEqual([r["output"] for r in self.apply("min_length", {"field": "output", "words": 4})], ["one two three four"])
        # missing field counts as empty
        self.assertEqual(self.apply("min_length", {"field": "nope", "chars": 1}), [])
        # no field: all fields joined
        self.assertEqual(len(self.apply("max_length", {"words": 3})), 1)

    def test_regex(self):
        self.assertEqual(len(self.apply("regex_include", {"field": "instruction", "pattern": "^Say"})), 2)
        self.assertEqual(len(self.apply("regex_include", {"field": "instruction", "pattern": "^say", "ignoreCase": True})), 3)
        self.assertEqual([r["instruction"] for r in self.apply("regex_exclude", {"field": "instruction", "pattern": "hi|HI"})], ["Count"])
        self.assertEqual(len(self.apply("regex", {"field": "output", "pattern": r"\d"})), 0)

    def test_dedup_exact_and_normalized(self):
        exact = self.apply("dedup", {"field": "instruction"})
        self.assertEqual([r["output"] for r in exact], ["Hello there, friend!", "Hi", "one two three four"])
        normalized = self.apply("dedup", {"field": "instruction", "mode": "normalized"})
        self.assertEqual([r["output"] for r in normalized], ["Hello there, friend!", "one two three four"])
        self.assertEqual(len(dedup(ROWS, "instruction", "normalised")), 2)
        self.assertEqual(len(dedup(ROWS + ROWS)), 4)

    def test_dedup_keeps_records_without_the_field(self):
        rows = [{"prompt": "a"}, {"prompt": "b"}, {"instruction": ""}, {"instruction": "x"}, {"instruction": "x"}]
        self.assertEqual(len(self.apply("dedup", {"field": "instruction"}, rows)), 4)
        self.assertEqual(len(dedup(rows, "instruction")), 4)

    def test_normalize_text(self):
        self.assertEqual(normalize_text("  Say,  HI!\n"), "say hi")
        self.assertEqual(normalize_text("ＦＵＬＬ width"), "full width")

    def test_non_empty(self):
        rows = [{"a": "x", "b": ""}, {"a": "y", "b": "z"}, {"a": "w"}]
        self.assertEqual(compile_filter("non_empty", {"fields": ["a", "b"]}).apply(rows), [{"a": "y", "b": "z"}])

    def test_bad_specs(self):
        for kind, params in (
            ("min_length", {"chars": 3, "words": 2}),
            ("min_length", {"chars": "3"}),
            ("regex_include", {}),
            ("regex_exclude", {"pattern": "[", "field": "x"}),
            ("dedup", {"mode": "fuzzy"}),
            ("language", {"lang": "en"}),
            ("non_empty", {}),
        ):
            with self.assertRaises(MixtureError, msg=(kind, params)):
                compile_filter(kind, params)


class TransformTest(unittest.TestCase):
    def test_rename(self):
        t = compile_transform("rename", {"from": "text", "to": "output"})
        src = {"instruction": "i", "text": "t", "output": "old"}
        self.assertEqual(t.apply([src]), [{"instruction": "i", "output": "t"}])
        self.assertEqual(src["text"], "t")  # input untouched
        self.assertEqual(t.apply([{"a": 1}]), [{"a": 1}])

    def test_lowercase_strip_truncate_drop(self):
        row = {"a": "  Hello World  ", "b": "KEEP", "n": 3}
        self.assertEqual(compile_transform("lowercase", {"field": "a"}).apply([row])[0], {"a": "  hello world  ", "b": "KEEP", "n": 3})
        self.assertEqual(compile_transform("lowercase", {}).apply([row])[0]["b"], "keep")
        self.assertEqual(compile_transform("strip", {"fields": ["a"]}).apply([row])[0]["a"], "Hello World")
        self.assertEqual(compile_transform("truncate", {"field": "a", "chars": 7}).apply([row])[0]["a"], "  Hello")
        self.assertEqual(compile_transform("truncate", {"field": "a", "words": 1}).apply([row])[0]["a"], "Hello")
        self.assertEqual(compile_transform("drop", {"fields": ["b", "n"]}).apply([row])[0], {"a": "  Hello World  "})
        self.assertEqual(row["a"], "  Hello World  ")

    def test_bad_specs(self):
        for kind, params in (("rename", {"from": "a"}), ("truncate", {"field": "a"}), ("upper", {}), ("strip", {"field": "a", "fields": ["b"]})):
            with self.assertRaises(MixtureError, msg=kind):
                compile_transform(kind, params)


class PipelineTest(unittest.TestCase):
    def test_transforms_then_filters_with_cross_source_dedup(self):
        pools = [
            [{"instruction": "q1", "output": "long enough answer"}, {"instruction": "q2", "output": "short"}],
            [{"instruction": "q1", "text": "duplicate of q1 here"}, {"instruction": "q3", "text": "fresh and long answer"}],
        ]
        out, stats = prepare_pools(
            pools,
            [compile_transform("rename", {"from": "text", "to": "output"})],
            [compile_filter("min_length", {"field": "output", "chars": 10}), compile_filter("dedup", {"field": "instruction"})],
        )
        self.assertEqual([[r["instruction"] for r in p] for p in out], [["q1"], ["q3"]])
        self.assertEqual(out[1][0]["output"], "fresh and long answer")
        self.assertEqual(stats.loaded, [2, 2])
        self.assertEqual(stats.after_filters, [1, 1])
        self.assertEqual(stats.removed_by, {"min_length": 1, "dedup": 1})
        self.assertIn("text", pools[1][0])  # inputs untouched


if __name__ == "__main__":
    unittest.main()
