"""Text -> AST: `parse_source` (bytes or str) and `parse_file`, returning the module and diagnostics.

Never raises on bad input: unreadable, binary, non-UTF-8, oversized and malformed
files all come back as located diagnostics. After a syntax error, parsing resumes at
the next line that starts (in column 1) with a top-level keyword, so one run
reports an error per broken declaration and still returns the good ones.
Full-width punctuation and curly quotes typed by an input method are read as ASCII (dsl/punct.py);
the text returned (shown in diagnostics) is the file as written.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from dsl import ast as A
from dsl.diagnostics import Diagnostic, diagnostic
from dsl.errors import describe_unexpected
from dsl.punct import ascii_punctuation
from dsl.span import Span
from dsl.transform import MAX_NUMBER_DIGITS, LiteralError, ToAst, _make, number_too_long
from dsl.walk import max_depth

MAX_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 64
GRAMMAR = Path(__file__).with_name("grammar.lark")
_DECL_START = re.compile(r"^(?:users|events|tags|consent|segment|classify|policy|campaign)\b", re.M)


class _Parser:
    def __init__(self) -> None:
        self.transformer = ToAst()
        self.comments: list[Token] = []
        self.depth = 0
        self.lark = Lark(
            GRAMMAR.read_text(encoding="utf-8"), parser="lalr", lexer="contextual",
            keep_all_tokens=True, maybe_placeholders=True, transformer=self.transformer.callbacks(),
            lexer_callbacks={"COMMENT": self.comments.append, "LPAR": self._open, "RPAR": self._close,
                             "NUMBER": self._number, "DURATION": self._number, "PERCENT": self._number},
            cache=_cache_path(),
        )

    def _open(self, tok: Token) -> Token:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _TooDeep(tok)
        return tok

    def _number(self, tok: Token) -> Token:
        error = number_too_long(tok, self.transformer._tspan(tok)) if len(tok) > MAX_NUMBER_DIGITS else None
        if error is not None:
            raise error
        return tok

    def _close(self, tok: Token) -> Token:
        self.depth -= 1
        return tok


def _cache_path() -> str | bool:
    """Lark caches the analysed grammar; keep the cache beside the user's other caches."""
    import os
    import tempfile

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    try:
        os.makedirs(os.path.join(base, "camp"), exist_ok=True)
        return os.path.join(base, "camp", "grammar.lark.cache")
    except OSError:
        return os.path.join(tempfile.gettempdir(), "camp-grammar.lark.cache")


@lru_cache(maxsize=1)
def _parser() -> _Parser:
    return _Parser()


BOM = "\ufeff"


def normalize_text(text: str) -> str:
    """One text for every way editors save it: no leading BOM, and CRLF or a lone CR (classic Mac) read as LF.
    Spans (line, column and offsets) refer to this text, so they are the same for LF, CRLF and CR files."""
    text = text.removeprefix(BOM)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _normalize_bytes(data: bytes) -> bytes:
    """`normalize_text` before decoding (CR is never part of a multi-byte UTF-8 character), so that the
    positions of undecodable bytes and NULs count lines as the text does."""
    data = data.removeprefix(BOM.encode("utf-8"))
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data


def _position(data: bytes, offset: int) -> tuple[int, int]:
    """(line, column in characters) of a byte offset in normalized bytes."""
    start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, len(data[start:offset].decode("utf-8", "replace")) + 1


def decode(data: bytes, file: str = "") -> tuple[str | None, list[Diagnostic]]:
    """Bytes -> normalized text, or a located diagnostic saying why the bytes are not a campaign file."""
    if len(data) > MAX_BYTES:
        return None, [diagnostic("E103", f"the file is {len(data) / 1048576:.1f} MiB; a .camp file may be at most "
                                 f"{MAX_BYTES // 1048576} MiB", Span.point(1, 1), file,
                                 ["split the workspace into several files"])]
    data = _normalize_bytes(data)
    nul = data.find(b"\x00")
    if nul >= 0:
        line, col = _position(data, nul)
        return None, [diagnostic("E102", "this is not a text file (it contains NUL bytes)",
                                 Span.point(line, col, nul), file,
                                 ["a .camp file is plain text: is this the right file? Remove the NUL bytes or "
                                  "save it again from a text editor"])]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _position(data, exc.start)
        return None, [diagnostic("E101", f"the file is not UTF-8 (byte 0x{data[exc.start]:02x} at line {line})",
                                 Span.point(line, col, exc.start), file,
                                 ["save the file as UTF-8 (most editors: File > Save with encoding)"])]
    return text, []


