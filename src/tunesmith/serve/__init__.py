"""Serving: an OpenAI-compatible HTTP server (`serve`, `tunesmith serve`) over a batching engine (`Engine`) that
answers for the runs loaded once by `load_served`. The web UI's playground uses the same engine and loader."""

from tunesmith.serve.engine import Engine, Finished, Generation, Sampling
from tunesmith.serve.served import Served, ServedModel, load_served
from tunesmith.serve.server import ServerSettings, create_server_app, serve

__all__ = ["Engine", "Finished", "Generation", "Sampling", "Served", "ServedModel", "ServerSettings",
           "create_server_app", "load_served", "serve"]
