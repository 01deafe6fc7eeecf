import unittest

from trex_hf_trl.templates import TEMPLATE_NAMES, TemplateError, get_template, to_conversation

ALPACA_ROW = {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}


class BuiltinTemplatesTest(unittest.TestCase):
    def test_names(self):
        self.assertEqual(set(TEMPLATE_NAMES), {"alpaca", "chatml", "llama3", "plain", "native"})

    def test_alpaca_with_and_without_input(self):
        t = get_template("alpaca")
        prompt = t.prompt(ALPACA_ROW)
        self.assertIn("paired with an input", prompt)
        self.assertIn("### Instruction:\nAdd the numbers.\n\n### Input:\n2 and 3\n\n### Response:\n", prompt)
        self.assertTrue(prompt.endswith("### Response:\n"))
        self.assertEqual(t.completion(ALPACA_ROW), "5")
        no_input = t.prompt({"instruction": "Hi", "input": "  ", "output": "Hello"})
        self.assertNotIn("### Input:", no_input)
        self.assertNotIn("paired with an input", no_input)

    def test_chatml_exact(self):
        t = get_template("ChatML")
        row = {"system": "Be terse.", "instruction": "Capital of France?", "output": "Paris"}
        self.assertEqual(
            t.render(row),
            "<|im_start|>system\nBe terse.<|im_end|>\n"
            "<|im_start|>user\nCapital of France?<|im_end|>\n"
            "<|im_start|>assistant\nParis<|im_end|>",
        )
        self.assertEqual(t.cut(" Paris<|im_end|>\n<|im_start|>user"), "Paris")

    def test_llama3_exact_and_aliases(self):
        for name in ("llama3", "llama3-chat", "LLAMA-3"):
            t = get_template(name)
            self.assertEqual(t.name, "llama3")
        t = get_template("llama3-chat")
        self.assertEqual(
            t.to_record({"prompt": "Hi", "response": "Hello!"}),
            {
                "prompt": "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
                "completion": "Hello!<|eot_id|>",
            },
        )

    def test_plain(self):
        t = get_template("plain")
        self.assertEqual(t.render({"question": "2+2?", "answer": 4}), "2+2?\n4")
        self.assertEqual(t.to_record({"text": "just text"}), {"prompt": "", "completion": "just text"})

    def test_messages_and_sharegpt(self):
        row = {
            "messages": [
                {"role": "system", "content": "S"},
                {"role": "user", "content": "U1"},
                {"role": "assistant", "content": "A1"},
                {"role": "user", "content": "U2"},
                {"role": "assistant", "content": "A2"},
            ]
        }
        conv = to_conversation(row)
        self.assertEqual(conv.system, "S")
        self.assertEqual(conv.turns, (("user", "U1"), ("assistant", "A1"), ("user", "U2")))
        self.assertEqual(conv.answer, "A2")
        rec = get_template("chatml").to_record(row)
        self.assertTrue(rec["prompt"].endswith("<|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\n"))
        self.assertIn("<|im_start|>assistant\nA1<|im_end|>", rec["prompt"])
        self.assertEqual(rec["completion"], "A2<|im_end|>")
        share = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
        self.assertEqual(get_template("native").to_record(share), {
            "prompt": [{"role": "user", "content": "q"}],
            "completion": [{"role": "assistant", "content": "a"}],
        })
        with self.assertRaises(TemplateError):
            to_conversation({"messages": [{"role": "wizard", "content": "x"}]})

    def test_missing_fields_are_clear(self):
        with self.assertRaises(TemplateError) as ctx:
            get_template("alpaca").prompt({"foo": "bar"})
        self.assertIn("instruction", str(ctx.exception))
        self.assertIn("foo", str(ctx.exception))
        with self.assertRaises(TemplateError) as ctx:
            get_template("chatml").completion({"instruction": "x"})
        self.assertIn("no answer", str(ctx.exception))

    def test_unknown_name(self):
        with self.assertRaises(TemplateError) as ctx:
            get_template("vicuna")
        self.assertIn("alpaca", str(ctx.exception))


class InlineTemplateTest(unittest.TestCase):
    def test_trailing_placeholder_is_completion(self):
        t = get_template("template:Q: {question}\nA: {answer}\n")
        self.assertEqual(t.to_record({"question": "2+2", "answer": "4", "x": 1}), {"prompt": "Q: 2+2\nA: ", "completion": "4"})
        self.assertEqual(t.reference({"question": "q", "answer": "a"}), "a")

    def test_prompt_only_template_uses_answer_field(self):
        t = get_template("template:Summarize: {document}\nSummary:")
        rec = t.to_record({"document": "long text", "summary": "s", "output": "short"})
        self.assertEqual(rec, {"prompt": "Summarize: long text\nSummary:", "completion": "short"})

    def test_literal_braces(self):
        t = get_template('template:JSON {{"q": "{q}"}} -> {a}')
        self.assertEqual(t.to_record({"q": "x", "a": "y"}), {"prompt": 'JSON {"q": "x"} -> ', "completion": "y"})

    def test_missing_placeholder_field(self):
        t = get_template("template:Q: {question}\nA: {answer}")
        with self.assertRaises(TemplateError) as ctx:
            t.prompt({"query": "2+2", "answer": "4"})
        message = str(ctx.exception)
        self.assertIn("{question}", message)
        self.assertIn("answer, query", message)
        with self.assertRaises(TemplateError) as ctx:
            t.completion({"question": "2+2"})
        self.assertIn("{answer}", str(ctx.exception))

    def test_malformed(self):
        for bad in ("template:", "template:{}", "template:{x!r}", "template:{x:>4}", "template:oops }", "template:{ x }"):
            with self.assertRaises(TemplateError, msg=bad):
                get_template(bad)


if __name__ == "__main__":
    unittest.main()
