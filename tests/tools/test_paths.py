import os

import pytest

from miaflow.errors import ToolError
from miaflow.tools import read_corpus
from miaflow.tools._paths import resolve_inside


@pytest.mark.parametrize("bad", ["../secret.txt", "a/../../secret.txt", "/etc/passwd", "~/x", "C:\\Windows\\x",
                                 "a\x00b"])
def test_resolve_inside_refuses_escapes(tmp_path, bad):
    root = (tmp_path / "root").resolve()
    root.mkdir()
    with pytest.raises(ToolError, match="refused path"):
        resolve_inside(root, bad)


def test_resolve_inside_refuses_symlink_out_and_allows_inside(tmp_path):
    root = (tmp_path / "root").resolve()
    root.mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    (root / "inner.txt").write_text("inner")
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    os.symlink(root / "inner.txt", root / "alias.txt")
    with pytest.raises(ToolError):
        resolve_inside(root, "link.txt")
    assert resolve_inside(root, "alias.txt") == root / "inner.txt"
    assert resolve_inside(root, "sub/../inner.txt") == root / "inner.txt"


def test_folder_loader_never_reads_through_links_leaving_the_root(corpus_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP SECRET launch codes")
    os.symlink(outside / "secret.txt", corpus_dir / "secret.txt")
    os.symlink("/etc/passwd", corpus_dir / "passwd.txt")
    os.symlink(outside, corpus_dir / "linked_dir")  # folder links are not followed
    (outside / "also.txt").write_text("TOP SECRET too")
    os.symlink(corpus_dir / "cooking.txt", corpus_dir / "bread.txt")  # inside the root: fine
    load = read_corpus(corpus_dir)
    ids = {d.id for d in load.documents}
    assert "secret.txt" not in ids and "passwd.txt" not in ids and not any(i.startswith("linked_dir") for i in ids)
    assert "bread.txt" in ids
    assert not any("SECRET" in d.text or "root:" in d.text for d in load.documents)
    assert sum("outside the corpus root" in w for w in load.warnings) == 2
