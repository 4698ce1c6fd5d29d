"""Text helpers shared by the writers: escaping for each target syntax, truncation, scrubbing.

Node ids, port names and messages come from users and from JSON files, so every
piece of text is escaped for where it lands: HTML-like labels (``html``), DOT
escString attributes such as tooltips (``esc_string``), DOT identifiers
(``dot_name``, injective), Mermaid labels (``mermaid_label``) and Mermaid ids
(``mermaid_id``, injective and limited to ``[A-Za-z0-9_]``).
"""

from __future__ import annotations

import html as _html
import re

__all__ = [
    "dot_name",
    "dot_port",
    "esc_string",
    "html",
    "mermaid_id",
    "mermaid_label",
    "printable",
    "scrub",
    "shorten",
]

# C0/C1 control characters (other than newline and tab) are invalid in XML and so in SVG.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Credentials inside URLs (scheme://user:password@host) and bearer-style keys.
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
_KEY_LIKE = re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_-]{8,}")
# Characters percent-encoded in DOT names and port ids: enough that the result needs
# no escaping in a quoted DOT string or an HTML attribute; '%' itself keeps it injective.
_DOT_UNSAFE = re.compile(r'[%"\\&<>\'\x00-\x1f\x7f-\x9f]')
# Graphviz splits a port reference at ':' (port:compass) even inside quotes.
_PORT_UNSAFE = re.compile(r'[%"\\&<>\':\x00-\x1f\x7f-\x9f]')
_ONLY_BRACKETS = re.compile(r"\]+")


def printable(text: str) -> str:
    """Control characters shown as ``\\xNN`` (tab and newline are kept)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def scrub(text: str) -> str:
    """Free text (error messages, descriptions) with URL credentials and API-key-like tokens removed."""
    text = _URL_CREDENTIALS.sub(r"\1", text)
    return _KEY_LIKE.sub(lambda m: f"{m.group(1)}-…", text)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…"


def html(text: str) -> str:
    """Text for an HTML-like DOT label: entities escaped, newlines as ``<BR/>``."""
    escaped = _html.escape(printable(text).replace("\t", " "), quote=False)  # text content only, never attributes
    if _ONLY_BRACKETS.fullmatch(escaped):
        # Graphviz's HTML-label lexer rejects a text made of "]" alone (a syntax error for the whole file).
        escaped = escaped.replace("]", "&#93;")
    return escaped.replace("\r\n", "\n").replace("\n", '<BR ALIGN="LEFT"/>')


def esc_string(text: str) -> str:
    """Text for a DOT escString attribute (tooltip, xlabel) in a quoted string.

    Backslashes are doubled so ``\\n``, ``\\N`` and friends stay literal, then real
    newlines become ``\\n``. The graphviz package adds the quotes and escapes ``"``.
    """
    body = printable(text).replace("\\", "\\\\").replace("\r\n", "\n").replace("\n", "\\n")
    return body


def dot_name(text: str) -> str:
    """An injective, quote-safe DOT name for ``text`` (a node id, a cluster path)."""
    return _DOT_UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", text)


def dot_port(text: str) -> str:
    """An injective name for a port cell (``PORT="..."``), safe in HTML and in an edge's port reference."""
    return _PORT_UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", text)


_MERMAID_SAFE = re.compile(r"[A-Za-z0-9]")


def mermaid_id(prefix: str, text: str) -> str:
    """A Mermaid identifier for ``text``: ``prefix`` + letters and digits kept, ``_`` as ``__``,
    anything else as ``_<hex>_``. Distinct texts give distinct ids."""
    out: list[str] = [prefix]
    for ch in text:
        if _MERMAID_SAFE.match(ch):
            out.append(ch)
        elif ch == "_":
            out.append("__")
        else:
            out.append(f"_{ord(ch):x}_")
    return "".join(out)


_MERMAID_ENTITY = {
    "&": "#38;",
    "<": "#60;",
    ">": "#62;",
    '"': "#34;",
    "#": "#35;",
    "`": "#96;",
    "|": "#124;",
    "\\": "#92;",
}
_MERMAID_SPECIAL = re.compile("[" + re.escape("".join(_MERMAID_ENTITY)) + "]")


def mermaid_label(text: str) -> str:
    """Text for a quoted Mermaid label: specials as entity codes, newlines as ``<br/>``."""
    body = _MERMAID_SPECIAL.sub(lambda m: _MERMAID_ENTITY[m.group()], printable(text).replace("\t", " "))
    return body.replace("\r\n", "\n").replace("\n", "<br/>")
