"""The parse cache (dsl/parse_cache.py) gives exactly what parsing gives, and never a stale parse: a changed
byte, another display name or another parser version each miss; a broken entry is parsed again."""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsl import parse_cache
from dsl.parse import parse_file

ROOT = Path(__file__).resolve().parents[2]
GOOD = 'segment vip "VIP" = member_level in ("gold", "silver")\n'
BROKEN = 'segment vip = member_level in ("gold",\nsegment ok = city = "北京"\n'
FULLWIDTH = "segment vip “会员” ＝ member_level in （“gold”， “silver”）\n"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Iterator[Path]:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CAMP_CACHE_DIR", str(folder))
    monkeypatch.delenv("CAMP_CACHE", raising=False)
    parse_cache._folder.cache_clear()
    yield folder
    parse_cache._folder.cache_clear()


def _files(tmp_path: Path, texts: dict[str, bytes]) -> list[tuple[Path, str]]:
    out = []
    for name, data in texts.items():
        p = tmp_path / name
        p.write_bytes(data)
        out.append((p, name))
    return out


def _same(a, b) -> None:
    (ma, da, ta), (mb, db, tb) = a, b
    assert ma == mb
    assert ma.model_dump() == mb.model_dump()  # spans included: == on models compares every field
    assert da == db
    assert ta == tb


def _entries(folder: Path) -> int:
    """How many parses the cache holds (every version's database under `folder`)."""
    total = 0
    for db_path in folder.rglob(parse_cache.DATABASE):
        with sqlite3.connect(db_path) as db:
            total += db.execute("SELECT count(*) FROM parsed").fetchone()[0]
    return total


def test_cold_and_warm_equal_parsing(cache, tmp_path):
    files = _files(tmp_path, {"good.camp": GOOD.encode(), "broken.camp": BROKEN.encode(),
                              "wide.camp": FULLWIDTH.encode(), "latin1.camp": "segment é = 1\n".encode("latin-1"),
                              "nul.camp": b"segment\x00", "empty.camp": b"# nothing\n"})
    fresh = [parse_file(p, d) for p, d in files]
    cold = parse_cache.parse_files_cached(files)
    assert _entries(cache) == len(files)
    warm = parse_cache.parse_files_cached(files)
    for f, c, w in zip(fresh, cold, warm, strict=True):
        _same(f, c)
        _same(f, w)
    assert any(d.code == "E104" or d.code == "E108" for d in warm[1][1])  # the broken file's error is kept


def test_changed_bytes_and_names_miss(cache, tmp_path):
    [(path, name)] = _files(tmp_path, {"a.camp": GOOD.encode()})
    first = parse_cache.parse_files_cached([(path, name)])[0]
    assert not first[1]
    path.write_bytes(BROKEN.encode())  # same size class, same name: the content decides
    second = parse_cache.parse_files_cached([(path, name)])[0]
    _same(second, parse_file(path, name))
    assert second[1] and all(d.file == name for d in second[1])
    other = parse_cache.parse_files_cached([(path, "elsewhere/a.camp")])[0]  # shown under another name
    assert other[0].path == "elsewhere/a.camp" and all(d.file == "elsewhere/a.camp" for d in other[1])
    path.write_bytes(GOOD.encode())  # back to the first bytes: the first entry, still right
    _same(parse_cache.parse_files_cached([(path, name)])[0], first)


def test_another_parser_version_misses(cache, tmp_path, monkeypatch):
    [(path, name)] = _files(tmp_path, {"a.camp": GOOD.encode()})
    other = parse_cache.parse_files_cached([(path, "x.camp")])[0]
    folder = parse_cache._folder()
    db = parse_cache._database()
    assert folder is not None and db is not None
    parse_cache._save(db, {parse_cache._job(path, name)[3]: parse_cache._dumps(other)})  # another parse, this key
    db.close()
    assert parse_cache.parse_files_cached([(path, name)])[0][0].path == "x.camp"  # read: the key alone decides
    monkeypatch.setattr(parse_cache, "_version_key", lambda: "f" * 32)  # a changed grammar or transformer
    parse_cache._folder.cache_clear()
    _same(parse_cache.parse_files_cached([(path, name)])[0], parse_file(path, name))  # not the old entry
    assert (cache / ("f" * 32)).is_dir() and folder.is_dir()  # the other version's entries are kept (in use)


def test_version_key_covers_the_parser_source(cache):
    """Every module and the grammar of the dsl package feed the key: editing any of them changes it."""
    parse_cache._version_key.cache_clear()
    key = parse_cache._version_key()
    sources = {p.name for p in parse_cache._PACKAGE.iterdir() if p.suffix in (".py", ".lark")}
    assert {"grammar.lark", "transform.py", "ast.py", "parse.py", "punct.py", "codes.py"} <= sources
    original = parse_cache._PACKAGE
    try:
        copy = cache.parent / "dslcopy"
        copy.mkdir()
        for name in sources:
            (copy / name).write_bytes((original / name).read_bytes())
        parse_cache._PACKAGE = copy
        parse_cache._version_key.cache_clear()
        assert parse_cache._version_key() == key
        (copy / "grammar.lark").write_bytes((original / "grammar.lark").read_bytes() + b"\n// edited\n")
        parse_cache._version_key.cache_clear()
        assert parse_cache._version_key() != key
    finally:
        parse_cache._PACKAGE = original
        parse_cache._version_key.cache_clear()


