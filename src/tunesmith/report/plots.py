"""The report's figures, returned as PNG bytes so the HTML can inline them and the Markdown can link them
(built on matplotlib's object API, see `tunesmith.document.figures`).
"""

from __future__ import annotations

from matplotlib.figure import Figure

from tunesmith.document.figures import figure_png

Point = tuple[float, float]


LOG_SCALE_RATIO = 10.0
"""A loss axis is logarithmic when its largest value is more than this many times its smallest: a first step at
9 and a run that ends near 0.02 would otherwise leave everything after the first steps, validation points
included, as a flat line on the floor of the plot. The UI's charts (ui/static/plot.js) use the same rule."""


def loss_scale(values: list[float]) -> str:
    """``"log"`` or ``"linear"`` for a loss axis spanning ``values`` (log needs every value above 0)."""
    positive = [value for value in values if value > 0]
    if not values or len(positive) < len(values) or max(positive) <= LOG_SCALE_RATIO * min(positive):
        return "linear"
    return "log"


def loss_curve_figure(train: list[Point], validation: list[Point], best_step: float | None = None) -> Figure:
    """Training loss and validation loss (each point marked) against the optimizer step, with the best step marked;
    the loss axis logarithmic when the losses span more than `LOG_SCALE_RATIO`."""
    figure = Figure(figsize=(7.0, 3.6), dpi=100)
    axes = figure.add_subplot()
    if train:
        axes.plot(*zip(*train), label="train loss", color="#4c72b0", linewidth=1.2)
    if validation:
        axes.plot(*zip(*validation), label="validation loss", color="#dd8452", marker="o", markersize=4, zorder=3)
    if best_step is not None:
        axes.axvline(best_step, color="#55a868", linestyle="--", linewidth=1, label=f"best step ({best_step:g})")
    scale = loss_scale([value for _, value in [*train, *validation]])
    axes.set_yscale(scale)
    axes.set_xlabel("step")
    axes.set_ylabel("loss (log scale)" if scale == "log" else "loss")
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    figure.tight_layout()
    return figure


def loss_curve_png(train: list[Point], validation: list[Point], best_step: float | None = None) -> bytes:
    """`loss_curve_figure` as PNG bytes."""
    return figure_png(loss_curve_figure(train, validation, best_step))


def confusion_matrices_png(panels: list[tuple[str, list[str], list[list[int]]]]) -> bytes:
    """One heatmap per ``(title, labels, matrix)`` panel, side by side; rows are true labels, columns predicted."""
    size = max(len(labels) for _, labels, _ in panels)
    side = 1.6 + 0.55 * size
    figure = Figure(figsize=(side * len(panels), side), dpi=100)
    for index, (title, labels, matrix) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), index)
        axes.imshow(matrix, cmap="Blues")
        axes.set_title(title)
        axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        axes.set_yticks(range(len(labels)), labels)
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        peak = max((value for row in matrix for value in row), default=0)
        for row_index, row in enumerate(matrix):
            for column_index, value in enumerate(row):
                # White text on dark cells, black on light ones, so every count stays readable.
                color = "white" if peak and value > peak / 2 else "black"
                axes.text(column_index, row_index, str(value), ha="center", va="center", color=color, fontsize=9)
    figure.tight_layout()
    return figure_png(figure)


def token_length_histogram_png(histograms: dict[str, dict], max_length: int | None = None) -> bytes:
    """Share of each split's rows per token-length bin (``{split: {"edges", "counts"}}``, edges shared), so
    splits of different sizes compare by shape; ``max_length`` is marked when it lies near the data."""
    figure = Figure(figsize=(7.0, 3.6), dpi=100)
    axes = figure.add_subplot()
    last_edge = 0.0
    for name, histogram in histograms.items():
        edges, counts = histogram["edges"], histogram["counts"]
        total = sum(counts)
        if total:
            axes.stairs([count / total for count in counts], edges, label=f"{name} ({total:,} rows)", linewidth=1.4)
            last_edge = max(last_edge, edges[-1])
    # Beyond the data the line would only squash the histogram into the left of the plot.
    if max_length is not None and last_edge and max_length <= 1.25 * last_edge:
        axes.axvline(max_length, color="#c44e52", linestyle="--", linewidth=1, label=f"max_length ({max_length})")
    axes.set_xlabel("tokens per row (before truncation)")
    axes.set_ylabel("share of rows")
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    figure.tight_layout()
    return figure_png(figure)



def reliability_diagram_png(curves: list[tuple[str, list[dict]]], rows: int) -> bytes:
    """Accuracy against mean confidence per confidence bin, one line per ``(label, bins)`` curve (eval.json's
    ``calibration`` bins), each point's area growing with its bin's rows; the diagonal is perfect calibration."""
    figure = Figure(figsize=(5.2, 4.6), dpi=100)
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1, label="perfectly calibrated")
    for (label, bins), color in zip(curves, ("#dd8452", "#4c72b0")):
        filled = [b for b in bins if b.get("count")]
        if not filled:
            continue
        axes.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], color=color, linewidth=1.2,
                  label=label)
        axes.scatter([b["confidence"] for b in filled], [b["accuracy"] for b in filled], color=color,
                     s=[12 + 200 * b["count"] / max(rows, 1) for b in filled], zorder=3)
    axes.set_xlim(0, 1.02)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("confidence of the predicted label (bin mean)")
    axes.set_ylabel("accuracy in the bin")
    axes.set_title(f"Reliability on {rows:,} test rows (point area: rows in the bin)", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    return figure_png(figure)
