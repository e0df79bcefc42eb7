"""Each vocabulary is one Literal: its descriptions, the code that implements it and the config agree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from tunesmith.config import validate_config
from tunesmith.config.vocabulary import (
    DEFAULT_GGUF_QUANT,
    EXPORT_FORMATS,
    FINDING_KINDS,
    ROW_FORMATS,
    WHOLE_DATA_FINDINGS,
    ExportFormat,
    FindingKind,
    GgufQuant,
    RowFormat,
)
from tunesmith.errors import ConfigError

DATA_PACKAGE = Path(__file__).resolve().parents[2] / "src" / "tunesmith" / "data"


def test_descriptions_cover_exactly_the_names():
    assert list(ROW_FORMATS) == list(get_args(RowFormat))
    assert list(FINDING_KINDS) == list(get_args(FindingKind))
    assert set(WHOLE_DATA_FINDINGS) <= set(FINDING_KINDS)
    assert list(EXPORT_FORMATS) == list(get_args(ExportFormat))
    assert DEFAULT_GGUF_QUANT in get_args(GgufQuant)


def test_every_finding_kind_is_reported_by_the_data_check():
    source = "".join(path.read_text(encoding="utf-8") for path in DATA_PACKAGE.rglob("*.py"))
    reported = set(re.findall(r'\b(?:finding|Finding)\(\s*"(\w+)"', source)) | {"unreadable"}
    assert reported == set(FINDING_KINDS)


def test_findings_about_the_whole_data_cannot_be_dropped():
    with pytest.raises(ConfigError, match=r"data\.check\.drop: label_imbalance: findings about the data as a whole"):
        validate_config({"data": {"train": "t.jsonl", "check": {"drop": ["duplicate", "label_imbalance"]}}})