def test_broken_entries_are_parsed_again(cache, tmp_path):
    files = _files(tmp_path, {"a.camp": GOOD.encode(), "b.camp": BROKEN.encode()})
    parse_cache.parse_files_cached(files)
    [db_path] = cache.rglob(parse_cache.DATABASE)
    with sqlite3.connect(db_path) as db:
        first, second = [key for (key,) in db.execute("SELECT key FROM parsed ORDER BY key")]
        db.execute("UPDATE parsed SET parse = substr(parse, 1, 40) WHERE key = ?", (first,))  # truncated
        db.execute("UPDATE parsed SET parse = ? WHERE key = ?", (b"not a pickle", second))
    for (p, d), got in zip(files, parse_cache.parse_files_cached(files), strict=True):
        _same(got, parse_file(p, d))
    with sqlite3.connect(db_path) as db:  # and stored again, whole
        assert all(len(blob) > 40 for (blob,) in db.execute("SELECT parse FROM parsed"))


def test_a_damaged_database_is_replaced(cache, tmp_path):
    files = _files(tmp_path, {"a.camp": GOOD.encode(), "b.camp": BROKEN.encode()})
    parse_cache.parse_files_cached(files)
    [db_path] = cache.rglob(parse_cache.DATABASE)
    db_path.write_bytes(b"garbage, not SQLite" * 100)  # a disk error, or something else wrote there
    for (p, d), got in zip(files, parse_cache.parse_files_cached(files), strict=True):
        _same(got, parse_file(p, d))
    assert _entries(cache) == len(files)


def test_a_locked_database_still_checks(cache, tmp_path, monkeypatch):
    """Another process holding the write lock past the wait: the files are parsed, nothing is stored, no error."""
    monkeypatch.setattr(parse_cache, "_WAIT", 0.2)
    files = _files(tmp_path, {"a.camp": GOOD.encode()})
    parse_cache.parse_files_cached(files)  # made
    more = _files(tmp_path, {"b.camp": BROKEN.encode()})
    [db_path] = cache.rglob(parse_cache.DATABASE)
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        for (p, d), got in zip(files + more, parse_cache.parse_files_cached(files + more), strict=True):
            _same(got, parse_file(p, d))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _entries(cache) == 1  # b.camp's parse could not be stored; the next check stores it
    parse_cache.parse_files_cached(files + more)
    assert _entries(cache) == 2


