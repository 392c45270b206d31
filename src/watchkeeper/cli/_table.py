"""A plain-text table for ``watchkeeper exec``'s results, with nothing but the standard library.

``exec`` is timed against Ansible, and importing rich to draw one table costs more
(~35 ms) than the warm run through a server takes to answer. This draws the same shape
rich draws by default (heavy header rule, one space of padding, long cells folded to
the terminal's width), colours the status column on a terminal unless ``NO_COLOR`` is
set, and keeps a command's control characters (escape sequences, carriage returns) from
reaching the terminal.
"""

from __future__ import annotations

import os

__all__ = ["colour_wanted", "render_table", "sanitize"]

# rich's box.HEAVY_HEAD: top, header row, header rule, body rows, bottom
_TOP = ("┏", "━", "┳", "┓")
_HEAD = ("┃", "┃", "┃")
_RULE = ("┡", "━", "╇", "┩")
_BODY = ("│", "│", "│")
_BOTTOM = ("└", "─", "┴", "┘")
_COLOURS = {"green": "32", "red": "31", "magenta": "35", "yellow": "33", "white": "37"}


def sanitize(text: str) -> str:
    """``text`` safe to print in a cell: tabs expanded, other control characters shown as
    ``^X`` (an escape sequence from a remote command must not move the cursor)."""
    if text.isprintable() or all(c in "\n\t" or c.isprintable() for c in text):
        return text.expandtabs(8)
    out = []
    for c in text:
        if c in "\n\t" or c.isprintable():
            out.append(c)
        elif c == "\r":
            continue
        elif ord(c) < 32 or ord(c) == 127:
            out.append("^" + chr(ord(c) ^ 0x40))
        else:
            out.append("\ufffd")
    return "".join(out).expandtabs(8)


def _cell_width(text: str) -> int:
    if text.isascii():
        return len(text)
    import unicodedata

    return sum(0 if unicodedata.combining(c) else
               2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def _fold(line: str, width: int) -> list[str]:
    """``line`` cut into pieces at most ``width`` cells wide (never an empty list)."""
    if _cell_width(line) <= width:
        return [line]
    pieces: list[str] = []
    cur: list[str] = []
    used = 0
    for c in line:
        w = _cell_width(c)
        if used + w > width and cur:
            pieces.append("".join(cur))
            cur, used = [], 0
        cur.append(c)
        used += w
    pieces.append("".join(cur))
    return pieces


def _fit(natural: list[int], minimum: list[int], room: int) -> list[int]:
    """Column widths: the natural ones, or, if their sum is over ``room``, the widest
    columns cut down to one common level (never below ``minimum``)."""
    if sum(natural) <= room:
        return natural
    lo, hi = 1, max(natural)
    while lo < hi:  # the highest level that fits
        mid = (lo + hi + 1) // 2
        if sum(max(m, min(n, mid)) for n, m in zip(natural, minimum, strict=True)) <= room:
            lo = mid
        else:
            hi = mid - 1
    return [max(m, min(n, lo)) for n, m in zip(natural, minimum, strict=True)]


def colour_wanted(isatty: bool) -> bool:
    """Colour on a terminal, unless ``NO_COLOR`` is set (no-color.org) or TERM is dumb."""
    return isatty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def render_table(headers: list[str], rows: list[list[str]], *, width: int,
                 colours: list[str | None] | None = None, colour: bool = False) -> str:
    """The table as text (ending in a newline), at most ``width`` cells wide when the
    headers allow it. ``colours`` names a colour per row for its second column (the
    status); it is used only when ``colour`` is true."""
    cells = [[sanitize(v).rstrip("\n") for v in row] for row in rows]
    n = len(headers)
    natural = [_cell_width(h) for h in headers]
    for row in cells:
        for i, v in enumerate(row):
            natural[i] = max(natural[i], *(_cell_width(x) for x in v.split("\n")))
    minimum = [min(nat, max(_cell_width(h), 4)) for h, nat in zip(headers, natural, strict=True)]
    widths = _fit(natural, minimum, max(width - 3 * n - 1, n))

    def rule(parts: tuple[str, str, str, str]) -> str:
        left, fill, mid, right = parts
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def lines(row: list[str], edges: tuple[str, str, str], paint: list[str | None]) -> list[str]:
        folded = [[p for line in v.split("\n") for p in _fold(line, w)]
                  for v, w in zip(row, widths, strict=True)]
        height = max(len(f) for f in folded)
        out = []
        for k in range(height):
            parts = []
            for i, f in enumerate(folded):
                text = f[k] if k < len(f) else ""
                pad = " " * (widths[i] - _cell_width(text))
                if paint[i] and text:
                    text = f"\x1b[{paint[i]}m{text}\x1b[0m"
                parts.append(f" {text}{pad} ")
            left, mid, right = edges
            out.append(left + mid.join(parts) + right)
        return out

    bold = "1" if colour else None
    out = [rule(_TOP), *lines(headers, _HEAD, [bold] * n), rule(_RULE)]
    for j, row in enumerate(cells):
        paint: list[str | None] = [None] * n
        if colour and colours and colours[j] and n > 1:
            paint[1] = _COLOURS.get(colours[j] or "")
        out.extend(lines(row, _BODY, paint))
    out.append(rule(_BOTTOM))
    return "\n".join(out) + "\n"
