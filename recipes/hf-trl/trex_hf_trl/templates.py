"""Prompt templates: turn a dataset example into a (prompt, completion) pair.

Built-in formats (names are case-insensitive; ``default`` means ``alpaca``):

* ``alpaca`` - the Stanford Alpaca instruction/input/response layout;
* ``chatml`` - ``<|im_start|>role ... <|im_end|>`` turns;
* ``llama3`` (aliases ``llama3-chat``, ``llama-3``) - Llama 3 header/eot turns;
* ``plain`` - the instruction, a newline, then the answer;
* ``native`` (aliases ``chat``, ``tokenizer``) - conversational messages, to be
  rendered by the base model's own tokenizer chat template;
* ``template:<text>`` - an inline template with ``{field}`` placeholders
  (``{{``/``}}`` for literal braces). If the text ends with a placeholder, that
  placeholder is the completion and everything before it is the prompt;
  otherwise the whole text is the prompt and the completion is the example's
  answer field (``output``, ``response``, ``completion``, ``answer``, ...).

Examples may carry fields (``instruction``/``prompt``/``question``/``query``,
optional ``input``/``context``, ``output``/``response``/``answer``/...,
optional ``system``), a ``messages`` list of ``{"role", "content"}`` (or
ShareGPT ``conversations`` of ``{"from", "value"}``), or a bare ``text``.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

INSTRUCTION_KEYS: tuple[str, ...] = ("instruction", "prompt", "question", "query", "problem")
CONTEXT_KEYS: tuple[str, ...] = ("input", "context")
ANSWER_KEYS: tuple[str, ...] = ("output", "response", "completion", "answer", "target", "label", "solution")
SYSTEM_KEYS: tuple[str, ...] = ("system", "system_prompt")
MESSAGE_KEYS: tuple[str, ...] = ("messages", "conversations")
TEXT_KEY = "text"
INLINE_PREFIX = "template:"

_ROLE_ALIASES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "system": "system",
}


class TemplateError(ValueError):
    """A template is malformed or an example lacks a field the template needs."""


def to_text(value: object) -> str:
    """Render a field value as text: None is empty, strings as is, others as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False)


def _first(example: Mapping[str, Any], keys: Sequence[str]) -> tuple[str, str] | None:
    for key in keys:
        if key in example and example[key] is not None:
            return key, to_text(example[key])
    return None


def _fields_hint(example: Mapping[str, Any]) -> str:
    return ", ".join(sorted(str(k) for k in example.keys())) or "(none)"


@dataclass(frozen=True)
class Conversation:
    """An example normalised to turns; ``answer`` is the final assistant reply."""

    system: str | None
    turns: tuple[tuple[str, str], ...]
    answer: str | None
    context: str | None = None  # alpaca's separate "input" section, when from fields


def to_conversation(example: Mapping[str, Any]) -> Conversation:
    """Normalise an example (fields, messages, or bare text) to a conversation."""
    system_hit = _first(example, SYSTEM_KEYS)
    system = system_hit[1] if system_hit and system_hit[1] else None
    for key in MESSAGE_KEYS:
        raw = example.get(key)
        if isinstance(raw, list) and raw:
            turns: list[tuple[str, str]] = []
            for index, message in enumerate(raw):
                if not isinstance(message, Mapping):
                    raise TemplateError(f"{key}[{index}]: expected an object with role and content")
                role_raw = message.get("role", message.get("from"))
                content = message.get("content", message.get("value"))
                role = _ROLE_ALIASES.get(str(role_raw).lower()) if role_raw is not None else None
                if role is None:
                    raise TemplateError(
                        f"{key}[{index}].role: expected user, assistant or system, got {role_raw!r}"
                    )
                if role == "system":
                    system = to_text(content)
                    continue
                turns.append((role, to_text(content)))
            answer: str | None = None
            if turns and turns[-1][0] == "assistant":
                answer = turns[-1][1]
                turns = turns[:-1]
            return Conversation(system, tuple(turns), answer)
    instruction = _first(example, INSTRUCTION_KEYS)
    answer_hit = _first(example, ANSWER_KEYS)
    if instruction is None:
        text = example.get(TEXT_KEY)
        if text is not None and answer_hit is None:
            # Plain language modelling: nothing to condition on.
            return Conversation(system, (), to_text(text))
        raise TemplateError(
            "example has no instruction field: expected one of "
            f"{', '.join(INSTRUCTION_KEYS + MESSAGE_KEYS)} or a bare {TEXT_KEY!r} "
            f"(fields present: {_fields_hint(example)}); add a 'rename' transform"
        )
    context_hit = _first(example, CONTEXT_KEYS)
    context = context_hit[1] if context_hit and context_hit[1].strip() else None
    return Conversation(system, (("user", instruction[1]),), answer_hit[1] if answer_hit else None, context)