def parse_file(path: str | Path, display: str | None = None) -> tuple[A.Module, list[Diagnostic], str | None]:
    """Read and parse one file. Returns (module, diagnostics, text-or-None)."""
    name = display or str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return A.Module(path=name, decls=[]), [diagnostic("E100", f"cannot read the file: {exc.strerror}",
                                                          Span.point(1, 1), name,
                                                          ["check that it exists (not a broken link) and that you may "
                                                           "read it"])], None
    module, diags, text = parse_source(data, name)
    return module, diags, text


def parse_source(source: bytes | str, file: str = "<input>") -> tuple[A.Module, list[Diagnostic], str | None]:
    if isinstance(source, bytes):
        text, diags = decode(source, file)
        if text is None:
            return A.Module(path=file, decls=[]), diags, None
    else:
        text = normalize_text(source)
        if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
            return parse_source(text.encode("utf-8", "surrogatepass"), file)
        if "\x00" in text:
            return parse_source(text.encode("utf-8", "surrogatepass"), file)
    decls, comments, diags, deep = _parse_text(ascii_punctuation(text), file)
    if not decls and not diags:
        diags.append(diagnostic("W106", "this file declares nothing", Span.point(1, 1), file,
                                ["delete it, or add a campaign, segment or schema declaration"]))
    module = _make(A.Module, path=file, decls=decls, comments=comments, span=_whole(text))
    for decl in decls if deep else ():  # the parse tree is at least as deep as the AST
        depth, node = max_depth(decl)
        if depth > MAX_DEPTH:
            diags.append(diagnostic("E106", f"this declaration nests {depth} levels deep; the limit is {MAX_DEPTH}",
                                    node.span, file, ["split the condition into named segments"]))
    if any(d.code == "E106" for d in diags):
        module = _make(A.Module, path=file, decls=[d for d in decls if max_depth(d)[0] <= MAX_DEPTH],
                       comments=comments, span=module.span)
    return module, diags, text


def _whole(text: str) -> Span:
    lines = text.split("\n")
    return Span(line=1, column=1, end_line=len(lines), end_column=len(lines[-1]) + 1, start=0, end=len(text))


def _parse_text(text: str, file: str) -> tuple[list, list[A.Comment], list[Diagnostic], bool]:
    p = _parser()
    starts = [m.start() for m in _DECL_START.finditer(text)]
    decls: list = []
    diags: list[Diagnostic] = []
    comment_tokens: list[Token] = []
    pos = 0
    deep = False
    while True:
        chunk_decls, error, depth = _parse_chunk(p, text, pos, len(text), comment_tokens)
        deep = deep or depth > MAX_DEPTH
        if error is None:
            decls.extend(chunk_decls)
            break
        diags.append(_to_diagnostic(error, text, pos, file))
        err_at = _error_offset(error, text, pos)
        failing = max((s for s in starts if pos <= s <= err_at), default=pos)
        if failing > pos:  # the declarations before the broken one still count
            good, again, depth = _parse_chunk(p, text, pos, failing, comment_tokens)
            if again is None:
                decls.extend(good)
                deep = deep or depth > MAX_DEPTH
        nxt = next((s for s in starts if s > max(err_at, failing)), None)
        if nxt is None:
            break
        pos = nxt
    comments = _comments(comment_tokens, text)
    return decls, comments, diags, deep


def _parse_chunk(p: _Parser, text: str, start: int, end: int, comment_sink: list[Token]):
    t = p.transformer
    t.line_offset = text.count("\n", 0, start)
    t.char_offset = start
    t.parenthesized = set()
    p.comments.clear()
    p.depth = 0
    try:
        result: list = p.lark.parse(text[start:end])  # pyright: ignore[reportAssignmentType]  # the embedded transformer returns the decls
    except (UnexpectedInput, LiteralError, _TooDeep) as exc:
        return [], exc, 0
    except RecursionError:
        return [], _TooDeep(), 0
    finally:
        t.parenthesized = set()
    for tok in p.comments:
        comment_sink.append(_shift_token(tok, t.line_offset, start))
    return result, None, _may_nest_deeply(text, start, end)


