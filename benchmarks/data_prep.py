"""Data preparation speed: tunesmith vs TRL on the same alpaca-style rows; and streaming's peak memory.

    python benchmarks/data_prep.py [--quick] [--json] [--repeats 3] [--rows N]
    python benchmarks/data_prep.py --streaming-rss 100000,1000000 [--json]

Rows: `../shared/data/alpaca_2k.jsonl` repeated with a numbered variation in each instruction
("(variant 17) Give three tips...") until there are 100,000 (10,000 with `--quick`), written to a temp JSONL.

Arms, each in a fresh subprocess (imports and model-free tokenizer loading are not timed), medians of
`--repeats`:
- tunesmith: read the JSONL + convert to conversations + tokenize with the default model's chat template
  (assistant-only labels, max_length 512) + write the tokenized cache, from an empty cache (`load_splits` then
  `cache.tokenized_split`), on `data.num_proc` = every core.
- tunesmith cached: the same call again with the cache just written (the second run of a user).
- TRL: `SFTTrainer._prepare_dataset` (chat template, tokenization, completion mask, labels, truncation) on the
  same rows already given as conversational prompt/completion in an in-memory `datasets.Dataset`, with
  `dataset_num_proc` = every core and the same tokenizer and max_length. Reading the JSONL and converting it is
  not timed for TRL, so the comparison favours TRL.

`--streaming-rss`: memory of `data.streaming: true` preparation of N rows in a fresh subprocess: resident memory
sampled every 20 ms while preparing (highest value), and the process's ru_maxrss.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MAX_LENGTH = 512


def build_rows(count: int, path: Path) -> Path:
    """``count`` alpaca rows: the 2,000 real ones over and over, each copy's instruction numbered."""
    base = [json.loads(line) for line in (SHARED / "alpaca_2k.jsonl").read_text(encoding="utf-8").splitlines()]
    with path.open("w", encoding="utf-8") as file:
        for index in range(count):
            row = dict(base[index % len(base)])
            row["instruction"] = f"(variant {index // len(base)}) {row['instruction']}"
            file.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _memory_mib() -> dict[str, float]:
    """Resident memory now: all of it (VmRSS), and the anonymous part (RssAnon: heap, not pages of files)."""
    values = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key = line.split(":")[0]
            if key in ("VmRSS", "RssAnon"):
                values[key] = int(line.split()[1]) / 1024
    return values


def _current_rss_mib() -> float:
    return _memory_mib()["VmRSS"]


class RssSampler:
    """Highest resident memory seen while preparing (sampled every 20 ms). Why not ru_maxrss alone: it is a
    high-water mark of the whole process, so a spike while loading libraries would hide what preparation used.
    Why RssAnon too: reading a memory-mapped Arrow file counts its pages in VmRSS, but those are file pages
    the kernel drops under pressure; RssAnon is the memory preparation really holds."""

    def __init__(self):
        import threading

        self.peak = _memory_mib()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        now = _memory_mib()
        self.peak = {key: max(value, now[key]) for key, value in self.peak.items()}

    def _run(self) -> None:
        while not self._done.wait(0.02):
            self._sample()

    def stop(self) -> dict[str, float]:
        self._done.set()
        self._thread.join()
        self._sample()
        return self.peak


def child_tunesmith(data: Path, cache: Path, streaming: bool = False, num_proc: int | None = None) -> dict:
    from tunesmith.config.schema import DataConfig, ModelConfig
    from tunesmith.data.cache import tokenized_split
    from tunesmith.data.splits import load_splits
    from tunesmith.models import load_tokenizer

    tokenizer = load_tokenizer(ModelConfig())  # from the usual model cache, before pointing the cache away
    os.environ["TUNESMITH_CACHE"] = str(cache)
    rss_before = _current_rss_mib()
    sampler = RssSampler()
    started = time.perf_counter()
    if streaming:
        from tunesmith.data.stream import stream_train_rows

        # Held-out files are required by streaming; tiny ones, so the training file is what is measured.
        held_out = data.with_name("heldout.jsonl")
        held_out.write_text((SHARED / "alpaca_2k.jsonl").read_text(encoding="utf-8").split("\n", 1)[0] + "\n",
                            encoding="utf-8")
        config = DataConfig(train=str(data), validation=str(held_out), test=str(held_out), format="alpaca",
                            max_length=MAX_LENGTH, streaming=True)
        rows, _ = stream_train_rows(config, "alpaca", None, tokenizer)
    else:
        config = DataConfig(train=str(data), split={"validation": 0, "test": 0}, format="alpaca",
                            max_length=MAX_LENGTH, num_proc=num_proc or _cores())
        rows, _ = tokenized_split(config, "train", load_splits(config).train, tokenizer)
    seconds = time.perf_counter() - started
    return {"rows": len(rows), "seconds": seconds, "rows_per_s": len(rows) / seconds,
            "peak_rss_mib": _peak_rss_mib(), "rss_before_mib": rss_before, "prep_peak_mib": sampler.stop()}


