"""The parse cache (dsl/parse_cache.py) gives exactly what parsing gives, and never a stale parse: a changed
byte, another display name or another parser version each miss; a broken entry is parsed again."""

from __future__ import annotations

import os
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


def _entries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")]


def test_cold_and_warm_equal_parsing(cache, tmp_path):
    files = _files(tmp_path, {"good.camp": GOOD.encode(), "broken.camp": BROKEN.encode(),
                              "wide.camp": FULLWIDTH.encode(), "latin1.camp": "segment é = 1\n".encode("latin-1"),
                              "nul.camp": b"segment\x00", "empty.camp": b"# nothing\n"})
    fresh = [parse_file(p, d) for p, d in files]
    cold = parse_cache.parse_files_cached(files)
    assert len(_entries(cache)) == len(files)
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
    assert folder is not None
    parse_cache._store(parse_cache._job(folder, path, name)[3], other)  # another parse under this file's key
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
    entries = _entries(cache)
    entries[0].write_bytes(entries[0].read_bytes()[:40])  # truncated by a crash
    entries[1].write_bytes(b"not a pickle")
    for (p, d), got in zip(files, parse_cache.parse_files_cached(files), strict=True):
        _same(got, parse_file(p, d))


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
    """From 64 new files a forked helper fills half of the cache; the results are the same, in order."""
    texts = {f"f{i:03d}.camp": (GOOD.replace("vip", f"vip{i}") if i % 7 else BROKEN).encode() for i in range(80)}
    files = _files(tmp_path, texts)
    helpers = []
    start = parse_cache._start_helper
    monkeypatch.setattr(parse_cache, "_start_helper", lambda jobs: helpers.append((len(jobs), start(jobs))) or helpers[-1][1])
    got = parse_cache.parse_files_cached(files)
    if (os.cpu_count() or 1) > 1:
        [(count, helper)] = helpers
        assert count == 40 and helper is not None and helper.exitcode == 0
    for (p, d), g in zip(files, got, strict=True):
        _same(g, parse_file(p, d))
    assert len(_entries(cache)) == len(files)


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
