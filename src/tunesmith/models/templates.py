"""Chat templates (`model.chat_template`): the model's own, a built-in, or a Jinja file.

A template turns a conversation into the text the model reads. tunesmith's tokenization (`tunesmith.data.tokenize`)
renders a conversation prefix by prefix and supervises each assistant reply up to and including the model's
EOS token, so every template here must:

- render a conversation as a growing prefix (rendering the first n turns with ``add_generation_prompt`` gives
  the start of rendering n + 1 turns), and
- end every assistant turn with the EOS token, written as ``{{ eos_token }}`` so it is the model's own EOS.
  ChatML is the exception: it ends turns with the ``<|im_end|>`` text, which is the EOS of ChatML models
  (SmolLM2, Qwen); for a tokenizer whose EOS is another token, tokenization appends that EOS to each reply.

The built-ins are for models without a template of their own (base models): ``chatml``, ``llama-3``
(Llama 3's header tokens, written as text where the tokenizer lacks them), ``alpaca`` (### Instruction /
### Response) and ``plain`` (turns separated by newlines, nothing else).
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from tunesmith.config.vocabulary import TemplateName
from tunesmith.errors import ConfigError

TOOLS_PROMPT = (
    "# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>"
)
TOOLS_PROMPT_END = (
    "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": "
    "<args-json-object>}\\n</tool_call>"
)
CHATML = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] + '\\n\\n' }}{%- endif %}"
    "{{- '" + TOOLS_PROMPT + "' }}"
    "{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}"
    "{{- '" + TOOLS_PROMPT_END + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if tools and loop.first and message['role'] == 'system' %}"
    "{%- elif message['role'] == 'assistant' and message['tool_calls'] %}"
    "{{- '<|im_start|>assistant' }}{%- if message['content'] %}{{- '\\n' + message['content'] }}{%- endif %}"
    "{%- for call in message['tool_calls'] %}"
    "{%- set call = call['function'] if call['function'] is defined else call %}"
    "{{- '\\n<tool_call>\\n{\"name\": \"' + call['name'] + '\", \"arguments\": ' }}"
    "{{- call['arguments'] if call['arguments'] is string else call['arguments'] | tojson }}"
    "{{- '}\\n</tool_call>' }}"
    "{%- endfor %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif message['role'] == 'tool' %}"
    "{{- '<|im_start|>tool\\n<tool_response>\\n' + message['content'] + '\\n</tool_response><|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
"""ChatML; with tools, the Hermes / Qwen 2.5 layout: the tools as JSON in the system turn, each call as
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` in the assistant turn, each result in a ``tool``
turn inside ``<tool_response>``. A conversation without tools renders exactly as plain ChatML."""

LLAMA_3 = (
    "{{- bos_token if bos_token else '' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] + eos_token }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
"""Llama 3's layout. Every turn ends with the EOS: Llama 3 Instruct's EOS is its end-of-turn `<|eot_id|>`."""

ALPACA_PREAMBLE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
)
ALPACA = (
    "{%- if messages and messages[0]['role'] == 'system' %}{{- messages[0]['content'] + '\\n\\n' }}"
    "{%- else %}{{- '" + ALPACA_PREAMBLE + "\\n\\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{{- '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
    "{%- elif message['role'] == 'assistant' %}{{- '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '### Response:\\n' }}{%- endif %}"
)
"""Stanford Alpaca's prompt (its preamble unless the conversation has a system message)."""

PLAIN = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}{{- message['content'] + eos_token + '\\n' }}"
    "{%- elif message['content'] %}{{- message['content'] + '\\n' }}{%- endif %}"
    "{%- endfor %}"
)
"""Each turn on its own line(s), no role markers; an empty turn (the `text` format's prompt) writes nothing."""

MODEL_TEMPLATE = "model"
BUILTIN_TEMPLATES = {"chatml": CHATML, "llama-3": LLAMA_3, "alpaca": ALPACA, "plain": PLAIN}
"""Every `TemplateName` but `model` (a test keeps the two in step)."""
TEMPLATE_CHOICES: tuple[str, ...] = get_args(TemplateName)

_KEY = "model.chat_template"
_SAMPLE = [
    {"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"},
]


def template_text(choice: str, model_template: str | None) -> str:
    """The Jinja source of a `model.chat_template` choice (``model_template``: the tokenizer's own)."""
    if choice == MODEL_TEMPLATE:
        if not model_template:
            raise ConfigError(
                _KEY, "is `model`, but the model's tokenizer has no chat template",
                f"set {_KEY} to a built-in ({', '.join(BUILTIN_TEMPLATES)}) or the path of a Jinja template file",
            )
        return model_template
    if choice in BUILTIN_TEMPLATES:
        return BUILTIN_TEMPLATES[choice]
    path = Path(choice)
    if not path.is_file():
        raise ConfigError(
            _KEY, f"{choice!r} is neither a known template nor an existing file",
            f"use {', '.join(TEMPLATE_CHOICES)}, or the path of a Jinja template file",
        )
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(_KEY, f"cannot read the template file {choice}: {exc}") from None


def apply_chat_template_choice(tokenizer, choice: str):
    """Give ``tokenizer`` the chat template ``choice`` names (see the module docstring) and return it.

    The template is rendered once on a sample conversation, so a broken template file fails here, naming the
    config key, rather than in the middle of tokenization.
    """
    tokenizer.chat_template = template_text(choice, getattr(tokenizer, "chat_template", None))
    for generation_prompt in (False, True):
        try:
            tokenizer.apply_chat_template(_SAMPLE, tokenize=False, add_generation_prompt=generation_prompt)
        except Exception as exc:  # a user's Jinja can raise anything (syntax, undefined, raise_exception)
            problem = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise ConfigError(_KEY, f"the chat template {choice!r} cannot render a conversation: {problem}") from None
    return tokenizer


def stop_token_ids(model, tokenizer) -> list[int]:
    """Tokens that end a reply: the tokenizer's EOS (ChatML's end of turn, which SFT taught the model to emit)
    plus any the model's generation config already names."""
    configured = model.generation_config.eos_token_id
    configured = configured if isinstance(configured, list) else [configured]
    return list(dict.fromkeys(token for token in [tokenizer.eos_token_id, *configured] if token is not None))


# ---- tool calling -----------------------------------------------------------------------------------------------

_PROBE_FUNCTION, _PROBE_ARGUMENT = "tunesmith_probe_lookup", "probe-value-7"
_PROBE_DESCRIPTION = "probe-tool-description"
_PROBE_TOOLS = [{"type": "function", "function": {
    "name": _PROBE_FUNCTION, "description": _PROBE_DESCRIPTION,
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}]
_PROBE = [
    {"role": "user", "content": "u"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": _PROBE_FUNCTION, "arguments": {"query": _PROBE_ARGUMENT}}}]},
    {"role": "tool", "content": "r", "name": _PROBE_FUNCTION},
    {"role": "assistant", "content": "a"},
]
_tool_support: dict[str, str | None] = {}
"""Template source → why it cannot render tool calls (None: it can); each template is probed once."""


def template_label(tokenizer) -> str:
    """How `model.chat_template` names the tokenizer's template: a built-in's name, else the model's own."""
    source = getattr(tokenizer, "chat_template", None)
    builtin = next((name for name, text in BUILTIN_TEMPLATES.items() if text == source), None)
    if builtin:
        return f"the built-in {builtin!r}"
    name = getattr(tokenizer, "name_or_path", "")
    return f"the model's own chat template ({name})" if name else "the model's own chat template"


def tool_support_problem(tokenizer) -> str | None:
    """Why the tokenizer's chat template cannot train tool calling, or None when it can.

    The probe renders a conversation that declares a tool, calls it and reads its result: the declared tool's
    description, the call's function name and its argument must all be in the text. A template that drops them
    (SmolLM2's writes only each turn's ``content``) would train the model on conversations without their calls.
    """
    source = getattr(tokenizer, "chat_template", None) or ""
    if source not in _tool_support:
        try:
            text = tokenizer.apply_chat_template(_PROBE, tools=_PROBE_TOOLS, tokenize=False)
        except Exception as exc:  # a template may raise anything (raise_exception, undefined keys)
            _tool_support[source] = "cannot render a conversation with a tool call: " + " ".join(
                f"{type(exc).__name__}: {exc}".split())
        else:
            missing = [what for what, needle in (("the declared tools", _PROBE_DESCRIPTION),
                                                 ("the call's function name", _PROBE_FUNCTION),
                                                 ("the call's arguments", _PROBE_ARGUMENT)) if needle not in text]
            _tool_support[source] = f"does not write {' or '.join(missing)}" if missing else None
    return _tool_support[source]


def require_tool_support(tokenizer) -> None:
    """Raise a ConfigError naming the template when it cannot render tool calls (see `tool_support_problem`)."""
    problem = tool_support_problem(tokenizer)
    if problem:
        raise ConfigError(
            _KEY, f"the data has tool calls, but {template_label(tokenizer)} {problem}: it has no tool support",
            f"set {_KEY}: chatml (ChatML with the Hermes / Qwen 2.5 tool-call layout), or a Jinja file that "
            "renders `tools` and each message's `tool_calls`",
        )
