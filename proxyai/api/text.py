"""What text a user may give the service (speaker names, file names): printable characters only."""

from __future__ import annotations

import unicodedata

# control, format (bidi overrides, zero-width), surrogates, private use, unassigned; line and paragraph
# separators; every space but the plain one (a no-break space looks like one and breaks exports' fields)
_REFUSED = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def bad_character(text: str) -> str | None:
    """The first character that is not printable text, as ``U+XXXX``, else None."""
    for ch in text:
        category = unicodedata.category(ch)
        if category in _REFUSED or (category == "Zs" and ch != " "):
            return f"U+{ord(ch):04X}"
    return None


def clean_filename(name: str) -> str:
    """A file name to keep and show: every character :func:`bad_character` refuses becomes ``_``."""
    return "".join("_" if bad_character(ch) else ch for ch in name)[:255]
