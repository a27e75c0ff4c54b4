"""Model makers and comparisons for tests (small, deterministic, every dtype)."""

import collections

import torch

ALL_DTYPES = [
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.uint8,
    torch.bool,
    torch.complex64,
    torch.complex128,
    torch.float8_e4m3fn,
    torch.float8_e5m2,
    torch.uint16,
    torch.uint32,
    torch.uint64,
]


def small_model(seed: int = 0, width: int = 16, layers: int = 2) -> collections.OrderedDict:
    g = torch.Generator().manual_seed(seed)
    sd = collections.OrderedDict()
    sd["embed.weight"] = torch.randn(32, width, generator=g)
    for i in range(layers):
        sd[f"layers.{i}.weight"] = torch.randn(width, width, generator=g)
        sd[f"layers.{i}.bias"] = torch.zeros(width)
    sd["head.weight"] = torch.randn(4, width, generator=g)
    return sd


def every_dtype() -> dict:
    """One tensor per dtype, with edge values: NaN payloads, -0.0, denormals, extremes."""
    out = {}
    bits = torch.tensor(
        [0x7FC00001, 0xFFC12345, 0x80000000, 0x00000001, 0x7F800000, 0x3F800000], dtype=torch.int64
    )
    f32 = bits.to(torch.int32).view(torch.float32)  # quiet NaN payloads, -0.0, denormal, inf, 1.0
    for dt in ALL_DTYPES:
        if dt.is_floating_point:
            if dt.itemsize == 4:
                t = f32.clone()
            elif dt.itemsize == 2:
                t = (
                    torch.tensor([0x7E01, 0xFE33, 0x8000, 0x0001, 0x7C00, 0x3C00], dtype=torch.int32)
                    .to(torch.uint16)
                    .view(dt)
                )
            elif dt.itemsize == 1:
                t = torch.arange(0, 256, 43, dtype=torch.uint8).view(dt)
            else:
                t = torch.tensor([0x7FF0000000000001, -0x8000000000000000, 1, 3], dtype=torch.int64).view(
                    torch.float64
                )
        elif dt.is_complex:
            t = torch.complex(
                torch.tensor([1.5, -0.0, float("nan")]), torch.tensor([float("inf"), 2.0, -1.0])
            ).to(dt)
        elif dt == torch.bool:
            t = torch.tensor([True, False, True])
        else:
            info = torch.iinfo(dt)
            t = torch.tensor(
                [info.min, info.max, 0, 1], dtype=torch.int64 if dt != torch.uint64 else torch.uint64
            ).to(dt)
        out[str(dt).replace("torch.", "")] = t.reshape(-1, 1) if t.numel() % 2 else t.reshape(2, -1)
    return out


def bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-for-bit equality (NaN payloads and -0.0 included)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(
        a.reshape(-1).contiguous().view(torch.uint8), b.reshape(-1).contiguous().view(torch.uint8)
    )


def assert_same_state(a, b, ordered: bool = True) -> None:
    """Same structure, same keys (in the same order unless not `ordered`), same bits."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert bits_equal(a, b), (a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b) if ordered else sorted(a) == sorted(b), (list(a), list(b))
        for k in a:
            assert_same_state(a[k], b[k], ordered)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_state(x, y, ordered)
    else:
        assert a == b


def load(path: str):
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(str(path), weights_only=True)


def save(sd, path: str) -> None:
    if str(path).endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, str(path))


def lfs_objects(repo_dir: str) -> dict[str, int]:
    """oid -> size of every object in a repository's (or clone's) local LFS store."""
    import os

    root = os.path.join(repo_dir, ".git", "lfs", "objects")
    return {f: os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(root) for f in files}


def rewrite(fmt, raw: bytes, path: str):
    """Read a checkpoint with a format and write it back: (checkpoint, bytes written)."""
    import io

    from git_theta.tensor import TensorSpec

    ck = fmt.read(memoryview(raw), path)
    out = io.BytesIO()
    specs = [TensorSpec(n, t.dtype, t.shape) for n, t in ck.tensors.items()]
    fmt.check_layout(ck.layout, specs, path)  # what a reader produces, its writer must accept
    fmt.write(ck.layout, specs, list(ck.tensors.values()), out, path)
    return ck, out.getvalue()


def commit_tracked_model(repo, sd, name: str = "model.pt", message: str = "v1") -> str:
    """Track `name` with git-theta, save `sd` there, add and commit it; returns the file's path."""
    import os

    repo.theta("track", name)
    path = os.path.join(repo.cwd, name)
    save(sd, path)
    repo("add", "-A")
    repo("commit", "-qm", message)
    return path


def push_and_clone(repo, bare_remote: str, dest: str, env: dict | None = None) -> str:
    """Add `bare_remote` as origin, push main there and clone it to `dest` (returned)."""
    import subprocess

    repo("remote", "add", "origin", bare_remote)
    repo("push", "-q", "origin", "main")
    subprocess.run(
        ["git", "clone", "-q", bare_remote, dest], env=env or repo.env, check=True, capture_output=True
    )
    return dest


def metadata_doc(repo, path: str = "model.pt", rev: str = "HEAD") -> dict:
    """The metadata committed for `path` as a version 1 document (parameters by name, each a
    nested entry), whatever version was written: what tests inspect or an attacker edits."""
    import json

    doc = json.loads(repo("cat-file", "-p", f"{rev}:{path}").stdout)
    if doc["git_theta"]["metadata_version"] == 1:
        return doc
    from git_theta.metadata import Metadata

    meta = Metadata.loads(json.dumps(doc).encode())
    return {
        "checkpoint": {"format": meta.format, "layout": meta.layout, "order": list(meta.params)},
        "git_theta": {"metadata_version": 1},
        "parameters": {name: entry.to_json() for name, entry in meta.params.items()},
    }
