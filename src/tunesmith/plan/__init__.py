"""Plan a run before it trains (`tunesmith plan`): rows, tokens per epoch and steps by the recipe's own rules
(`counts`), the model's shape without its weights (`shape`), estimates of time, peak memory, disk and cost, from
stated figures (`estimates`) or a few measured steps on this machine (`probe`), put together by `planner`."""

from tunesmith.plan.planner import Plan, make_plan, render_plan, run_summary, summary_line

__all__ = ["Plan", "make_plan", "render_plan", "run_summary", "summary_line"]
