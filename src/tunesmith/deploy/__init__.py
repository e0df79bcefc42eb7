"""Stage: deploy. Export a run as standalone model folders or a GGUF file (llama.cpp, Ollama); generate, chat, or
serve it over an OpenAI-compatible HTTP API (`serve`); and read the served model's request log: monitoring
(`monitor_log`) and feedback as training rows (`export_feedback`)."""

from tunesmith.deploy.chat import chat_loop, generate_text
from tunesmith.deploy.export import export_run
from tunesmith.deploy.feedback import export_feedback
from tunesmith.deploy.gguf import export_gguf
from tunesmith.deploy.monitor import monitor_log
from tunesmith.deploy.served import load_served
from tunesmith.deploy.server import ServerSettings, create_app, serve

__all__ = ["ServerSettings", "chat_loop", "create_app", "export_feedback", "export_gguf", "export_run",
           "generate_text", "load_served", "monitor_log", "serve"]
