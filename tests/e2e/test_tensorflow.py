"""End to end: TensorFlow checkpoints and SavedModel variables, tracked by their data shards."""

import json
import os
import subprocess
import sys

import pytest

from git_theta.metadata import Metadata
from tests.helpers import lfs_objects

pytest.importorskip("tensorflow")

SAVE = """
import json, sys, numpy as np, tensorflow as tf
kind, where, scale = sys.argv[1], sys.argv[2], float(sys.argv[3])
rng = np.random.default_rng(0)
class M(tf.Module):
    def __init__(self):
        self.kernel = tf.Variable(rng.random((6, 4)).astype(np.float32) * scale)
        self.bias = tf.Variable(tf.zeros(4, dtype=tf.bfloat16))
        self.step = tf.Variable(7, dtype=tf.int64)
    @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32)])
    def __call__(self, x):
        return x @ self.kernel
m = M()
if kind == "checkpoint":
    tf.train.Checkpoint(model=m).write(where)
else:
    tf.saved_model.save(m, where)
"""

READ = """
import json, sys, numpy as np, tensorflow as tf
r = tf.train.load_checkpoint(sys.argv[1])
print(json.dumps({k: np.asarray(r.get_tensor(k)).astype(np.float64).tolist() for k in r.get_variable_to_shape_map() if "VARIABLE_VALUE" in k}))
"""


def run(script, *args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], cwd=cwd, env=env, check=True, capture_output=True
    ).stdout


@pytest.mark.parametrize(
    "kind, prefix", [("checkpoint", "ckpt/model"), ("savedmodel", "saved/variables/variables")]
)
def test_tensorflow_round_trip(repo, kind, prefix):
    where = "ckpt/model" if kind == "checkpoint" else "saved"
    repo.theta("track", "*.data-*")
    run(SAVE, kind, where, 1.0, cwd=repo.cwd)
    before = json.loads(run(READ, prefix, cwd=repo.cwd))
    repo("add", "-A")
    repo("commit", "-qm", "v1")
    shard = f"{prefix}.data-00000-of-00001"
    meta = json.loads(repo.out("show", f"HEAD:{shard}"))
    assert meta["checkpoint"]["format"] == "tensorflow"
    assert any("kernel" in n for n in Metadata.loads(repo("show", f"HEAD:{shard}").stdout).params)
    stored = set(lfs_objects(repo.cwd))
    run(SAVE, kind, where, 2.0, cwd=repo.cwd)  # only the kernel changes
    repo("add", "-A")
    repo("commit", "-qm", "v2")
    assert len(set(lfs_objects(repo.cwd)) - stored) == 1
    repo("checkout", "-q", "HEAD~1")
    assert json.loads(run(READ, prefix, cwd=repo.cwd)) == before
    assert repo.status() == ""


def test_shard_without_index_is_a_clear_error(repo):
    repo.theta("track", "*.data-*")
    run(SAVE, "checkpoint", "ckpt/model", 1.0, cwd=repo.cwd)
    os.remove(os.path.join(repo.cwd, "ckpt", "model.index"))
    proc = repo("add", "ckpt/model.data-00000-of-00001", check=False)
    assert proc.returncode != 0 and "index ckpt/model.index is missing" in proc.stderr.decode()
