"""The pack's own error types.

Every parser, validator and builder in the core library raises :class:`InvalidInputError` (a ``ValueError``) for bad
user input, with a message that says what was wrong, where (source file, object, frame) and what to do about it.
Nothing else should escape from the public functions on malformed input; the property tests hold us to that.
"""

from __future__ import annotations


class TrackDiffusionError(Exception):
    """Base class of every error this pack raises on purpose."""


#: the longest problem / source text an error shows: messages quote what was read (a value, a line), and on a shared
#: server a message must never carry more than a short excerpt of a file
MAX_QUOTE_CHARS = 2000


def _excerpt(text: str, limit: int = MAX_QUOTE_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


class InvalidInputError(TrackDiffusionError, ValueError):
    """Bad user input: malformed file, impossible box, empty mask, mismatched sizes.

    Args:
        problem: what is wrong, in one sentence.
        fix: what the user should do about it.
        source: the file or input the problem was found in (a path, "MOT gt.txt", "arrows JSON", ...).
        obj: the object / track id concerned, if any.
        frame: the frame index concerned, if any.
        line: the 1-based line number in a text file, if any.
    """

    def __init__(
        self,
        problem: str,
        *,
        fix: str | None = None,
        source: str | None = None,
        obj: object | None = None,
        frame: int | None = None,
        line: int | None = None,
    ) -> None:
        self.problem = _excerpt(str(problem))
        self.fix = fix
        self.source = None if source is None else _excerpt(str(source), MAX_QUOTE_CHARS // 2)
        self.obj = obj if obj is None or isinstance(obj, int) else _excerpt(str(obj), 80)
        self.frame = frame
        self.line = line
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.source:
            where.append(str(self.source))
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.obj is not None:
            where.append(f"object {self.obj}")
        if self.frame is not None:
            where.append(f"frame {self.frame}")
        text = (", ".join(where) + ": " if where else "") + self.problem
        if self.fix:
            text += f" Fix: {self.fix}"
        return text
