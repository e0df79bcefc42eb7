"""The OpenAI API's shapes as `tunesmith serve` speaks them: request models (validated by pydantic, so a bad field
is a 400 that names it), response and stream-chunk builders, and the error body.

Tools are taken on chat completions (`tunesmith.serve.tool_api`), and so are log-probabilities (``logprobs``,
``top_logprobs``: `logprobs_content` builds OpenAI's ``choices[0].logprobs``). Parameters the OpenAI API has and
tunesmith does not implement (penalties, several choices, tools or log-probabilities on text completions, ...) are
refused with a 400 naming them, rather than ignored: a client that asks for them would otherwise get an answer made
without them and not know it. Other unknown fields are ignored, as OpenAI clients send vendor fields freely.

Every sampling field has bounds the engine can honour (`SAMPLING_BOUNDS`), checked here, so that no request reaches
the engine with a setting that fails there (a seed torch cannot take, a temperature whose logits overflow): such a
request is a 400 naming the field and its allowed range.

The UI's playground takes its conversation in the same message shape (`ChatMessage`).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from tunesmith.data.tools import MAX_TOOLS
from tunesmith.serve.tool_api import ToolCall, ToolChoice
from tunesmith.text import is_unicode
from tunesmith.web import HttpError

if TYPE_CHECKING:  # the engine's side (torch) is not needed to validate requests
    from tunesmith.serve.generation import TokenLogprob

UNSUPPORTED = {
    "logprobs": (None, False), "top_logprobs": (None, 0), "tools": (None, []), "tool_choice": (None, "none"),
    "functions": (None, []), "function_call": (None, "none"), "logit_bias": (None, {}),
    "presence_penalty": (None, 0, 0.0), "frequency_penalty": (None, 0, 0.0), "best_of": (None, 1),
    "echo": (None, False), "suffix": (None, ""), "response_format": (None, {"type": "text"}),
}
"""Parameter → the values that mean "not used" (accepted); any other value is refused. Chat completions take
``logprobs`` and ``top_logprobs`` (`ChatRequest`)."""
MAX_TOP_LOGPROBS = 20
"""OpenAI's bound on ``top_logprobs``."""
UNLIKELY_LOGPROB = -9999.0
"""What OpenAI reports for a token too unlikely to have a log-probability (JSON has no -Infinity)."""
MAX_STOP_STRINGS = 4
MAX_STOP_LENGTH = 200
"""Characters of one stop string at most (each step looks for every stop string's start at the text's end)."""
MIN_TEMPERATURE = 1e-3
"""The lowest temperature above 0 (greedy): logits divided by much less overflow float32 and sample nothing."""
MAX_TEMPERATURE = 2.0
MAX_SEED = 2**64 - 1
"""The largest seed `torch.Generator.manual_seed` takes."""
SAMPLING_BOUNDS = {
    "temperature": f"0 (greedy) or from {MIN_TEMPERATURE:g} to {MAX_TEMPERATURE:g}",
    "top_p": "above 0 and at most 1",
    "seed": f"an integer from 0 to {MAX_SEED} (2**64-1)",
    "stop": f"at most {MAX_STOP_STRINGS} non-empty stop strings of at most {MAX_STOP_LENGTH} characters each",
    "top_logprobs": f"an integer from 0 to {MAX_TOP_LOGPROBS}",
}
"""Each bounded sampling field → its allowed range as a refusal names it (max_tokens is bounded by the server's
--max-tokens, `tunesmith.serve.replies`)."""


def _unicode(text: str) -> str:
    if not is_unicode(text):
        raise ValueError("holds a lone surrogate (\\ud800-\\udfff), which is not Unicode text")
    return text


Text = Annotated[str, AfterValidator(_unicode)]
"""Text a request carries to the tokenizer and the log. JSON can spell a lone surrogate, UTF-8 cannot: where
pydantic's own parsing lets one through (a union such as a message's content or a prompt, which are checked by
their validators with `_unicode`), it is a 400 naming the field rather than the tokenizer's error."""


