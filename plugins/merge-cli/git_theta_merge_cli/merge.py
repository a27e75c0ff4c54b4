"""The streaming merge: inputs checked up front, then one parameter group at a time is loaded,
merged, stored by git-theta and dropped, so memory stays near the largest tensor times the
number of inputs, never whole models. The result is committed and checked out at OUT."""

import dataclasses
import json
import os
import zlib
from dataclasses import dataclass, field

import torch

from git_theta import parallel
from git_theta.errors import ThetaError
from git_theta.git import repo
from git_theta.git.commit import commit_paths, write_blob
from git_theta.git.tracking import attributes_blob_for
from git_theta.logs import Progress, get_logger
from git_theta.memory import release_free_memory
from git_theta.metadata import Metadata, ParamEntry
from git_theta.storage.lfs_store import LfsStore
from git_theta.updates.storing import store_tensor
from git_theta_merge_cli import methods
from git_theta_merge_cli.methods.base import Inputs
from git_theta_merge_cli.sources import GitModel, from_torch, open_aux, to_torch

log = get_logger(__name__)
_SHOWN = 8
LARGE_BYTES = 32 << 20


@dataclass
class Request:
    """One merge, as given on the command line."""

    models: list[str]
    method: str
    output: str
    aux: list[str] = field(default_factory=list)
    ancestor: str | None = None
    args: dict[str, list[str]] = field(default_factory=dict)
    message: str | None = None
    device: str | None = None  # None: cpu, or cuda for a -gpu method where CUDA exists
    seed: int = 0
    test_run: int | None = None  # the original's --test_run N: merge (and output) only N parameters


def _listing(items: list[str]) -> str:
    return ", ".join(items[:_SHOWN]) + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def check_inputs(models: list[GitModel], ancestor: GitModel | None, aux: list, method) -> None:
    """Same parameter names and shapes everywhere; aux data where the method needs it."""
    first = models[0]
    problems = []
    for other in models[1:] + ([ancestor] if ancestor else []):
        missing = sorted(set(first.names) - set(other.names))
        extra = sorted(set(other.names) - set(first.names))
        if missing:
            problems.append(f"{other.spec} lacks {_listing(missing)}")
        if extra:
            problems.append(f"{other.spec} has parameters {first.spec} lacks: {_listing(extra)}")
        shapes = [
            f"{n} {list(first.shape(n))} vs {list(other.shape(n))}"
            for n in first.names
            if n in other.names and first.shape(n) != other.shape(n)
        ]
        if shapes:
            problems.append(f"shapes differ between {first.spec} and {other.spec}: {_listing(shapes)}")
    if method.aux_kind in ("fisher", "task-vector"):
        what = "Fisher" if method.aux_kind == "fisher" else "task vector"
        floats = [n for n in first.names if first.entry(n).dtype.startswith(("float", "bfloat"))]
        fits = getattr(method, "aux_fits", lambda aux_shape, shape: aux_shape == shape)
        for a in aux:
            lacking = [n for n in floats if n not in a.names]
            wrong = [n for n in floats if n in a.names and not fits(tuple(a.shape(n)), tuple(first.shape(n)))]
            if lacking and (method.aux_required or method.aux_kind == "task-vector"):
                problems.append(f"aux data {a.spec} has no {what} for {_listing(lacking)}")
            if wrong:
                problems.append(f"aux data {a.spec} has {what} of the wrong shape for {_listing(wrong)}")
    elif method.aux_kind == "gram":
        for a in aux:
            stray = [n for n in a.names if n not in first.names]
            if stray:
                problems.append(f"aux data {a.spec} names parameters the models lack: {_listing(stray)}")
    if problems:
        raise ThetaError("cannot merge: " + "; ".join(problems))


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _seed(seed: int, name: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(name.encode())) & 0x7FFF_FFFF_FFFF_FFFF


