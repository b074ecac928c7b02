"""Text from run folders (errors, job ids, log paths) made safe to print on a terminal.

A run's error message is whatever an algorithm raised: it may hold ESC sequences (which recolour or clear the
terminal) or Unicode bidirectional controls (which reorder the rest of the line, the "Trojan Source" trick).
Every such character is shown escaped (\\x1b, \\u202e) instead of being obeyed.
"""

from __future__ import annotations

import unicodedata

# bidirectional embeddings, overrides and isolates, and the invisible direction marks
BIDI = {"\u200e", "\u200f", "\u061c", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}


def printable(text: str) -> str:
    """`text` with control characters (C0, DEL, C1) and bidi controls escaped; tabs kept, newlines as \\n."""
    out = []
    for ch in str(text):
        if ch == "\t" or (ch not in BIDI and unicodedata.category(ch) not in ("Cc", "Cf")):
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}" if ch != "\n" else "\\n")
        else:
            out.append(f"\\u{ord(ch):04x}")
    return "".join(out)


ASCII = {"▶": ">", "✓": "+", "✗": "x", "·": "-"}  # the run lines' symbols (bench.runlines) for a LANG=C log


def encodable(line: str, stream) -> str:
    """`line` as `stream` can write it: the run lines' symbols become ASCII where its encoding lacks them, any
    other such character a replacement mark (a log must never fail a run)."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        line.encode(encoding)
        return line
    except (UnicodeEncodeError, LookupError):
        for symbol, plain in ASCII.items():
            line = line.replace(symbol, plain)
        try:
            return line.encode(encoding, "replace").decode(encoding, "replace")
        except LookupError:
            return line.encode("ascii", "replace").decode("ascii")
