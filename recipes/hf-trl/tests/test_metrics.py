import unittest

from trex_hf_trl import metrics as m


class MetricsTest(unittest.TestCase):
    def test_exact_match(self):
        # normalisation drops case, punctuation and articles
        self.assertEqual(m.exact_match(["The Cat!", "dog", "a  bird"], ["cat", "Dog.", "fish"]), 2 / 3)
        self.assertEqual(m.exact_match(["x"], ["y"]), 0.0)

    def test_accuracy(self):
        # stripped, case-folded equality; punctuation matters
        self.assertEqual(m.accuracy([" Positive", "negative", "neutral."], ["positive", "NEGATIVE", "neutral"]), 2 / 3)

    def test_macro_f1_hand_computed(self):
        refs = ["a", "a", "b", "b", "c"]
        preds = ["a", "b", "b", "b", "a"]
        # a: TP1 FP1 FN1 -> 2/4 = 0.5 ; b: TP2 FP1 FN0 -> 4/5 = 0.8 ; c: TP0 FP0 FN1 -> 0
        self.assertAlmostEqual(m.macro_f1(preds, refs), (0.5 + 0.8 + 0.0) / 3)
        self.assertEqual(m.macro_f1(["x", "y"], ["x", "y"]), 1.0)
        # a predicted label never in the references still counts (F1 0)
        self.assertAlmostEqual(m.macro_f1(["a", "z"], ["a", "a"]), (2 / 3 + 0.0) / 2)

    def test_rouge1_hand_computed(self):
        # pred 6 tokens, ref 6 tokens, overlap the(clipped 2) cat sat on mat = 5 -> P=R=5/6
        self.assertAlmostEqual(m.rouge1_f("the cat sat on the mat", "the cat was on the mat"), 5 / 6)
        # clipping: pred "the the the" vs ref "the cat": overlap 1, P=1/3, R=1/2 -> F = 2*(1/6)/(5/6) = 0.4
        self.assertAlmostEqual(m.rouge1_f("the the the", "The cat"), 0.4)
        self.assertEqual(m.rouge1_f("", ""), 1.0)
        self.assertEqual(m.rouge1_f("x", ""), 0.0)
        self.assertEqual(m.rouge1_f("a b", "c d"), 0.0)
        self.assertAlmostEqual(m.rouge1(["the the the", "a"], ["The cat", "a"]), (0.4 + 1.0) / 2)

    def test_token_f1(self):
        # normalised: "quick brown fox" vs "brown fox jumps" -> overlap 2, P=R=2/3
        self.assertAlmostEqual(m.token_f1(["The quick brown fox"], ["brown fox jumps"]), 2 / 3)

    def test_registry(self):
        self.assertEqual(m.canonical_metric("ROUGE-1"), "rouge1")
        self.assertEqual(m.canonical_metric("em"), "exact_match")
        self.assertEqual(m.canonical_metric("f1_macro"), "macro_f1")
        self.assertEqual(m.metric_direction("loss"), "minimize")
        self.assertEqual(m.metric_direction("accuracy"), "maximize")
        self.assertTrue(m.is_loss_metric("perplexity"))
        self.assertAlmostEqual(m.compute_metric("acc", ["1"], ["1"]), 1.0)
        with self.assertRaises(ValueError):
            m.canonical_metric("bleu")
        with self.assertRaises(ValueError):
            m.compute_metric("eval_loss", ["a"], ["a"])

    def test_an_example_without_a_prediction_is_a_failure(self):
        # None: an example the trial's format cannot render; it counts in the mean, as 0
        self.assertEqual(m.exact_match(["cat", None], ["cat", "dog"]), 0.5)
        self.assertEqual(m.accuracy([None, None], ["a", "b"]), 0.0)
        self.assertAlmostEqual(m.rouge1(["the cat", None, None], ["the cat", "", None]), 1 / 3)
        self.assertAlmostEqual(m.token_f1(["x y", None], ["x y", "x y"]), 0.5)
        # macro_f1: a miss of its reference's label (no false positive); an unknown reference a label never predicted
        self.assertAlmostEqual(m.macro_f1(["a", None], ["a", "a"]), 2 / 3)
        self.assertAlmostEqual(m.macro_f1(["a", "b", None], ["a", "b", None]), (1.0 + 1.0 + 0.0) / 3)

    def test_length_mismatch_and_empty(self):
        with self.assertRaises(ValueError):
            m.accuracy(["a"], ["a", "b"])
        with self.assertRaises(ValueError):
            m.rouge1([], [])


if __name__ == "__main__":
    unittest.main()