def run(req: Request, cwd: str | None = None) -> str:
    """Merge, store, commit and check out; returns the new commit's sha."""
    top = repo.root(cwd)
    repo.require_lfs()
    method = methods.get(req.method)
    device = req.device or ("cuda" if req.method.endswith("-gpu") else "cpu")
    if req.device is None and req.method.endswith("-gpu") and not torch.cuda.is_available():
        # the original plug-in's scripts name every method -gpu; they still run, on the CPU
        log.warning("%s: no CUDA device here; merging on the CPU", req.method)
        device = "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ThetaError("--device cuda: no CUDA device is available here; use --device cpu")
    args = method.parse_args(req.args)
    if req.aux and not method.aux_kind:  # the original plug-in ignores them too
        log.warning("%s uses no --aux_data; ignoring %s", method.name, ", ".join(req.aux))
        req = dataclasses.replace(req, aux=[])
    method.check(len(req.models), req.ancestor is not None, len(req.aux), args)
    store = LfsStore.for_cwd(top)
    models = [GitModel(spec, top, store) for spec in req.models]
    ancestor = GitModel(req.ancestor, top, store) if req.ancestor else None
    aux = [open_aux(spec, top, store) for spec in req.aux]
    check_inputs(models, ancestor, aux, method)
    if hasattr(method, "settle_args"):  # arguments that depend on the inputs' shapes
        args = method.settle_args(models[0], aux, args)
    extra = {}
    seed = req.seed if args.get("seed") is None else args["seed"]
    if args.get("global_majority_sign") and not _is_number(args["global_majority_sign"]):
        from git_theta_merge_cli.majority_sign import read_sign_file

        extra["global_majority_sign"] = read_sign_file(args["global_majority_sign"], len(models))
    out_rev, out_path = "HEAD", os.path.relpath(os.path.abspath(req.output), top).replace(os.sep, "/")
    if out_path.startswith("../"):
        raise ThetaError(f"{req.output}: the output must be inside the repository")
    previous = _previous(top, out_rev, out_path)
    for src in models + ([ancestor] if ancestor else []) + aux:
        src.ensure_objects()

    names = models[0].names
    if req.test_run:  # the original's first N are in its metadata's order: sorted by name
        chosen = set(sorted(names)[: req.test_run]) | {"transformer.lm_head.weight"}
        names = [n for n in names if n in chosen]
    copies = method.copies_equal_models(args, ancestor is not None, bool(aux))
    entries: dict[str, ParamEntry] = {}
    computed = 0
    progress = Progress(f"merging {len(names)} parameters with {method.name}", len(names))
    try:
        for group in method.groups(names):
            if all(_same_everywhere(models, n, copies, ancestor) for n in group):
                for n in group:
                    entries[n] = models[0].entry(n)  # equal in every model: copied, not computed
                progress.advance(len(group))
                continue
            results = _merge_group(group, models, ancestor, aux, method, args, device, seed, extra)
            for n, value in results.items():
                # large results are stored dense (streamed slab by slab): a delta against the
                # previous value would need that value decoded too, at the memory peak
                kind = "dense" if value.nbytes > LARGE_BYTES else "auto"
                base = previous.get(n) or (ancestor or models[0]).entry(n)
                entries[n] = store_tensor(value, store, n, base, kind)

            computed += len(group)
            progress.advance(len(group))
    finally:
        progress.close()
    layout = models[0].meta.layout
    if req.test_run:  # a part of the model: written as a flat state dict of what was merged
        layout = {k: v for k, v in layout.items() if k != "tree"}
    meta = Metadata(models[0].meta.format, layout, {n: entries[n] for n in names})
    blobs = {out_path: write_blob(meta.dumps(), top)}
    blobs.update(attributes_blob_for(top, out_path))
    commit = commit_paths(top, blobs, _message(req, method, args, computed, len(names), device))
    if os.path.exists(os.path.join(top, out_path)):
        os.remove(os.path.join(top, out_path))
    repo.run(["checkout", "--", out_path], cwd=top)
    log.info(
        "merged %d of %d parameters (the rest equal in all models) into %s", computed, len(names), out_path
    )
    return commit


