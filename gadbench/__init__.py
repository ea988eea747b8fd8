"""gadbench: the reference suite for black-box on-policy distillation of LLMs (GAD, SeqKD and ablations)."""

import sys

__version__ = "0.1.0"  # the package version (pyproject.toml reads it from here)


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


class GadbenchError(Exception):
    """A problem gadbench reports on purpose, in one sentence naming what is wrong and how to fix it;
    `gadbench` prints it as one line and exits with status 2. The message is always one line: line breaks
    and other unprintable characters that user input brings in (a key, a value, a parser's message) are
    shown escaped, e.g. `\\n`."""

    def __init__(self, message: str = ""):
        super().__init__(one_line(str(message)))


def print_error(error: object) -> int:
    """Print `error` as gadbench's one-line error on stderr (`gadbench: ...`); returns the exit status, 2."""
    print(f"gadbench: {one_line(str(error))}", file=sys.stderr)
    return 2
