"""Stage: report. One Markdown and one self-contained HTML report of a run (config, data, training, evaluation)."""

from tunesmith.report.build import build_report

__all__ = ["build_report"]
