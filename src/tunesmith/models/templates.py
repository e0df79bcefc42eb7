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

CHATML = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

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
