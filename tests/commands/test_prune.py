"""`git theta prune --verbose` (commands.prune): the objects it would delete, by oid and size."""

import os
import re

from tests.helpers import commit_tracked_model, lfs_objects, save, small_model


def test_verbose_lists_exactly_the_unreferenced_objects(repo):
    commit_tracked_model(repo, small_model(0), message="v1")
    kept = set(lfs_objects(repo.cwd))
    save({k: v * 3 for k, v in small_model(0).items()}, os.path.join(repo.cwd, "model.pt"))
    repo("add", "model.pt")  # staged, then dropped: its objects are referenced by nothing
    repo("reset", "-q", "--hard")
    dropped = set(lfs_objects(repo.cwd)) - kept
    assert dropped
    out = repo.theta("prune", "--verbose", "--expire=now", "--no-reflog").stdout.decode()
    listed = re.findall(r"^would delete ([0-9a-f]{64}) \(", out, re.M)
    assert set(listed) == dropped and sorted(listed) == listed  # in oid order
    assert set(lfs_objects(repo.cwd)) == kept | dropped  # a dry run deletes nothing
    forced = repo.theta("prune", "--force", "--verbose", "--expire=now", "--no-reflog").stdout.decode()
    assert set(re.findall(r"^deleted ([0-9a-f]{64}) \(", forced, re.M)) == dropped
    assert set(lfs_objects(repo.cwd)) == kept
    assert repo.theta("fsck", "--no-fetch").returncode == 0
