import pytest

from git_theta.storage.lfs_store import LfsStore


@pytest.fixture
def store(tmp_path) -> LfsStore:
    """A real object store in a temporary .git directory."""
    (tmp_path / ".git").mkdir()
    return LfsStore(str(tmp_path / ".git"))
