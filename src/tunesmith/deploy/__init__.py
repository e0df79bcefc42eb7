"""Stage: deploy. Export a run as standalone model folders, generate or chat with the tuned model, and read the
request log of a served model: monitoring (`monitor_log`) and feedback as training rows (`export_feedback`)."""

from tunesmith.deploy.chat import chat_loop, generate_text
from tunesmith.deploy.export import export_run
from tunesmith.deploy.feedback import export_feedback
from tunesmith.deploy.monitor import monitor_log

__all__ = ["chat_loop", "export_feedback", "export_run", "generate_text", "monitor_log"]
