"""Files' bytes -> their parses, from a cache keyed by content: `parse_files_cached`.

Why: parsing is most of `camp check` (about 1.8 ms of CPU per 40-line file, Lark's lexer and LALR loop),
while reading a stored parse back is about 0.3 ms; CI and editors check the same unchanged files again and
again. An entry is found by the SHA-256 of (the parser's version key, the name the file is shown by, the
file's bytes): a changed byte, a file shown under another name (diagnostics carry it), or any change to the
parser's code, grammar, Python, Lark or pydantic gives another key, so a stale parse is never read.
The version key hashes the source of every module of this package (the parser, the transformer, the AST
classes, the diagnostic codes) rather than trusting a version number someone must remember to bump.

Where: `$CAMP_CACHE_DIR`, else the user's cache directory (`$XDG_CACHE_HOME/camp/parsed`, else
`~/.cache/camp/parsed`), one folder per version key; when a new version's folder is made, the folders of
versions that wrote nothing for 30 days are removed (two installs used side by side keep their own entries).
`CAMP_CACHE=off` turns the cache off. It is an optimisation only: an unreadable, truncated or unwritable
entry means "parse the file", never an error.
Entries are pickles: the directory is the user's own, like Python's `__pycache__`.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import platform
import shutil
import sys
import tempfile
import time
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pydantic import BaseModel

from dsl import ast as A
from dsl.diagnostics import Diagnostic
from dsl.parse import parse_file, parse_source

_PACKAGE = Path(__file__).parent
_new = object.__new__
_set = object.__setattr__


def parse_files_cached(files: list[tuple[Path, str]]) -> list[tuple[A.Module, list[Diagnostic], str | None]]:
    """`dsl.parse.parse_file(path, display)` of each (path, display), in order: read from the cache when these
    bytes were parsed before under this name by this parser; otherwise parsed and stored. The same results
    either way. When many files are new (a first run, a new parser version) and the machine has a second core,
    a forked helper process parses half of them into the cache while this one parses the other half."""
    folder = _folder()
    if folder is None:
        return [parse_file(path, display) for path, display in files]
    jobs = [_job(folder, path, display) for path, display in files]
    missing = [job for job in jobs if job[2] is not None and not job[3].exists()]
    helper = _start_helper(missing[len(missing) // 2:]) if len(missing) >= _PARALLEL_FROM else None
    mine = {id(job) for job in (missing[:len(missing) // 2] if helper is not None else ())}
    results = {id(job): _parse_or_load(job, load=False) for job in jobs if id(job) in mine}
    if helper is not None:
        helper.join()
    return [results[id(job)] if id(job) in results else _parse_or_load(job) for job in jobs]


_PARALLEL_FROM = 64  # fewer new files than this: a fork (tens of ms on a loaded machine) is not worth it
_Job = tuple[Path, str, "bytes | None", Path]  # (path, display, its bytes or None if unreadable, cache entry)


def _job(folder: Path, path: Path, display: str) -> _Job:
    try:
        data = path.read_bytes()
    except OSError:
        return path, display, None, folder
    key = hashlib.sha256(b"%s\0%s\0" % (_version_key().encode(), display.encode("utf-8", "surrogatepass")))
    key.update(data)
    return path, display, data, folder / key.hexdigest()


def _parse_or_load(job: _Job, load: bool = True) -> tuple[A.Module, list[Diagnostic], str | None]:
    path, display, data, entry = job
    if data is None:
        return parse_file(path, display)  # the parser reports why it cannot read the file
    if load:
        try:
            with open(entry, "rb") as f:
                return pickle.load(f)
        except Exception:  # noqa: BLE001  # missing, truncated or from a crashed writer: parse again
            pass
    result = parse_source(data, display)
    _store(entry, result)
    return result


def _start_helper(jobs: list[_Job]):
    """A forked process that parses `jobs` into the cache, or None where forking is unavailable. Nothing
    depends on it succeeding: an entry it did not write is parsed by the caller."""
    import multiprocessing

    if sys.platform != "linux" or (os.cpu_count() or 1) < 2:
        return None
    try:
        helper = multiprocessing.get_context("fork").Process(target=_fill, args=(jobs,), daemon=True)
        helper.start()
    except (OSError, ValueError):
        return None
    return helper


def _fill(jobs: list[_Job]) -> None:
    for job in jobs:
        _parse_or_load(job, load=False)


def _store(entry: Path, result: tuple) -> None:
    """Write the entry whole or not at all (a temporary file renamed), so a concurrent reader or a crash
    never leaves half an entry under the key."""
    try:
        buf = io.BytesIO()
        _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(result)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(buf.getvalue())
            os.replace(tmp, entry)
        except BaseException:
            os.unlink(tmp)
            raise
    except Exception:  # noqa: BLE001  # a full disk or a read-only cache must not fail a check
        pass


class _Pickler(pickle.Pickler):
    """Stores a pydantic model as its class and field values, and restores it the way the parser builds
    nodes (`dsl.transform._make`: no validation): pydantic's own `__setstate__` costs a third more."""

    def reducer_override(self, obj):
        if isinstance(obj, BaseModel):
            return _new, (type(obj),), (obj.__dict__, obj.__pydantic_fields_set__), None, None, _restore
        return NotImplemented


def _restore(obj: BaseModel, state: tuple[dict, set]) -> None:
    fields, fields_set = state
    _set(obj, "__dict__", fields)
    _set(obj, "__pydantic_fields_set__", fields_set)
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)


@lru_cache(maxsize=1)
def _version_key() -> str:
    """Everything a parse depends on besides the file: this package's source and grammar, and the versions of
    Python, Lark and pydantic."""
    h = hashlib.sha256()
    for name in ("lark", "pydantic", "pydantic-core"):
        try:
            h.update(f"{name}={version(name)}\n".encode())
        except PackageNotFoundError:
            h.update(f"{name}=?\n".encode())
    h.update(f"{sys.version}\n{platform.machine()}\n{pickle.HIGHEST_PROTOCOL}\n".encode())
    for source in sorted([*_PACKAGE.glob("*.py"), *_PACKAGE.glob("*.lark")]):
        h.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return h.hexdigest()[:32]


@lru_cache(maxsize=1)
def _folder() -> Path | None:
    """This version's folder, made on first use (other versions' folders removed); None when the cache is
    off or cannot be made."""
    if os.environ.get("CAMP_CACHE", "").lower() in ("off", "0", "no", "false"):
        return None
    base = os.environ.get("CAMP_CACHE_DIR")
    if not base:
        user = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(user, "camp", "parsed")
    root = Path(base)
    folder = root / _version_key()
    if folder.is_dir():
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    stale = time.time() - _KEEP_DAYS * 86400
    for old in root.iterdir():  # other versions' entries, unused for weeks (not ones a second install still uses)
        try:
            if old.is_dir() and old.name != folder.name and old.stat().st_mtime < stale:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    return folder


_KEEP_DAYS = 30