class ApiError(HttpError):
    """An error answered as OpenAI does: ``{"error": {"message", "type", "param", "code"}}`` with ``status``."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, logged: bool = False):
        super().__init__(status, message, param, code)
        self.kind = kind
        self.logged = logged
        """Whether the request's record (with its model) is in the request log already: a failed generation."""

    @classmethod
    def of(cls, error: HttpError) -> ApiError:
        """``error`` in OpenAI's terms (the web layer's errors: bad requests, unknown paths, internal errors)."""
        if isinstance(error, ApiError):
            return error
        kind = "server_error" if error.status >= 500 else "invalid_request_error"
        return cls(error.status, error.message, kind, error.param, error.code)

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = None
    """None decodes greedily, as evaluation does (OpenAI's default is 1: send it to sample)."""
    top_p: float = 1.0
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = 1
    stream: bool = False
    stream_options: dict | None = None
    user: str | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int) -> int:
        if n != 1:
            raise ValueError("only n=1 is supported (send several requests: they are batched)")
        return n

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, temperature: float | None) -> float | None:
        if temperature is not None and not (temperature == 0 or MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE):
            raise _out_of_bounds("temperature", temperature)
        return temperature

    @field_validator("top_p")
    @classmethod
    def _top_p(cls, top_p: float) -> float:
        if not 0 < top_p <= 1:  # NaN fails it too
            raise _out_of_bounds("top_p", top_p)
        return top_p

    @field_validator("seed")
    @classmethod
    def _seed(cls, seed: int | None) -> int | None:
        if seed is not None and not 0 <= seed <= MAX_SEED:
            raise _out_of_bounds("seed", seed)
        return seed

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, stop):
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        if len(stops) > MAX_STOP_STRINGS or any(not 0 < len(item) <= MAX_STOP_LENGTH for item in stops):
            raise PydanticCustomError("out_of_bounds", "give {bounds}", {"bounds": SAMPLING_BOUNDS["stop"]})
        return stops

    def unsupported(self) -> str | None:
        """The first parameter set to a value tunesmith does not implement."""
        extra = self.model_extra or {}
        for name, unused in UNSUPPORTED.items():
            if name in extra and extra[name] not in unused:
                return name
        return None

    def requested_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))

    def reported_logprobs(self) -> int | None:
        """How many most likely tokens to report beside each chosen one (`Sampling.top_logprobs`); None when the
        request asks for no log-probabilities."""
        return None


def _out_of_bounds(name: str, value: float) -> PydanticCustomError:
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    shown = shown if len(shown) <= 40 else f"{shown[:20]}... ({len(shown)} digits)"
    return PydanticCustomError("out_of_bounds", "is {value}; it must be {bounds}",
                               {"value": shown, "bounds": SAMPLING_BOUNDS[name]})


class ContentPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    """None only for an assistant turn that calls tools."""
    tool_calls: list[ToolCall] | None = Field(None, max_length=MAX_TOOLS)
    tool_call_id: str | None = Field(None, max_length=256)

    @field_validator("content")
    @classmethod
    def _unicode_content(cls, content):
        for text in [content] if isinstance(content, str) else [part.text for part in content or []]:
            _unicode(text)
        return content

    @model_validator(mode="after")
    def _content_or_calls(self) -> ChatMessage:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise PydanticCustomError("missing", "content is required (only an assistant turn with tool_calls may "
                                                 "leave it out)")
        if self.tool_calls and self.role != "assistant":
            raise PydanticCustomError("tool_calls", "only an assistant turn carries tool_calls")
        return self

    def as_message(self) -> dict:
        content = self.content if isinstance(self.content, str) else "".join(part.text for part in self.content or [])
        # OpenAI's newer name for the system turn; chat templates know only "system".
        message = {"role": "system" if self.role == "developer" else self.role, "content": content}
        if self.tool_calls:
            message["tool_calls"] = [call.as_call() for call in self.tool_calls]
        if self.role == "tool" and self.tool_call_id:
            message["tool_call_id"] = self.tool_call_id
        return message


