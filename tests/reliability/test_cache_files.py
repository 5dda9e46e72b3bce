"""Cache files other than the database, and the cache folder itself: the YAML memo, temporary files
of killed runs, writes that fail, and cache locations that cannot be used."""

from __future__ import annotations

import os
import time

import pytest

from servopt import cache_store, resources
from servopt.errors import ServoptError
from servopt.perf_db import locate

# --- the YAML memo ---------------------------------------------------------------------------------


@pytest.fixture
def yaml_source(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVOPT_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "src.yaml"
    src.write_text("a: [1, 2]\nb: {c: d}\n")
    return src


def _memo(tmp_path):
    (memo,) = (tmp_path / "cache" / "yaml").glob("*.json")
    return memo


@pytest.mark.parametrize("content", [b"[1, 2, 3]", b'{"a": 1}', b"", b"\x00" * 50, b'deadbeef {"a": [1, 2]}'])
def test_a_damaged_yaml_memo_is_set_aside_and_the_yaml_parsed_again(
    tmp_path, yaml_source, content, cache_warnings
):
    assert locate.load_yaml_memo(yaml_source) == {"a": [1, 2], "b": {"c": "d"}}
    memo = _memo(tmp_path)
    assert locate.load_yaml_memo(yaml_source) == {"a": [1, 2], "b": {"c": "d"}}  # from the memo
    assert cache_warnings() == []
    memo.write_bytes(content)
    assert locate.load_yaml_memo(yaml_source) == {"a": [1, 2], "b": {"c": "d"}}
    (warning,) = cache_warnings()
    assert "damaged" in warning
    assert memo.is_file()  # rewritten, sound
    assert locate.load_yaml_memo(yaml_source) == {"a": [1, 2], "b": {"c": "d"}}
    assert len(cache_warnings()) == 1


# --- temporary files -------------------------------------------------------------------------------


def _dead_pid() -> int:
    pid = 4_000_000  # above the default pid_max (4194304 is the largest allowed)
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except OSError:
            pass
        pid += 1


def test_temp_files_of_dead_writers_are_swept_live_ones_kept(tmp_path):
    dead = tmp_path / f".x.bin.{_dead_pid()}.1.tmp"
    live = tmp_path / f".x.bin.{os.getpid()}.2.tmp"
    unknown_new = tmp_path / "tmpabc.tmp"
    unknown_old = tmp_path / "tmpold.tmp"
    keep = tmp_path / "x.bin"
    for p in (dead, live, unknown_new, unknown_old, keep):
        p.write_bytes(b"0" * 100)
    old = time.time() - cache_store.STALE_TMP_S - 10
    os.utime(unknown_old, (old, old))
    assert cache_store.sweep_temp_files(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (live, unknown_new, keep))


def test_cache_location_sweeps_its_folders(tmp_path, monkeypatch):
    dead = tmp_path / "perfdb" / f".h200.bin.{_dead_pid()}.1.tmp"
    dead.parent.mkdir()
    dead.write_bytes(b"0" * 1000)
    monkeypatch.setenv("SERVOPT_CACHE_DIR", str(tmp_path))
    assert resources.cache_dir() == tmp_path
    assert not dead.exists()


def test_a_failed_write_leaves_no_temp_file_and_no_target(tmp_path):
    target = tmp_path / "x.bin"

    def write(fh):
        fh.write(b"half")
        raise KeyboardInterrupt  # killed mid-write

    with pytest.raises(KeyboardInterrupt):
        cache_store.write_atomic(target, write)
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_cache_folder_costs_a_warning_not_the_run(tmp_path, cache_warnings):
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    assert cache_store.write_atomic(blocker / "sub" / "x.bin", lambda fh: fh.write(b"x")) is False
    (warning,) = cache_warnings()
    assert "cannot write" in warning


# --- the cache location ----------------------------------------------------------------------------
# Tests run as root, which ignores permission bits: a file in the way stands for an unusable folder.


@pytest.mark.parametrize("where", ["file", "file/sub"])
def test_an_unusable_env_location_falls_back_with_one_warning(tmp_path, monkeypatch, where, cache_warnings):
    (tmp_path / "file").write_text("in the way")
    monkeypatch.setenv("SERVOPT_CACHE_DIR", str(tmp_path / where))
    chosen = resources.cache_dir()
    assert chosen != tmp_path / where and chosen.is_dir() and os.access(chosen, os.W_OK)
    assert resources.cache_dir() == chosen  # checked once per process
    (warning,) = cache_warnings()
    assert str(tmp_path / where) in warning and str(chosen) in warning


def test_an_unusable_perf_db_option_is_one_error_naming_it(tmp_path):
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(ServoptError) as err:
        resources.cache_dir(tmp_path / "file")
    assert err.value.field == "--perf_db" and str(tmp_path / "file") in str(err.value)
    assert "not a folder" in str(err.value)
