"""The gate's general-ability check on a finished run: its numbers, and its wall time cold (the base model's
answers computed) and cached (the base's numbers from the evaluation cache).

    python benchmarks/general_ability.py RUN_FOLDER [--rows 200] [--max-new-tokens 32] [--set gate.KEY=VALUE ...]

The run folder is copied first (its config and best checkpoint; the original is never written), and the cold
measurement uses an empty evaluation cache (models are still found in the real cache, linked in). Prints the
general_ability fields of both measurements as JSON, last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()

    from tunesmith.models import cache_dir

    work = Path(tempfile.mkdtemp(prefix="general-ability-"))
    copy = work / args.run.name
    copy.mkdir()
    shutil.copy2(args.run / "config.yaml", copy / "config.yaml")
    shutil.copytree(args.run / "checkpoints" / "best", copy / "checkpoints" / "best")
    private_cache = work / "cache"
    private_cache.mkdir()
    for entry in cache_dir().iterdir():  # converted models and their fingerprints; not eval/
        if entry.name != "eval":
            (private_cache / entry.name).symlink_to(entry)
    os.environ["TUNESMITH_CACHE"] = str(private_cache)

    from tunesmith.config import apply_overrides, validate_config
    from tunesmith.gate.general import general_ability
    from tunesmith.run_dir import RunDir

    run = RunDir(copy)
    settings = [f"gate.general_rows={args.rows}", f"gate.general_max_new_tokens={args.max_new_tokens}",
                *args.overrides]
    config = validate_config(apply_overrides(run.config().model_dump(mode="json"), settings))
    results = {}
    for which in ("cold", "cached"):
        started = time.perf_counter()
        result = general_ability(config, run)
        result["wall_s"] = round(time.perf_counter() - started, 2)
        results[which] = result
        print(which, json.dumps(result))
    shutil.rmtree(work)
    print(json.dumps({"run": args.run.name, "rows": args.rows, "max_new_tokens": args.max_new_tokens,
                      "threads": os.cpu_count(), **results}))


if __name__ == "__main__":
    main()