_NESTING = re.compile(r"\bnot\b|[-+*/(]")


def _may_nest_deeply(text: str, start: int, end: int) -> int:
    """An upper bound on expression nesting, cheap enough to skip the exact walk for normal files:
    nesting needs an operator or a parenthesis per level."""
    return len(_NESTING.findall(text, start, end)) + 16


class _TooDeep(Exception):
    def __init__(self, token: Token | None = None):
        super().__init__("too deep")
        self.token = token


def _shift_token(tok: Token, line_offset: int, char_offset: int) -> Token:
    return Token(tok.type, str(tok), tok.start_pos + char_offset, tok.line + line_offset, tok.column,  # pyright: ignore[reportOptionalOperand]  # lark types Token positions Optional; lexer tokens have them
                 tok.end_line + line_offset, tok.end_column, tok.end_pos + char_offset)  # pyright: ignore[reportOptionalOperand]  # lark types Token positions Optional; lexer tokens have them


def _comments(tokens: list[Token], text: str) -> list[A.Comment]:
    seen = set()
    out = []
    for tok in tokens:
        if tok.start_pos in seen:
            continue
        seen.add(tok.start_pos)
        line_start = text.rfind("\n", 0, tok.start_pos) + 1
        own = text[line_start:tok.start_pos].strip() == ""
        nl = text.find("\n", tok.start_pos)
        nxt = text[nl + 1: (text.find("\n", nl + 1) + 1 or len(text) + 1) - 1] if nl >= 0 else "x"
        out.append(_make(A.Comment, line=tok.line, column=tok.column, text=str(tok).rstrip(), own_line=own,
                             blank_after=own and nl >= 0 and nxt.strip() == ""))
    out.sort(key=lambda c: (c.line, c.column))
    return out


def _error_offset(error: Exception, text: str, base: int) -> int:
    if isinstance(error, LiteralError):
        return error.span.start
    if isinstance(error, _TooDeep):
        return base + error.token.start_pos if error.token is not None else base  # pyright: ignore[reportOperatorIssue]  # lark types Token positions Optional; lexer tokens have them
    pos = getattr(error, "pos_in_stream", None)
    if pos is None:
        tok = getattr(error, "token", None)
        pos = getattr(tok, "start_pos", None)
    if pos is None:
        return len(text)
    return base + pos


def _to_diagnostic(error: Exception, text: str, base: int, file: str) -> Diagnostic:
    if isinstance(error, LiteralError):
        return diagnostic(error.code, error.message, error.span, file, error.hints)
    if isinstance(error, _TooDeep):
        tok = error.token
        span = (Span.point(tok.line + text.count("\n", 0, base), tok.column, base + tok.start_pos) if tok else  # pyright: ignore[reportOptionalOperand, reportArgumentType, reportOperatorIssue]  # lark types Token positions Optional; lexer tokens have them
                Span.point(text.count("\n", 0, base) + 1, 1, base))
        return diagnostic("E106", f"parentheses nest more than {MAX_DEPTH} levels deep here", span, file,
                          ["split the condition into named segments"])
    offset = _error_offset(error, text, base)
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    if isinstance(error, UnexpectedToken) and error.token.type == "$END" or isinstance(error, UnexpectedEOF):
        line = text.count("\n") + 1
        col = len(text) - (text.rfind("\n") + 1) + 1
        span = Span.point(line, col, len(text))
        code = "E108"
    else:
        width = 1
        if isinstance(error, UnexpectedToken):
            width = max(1, len(str(error.token).split("\n")[0]))
        span = Span(line=line, column=col, end_line=line, end_column=col + width, start=offset, end=offset + width)
        code = "E105" if isinstance(error, UnexpectedCharacters) else "E104"
    message, hints = describe_unexpected(error, text, offset)
    if code == "E108":
        message = "the file ends in the middle of a declaration"
        if text.count("{") > text.count("}"):
            hints = ["is a closing `}` missing?"]
    return diagnostic(code, message, span, file, hints)
