"""The original git-theta's update helpers, as its users' scripts call them after `import git_theta`."""

import subprocess
import sys

import numpy as np

from git_theta.updates import get_update_handler
from git_theta.updates.sparse import SparseUpdate
from tests.updates.helpers import raw, shape_entry


def test_git_theta_updates_is_reachable_after_a_bare_import():
    """The original's end-to-end model.py does `import git_theta` then `git_theta.updates.get_update_handler`."""
    code = (
        "import git_theta, numpy as np\n"
        "h = git_theta.updates.get_update_handler('low-rank')\n"
        "print(h.name, sorted(h.format_update(np.ones((2, 1)), np.ones((1, 3)))))\n"
        "print(git_theta.updates.get_update_handler('ia3').format_update(np.ones(2))['ia3'].shape)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["low-rank ['C', 'R']", "(2,)"]


def test_sparse_format_update_is_scipy_csr_of_the_flattened_change():
    change = np.zeros((3, 4), np.float32)
    change[0, 1], change[2, 3], change[1, 0] = 1.5, -2.0, np.nan
    parts = get_update_handler("sparse").format_update(change)
    assert parts["data"].dtype == np.float32 and parts["indices"].dtype == np.int32
    np.testing.assert_array_equal(parts["data"], np.array([1.5, np.nan, -2.0], np.float32))
    np.testing.assert_array_equal(parts["indices"], [1, 4, 11])
    np.testing.assert_array_equal(parts["indptr"], [0, 3])
    np.testing.assert_array_equal(parts["shape"], [3, 4])
    u = SparseUpdate()
    side = {k: raw(v) for k, v in parts.items()}
    assert u.check_side(side, "float32", (3, 4)) is None
    prev = np.arange(12, dtype=np.float32).reshape(3, 4)
    got = u.apply(raw(prev), side, shape_entry(prev, "sparse"), "p").numpy()
    np.testing.assert_array_equal(got, prev + change)
