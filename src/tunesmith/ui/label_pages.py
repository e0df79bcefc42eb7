"""The labeling pages over a run's labeling queues (`tunesmith.label.LabelQueue`, made by `tunesmith label create`).

``/label/<run>`` lists the run's queues (``<run>/labeling/*.db``, each named by its file's stem);
``/label/<run>/<queue>`` is the labeling page. It asks the annotator's name once (the browser keeps it) and draws
each item from the JSON API: the input as text, the model's prediction, confidence and novelty, why the item was
picked, and the teacher's suggestion beside it when there is one; number keys pick a label (a text box takes a
generation answer), s skips, u undoes. Where an annotator stands lives in the queue's database, so a reload (or
another browser) resumes at their next item. Several annotators label the same queue, each at their own position;
the stats panel shows their counts and agreement.

The JSON API (POSTs carry the session's CSRF token, `tunesmith.ui.security`): ``GET /api/label/next`` (the
annotator's next item and progress), ``POST /api/label/annotate`` (a label or a text answer), ``POST
/api/label/skip``, ``POST /api/label/undo`` and ``GET /api/label/stats``. The store's errors keep their status: 404
an unknown queue or item, 409 a second annotation of one item or nothing to undo, 400 a bad value. A queue is
found among the files of the run's ``labeling/`` folder, never by joining its name onto a path, so no name reaches
outside that folder. The queue is opened per request and closed after it, as the review pages do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from tunesmith.label import QUEUE_FOLDER, LabelError, LabelQueue, QueueMeta
from tunesmith.label.stats import label_stats
from tunesmith.run_dir import RunDir
from tunesmith.ui.pages import Settings, UiSettings, find_run, render
from tunesmith.ui.runs import find_runs
from tunesmith.web import HttpError

MAX_ANSWER_CHARS = 20_000
"""The longest text answer the API takes (a generation answer; a label is far shorter)."""
LABEL_KEYS = 9
"""Labels beyond the ninth have a button but no number key."""


class QueueRequest(BaseModel):
    # Lengths bound what a request may make the server hold, and a field the API does not have is a mistake said
    # (422), not ignored; the annotator's name is the store's to judge (`tunesmith.label.store.check_annotator`).
    model_config = ConfigDict(extra="forbid")
    run: str = Field(max_length=1_000)
    queue: str = Field(max_length=1_000)
    annotator: str = Field(max_length=1_000)


class ItemRequest(QueueRequest):
    item_id: int = Field(ge=1, le=2**63 - 1)  # an id SQLite can hold


class AnnotationRequest(ItemRequest):
    value: str = Field(max_length=MAX_ANSWER_CHARS)


def queues_of(run: RunDir) -> dict[str, Path]:
    """The run's labeling queues by name (the file's stem), sorted."""
    folder = run.root / QUEUE_FOLDER
    if not folder.is_dir():
        return {}
    return {path.stem: path for path in sorted(folder.glob("*.db")) if path.is_file()}


def find_queue(settings: UiSettings, run_name: str, queue: str) -> Path:
    """The queue ``queue`` of the run ``run_name``; 404 otherwise (naming the queues there are)."""
    queues = queues_of(find_run(settings, run_name))
    if queue not in queues:
        known = ", ".join(queues) or "none: make one with `tunesmith label create`"
        raise HttpError(404, f"{run_name!r} has no labeling queue {queue!r} (queues: {known})")
    return queues[queue]


def opened(settings: UiSettings, run_name: str, queue: str) -> LabelQueue:
    return LabelQueue.open(find_queue(settings, run_name, queue))


def standing(store: LabelQueue, annotator: str) -> dict:
    """The annotator's next item (None when they are through) and their progress."""
    following = store.next_item(annotator)
    done, total = store.progress(annotator)
    return {"item": asdict(following) if following else None, "done": done, "total": total}


router = APIRouter()


@router.get("/label/{path:path}")
def label_page(request: Request, path: str, settings: Settings):
    # A run's name may hold slashes (a sweep's trials): a known run is its queues page, otherwise the last part
    # names the queue.
    path = path.strip("/")
    if path in find_runs(settings.runs_dir):
        return render(request, "label_list.html", run=path, queues=_queue_rows(find_run(settings, path)))
    run, _, queue = path.rpartition("/")
    if not run:
        find_run(settings, path)  # the 404 names the run
    with opened(settings, run, queue) as store:
        meta = store.meta
    labels = list(meta.labels or [])
    return render(request, "label.html", run=run, queue=queue, task=meta.task, labels=labels,
                  keyed=min(len(labels), LABEL_KEYS), teacher=meta.teacher_model, max_answer=MAX_ANSWER_CHARS)


@dataclass(frozen=True)
class QueueRow:
    """A queue as the run's queues page lists it."""

    name: str
    meta: QueueMeta | None
    size: int
    progress: dict[str, tuple[int, int]]
    """``(done, total)`` of each annotator, in the order they started."""
    problem: str | None = None
    """Why the queue cannot be read (a damaged file): said in its row, and the other queues still show."""


def _queue_rows(run: RunDir) -> list[QueueRow]:
    rows = []
    for name, path in queues_of(run).items():
        try:
            with LabelQueue.open(path) as store:
                rows.append(QueueRow(name=name, meta=store.meta, size=len(store.items()), progress={
                    annotator: store.progress(annotator) for annotator in store.annotators()}))
        except LabelError as error:
            rows.append(QueueRow(name=name, meta=None, size=0, progress={}, problem=str(error)))
    return rows


@router.get("/api/label/next")
def next_item(settings: Settings, run: str, queue: str, annotator: str):
    with opened(settings, run, queue) as store:
        return standing(store, annotator)


@router.post("/api/label/annotate")
def annotate(body: AnnotationRequest, settings: Settings):
    with opened(settings, body.run, body.queue) as store:
        annotation = store.annotate(body.item_id, body.annotator, body.value)
        return {"annotation": asdict(annotation), **standing(store, body.annotator)}


@router.post("/api/label/skip")
def skip(body: ItemRequest, settings: Settings):
    with opened(settings, body.run, body.queue) as store:
        annotation = store.annotate(body.item_id, body.annotator, None, skipped=True)
        return {"annotation": asdict(annotation), **standing(store, body.annotator)}


@router.post("/api/label/undo")
def undo(body: QueueRequest, settings: Settings):
    with opened(settings, body.run, body.queue) as store:
        undone = store.undo(body.annotator)
        if undone is None:
            raise HttpError(409, f"{body.annotator} has nothing to undo in {body.queue!r}")
        return {"undone": asdict(undone), **standing(store, body.annotator)}


@router.get("/api/label/stats")
def stats(settings: Settings, run: str, queue: str):
    """The queue's statistics as `tunesmith label stats --json` gives them (`tunesmith.label.stats.label_stats`)."""
    with opened(settings, run, queue) as store:
        return label_stats(store)
