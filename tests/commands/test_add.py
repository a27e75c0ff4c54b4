"""`git theta add` (commands.add): folders, pass-through git flags, and the update type it stores with."""

import os

from tests.helpers import save, small_model


def test_a_folder_stages_the_tracked_checkpoints_in_it(repo):
    repo.theta("track", "models/*.pt")
    os.makedirs(os.path.join(repo.cwd, "models"))
    save(small_model(0), os.path.join(repo.cwd, "models", "a.pt"))
    save(small_model(1), os.path.join(repo.cwd, "models", "b.pt"))
    repo.theta("add", "models")
    assert repo.theta("ls-files").stdout.decode().splitlines() == ["models/a.pt", "models/b.pt"]


def test_dry_run_flag_passes_through_and_stages_nothing(repo):
    repo.theta("track", "model.pt")
    save(small_model(0), os.path.join(repo.cwd, "model.pt"))
    proc = repo.theta("add", "-n", "model.pt")
    assert "add 'model.pt'" in proc.stdout.decode()
    assert repo.out("diff", "--cached", "--name-only").split() == [".gitattributes"]