def test_unwritable_or_off_still_parses(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    files = _files(tmp_path, {"a.camp": GOOD.encode()})
    for env in ({"CAMP_CACHE_DIR": str(blocker / "sub")}, {"CAMP_CACHE": "off", "CAMP_CACHE_DIR": str(tmp_path / "c")}):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        parse_cache._folder.cache_clear()
        _same(parse_cache.parse_files_cached(files)[0], parse_file(*files[0]))
    assert not (tmp_path / "c").exists()
    parse_cache._folder.cache_clear()


def test_many_new_files_parse_in_a_helper_process(cache, tmp_path, monkeypatch):
    """From 64 new files a forked helper takes files from the back of the queue; the results are the same, in
    order, and all stored."""
    texts = {f"f{i:03d}.camp": (GOOD.replace("vip", f"vip{i}") if i % 7 else BROKEN).encode() for i in range(80)}
    files = _files(tmp_path, texts)
    helpers: list[int] = []
    sent: list[int] = []
    start, results = parse_cache._Helper.start, parse_cache._Helper.results
    monkeypatch.setattr(parse_cache._Helper, "start", staticmethod(lambda jobs: helpers.append(len(jobs)) or start(jobs)))
    monkeypatch.setattr(parse_cache._Helper, "results", lambda self: sent.append(len(got := results(self))) or got)
    got = parse_cache.parse_files_cached(files)
    if (os.cpu_count() or 1) > 1:
        assert helpers == [80] and len(sent) == 1  # how many it took depends on the CPU it got
    for (p, d), g in zip(files, got, strict=True):
        _same(g, parse_file(p, d))
    assert _entries(cache) == len(files)


def test_the_queue_gives_each_job_once_to_two_processes():
    """Parent from the front, a forked child from the back, both as fast as they can: every index is taken
    once, by one of them. Many short queues: the two meet, where a race would be, once per queue."""
    if sys.platform != "linux":
        pytest.skip("the helper forks: Linux only")
    for n in (1, 2, 7, 5000, *[64] * 300):
        queue = parse_cache._Queue(n)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                taken = []
                while (i := queue.take_back()) is not None:
                    taken.append(i)
                os.write(write, pickle.dumps(taken))
            finally:
                os._exit(0)
        os.close(write)
        mine = []
        while (i := queue.take_front()) is not None:
            mine.append(i)
        with os.fdopen(read, "rb") as pipe:
            theirs = pickle.loads(pipe.read())
        os.waitpid(pid, 0)
        assert sorted(mine + theirs) == list(range(n))
        assert mine == sorted(mine) and theirs == sorted(theirs, reverse=True)


def test_a_helper_killed_holding_the_queue_lock_does_not_hang_the_check(cache, tmp_path, monkeypatch):
    """A process killed between taking the queue's lock and giving it back never gives it back: the parent stops
    taking after the wait and parses what is left, with the same results."""
    if sys.platform != "linux" or (os.cpu_count() or 1) < 2:
        pytest.skip("no helper process here")
    monkeypatch.setattr(parse_cache, "_LOCK_WAIT", 0.5)
    texts = {f"f{i:03d}.camp": GOOD.replace("vip", f"vip{i}").encode() for i in range(70)}
    files = _files(tmp_path, texts)
    real_take = parse_cache._Queue._take
    parent = os.getpid()

    def take(self, back):
        if os.getpid() != parent:  # the helper: dies holding the lock on its first take
            self.lock.acquire()
            os.kill(os.getpid(), 9)
        return real_take(self, back)

    monkeypatch.setattr(parse_cache._Queue, "_take", take)

    def hung(*_):
        raise AssertionError("the check hung on a lock its dead helper held")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    try:
        got = parse_cache.parse_files_cached(files)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    for (p, d), g in zip(files, got, strict=True):
        _same(g, parse_file(p, d))
    assert _entries(cache) == len(files)


def test_a_helper_that_dies_costs_nothing_but_time(cache, tmp_path, monkeypatch):
    """The helper killed mid-way (here: it kills itself on its fifth file): the parent parses its share."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: no helper is started")
    texts = {f"f{i:03d}.camp": GOOD.replace("vip", f"vip{i}").encode() for i in range(70)}
    files = _files(tmp_path, texts)
    parent, real, seen = os.getpid(), parse_cache.parse_source, []

    def dying(data, display):
        if os.getpid() != parent:
            seen.append(display)
            if len(seen) == 5:
                os.kill(os.getpid(), 9)
        return real(data, display)

    monkeypatch.setattr(parse_cache, "parse_source", dying)
    for (p, d), g in zip(files, parse_cache.parse_files_cached(files), strict=True):
        _same(g, parse_file(p, d))
    assert _entries(cache) == len(files)


def test_concurrent_checks_share_one_cache(cache, tmp_path):
    """Four processes parse the same 80 new files into one cache at once: each gets every parse right."""
    texts = {f"f{i:03d}.camp": (GOOD.replace("vip", f"vip{i}") if i % 9 else BROKEN).encode() for i in range(80)}
    files = _files(tmp_path, texts)
    code = ("import sys, pickle\nfrom pathlib import Path\nfrom dsl.parse_cache import parse_files_cached\n"
            f"files = [(Path(p), d) for p, d in {[(str(p), d) for p, d in files]!r}]\n"
            "got = parse_files_cached(files)\n"
            "sys.stdout.buffer.write(pickle.dumps([(m.model_dump(), [x.model_dump() for x in ds], t) "
            "for m, ds, t in got]))\n")
    env = {**os.environ, "CAMP_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env) for _ in range(4)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4
    want = [(m.model_dump(), [x.model_dump() for x in ds], t) for m, ds, t in (parse_file(p, d) for p, d in files)]
    for out in outs:
        assert pickle.loads(out) == want
    assert _entries(cache) == len(files)


def test_camp_check_output_cold_warm_and_off(tmp_path):
    """The real command: the same output with an empty cache, a full one, and none; then an edit shows."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "camp.toml").write_text((ROOT / "campaigns" / "camp.toml").read_text())
    for name in ("schema.camp", "segments.camp", "policy.camp"):
        (ws / name).write_text((ROOT / "campaigns" / name).read_text())
    (ws / "bad.camp").write_text('segment odd = unknown_field > 3\n')

    def run(**env) -> subprocess.CompletedProcess:
        full = {**os.environ, "CAMP_CACHE_DIR": str(tmp_path / "cache"), **env}
        return subprocess.run([sys.executable, "-m", "camp", "check", "--format", "json", str(ws)],
                              capture_output=True, text=True, env=full, cwd=tmp_path)

    cold, warm, off = run(), run(), run(CAMP_CACHE="off")
    assert cold.returncode == 1 and "unknown_field" in cold.stdout
    assert cold.stdout == warm.stdout == off.stdout
    assert cold.returncode == warm.returncode == off.returncode
    (ws / "bad.camp").write_text('segment odd = unknown_thing > 3\n')
    edited = run()
    assert "unknown_thing" in edited.stdout and "unknown_field" not in edited.stdout
    assert edited.stdout == run(CAMP_CACHE="off").stdout
