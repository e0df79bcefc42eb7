"""Tiny labeled conversations shared by the training tests (imported as a plain module: pytest puts this
folder on sys.path)."""

from tunesmith.data.example import Example


def make_examples(n: int, offset: int = 0) -> list[Example]:
    rows = []
    for i in range(offset, offset + n):
        label = "spam" if i % 3 == 0 else "ham"
        text = ("win a free prize now " * (1 + i % 4)) if label == "spam" else ("see you at lunch " * (1 + i % 3))
        rows.append(Example(
            messages=({"role": "user", "content": f"Classify: {text}"}, {"role": "assistant", "content": label}),
            source=f"mem.jsonl:{i + 1}", label=label,
        ))
    return rows
