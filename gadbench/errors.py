"""gadbench's error convention: one line that names the problem and its fix; `gadbench` prints it as
`gadbench: <message>` and exits 2 (gadbench.cli.main), without a traceback."""

from __future__ import annotations


class OneLineError(Exception):
    """An error whose message is always one line: line breaks and other unprintable characters that user
    input brings in (a key, a value, a file name, a parser's message) are shown escaped, e.g. `\\n`."""

    def __init__(self, message: str):
        super().__init__(one_line(str(message)))


def one_line(text: str) -> str:
    """`text` with every unprintable character (newline, tab, NUL, U+2028, ...) written as its escape."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def shown(value: object, limit: int = 80) -> str:
    """repr(value) for a message, cut to about `limit` characters (a huge int's repr would even raise)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"<a {value.bit_length()}-bit integer>"
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # a container holding a huge int, or nested too deeply
        return f"<a {type(value).__name__} holding a huge integer>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
