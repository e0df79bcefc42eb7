"""Stage: deploy. Export a run as standalone model folders or a GGUF file (llama.cpp, Ollama), and generate or chat
with the tuned model."""

from tunesmith.deploy.chat import chat_loop, generate_text
from tunesmith.deploy.export import export_run
from tunesmith.deploy.gguf import export_gguf

__all__ = ["chat_loop", "export_gguf", "export_run", "generate_text"]
