"""Stage: report. One Markdown and one self-contained HTML report of a run, verdict first."""

from tunesmith.report.build import build_report

__all__ = ["build_report"]
