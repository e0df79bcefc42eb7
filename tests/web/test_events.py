"""Server-sent events as both apps send them."""

from __future__ import annotations

from tunesmith.web import server_sent_event


def test_an_event_is_one_data_line_of_json_or_a_sentinel():
    assert server_sent_event({"text": "héllo\nworld"}) == 'data: {"text": "héllo\\nworld"}\n\n'
    assert server_sent_event("[DONE]") == "data: [DONE]\n\n"