def _user_with_context(conv: Conversation) -> tuple[tuple[str, str], ...]:
    if conv.context is None or not conv.turns:
        return conv.turns
    role, content = conv.turns[0]
    return ((role, f"{content}\n\n{conv.context}"),) + conv.turns[1:]


def _missing_answer(example: Mapping[str, Any]) -> TemplateError:
    return TemplateError(
        "example has no answer to train on: expected one of "
        f"{', '.join(ANSWER_KEYS)} or a final assistant message (fields present: {_fields_hint(example)})"
    )


@dataclass(frozen=True)
class Template:
    """Base class. ``stop`` lists strings at which a generated answer is cut."""

    name: str
    stop: tuple[str, ...] = ()
    conversational: bool = False

    def prompt(self, example: Mapping[str, Any]) -> Any:
        """The prompt text (or message list for conversational templates)."""
        raise NotImplementedError

    def completion(self, example: Mapping[str, Any]) -> Any:
        """The completion text (or message list for conversational templates)."""
        raise NotImplementedError

    def reference(self, example: Mapping[str, Any]) -> str:
        """The bare reference answer, for evaluation."""
        answer = to_conversation(example).answer
        if answer is None:
            raise _missing_answer(example)
        return answer

    def to_record(self, example: Mapping[str, Any]) -> dict[str, Any]:
        """A TRL prompt-completion record."""
        return {"prompt": self.prompt(example), "completion": self.completion(example)}

    def render(self, example: Mapping[str, Any]) -> str:
        """Prompt and completion as one string (not for conversational templates)."""
        return f"{self.prompt(example)}{self.completion(example)}"

    def cut(self, generated: str) -> str:
        """Cut a generation at the first stop string and strip whitespace."""
        end = len(generated)
        for marker in self.stop:
            pos = generated.find(marker)
            if pos != -1:
                end = min(end, pos)
        return generated[:end].strip()


_ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
)
_ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n"
)


@dataclass(frozen=True)
class AlpacaTemplate(Template):
    name: str = "alpaca"
    stop: tuple[str, ...] = ("\n### ",)

    def prompt(self, example: Mapping[str, Any]) -> str:
        conv = to_conversation(example)
        parts: list[str] = []
        if conv.system:
            parts.append(conv.system.rstrip() + "\n\n")
        else:
            parts.append(_ALPACA_WITH_INPUT if conv.context else _ALPACA_NO_INPUT)
        for index, (role, content) in enumerate(conv.turns):
            if role == "user":
                parts.append(f"### Instruction:\n{content}\n\n")
                if index == 0 and conv.context:
                    parts.append(f"### Input:\n{conv.context}\n\n")
            else:
                parts.append(f"### Response:\n{content}\n\n")
        parts.append("### Response:\n")
        return "".join(parts)

    def completion(self, example: Mapping[str, Any]) -> str:
        return self.reference(example)


@dataclass(frozen=True)
class PlainTemplate(Template):
    name: str = "plain"

    def prompt(self, example: Mapping[str, Any]) -> str:
        conv = to_conversation(example)
        turns = _user_with_context(conv)
        if not turns and not conv.system:
            return ""
        chunks = ([conv.system] if conv.system else []) + [content for _, content in turns]
        return "\n\n".join(chunks) + "\n"

    def completion(self, example: Mapping[str, Any]) -> str:
        return self.reference(example)


@dataclass(frozen=True)
class ChatMLTemplate(Template):
    name: str = "chatml"
    stop: tuple[str, ...] = ("<|im_end|>", "<|im_start|>")

    def prompt(self, example: Mapping[str, Any]) -> str:
        conv = to_conversation(example)
        parts = [f"<|im_start|>system\n{conv.system}<|im_end|>\n"] if conv.system else []
        parts += [f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in _user_with_context(conv)]
        parts.append("<|im_start|>assistant\n")
        return "".join(parts)

    def completion(self, example: Mapping[str, Any]) -> str:
        return f"{self.reference(example)}<|im_end|>"


@dataclass(frozen=True)
class Llama3Template(Template):
    name: str = "llama3"
    stop: tuple[str, ...] = ("<|eot_id|>", "<|start_header_id|>")

    def prompt(self, example: Mapping[str, Any]) -> str:
        # No <|begin_of_text|>: the tokenizer adds its BOS token itself.
        conv = to_conversation(example)
        turns = (("system", conv.system),) if conv.system else ()
        parts = [
            f"<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>"
            for role, content in turns + _user_with_context(conv)
        ]
        parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
        return "".join(parts)

    def completion(self, example: Mapping[str, Any]) -> str:
        return f"{self.reference(example)}<|eot_id|>"