class ChatRequest(ToolChoice, _Request):
    messages: list[ChatMessage] = Field(min_length=1)
    logprobs: bool = False
    top_logprobs: int | None = None

    @field_validator("logprobs", mode="before")
    @classmethod
    def _logprobs_flag(cls, logprobs):
        if logprobs is None:  # the OpenAI client sends null for "not given"
            return False
        if not isinstance(logprobs, bool):  # not 1/"true": a legacy completions client's count means another shape
            raise PydanticCustomError("bool_type", "must be true or false (the number of most likely tokens is "
                                                   "top_logprobs)")
        return logprobs

    @field_validator("top_logprobs")
    @classmethod
    def _top_logprobs(cls, top_logprobs: int | None, info: ValidationInfo) -> int | None:
        if top_logprobs is None:
            return None
        if not 0 <= top_logprobs <= MAX_TOP_LOGPROBS:
            raise _out_of_bounds("top_logprobs", top_logprobs)
        if not info.data.get("logprobs"):
            raise PydanticCustomError("logprobs_needed", "needs logprobs: true")
        return top_logprobs

    def reported_logprobs(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionRequest(_Request):
    prompt: str | list[str]

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, prompt):
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if len(prompts) != 1:
            raise ValueError("give one prompt per request (send several requests: they are batched)")
        return _unicode(prompts[0])


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    text: Text = Field(min_length=1)


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    rating: Literal["up", "down"] | None = None
    correction: Text | None = None
    label: Text | None = None


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def logprobs_content(tokens: list[TokenLogprob], token_text: Callable[[int], str]) -> dict:
    """A chat choice's ``logprobs``: ``{"content": [{token, logprob, bytes, top_logprobs: [{token, logprob,
    bytes}]}], "refusal": None}``, one entry per chosen token. ``token_text`` gives a token id's text; its bytes are
    that text's UTF-8 (a token that is part of a character decodes to U+FFFD, as the OpenAI API's text would)."""
    def entry(token: int, logprob: float) -> dict:
        text = token_text(token)
        return {"token": text, "logprob": logprob if math.isfinite(logprob) else UNLIKELY_LOGPROB,
                "bytes": list(text.encode("utf-8", errors="replace"))}

    return {"content": [{**entry(chosen.token, chosen.logprob),
                         "top_logprobs": [entry(token, logprob) for token, logprob in zip(*chosen.top)]}
                        for chosen in tokens], "refusal": None}


def chat_response(request_id: str, model: str, text: str, finish: str, prompt_tokens: int,
                  completion_tokens: int, tool_calls: list[dict] | None = None, logprobs: dict | None = None) -> dict:
    """The whole answer; with ``tool_calls`` (`tunesmith.serve.tool_api.reply_tool_calls`) the message calls them
    instead of saying ``text``; ``logprobs`` (`logprobs_content`) when the request asked for them."""
    message = ({"role": "assistant", "content": None, "tool_calls": tool_calls} if tool_calls
               else {"role": "assistant", "content": text})
    return {
        "id": request_id, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else finish,
                     "logprobs": logprobs}],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def completion_response(request_id: str, model: str, text: str, finish: str, prompt_tokens: int,
                        completion_tokens: int) -> dict:
    return {
        "id": request_id, "object": "text_completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def stream_chunk(request_id: str, model: str, chat: bool, text: str | None, finish: str | None = None,
                 first: bool = False) -> dict:
    """One server-sent event's data: a text delta (the first chat chunk also says the role) or the finish reason."""
    if chat:
        delta = ({"role": "assistant", "content": text or ""} if first else {"content": text} if text else {})
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        kind = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
        kind = "text_completion"
    return {"id": request_id, "object": kind, "created": int(time.time()), "model": model, "choices": [choice]}


def usage_chunk(request_id: str, model: str, chat: bool, prompt_tokens: int, completion_tokens: int) -> dict:
    kind = "chat.completion.chunk" if chat else "text_completion"
    return {"id": request_id, "object": kind, "created": int(time.time()), "model": model, "choices": [],
            "usage": usage(prompt_tokens, completion_tokens)}