def child_trl(data: Path) -> dict:
    import datasets
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from tunesmith.config.schema import ModelConfig
    from tunesmith.models import load_tokenizer
    from tunesmith.models.provision import resolve_model

    tokenizer = load_tokenizer(ModelConfig())
    records = []
    for line in data.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        user = row["instruction"] + (f"\n\n{row['input']}" if row["input"].strip() else "")
        records.append({"prompt": [{"role": "user", "content": user}],
                        "completion": [{"role": "assistant", "content": row["output"]}]})
    dataset = datasets.Dataset.from_list(records)
    model = AutoModelForCausalLM.from_pretrained(resolve_model("default"))
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(output_dir=out, max_length=MAX_LENGTH, dataset_num_proc=_cores(), report_to=[],
                         use_cpu=True)
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset.select(range(8)),
                             processing_class=tokenizer)
        datasets.disable_progress_bars()
        started = time.perf_counter()
        prepared = trainer._prepare_dataset(dataset, tokenizer, args, packing=False, formatting_func=None,
                                            dataset_name="train")
        seconds = time.perf_counter() - started
    return {"rows": len(prepared), "seconds": seconds, "rows_per_s": len(prepared) / seconds,
            "peak_rss_mib": _peak_rss_mib()}


def spawn(*args: str) -> dict:
    completed = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def compare(rows: int, repeats: int) -> dict:
    runs: dict[str, list[dict]] = {"tunesmith": [], "tunesmith_cached": [], "trl": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = build_rows(rows, Path(tmp) / "rows.jsonl")
        for repeat in range(repeats):
            cache = Path(tmp) / f"cache-{repeat}"
            order = ["tunesmith", "trl"] if repeat % 2 == 0 else ["trl", "tunesmith"]
            for arm in order:
                if arm == "trl":
                    runs["trl"].append(spawn("trl", str(data)))
                else:
                    runs["tunesmith"].append(spawn("tunesmith", str(data), str(cache)))
                    runs["tunesmith_cached"].append(spawn("tunesmith", str(data), str(cache)))
    medians = {arm: {key: statistics.median(run[key] for run in arm_runs) for key in ("seconds", "rows_per_s",
                                                                                     "peak_rss_mib")}
               for arm, arm_runs in runs.items()}
    return {"rows": rows, "repeats": repeats, "cores": _cores(), "max_length": MAX_LENGTH, "medians": medians,
            "speedup_vs_trl": medians["tunesmith"]["rows_per_s"] / medians["trl"]["rows_per_s"], "runs": runs}


def streaming_rss(counts: list[int]) -> dict:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            data = build_rows(count, Path(tmp) / f"rows-{count}.jsonl")
            result = spawn("stream", str(data), str(Path(tmp) / f"cache-{count}"))
            result["file_mib"] = data.stat().st_size / 2**20
            results[count] = result
            data.unlink()
    return {"cores": _cores(), "max_length": MAX_LENGTH, "streaming": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 rows instead of 100,000")
    parser.add_argument("--rows", type=int, help="rows to prepare (overrides --quick)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--streaming-rss", help="comma-separated row counts: peak RSS of streaming preparation")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        arm, *paths = args.child
        if arm == "trl":
            result = child_trl(Path(paths[0]))
        else:
            result = child_tunesmith(Path(paths[0]), Path(paths[1]), streaming=arm == "stream",
                                     num_proc=int(paths[2]) if len(paths) > 2 else None)
        print(json.dumps(result))
        return
    if args.streaming_rss:
        result = streaming_rss([int(count) for count in args.streaming_rss.split(",")])
    else:
        result = compare(args.rows or (10_000 if args.quick else 100_000), args.repeats)
    if args.json:
        print(json.dumps(result, indent=1))
        return
    if "streaming" in result:
        for count, entry in result["streaming"].items():
            print(f"streaming {count:>9,} rows ({entry['file_mib']:.0f} MiB): {entry['seconds']:.0f} s, "
                  f"{entry['rows_per_s']:.0f} rows/s, peak RSS {entry['peak_rss_mib']:.0f} MiB "
                  f"(resident before preparing {entry['rss_before_mib']:.0f} MiB; highest while preparing: "
                  f"VmRSS {entry['prep_peak_mib']['VmRSS']:.0f} MiB, "
                  f"RssAnon {entry['prep_peak_mib']['RssAnon']:.0f} MiB)")
        return
    m = result["medians"]
    print(f"{result['rows']:,} rows, {result['cores']} cores, medians of {result['repeats']}:")
    for arm in ("tunesmith", "tunesmith_cached", "trl"):
        print(f"  {arm:17s} {m[arm]['seconds']:7.2f} s  {m[arm]['rows_per_s']:9.0f} rows/s  "
              f"peak RSS {m[arm]['peak_rss_mib']:.0f} MiB")
    print(f"  tunesmith / TRL rows/s: x{result['speedup_vs_trl']:.2f}")


if __name__ == "__main__":
    main()