@dataclass(frozen=True)
class NativeChatTemplate(Template):
    """Conversational records; the trainer applies the tokenizer's chat template."""

    name: str = "native"
    conversational: bool = True

    def prompt(self, example: Mapping[str, Any]) -> list[dict[str, str]]:
        conv = to_conversation(example)
        messages = [{"role": "system", "content": conv.system}] if conv.system else []
        messages += [{"role": role, "content": content} for role, content in _user_with_context(conv)]
        return messages

    def completion(self, example: Mapping[str, Any]) -> list[dict[str, str]]:
        return [{"role": "assistant", "content": self.reference(example)}]

    def render(self, example: Mapping[str, Any]) -> str:
        raise TemplateError("the 'native' format is rendered by the tokenizer's chat template")


@dataclass(frozen=True)
class InlineTemplate(Template):
    """``template:`` text with ``{field}`` placeholders."""

    source: str = ""
    prompt_parts: tuple[tuple[str, str | None], ...] = ()
    completion_field: str | None = None
    fields: tuple[str, ...] = ()

    def _fill(self, example: Mapping[str, Any]) -> str:
        out: list[str] = []
        for literal, field in self.prompt_parts:
            out.append(literal)
            if field is not None:
                if field not in example:
                    raise TemplateError(
                        f"template field {{{field}}} is missing from the example "
                        f"(fields present: {_fields_hint(example)}); fix the template or add a 'rename' transform"
                    )
                out.append(to_text(example[field]))
        return "".join(out)

    def prompt(self, example: Mapping[str, Any]) -> str:
        return self._fill(example)

    def reference(self, example: Mapping[str, Any]) -> str:
        if self.completion_field is None:
            hit = _first(example, ANSWER_KEYS)
            if hit is not None:
                return hit[1]
            try:
                answer = to_conversation(example).answer
            except TemplateError:
                answer = None
            if answer is None:
                raise _missing_answer(example)
            return answer
        if self.completion_field not in example:
            raise TemplateError(
                f"template field {{{self.completion_field}}} is missing from the example "
                f"(fields present: {_fields_hint(example)}); fix the template or add a 'rename' transform"
            )
        return to_text(example[self.completion_field])

    def completion(self, example: Mapping[str, Any]) -> str:
        return self.reference(example)


def parse_inline(text: str) -> InlineTemplate:
    """Parse the text after ``template:``."""
    source = text
    if not text.strip():
        raise TemplateError("inline template is empty: write e.g. 'template:Q: {question}\\nA: {answer}'")
    try:
        pieces = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"inline template is malformed: {exc} (write '{{{{' or '}}}}' for literal braces)") from None
    parts: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in pieces:
        if field is not None:
            if field == "" or field.strip() != field:
                raise TemplateError(
                    "inline template has an empty or padded placeholder '{}': name a field, e.g. {instruction}"
                )
            if spec or conversion:
                raise TemplateError(f"inline template placeholder {{{field}}}: format specs and conversions are not supported")
        parts.append((literal, field))
    completion_field: str | None = None
    trailing = parts[-1] if parts else ("", None)
    if trailing[1] is None and not trailing[0].strip() and len(parts) >= 2 and parts[-2][1] is not None:
        parts = parts[:-1]  # whitespace after the final placeholder
    if parts and parts[-1][1] is not None:
        completion_field = parts[-1][1]
        parts[-1] = (parts[-1][0], None)
    fields = tuple(f for _, f in parts if f is not None)
    return InlineTemplate(
        name=INLINE_PREFIX + source,
        source=source,
        prompt_parts=tuple(parts),
        completion_field=completion_field,
        fields=fields + ((completion_field,) if completion_field else ()),
    )


_BUILTIN: dict[str, Template] = {
    "alpaca": AlpacaTemplate(),
    "chatml": ChatMLTemplate(),
    "llama3": Llama3Template(),
    "plain": PlainTemplate(),
    "native": NativeChatTemplate(),
}
_ALIASES = {
    "llama3-chat": "llama3",
    "llama-3": "llama3",
    "llama3_chat": "llama3",
    "llama-3-chat": "llama3",
    "chat": "native",
    "tokenizer": "native",
    "text": "plain",
    "default": "alpaca",  # TREX's DataRecipe.format default
}

TEMPLATE_NAMES: tuple[str, ...] = tuple(sorted(_BUILTIN))


def get_template(fmt: str) -> Template:
    """Resolve a format name or ``template:...`` inline template."""
    if not isinstance(fmt, str) or not fmt.strip():
        raise TemplateError("expected a prompt format name, got an empty value")
    if fmt.startswith(INLINE_PREFIX):
        return parse_inline(fmt[len(INLINE_PREFIX) :])
    key = fmt.strip().lower()
    key = _ALIASES.get(key, key)
    template = _BUILTIN.get(key)
    if template is None:
        raise TemplateError(
            f"unknown prompt format {fmt!r}; expected one of {', '.join(TEMPLATE_NAMES)}, "
            "or 'template:<text with {field} placeholders>'"
        )
    return template
