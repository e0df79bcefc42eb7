"""Stage: deploy. Export a run as standalone model folders, and generate or chat with the tuned model."""

from tunesmith.deploy.chat import chat_loop, generate_text
from tunesmith.deploy.export import export_run

__all__ = ["chat_loop", "export_run", "generate_text"]
