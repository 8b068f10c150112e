"""Source positions: 1-based lines and columns, end column exclusive; offsets into the text."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Span(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)
    line: int
    column: int
    end_line: int
    end_column: int
    start: int = 0
    end: int = 0

    @classmethod
    def unknown(cls) -> Span:
        return cls(line=0, column=0, end_line=0, end_column=0)

    @classmethod
    def point(cls, line: int, column: int, offset: int = 0) -> Span:
        return cls(line=line, column=column, end_line=line, end_column=column + 1, start=offset, end=offset + 1)

    @property
    def known(self) -> bool:
        return self.line > 0

    def to(self, other: Span) -> Span:
        """The span from the start of self to the end of other."""
        return Span(
            line=self.line, column=self.column, end_line=other.end_line, end_column=other.end_column,
            start=self.start, end=other.end,
        )
