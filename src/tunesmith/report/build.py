"""The run report (the pipeline's report stage): ``report.md`` with its figures beside it, and one self-contained
``report.html``, saying the same thing.

The sections run from the verdict to the detail: the release gate (once `tunesmith gate` judged the run, or when
the config asks for one), summary, evaluation, preference (a preference run's held-out pairs, task kept and judge
win rate), the human review (once the run's blind review has judgments), example predictions, retrieval (for a
run with `rag` rows), training, data, and the resolved config last, folded.
"""

from __future__ import annotations

from datetime import datetime

from tunesmith.config import RunConfig
from tunesmith.document import Document, write_document
from tunesmith.evaluate.preference import init_from_label
from tunesmith.json_files import read_json, read_jsonl
from tunesmith.report.gate_section import gate_section
from tunesmith.report.human_review import human_review_section
from tunesmith.report.preference_section import preference_section
from tunesmith.report.rag_section import rag_section
from tunesmith.report.sections import (
    config_section,
    data_section,
    evaluation_section,
    examples_section,
    training_section,
)
from tunesmith.report.summary import summary_section
from tunesmith.results.gate import gate_state
from tunesmith.run_dir import RunDir, locked


@locked
def build_report(config: RunConfig, run: RunDir) -> dict:
    """Write ``report.md`` (with its PNGs beside it) and ``report.html`` into the run folder; return their paths."""
    write_document(collect_report(config, run, generated_at=datetime.now()), run.report_md, run.report_html)
    return {"markdown": str(run.report_md), "html": str(run.report_html)}


def collect_report(config: RunConfig, run: RunDir, generated_at: datetime) -> Document:
    """Read every file the run has so far and turn it into report sections."""
    train_summary, data_summary, eval_data = read_json(run.train_summary), read_json(run.data_summary), \
        read_json(run.eval_json)
    name = run.root.resolve().name
    human_review = human_review_section(run, init_from_label(config))
    gate, _, gate_line = gate_state(run.root)
    return Document(
        title=f"tunesmith report: {name} ({generated_at:%Y-%m-%d})",
        subtitle=f"{config.method} fine-tune of {config.model.name}; generated {generated_at:%Y-%m-%d %H:%M}",
        sections=[section for section in (
            gate_section(config, run),
            summary_section(config, eval_data, train_summary, data_summary, read_json(run.timings),
                            gate=(gate, gate_line)),
            evaluation_section(eval_data),
            preference_section(eval_data, run),
            *([human_review] if human_review else []),
            examples_section(read_jsonl(run.predictions), config.evaluate.num_examples),
            rag_section(read_json(run.rag / "summary.json")),
            training_section(train_summary, read_jsonl(run.metrics)),
            data_section(data_summary, train_summary),
            config_section(config),
        ) if section is not None],
    )
