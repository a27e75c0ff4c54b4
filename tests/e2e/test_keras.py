"""End to end: Keras 3 `.weights.h5`, `.keras` archives and `tf_model.h5` files, written by Keras.

Keras runs (on the JAX backend, the quickest to import) in two subprocesses for the whole module:
one builds a small model, trains it a step and saves the three kinds of file (v1); the other loads
v1, saves it again unchanged, trains one more step and saves v2. Tensors are then changed with
h5py where a test needs other values, and one last Keras process loads what git merged.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import lfs_objects, metadata_doc, push_and_clone

h5py = pytest.importorskip("h5py")
pytest.importorskip("keras")
pytest.importorskip("jax")

KINDS = {"model.weights.h5": "hdf5", "model.keras": "keras", "tf_model.h5": "hdf5"}

KERNELS = {  # the hidden and head kernels in each kind of file
    "model.weights.h5": ("layers/dense/vars/0", "layers/dense_1/vars/0"),
    "model.keras": ("layers/dense/vars/0", "layers/dense_1/vars/0"),
    "tf_model.h5": ("hidden/sequential/hidden/kernel", "head/sequential/head/kernel"),
}

KERAS = r"""
import os, sys, json, numpy as np, keras, h5py
from keras.src.legacy.saving import legacy_h5_format
cmd, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]

def save(model, where):
    os.makedirs(where, exist_ok=True)
    model.save_weights(os.path.join(where, "model.weights.h5"))
    model.save(os.path.join(where, "model.keras"))
    with h5py.File(os.path.join(where, "tf_model.h5"), "w") as f:  # what tf-keras save_weights writes (HF)
        legacy_h5_format.save_weights_to_hdf5_group(f, model)

rng = np.random.default_rng(0)
x, y = rng.random((8, 4), dtype=np.float32), rng.random((8, 2), dtype=np.float32)
def build():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, name="hidden"), keras.layers.Dense(2, name="head")]
    )
    model.get_layer("hidden").trainable = False  # fine-tuning changes the head only
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model

if cmd == "new":
    model = build()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    save(model, dst)
elif cmd == "finetune":
    model = build()
    model.load_weights(os.path.join(src, "model.weights.h5"))
    save(model, os.path.join(dst, "again"))  # the same weights saved again
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    save(model, os.path.join(dst, "v2"))
elif cmd == "load":  # what Keras reads from the three files in `src`
    model = keras.models.load_model(os.path.join(src, "model.keras"))
    out = {"keras": [w.tolist() for w in model.get_weights()]}
    model.load_weights(os.path.join(src, "model.weights.h5"))
    out["weights.h5"] = [w.tolist() for w in model.get_weights()]
    with h5py.File(os.path.join(src, "tf_model.h5"), "r") as f:
        legacy_h5_format.load_weights_from_hdf5_group(f, model)
    out["tf_model.h5"] = [w.tolist() for w in model.get_weights()]
    print(json.dumps(out))
"""


def keras(*args, cwd) -> bytes:
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-c", KERAS, *args], cwd=cwd, env=env, check=True, capture_output=True
    ).stdout


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Folders v1, again (v1 re-saved by Keras) and v2 (a step of fine-tuning later)."""
    root = tmp_path_factory.mktemp("keras")
    keras("new", "", str(root / "v1"), cwd=root)
    keras("finetune", str(root / "v1"), str(root), cwd=root)
    return root


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def tensors(path: str, kind: str) -> dict[str, str]:
    """name -> sha256 of the tensor's bytes, as git-theta reads the file."""
    from git_theta.formats.detect import by_name

    ck = by_name(kind).read(memoryview(read(path)), path)
    return {n: hashlib.sha256(t.data).hexdigest() for n, t in ck.tensors.items()}


@pytest.mark.parametrize("name", list(KINDS))
def test_keras_files_round_trip(saved, repo, bare_remote, tmp_path, name):
    kind = KINDS[name]
    path = os.path.join(repo.cwd, name)
    v1, v2 = read(str(saved / "v1" / name)), read(str(saved / "v2" / name))
    repo.theta("track", name)
    shutil.copy(saved / "v1" / name, path)
    repo("add", "-A")
    repo("commit", "-qm", "v1")
    meta1 = metadata_doc(repo, name)
    assert meta1["checkpoint"]["format"] == kind
    assert KERNELS[name][0] in meta1["parameters"]
    stored = set(lfs_objects(repo.cwd))

    # Keras saving the same weights again stores nothing new
    shutil.copy(saved / "again" / name, path)
    if name != "model.keras":  # .keras archives carry the save date; HDF5 files are reproducible
        assert read(path) == v1 and repo.status() == ""
    repo("add", name)
    assert set(lfs_objects(repo.cwd)) == stored
    repo("checkout", "-q", "--", name) if repo.status() == "" else repo("reset", "-q", "--hard")

    # one step of fine-tuning: the frozen layer's tensors are not stored again
    shutil.copy(saved / "v2" / name, path)
    repo("add", "-A")
    repo("commit", "-qm", "v2")
    meta2 = metadata_doc(repo, name)
    before, after = tensors(str(saved / "v1" / name), kind), tensors(str(saved / "v2" / name), kind)
    same = [n for n in after if before.get(n) == after[n]]
    changed = set(after.values()) - set(before.values())
    assert KERNELS[name][0] in same and KERNELS[name][1] not in same and changed
    for n in same:
        assert meta2["parameters"][n] == meta1["parameters"][n]
    assert 0 < len(set(lfs_objects(repo.cwd)) - stored) <= len(changed)

    # both commits check out bit for bit, the work tree stays clean
    repo("checkout", "-q", "HEAD~1")
    assert read(path) == v1 and repo.status() == ""
    repo("checkout", "-q", "main")
    assert read(path) == v2 and repo.status() == ""
    clone = push_and_clone(repo, bare_remote, str(tmp_path / "clone"))
    assert read(os.path.join(clone, name)) == v2
    assert repo.at(clone).status() == ""


