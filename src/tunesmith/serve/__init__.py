"""Serving: an OpenAI-compatible HTTP server (`serve`, `tunesmith serve`) over a batching engine (`Engine`) that
answers for the runs `load_served` loads (again on a reload, which swaps them without dropping a request). The web
UI's playground uses the same loader, engine (`Engine.stream`) and message shape (`ChatMessage`), through this
public face."""

from tunesmith.serve.engine import Engine, Finished, Generation
from tunesmith.serve.openai_api import ChatMessage
from tunesmith.serve.sampling import Sampling
from tunesmith.serve.served import Served, ServedModel, load_served
from tunesmith.serve.server import ServerSettings, create_server_app, serve
from tunesmith.web.bind_rules import API_KEY_VARIABLE

__all__ = ["API_KEY_VARIABLE", "ChatMessage", "Engine", "Finished", "Generation", "Sampling", "Served", "ServedModel",
           "ServerSettings", "create_server_app", "load_served", "serve"]
