"""After deployment: the request log that `tunesmith serve` writes (`request_log`, one JSON line a request), and
what is read from it: traffic and drift against the run's reference, window by window (`monitor_log`,
`tunesmith monitor`, with an HTML page) and users' feedback as training rows (`export_feedback`, `tunesmith
feedback export`). It reads logs and run folders only, never a model."""

from tunesmith.monitor.analysis import MonitorResult, monitor_log
from tunesmith.monitor.feedback import FeedbackExport, export_feedback
from tunesmith.monitor.request_log import RequestLog, read_log, read_records

__all__ = ["FeedbackExport", "MonitorResult", "RequestLog", "export_feedback", "monitor_log", "read_log",
           "read_records"]
