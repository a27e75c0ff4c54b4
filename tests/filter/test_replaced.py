"""filter.replaced: the second link a written checkpoint keeps, and freeing what nothing else holds."""

import os

from git_theta.filter import replaced


def test_keep_links_once_and_free_takes_only_what_nothing_else_holds(tmp_path):
    where = str(tmp_path / "replaced")
    held, gone = tmp_path / "held.bin", tmp_path / "gone.bin"
    held.write_bytes(b"a" * 100)
    gone.write_bytes(b"b" * 300)
    for path in (held, gone, held):
        replaced.keep(str(path), where)
    assert len(os.listdir(where)) == 2 and os.stat(held).st_nlink == 2
    os.remove(gone)
    assert replaced.free(where, dry_run=True) == 300 and len(os.listdir(where)) == 2
    assert replaced.free(where) == 300
    assert len(os.listdir(where)) == 1 and held.read_bytes() == b"a" * 100
    assert replaced.free(where) == 0


def test_without_a_place_for_the_link_nothing_is_kept_and_nothing_fails(tmp_path):
    model = tmp_path / "m.bin"
    model.write_bytes(b"x")
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")
    replaced.keep(str(model), str(blocker))
    assert os.stat(model).st_nlink == 1
    assert replaced.free(str(blocker)) == 0 and replaced.free(str(tmp_path / "missing")) == 0
    assert replaced.free_in_background(str(tmp_path / "missing")) is None
