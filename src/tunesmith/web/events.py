"""Server-sent events: how both apps stream text as it is generated (an OpenAI stream, the playground's panes)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from tunesmith.json_files import dumps


def server_sent_event(data: object) -> str:
    """One event: ``data`` as JSON (a string is sent as it is, for sentinels such as OpenAI's ``[DONE]``)."""
    return f"data: {data if isinstance(data, str) else dumps(data)}\n\n"


def event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    """A response that sends ``events`` as they come. Leaving it (a client that went away) closes ``events``, so
    their ``finally`` runs: that is where a generation is cancelled."""
    return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