def _change(path: str, member: str, fn) -> None:
    """Apply `fn` to one dataset of an HDF5 file, or of the weights inside a .keras archive."""
    if path.endswith(".keras"):
        import io
        import zipfile

        with zipfile.ZipFile(path) as z:
            members = {i: z.read(i) for i in z.infolist()}  # infos kept: same dates, same layout
        weights = next(i for i in members if i.filename == "model.weights.h5")
        buf = io.BytesIO(members[weights])
        with h5py.File(buf, "r+") as f:
            f[member][...] = fn(f[member][...])
        members[weights] = buf.getvalue()
        with zipfile.ZipFile(path, "w") as z:
            for info, data in members.items():
                z.writestr(info, data)
        return
    with h5py.File(path, "r+") as f:
        f[member][...] = fn(f[member][...])


def test_merges_and_diffs_of_keras_files(saved, repo):
    """Branches change different tensors: git merges them; both change one: a strategy averages."""
    for name in KINDS:
        repo.theta("track", name)
        shutil.copy(saved / "v1" / name, os.path.join(repo.cwd, name))
    repo("add", "-A")
    repo("commit", "-qm", "base")
    repo("switch", "-q", "-c", "other")
    for name, (hidden, head) in KERNELS.items():
        _change(os.path.join(repo.cwd, name), head, lambda a: a + 1)
        _change(os.path.join(repo.cwd, name), hidden, lambda a: a * 3)
    repo("commit", "-qam", "theirs")
    repo("switch", "-q", "main")
    for name, (hidden, _) in KERNELS.items():
        _change(os.path.join(repo.cwd, name), hidden, lambda a: a + 1)
    repo("commit", "-qam", "ours")

    diff = repo.out("diff", "HEAD~1", "HEAD", "--", "tf_model.h5")
    assert "hidden/sequential/hidden/kernel" in diff and "head/sequential/head/kernel" not in diff
    stat = repo.theta("diff", "main", "other", "--json").stdout
    assert b"head/sequential/head/kernel" in stat

    env = dict(repo.env, GIT_THETA_MERGE_STRATEGY="average-ours-theirs")
    type(repo)(repo.cwd, env)("merge", "--no-edit", "other")
    assert repo.status() == ""
    loaded = json.loads(keras("load", repo.cwd, "", cwd=repo.cwd))
    with h5py.File(saved / "v1" / "model.weights.h5", "r") as f:
        hidden0, head0 = f["layers/dense/vars/0"][...], f["layers/dense_1/vars/0"][...]
    want_hidden = ((hidden0 + 1) + (hidden0 * 3)) / 2  # both sides changed it: averaged
    for key in ("keras", "weights.h5", "tf_model.h5"):
        got = [np.asarray(w, dtype=np.float32) for w in loaded[key]]
        np.testing.assert_allclose(got[0], want_hidden, rtol=1e-6)
        np.testing.assert_array_equal(got[2], head0 + 1)  # one side changed it: taken bit for bit


@pytest.mark.skipif(not shutil.which("git-theta-merge-cli"), reason="the merge CLI plug-in is not installed")
def test_merge_cli_averages_keras_weights(saved, repo):
    """git-theta-merge-cli on two .weights.h5: floats averaged, the int step kept from the first."""
    repo.theta("track", "*.weights.h5")
    for tag, where in (("a", "v1"), ("b", "v2")):
        shutil.copy(saved / where / "model.weights.h5", os.path.join(repo.cwd, f"{tag}.weights.h5"))
    repo("add", "-A")
    repo("commit", "-qm", "two models")
    proc = subprocess.run(
        ["git-theta-merge-cli", "--models", "a.weights.h5", "b.weights.h5", "--merge", "average"]
        + ["--output", "merged.weights.h5"],
        cwd=repo.cwd,
        env=repo.env,
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert repo.status() == ""
    files = [h5py.File(os.path.join(repo.cwd, f"{t}.weights.h5"), "r") for t in ("a", "b", "merged")]
    try:
        a, b, m = (f["layers/dense_1/vars/0"][...].astype(np.float64) for f in files)
        np.testing.assert_allclose(m, (a + b) / 2, rtol=1e-6)
        assert files[2]["optimizer/vars/0"][()] == files[0]["optimizer/vars/0"][()]
    finally:
        for f in files:
            f.close()
