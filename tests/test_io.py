"""The one home of atomic writes (``miaflow._io``): a failed write or folder build leaves the old version and no
temporary file behind; a folder another process finished first is kept when the caller says so."""

from __future__ import annotations

import doctest
import json

import pytest

import miaflow._io as io_module
from miaflow._io import atomic_folder, atomic_open, atomic_write_json


def test_a_failed_streamed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_open(path) as fh:
            fh.write("new, half written")
            raise RuntimeError("crash")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]
    with atomic_open(path, "wb") as fh:
        fh.write(b"\x00binary")
    assert path.read_bytes() == b"\x00binary"


def test_a_failed_folder_build_keeps_the_old_folder(tmp_path):
    target = tmp_path / "model"
    with atomic_folder(target) as tmp:
        (tmp / "v1").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_folder(target) as tmp:
            (tmp / "v2").write_text("2")
            raise RuntimeError("disk full")
    assert [p.name for p in target.iterdir()] == ["v1"] and [p.name for p in tmp_path.iterdir()] == ["model"]
    with atomic_folder(target) as tmp:  # a finished build replaces the old folder whole
        (tmp / "v3").write_text("3")
    assert [p.name for p in target.iterdir()] == ["v3"]


def test_a_rename_that_fails_is_raised_unless_the_folder_was_taken(tmp_path, monkeypatch):
    target = tmp_path / "export"

    def refuse(src, dst):
        raise OSError("directory not empty")

    monkeypatch.setattr(io_module.os, "replace", refuse)
    with pytest.raises(OSError):
        with atomic_folder(target):
            pass
    with atomic_folder(target, taken=lambda: True) as tmp:
        (tmp / "mine").write_text("x")
    assert list(tmp_path.iterdir()) == []  # theirs would be kept; ours is cleaned away


def test_json_keeps_non_ascii_and_writes_unknown_objects_as_text(tmp_path):
    path = tmp_path / "sub" / "s.json"
    atomic_write_json(path, {"name": "Zoë", "where": tmp_path}, indent=1)
    assert json.loads(path.read_text(encoding="utf-8")) == {"name": "Zoë", "where": str(tmp_path)}
    assert "Zoë" in path.read_text(encoding="utf-8")


def test_doctests():
    assert doctest.testmod(io_module).failed == 0
