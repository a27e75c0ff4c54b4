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


_MOUNTINFO = """22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict
28 27 254:1 / /data rw,relatime - ext4 /dev/vdb rw,errors=remount-ro
29 27 254:2 / /fast rw,relatime,discard - xfs /dev/vdc rw
30 27 254:3 / /btr rw,relatime - btrfs /dev/vdd rw,ssd,discard=async,space_cache=v2
"""


def test_online_discard_is_read_from_the_mount_of_the_files_device(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(_MOUNTINFO)
    found = {minor: replaced.online_discard(os.makedev(254, minor), str(info)) for minor in range(5)}
    # discard=async frees in the background: unlinking does not wait for it
    assert found == {0: True, 1: False, 2: True, 3: False, 4: False}
    assert replaced.online_discard(os.makedev(254, 0), str(tmp_path / "missing")) is False


def test_the_setting_decides_before_the_file_system(tmp_path, monkeypatch):
    model = tmp_path / "m.bin"
    model.write_bytes(b"x")
    monkeypatch.setenv("GIT_THETA_KEEP_REPLACED", "0")
    assert replaced.wanted(str(model)) is False
    monkeypatch.setenv("GIT_THETA_KEEP_REPLACED", "1")
    assert replaced.wanted(str(model)) is True
    monkeypatch.setenv("GIT_THETA_KEEP_REPLACED", "auto")
    assert replaced.wanted(str(model)) is replaced.online_discard(os.stat(model).st_dev)
    assert replaced.wanted(str(tmp_path / "gone")) is False
