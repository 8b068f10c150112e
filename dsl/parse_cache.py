"""Files' bytes -> their parses, from a cache keyed by content: `parse_files_cached`.

Why: parsing is most of `camp check` (about 1.1 ms of CPU per 40-line file, Lark's lexer and LALR loop),
while reading a stored parse back is about 0.3 ms; CI and editors check the same unchanged files again and
again. An entry is found by the SHA-256 of (the parser's version key, the name the file is shown by, the
file's bytes): a changed byte, a file shown under another name (diagnostics carry it), or any change to the
parser's code, grammar, Python, Lark or pydantic gives another key, so a stale parse is never read.
The version key hashes the source of every module of this package (the parser, the transformer, the AST
classes, the diagnostic codes) rather than trusting a version number someone must remember to bump.

Where: `$CAMP_CACHE_DIR`, else the user's cache directory (`$XDG_CACHE_HOME/camp/parsed`, else
`~/.cache/camp/parsed`), one folder per version key holding one SQLite database, `parsed.sqlite3`; when a new
version's folder is made, the folders of versions unused for 30 days are removed (two installs used side by
side keep their own). `CAMP_CACHE=off` turns the cache off. It is an optimisation only: an unreadable,
truncated, locked or unwritable database or entry means "parse the file", never an error.
One database rather than a file per entry: a file created and renamed per entry cost 0.5 ms of a 1.1 ms
parse, while one transaction stores a thousand entries in about 30 ms and one query reads them back. SQLite
also makes concurrent checks safe: a transaction is stored whole or not at all.
Entries are pickles: the directory is the user's own, like Python's `__pycache__`.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import platform
import shutil
import sqlite3
import struct
import sys
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
_Parse = tuple[A.Module, list[Diagnostic], "str | None"]
_Job = tuple[Path, str, "bytes | None", bytes]  # (path, display, its bytes or None if unreadable, its key)


def parse_files_cached(files: list[tuple[Path, str]]) -> list[_Parse]:
    """`dsl.parse.parse_file(path, display)` of each (path, display), in order: read from the cache when these
    bytes were parsed before under this name by this parser; otherwise parsed and stored. The same results
    either way. When many files are new (a first run, a new parser version) and the machine has a second core,
    a forked helper process parses part of them and sends them back, stored bytes and all."""
    db = _database()
    if db is None:
        return [parse_file(path, display) for path, display in files]
    try:
        jobs = [_job(path, display) for path, display in files]
        found = _load(db, [job[3] for job in jobs if job[2] is not None])
        missing = list({job[3]: job for job in jobs if job[2] is not None and job[3] not in found}.values())
        new: dict[bytes, bytes] = {}

        def parse(job: _Job) -> None:
            found[job[3]], new[job[3]] = _parsed(job)

        helper = _Helper.start(missing) if len(missing) >= _PARALLEL_FROM else None
        if helper is None:
            for job in missing:
                parse(job)
        else:
            while (i := helper.queue.take_front()) is not None:
                parse(missing[i])
            for key, blob in helper.results().items():
                try:
                    found[key] = pickle.loads(blob)
                    new[key] = blob
                except Exception:  # noqa: BLE001  # sent broken: parse it here
                    pass
            for job in missing:  # what a helper that died took and did not send
                if job[3] not in found:
                    parse(job)
        _save(db, new)
        return [found[key] if data is not None else parse_file(path, display) for path, display, data, key in jobs]
    finally:
        db.close()


_PARALLEL_FROM = 64  # fewer new files than this: a fork (tens of ms on a loaded machine) is not worth it
_CHUNK = 500  # keys per query, well under SQLite's limit on bound parameters


def _job(path: Path, display: str) -> _Job:
    try:
        data = path.read_bytes()
    except OSError:
        return path, display, None, b""
    key = hashlib.sha256(b"%s\0%s\0" % (_version_key().encode(), display.encode("utf-8", "surrogatepass")))
    key.update(data)
    return path, display, data, key.digest()


def _load(db: sqlite3.Connection, keys: list[bytes]) -> dict[bytes, _Parse]:
    """The stored parses of these keys; an entry that does not unpickle is left out (parsed again)."""
    out: dict[bytes, _Parse] = {}
    try:
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i:i + _CHUNK]
            rows = db.execute(f"SELECT key, parse FROM parsed WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            for key, blob in rows:
                try:
                    out[key] = pickle.loads(blob)
                except Exception:  # noqa: BLE001  # truncated or from another world: parse again
                    pass
    except sqlite3.Error:  # locked past the timeout, or damaged: whatever was read is still right
        pass
    return out


def _save(db: sqlite3.Connection, entries: dict[bytes, bytes]) -> None:
    """Store the entries in one transaction: all or none, whatever else reads or writes meanwhile."""
    if not entries:
        return
    try:
        with db:
            db.executemany("INSERT OR REPLACE INTO parsed (key, parse) VALUES (?, ?)", entries.items())
    except sqlite3.Error:  # a full disk, a read-only cache or a lock held too long must not fail a check
        pass


def _parsed(job: _Job) -> tuple[_Parse, bytes]:
    """A new file's parse and its pickle (what the cache stores and the helper sends)."""
    result = parse_source(job[2] or b"", job[1])
    return result, _dumps(result)


