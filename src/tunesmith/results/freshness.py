"""Whether a run's export (``merged/``, ``adapter/``) still holds the run's best weights: the one rule every reader
of an export applies (`tunesmith generate` and `chat` load ``merged/``; the GGUF export converts it).

An export goes stale when training writes the best weights after it (a retrain into the same folder, or a resume
that trained further): answering from it would answer from weights that evaluation no longer measured and that
`train_summary.json` no longer names. The export's config file is compared with the newest file of the best
weights; the model card beside it is not, because the release gate rewrites it later without touching the weights.
"""

from __future__ import annotations

from pathlib import Path

EXPORT_CONFIG_FILES = ("config.json", "adapter_config.json")
"""The file an export writes with its weights: a merged model's, an adapter's."""


def export_is_stale(best: Path, export: Path) -> bool:
    """Whether the best weights in ``best`` were written after ``export``. False when either is missing: without the
    best weights (checkpoints deleted to free the disk) the export is all the run holds; without an export there
    is nothing stale."""
    configs = [export / name for name in EXPORT_CONFIG_FILES if (export / name).is_file()]
    if not configs or not best.is_dir():
        return False
    newest_best = max((path.stat().st_mtime for path in best.iterdir()), default=0.0)
    return newest_best > configs[0].stat().st_mtime