def _previous(top: str, rev: str, path: str) -> dict[str, ParamEntry]:
    blob = repo.read_blob(f"{rev}:{path}", cwd=top)
    try:
        return Metadata.loads(blob, path).params if blob else {}
    except ThetaError:
        return {}


def _same_everywhere(models: list[GitModel], name: str, copies: str, ancestor: GitModel | None) -> bool:
    """Copy, not compute, a parameter equal in every model where the method's result is that value."""
    if copies == "never" or (copies == "with-ancestor" and ancestor is None):
        return False
    first = models[0].entry(name)
    others = models[1:] + ([ancestor] if copies == "with-ancestor" else [])
    return all(m.entry(name).same_tensor(first) for m in others)


def _merge_group(group, models, ancestor, aux, method, args, device, seed, extra) -> dict:
    """Load every input of the group (decoded in parallel), merge on `device`, return raw tensors."""
    dtypes = {n: models[0].entry(n).dtype for n in group}
    floats = {n: dt.startswith(("float", "bfloat")) for n, dt in dtypes.items()}
    out = {}
    for n in group:
        if not floats[n]:
            log.warning("%s: %s values differ between models; the first model's are kept", n, dtypes[n])
            out[n] = models[0].load(n)
    todo = [n for n in group if floats[n]]
    if not todo:
        return out

    def compute_dtype(n):
        return torch.float64 if dtypes[n] == "float64" else torch.float32

    streaming = getattr(method, "streams_models", False) and len(todo) == 1
    sources = ([] if streaming else models) + ([ancestor] if ancestor else [])
    jobs = [(src, n) for n in todo for src in sources]
    jobs += [(a, n) for n in todo for a in aux if n in a.names]
    # small tensors: two loads in flight; large ones one at a time (each decode already runs on
    # all cores, and a second in flight would double the decoding buffers at the memory peak)
    big = max(models[0].entry(n).size for n in todo) > LARGE_BYTES

    def load(job):
        tensor = to_torch(job[0].load(job[1]), device, compute_dtype(job[1]))
        if big:
            release_free_memory()  # the decoding buffers go back before the next input arrives
        return tensor

    loaded = dict(zip(jobs, parallel.ordered_map(load, jobs, ahead=1 if big else 2)))
    inputs = {}
    for n in todo:
        aux_n = [loaded[(a, n)] for a in aux if (a, n) in loaded] or None
        inputs[n] = Inputs(
            n,
            LazyModels(models, n, load) if streaming else [loaded.pop((m, n)) for m in models],
            loaded.pop((ancestor, n)) if ancestor else None,
            aux_n if aux_n and len(aux_n) == len(models) else None,
            _seed(seed, n),
            extra,
        )
    del loaded
    merged = method.merge_group(inputs, args)
    del inputs  # the inputs go before the results are converted and stored
    for n in list(merged):
        out[n] = from_torch(merged.pop(n), dtypes[n])
    return out


class LazyModels:
    """The models' values of one parameter, each loaded when first asked for and not kept here:
    a method that streams (TIES) holds one full input at a time besides the ancestor."""

    def __init__(self, models, name: str, load):
        self.models, self.name, self._load = models, name, load

    def __len__(self) -> int:
        return len(self.models)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self._load((self.models[i], self.name))

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def _message(req: Request, method, args: dict, computed: int, total: int, device: str) -> str:
    head = req.message or f"Merge {len(req.models)} models with {method.name}"
    record = {
        "method": method.name,
        "arguments": args,
        "models": req.models,
        "ancestor": req.ancestor,
        "aux_data": req.aux,
        "seed": req.seed,
        "device": device,
        "parameters_merged": computed,
        "parameters_total": total,
    }
    return f"{head}\n\ngit-theta-merge-cli: {json.dumps(record, sort_keys=True)}\n"
