"""Matplotlib figures as PNG bytes, for `Image` blocks: the run report's plots and the monitor's page.

Figures are built with matplotlib's object API on the Agg canvas, never through ``pyplot``: pyplot keeps global
state and picks a GUI backend, which a library must not do to its caller. Not re-exported by
`tunesmith.document`: importing matplotlib would slow down every command that only renders tables.
"""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def figure_png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    # No metadata: the same figures give byte-identical images, so re-built pages diff cleanly.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