def _dumps(result: _Parse) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(result)
    return buf.getvalue()


class _Queue:
    """The indices 0..n-1 of the jobs, taken from the front by the parent and from the back by the helper, in
    memory both processes share: neither waits for the other, and a helper that gets no CPU (a busy machine)
    leaves the parent to parse everything rather than to wait for a fixed half."""

    def __init__(self, n: int) -> None:
        import mmap
        import multiprocessing

        self.mem = mmap.mmap(-1, 16)  # anonymous and shared: the forked helper sees the parent's writes
        struct.pack_into("qq", self.mem, 0, 0, n - 1)
        self.lock = multiprocessing.get_context("fork").Lock()

    def take_front(self) -> int | None:
        return self._take(0)

    def take_back(self) -> int | None:
        return self._take(1)

    def _take(self, back: int) -> int | None:
        """The next index from this end; None when the ends have met, or when the lock is not free within
        _LOCK_WAIT (the other process was killed holding it: a semaphore is not given back by a dead process, and
        the caller then parses whatever is left itself rather than hang)."""
        if not self.lock.acquire(timeout=_LOCK_WAIT):
            return None
        try:
            front, last = struct.unpack_from("qq", self.mem)
            if front > last:
                return None
            struct.pack_into("q", self.mem, 8 * back, last - 1 if back else front + 1)
            return last if back else front
        finally:
            self.lock.release()


_LOCK_WAIT = 5.0  # seconds; the lock is held for microseconds


class _Helper:
    """A forked process that parses jobs taken from the back of the queue and, when none are left, writes
    their pickles to a pipe; the parent reads them once it has run out too. Nothing depends on it
    succeeding: a parse it did not send is made by the parent."""

    def __init__(self, pid: int, fd: int, queue: _Queue) -> None:
        self.pid, self.fd, self.queue = pid, fd, queue

    @classmethod
    def start(cls, jobs: list[_Job]) -> _Helper | None:
        if sys.platform != "linux" or (os.cpu_count() or 1) < 2:
            return None
        try:
            queue = _Queue(len(jobs))
            read, write = os.pipe()
            pid = os.fork()
        except OSError:
            return None
        if pid == 0:  # the helper: never returns into the caller's code
            code = 1
            try:
                os.close(read)
                done = {}
                while (i := queue.take_back()) is not None:
                    done[jobs[i][3]] = _parsed(jobs[i])[1]
                payload = pickle.dumps(done, protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(write, "wb") as out:
                    out.write(payload)
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        return cls(pid, read, queue)

    def results(self) -> dict[bytes, bytes]:
        """What the helper sent, once it has finished; {} if it failed."""
        with os.fdopen(self.fd, "rb") as pipe:
            payload = pipe.read()
        _, status = os.waitpid(self.pid, 0)
        if status != 0:
            return {}
        try:
            return pickle.loads(payload)
        except Exception:  # noqa: BLE001
            return {}


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


def _database() -> sqlite3.Connection | None:
    """This version's database, opened (made on first use); None when the cache is off or cannot be opened.
    A file that is not a database (damaged, or something else's) is replaced."""
    folder = _folder()
    if folder is None:
        return None
    path = folder / DATABASE
    for attempt in range(2):
        try:
            db = sqlite3.connect(path, timeout=_WAIT)
            try:
                db.execute("PRAGMA journal_mode=WAL")  # readers go on while another check writes
                db.execute("PRAGMA synchronous=NORMAL")  # a power cut may lose the last entries, never corrupt
                db.execute("CREATE TABLE IF NOT EXISTS parsed (key BLOB PRIMARY KEY, parse BLOB NOT NULL)")
                return db
            except BaseException:
                db.close()
                raise
        except sqlite3.OperationalError:  # locked, read-only or unreachable: check without the cache
            return None
        except sqlite3.DatabaseError:  # not a database: start a new one
            if attempt:
                return None
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(f"{path}{suffix}")
                except OSError:
                    pass
    return None


DATABASE = "parsed.sqlite3"
_WAIT = 5.0  # seconds a check waits for another one's write (tens of ms) before going on without the cache


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
