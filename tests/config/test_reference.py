from pathlib import Path

from tunesmith.config.reference import reference_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_config_reference_is_generated_from_the_models():
    assert reference_markdown() in README.read_text(encoding="utf-8"), (
        "README's config reference is stale: paste the output of `python -m tunesmith.config.reference`"
    )


def test_every_field_is_documented():
    rows = reference_markdown().splitlines()[2:]
    assert rows and all(not row.rstrip().endswith("|  |") for row in rows)
