"""An OpenAI-compatible ``/v1/chat/completions`` endpoint, asked one chat at a time: a review's judge model
(`tunesmith.review.judge`) and a labeling queue's teacher (`tunesmith.label.teacher`) both go through `ask_chat`;
a judge that reads its verdict from token probabilities asks through `ask_first_token`.
The endpoint is the user's own server, a hosted API, or `tunesmith serve` of another run."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from tunesmith.errors import TunesmithError

TIMEOUT_S = 120.0


class EndpointError(TunesmithError):
    """The endpoint did not give a chat reply: unreachable, too slow, an HTTP error, or not an OpenAI-compatible
    answer. The message names the endpoint's URL and says which."""


@dataclass(frozen=True)
class ChatEndpoint:
    """Where and how to ask: the chat completions URL, the model name it serves, an optional API key."""

    url: str
    model: str
    api_key: str | None = None
    timeout_s: float = TIMEOUT_S


def chat_completions_url(endpoint: str) -> str:
    """``endpoint`` as a chat completions URL: a server root or a ``/v1`` base gets the rest of the path."""
    endpoint = endpoint.rstrip("/")
    if endpoint.endswith("/chat/completions"):
        return endpoint
    return f"{endpoint}/chat/completions" if endpoint.endswith("/v1") else f"{endpoint}/v1/chat/completions"


def ask_chat(client: httpx.Client, endpoint: ChatEndpoint, messages: list[dict], max_tokens: int,
             name: str = "endpoint", options: str = "--endpoint", timeout_hint: str = "check that it is up") -> str:
    """The endpoint's reply to ``messages`` (temperature 0, at most ``max_tokens``). Every failure is an
    `EndpointError` that calls the endpoint ``name`` (e.g. "judge endpoint") and points at the command's
    ``options`` that choose it (``timeout_hint`` is the hint of a timeout)."""
    answer = _post(client, endpoint, {"max_tokens": max_tokens, "messages": messages}, name, options, timeout_hint)
    try:
        reply = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise EndpointError(f"{name} {endpoint.url} did not answer as an OpenAI-compatible chat completions "
                            "endpoint (no choices[0].message.content)") from None
    return reply if isinstance(reply, str) else ""


def ask_first_token(client: httpx.Client, endpoint: ChatEndpoint, messages: list[dict], top_logprobs: int,
                    name: str = "endpoint", options: str = "--endpoint",
                    timeout_hint: str = "check that it is up") -> list[tuple[str, float]] | None:
    """The most likely first tokens of the endpoint's reply to ``messages`` as ``(token text, log-probability)``
    (OpenAI's ``logprobs`` / ``top_logprobs``: at most ``top_logprobs`` of them; the reply is one token at
    temperature 0); an empty list when the reply has no token; None when the endpoint returns no log-probabilities.
    Failures as `ask_chat`'s."""
    body = {"max_tokens": 1, "messages": messages, "logprobs": True, "top_logprobs": top_logprobs}
    answer = _post(client, endpoint, body, name, options, timeout_hint)
    try:
        content = answer["choices"][0].get("logprobs")
        content = content.get("content") if isinstance(content, dict) else None
        if content is None:
            return None
        if not content:
            return []
        found = [(str(entry["token"]), float(entry["logprob"])) for entry in content[0]["top_logprobs"]]
    except (KeyError, IndexError, TypeError, AttributeError, ValueError):
        raise EndpointError(f"{name} {endpoint.url} did not answer as an OpenAI-compatible chat completions "
                            "endpoint (no choices[0].logprobs.content[0].top_logprobs)") from None
    return found


def _post(client: httpx.Client, endpoint: ChatEndpoint, request: dict, name: str, options: str,
          timeout_hint: str) -> dict:
    """The endpoint's JSON answer to ``request`` (the model and temperature 0 added), or an `EndpointError`."""
    body = {"model": endpoint.model, "temperature": 0, **request}
    headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
    try:
        response = client.post(endpoint.url, json=body, headers=headers)
        response.raise_for_status()
        answer = response.json()
    except httpx.TimeoutException:
        raise EndpointError(f"{name} {endpoint.url} did not answer within {endpoint.timeout_s:g}s",
                            timeout_hint) from None
    except httpx.HTTPStatusError as error:
        raise EndpointError(f"{name} {endpoint.url} answered HTTP {error.response.status_code}: "
                            f"{error.response.text[:200]}", f"check {options}") from None
    except httpx.HTTPError as error:
        raise EndpointError(f"{name} {endpoint.url}: {error}", f"check {options.split(',')[0]}") from None
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list) or not answer["choices"]:
        raise EndpointError(f"{name} {endpoint.url} did not answer as an OpenAI-compatible chat completions "
                            "endpoint (no choices)")
    return answer
