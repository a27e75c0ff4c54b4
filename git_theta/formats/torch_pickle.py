"""Read and write torch checkpoint pickles without torch and without running any code.

The reader allows only the globals a weights-only load needs (tensor and parameter rebuilders,
storage types, OrderedDict, torch.Size/device/dtype) and turns the object graph into a JSON-able
*tree* whose tensor leaves name parameters. The writer emits pickle opcodes for such a tree that
`torch.load(weights_only=True)` reads back as the same structure.
"""

import base64
import collections
import io
import pickle
import struct
from dataclasses import dataclass

from git_theta import dtypes
from git_theta.errors import CheckpointError, shorten

SEPARATOR = "/"


class _NoBuild:
    """Objects the unpickler hands out refuse pickle's BUILD (setting their state): a file may
    only fill in objects it built itself (an OrderedDict's attributes), never ours."""

    def __setstate__(self, state):
        raise pickle.UnpicklingError(f"refusing to set the state of a {type(self).__name__}")


@dataclass
class StorageType(_NoBuild):
    dtype: dtypes.DType | None  # None: UntypedStorage (bytes; the tensor says its dtype)
    name: str


@dataclass
class StorageRef(_NoBuild):
    key: str
    stype: StorageType
    numel: int
    view_offset: int = 0  # legacy view storages: element offset into the root storage


@dataclass
class TensorRef(_NoBuild):
    storage: StorageRef
    offset: int
    size: tuple
    stride: tuple
    dtype: dtypes.DType
    requires_grad: bool = False
    parameter: bool = False


@dataclass(frozen=True)
class _Marker(_NoBuild):
    kind: str  # "size", "device", "dtype"
    value: object


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    if storage.stype.dtype is None:
        raise pickle.UnpicklingError("untyped storage without a dtype")
    return TensorRef(
        storage, int(offset), tuple(size), tuple(stride), storage.stype.dtype, bool(requires_grad)
    )


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None):
    if not isinstance(dtype, _Marker) or dtype.kind != "dtype":
        raise pickle.UnpicklingError("bad dtype in tensor")
    return TensorRef(
        storage, int(offset), tuple(size), tuple(stride), dtypes.get(dtype.value), bool(requires_grad)
    )


def _rebuild_parameter(data, requires_grad, hooks, state=None):
    if not isinstance(data, TensorRef):
        raise pickle.UnpicklingError("parameter without tensor data")
    if state:
        raise pickle.UnpicklingError("parameters with extra Python state are not plain weights")
    data.requires_grad, data.parameter = bool(requires_grad), True
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): lambda items=(): _Marker("size", tuple(items)),
    ("torch", "device"): lambda *a: _Marker("device", ":".join(str(x) for x in a)),
    ("torch.storage", "UntypedStorage"): StorageType(None, "UntypedStorage"),
    ("torch", "UntypedStorage"): StorageType(None, "UntypedStorage"),
    ("_codecs", "encode"): lambda s, enc="latin1": s.encode(enc),
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}
for _dt in dtypes.DTYPES.values():
    _ALLOWED[("torch", _dt.name)] = _Marker("dtype", _dt.name)
    if _dt.torch_storage:
        _ALLOWED[("torch", _dt.torch_storage)] = StorageType(_dt, _dt.torch_storage)


class _Global(_NoBuild):
    """An allowed callable as the pickle sees it: callable, with no state a BUILD could change."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args):
        return self.fn(*args)


def _fresh(value):
    """A new object per lookup, so nothing a file does to it outlives that file's load."""
    if isinstance(value, _Marker):
        return _Marker(value.kind, value.value)
    if isinstance(value, StorageType):
        return StorageType(value.dtype, value.name)
    return _Global(value)


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds references, never objects from arbitrary globals."""

    def __init__(self, file, path: str):
        super().__init__(file, encoding="utf-8")
        self.path = path
        self.storages: dict[str, StorageRef] = {}

    def find_class(self, module, name):
        try:
            return _fresh(_ALLOWED[(module, name)])
        except KeyError:
            raise CheckpointError(
                f"refusing to load: the checkpoint needs code ({module}.{name}) to unpickle; "
                "git-theta loads weights only - save a plain state_dict (torch.save(model.state_dict(), ...))",
                self.path,
            ) from None

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage" or len(pid) < 5:
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r:.60}")
        stype, key, _location, numel = pid[1], str(pid[2]), pid[3], int(pid[4])
        if not isinstance(stype, StorageType):
            raise pickle.UnpicklingError("bad storage type")
        view = pid[5] if len(pid) > 5 else None
        if key not in self.storages:
            self.storages[key] = StorageRef(key, stype, numel)
        base = self.storages[key]
        if view is not None:  # legacy view: (view_key, offset, size) into the root storage
            view_key, offset, size = view
            return StorageRef(base.key, stype, int(size), int(offset))
        return base


class _Reader(io.RawIOBase):
    """A read-only file over a memoryview, so pickle can read it without copying it all."""

    def __init__(self, data: memoryview):
        self.data, self.pos = data, 0

    def readable(self):
        return True

    def read(self, n=-1):
        end = len(self.data) if n is None or n < 0 else min(len(self.data), self.pos + n)
        out = bytes(self.data[self.pos : end])
        self.pos = end
        return out

    def readinto(self, b):
        chunk = self.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)

    def readline(self, size=-1):
        end = len(self.data) if size is None or size < 0 else min(len(self.data), self.pos + size)
        tail = bytes(self.data[self.pos : end])
        i = tail.find(b"\n")
        out = tail if i < 0 else tail[: i + 1]
        self.pos += len(out)
        return out


def unpickle(data, path: str, reader: "_Reader | io.BytesIO | None" = None):
    """Safely unpickle one object; returns (object, storages seen)."""
    reader = reader or io.BytesIO(bytes(data))  # a zip's data.pkl: small, read at C speed
    up = SafeUnpickler(reader, path)
    try:
        obj = up.load()
    except CheckpointError:
        raise
    except Exception as exc:  # any malformed pickle: refuse cleanly
        raise CheckpointError(
            f"corrupt or truncated checkpoint pickle ({type(exc).__name__}: {exc})", path
        ) from None
    return obj, up.storages


# ---------------------------------------------------------------------------- object graph <-> tree


MAX_TREE_NODES = 2_000_000  # a pickle's memo lets a few bytes name one list many times


def to_tree(obj, path: str, budget: int = MAX_TREE_NODES) -> tuple[object, list[tuple[str, TensorRef]]]:
    """Turn an unpickled object into (JSON-able tree, [(parameter name, TensorRef)] in order).

    Shared references are expanded, so the walk is bounded (`budget` nodes): a small pickle
    whose lists hold one list many times over, level after level, is refused, not expanded."""
    leaves: list[tuple[str, TensorRef]] = []
    seen: set[str] = set()
    count = [0]

    def key_node(k):
        if isinstance(k, TensorRef):
            raise CheckpointError("tensors used as dictionary keys are not supported", path)
        return node(k, None)

    def join(prefix: str | None, k) -> str:
        part = k if isinstance(k, str) else str(k)
        return part if prefix is None else prefix + SEPARATOR + part

    def node(o, prefix: str | None):
        count[0] += 1
        if count[0] > budget:
            raise CheckpointError(
                f"checkpoint pickle expands to more than {budget} objects (shared references?); "
                "save a plain state_dict",
                path,
            )
        if isinstance(o, TensorRef):
            name = prefix if prefix is not None else "@"
            if name in seen:
                raise CheckpointError(f"two tensors flatten to the same name {name!r}", path)
            seen.add(name)
            leaves.append((name, o))
            leaf = {"tensor": name}
            if o.requires_grad:
                leaf["requires_grad"] = True
            if o.parameter:
                leaf["parameter"] = True
            return leaf
        if isinstance(o, dict):
            kind = "odict" if isinstance(o, collections.OrderedDict) else "dict"
            pairs = [[key_node(k), node(v, join(prefix, k))] for k, v in o.items()]
            if pairs and all(isinstance(k, str) and v == {"tensor": join(prefix, k)} for k, v in pairs):
                out = {kind + "_of_tensors": [k for k, _ in pairs]}  # the common state_dict, compactly
            else:
                out = {kind: pairs}
            attrs = getattr(o, "__dict__", None)
            if attrs:
                out["attrs"] = {str(k): node(v, join(prefix, "@" + str(k))) for k, v in attrs.items()}
            return out
        if isinstance(o, (list, tuple)):
            kind = "list" if isinstance(o, list) else "tuple"
            return {kind: [node(v, join(prefix, i)) for i, v in enumerate(o)]}
        if isinstance(o, (set, frozenset)):
            return {type(o).__name__: [node(v, None) for v in sorted(o, key=repr)]}
        if isinstance(o, _Marker):
            return {o.kind: list(o.value) if o.kind == "size" else o.value}
        if o is None or isinstance(o, (bool, str)):
            return o
        if isinstance(o, int):
            return o
        if isinstance(o, float):
            return {"float": o.hex()}
        if isinstance(o, (bytes, bytearray)):
            return {"bytes": base64.b64encode(bytes(o)).decode()}
        raise CheckpointError(f"unsupported object of type {type(o).__name__} in checkpoint", path)

    tree = node(obj, None)
    return tree, leaves


# ---------------------------------------------------------------------------- writer


def _key_value(k):
    """A tree key node back as the Python value it names."""
    if isinstance(k, dict) and "float" in k:
        return float.fromhex(k["float"])
    return k


def _join(prefix, k) -> str:
    part = k if isinstance(k, str) else str(k)
    return part if prefix is None else prefix + SEPARATOR + part


_GLOBAL = b"c"
_MARK, _TUPLE, _EMPTY_TUPLE, _REDUCE, _BINPERSID = b"(", b"t", b")", b"R", b"Q"
_EMPTY_DICT, _SETITEMS, _EMPTY_LIST, _APPENDS, _BUILD = b"}", b"u", b"]", b"e", b"b"
_NONE, _TRUE, _FALSE, _STOP = b"N", b"\x88", b"\x89", b"."


def leaf_names(tree) -> list[str]:
    """Parameter names of a tree's tensor leaves, in pickle order."""
    names: list[str] = []

    def walk(n, prefix):
        if isinstance(n, list):
            for i, v in enumerate(n):
                walk(v, _join(prefix, i))
            return
        if not isinstance(n, dict):
            return
        if "tensor" in n:
            names.append(n["tensor"])
            return
        for kind, value in n.items():
            if kind.endswith("_of_tensors"):
                names.extend(_join(prefix, k) for k in value)
            elif kind in ("dict", "odict"):
                for k, v in value:
                    walk(v, _join(prefix, _key_value(k)))
            elif kind == "attrs":
                for v in value.values():
                    walk(v, _join(prefix, "@attrs"))
            elif kind in ("list", "tuple", "set", "frozenset"):
                walk(value, prefix)

    walk(tree, None)
    return names


class TreePickler:
    """Emits protocol-2 pickle opcodes for a tree; tensor leaves become storage references."""

    def __init__(self, tensors: dict[str, tuple[str, tuple, str]], legacy: bool = False):
        # tensors: name -> (storage key, shape, dtype name)
        self.tensors, self.legacy = tensors, legacy
        self.out = io.BytesIO()

    def dumps(self, tree) -> bytes:
        self.out.write(b"\x80\x02")
        self._node(tree, None)
        self.out.write(_STOP)
        return self.out.getvalue()

    def _w(self, b: bytes) -> None:
        self.out.write(b)

    def _global(self, module: str, name: str) -> None:
        # GLOBAL is newline-terminated text: only fixed names or names from our own tables
        if not (module.replace(".", "_").isidentifier() and name.isidentifier()):
            raise CheckpointError(f"refusing to write {shorten(module + '.' + name)} into a pickle")
        self._w(_GLOBAL + module.encode() + b"\n" + name.encode() + b"\n")

    def _int(self, v: int) -> None:
        if 0 <= v < 256:
            self._w(b"K" + bytes([v]))
        elif 0 <= v < 65536:
            self._w(b"M" + struct.pack("<H", v))
        elif -(2**31) <= v < 2**31:
            self._w(b"J" + struct.pack("<i", v))
        else:
            raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
            self._w(
                b"\x8a" + bytes([len(raw)]) + raw
                if len(raw) < 256
                else b"\x8b" + struct.pack("<i", len(raw)) + raw
            )

    def _str(self, s: str) -> None:
        raw = s.encode("utf-8", "surrogatepass")
        self._w(b"X" + struct.pack("<I", len(raw)) + raw)

    def _tuple(self, items) -> None:
        self._w(_MARK)
        for item in items:
            self._scalar(item)
        self._w(_TUPLE)

    def _scalar(self, v) -> None:
        if v is None:
            self._w(_NONE)
        elif v is True:
            self._w(_TRUE)
        elif v is False:
            self._w(_FALSE)
        elif isinstance(v, int):
            self._int(v)
        elif isinstance(v, str):
            self._str(v)
        elif isinstance(v, float):
            self._w(b"G" + struct.pack(">d", v))
        else:
            raise TypeError(type(v))

    def _empty_odict(self) -> None:
        self._global("collections", "OrderedDict")
        self._w(_EMPTY_TUPLE + _REDUCE)

    def _tensor(self, leaf: dict) -> None:
        key, shape, dtype_name = self.tensors[leaf["tensor"]]
        dt = dtypes.get(dtype_name)
        if leaf.get("parameter"):
            self._global("torch._utils", "_rebuild_parameter")
            self._w(_MARK)
        stride, acc = [], 1
        for s in reversed(shape):
            stride.append(acc)
            acc *= max(int(s), 1)
        stride = tuple(reversed(stride))
        count = 1
        for s in shape:
            count *= int(s)
        typed = dt.torch_storage is not None
        if not typed and self.legacy:
            raise CheckpointError(f"dtype {dt.name} cannot be written in torch's legacy format")
        self._global("torch._utils", "_rebuild_tensor_v2" if typed else "_rebuild_tensor_v3")
        self._w(_MARK)
        self._w(_MARK)
        self._str("storage")
        if typed:
            self._global("torch", dt.torch_storage)
        else:
            self._global("torch.storage", "UntypedStorage")
        self._str(key)
        self._str("cpu")
        self._int(count if typed else count * dt.itemsize)
        if self.legacy:
            self._w(_NONE)
        self._w(_TUPLE + _BINPERSID)
        self._int(0)
        self._tuple(shape)
        self._tuple(stride)
        self._scalar(bool(leaf.get("requires_grad")) and not leaf.get("parameter"))
        self._empty_odict()
        if not typed:
            self._global("torch", dt.name)
        self._w(_TUPLE + _REDUCE)
        if leaf.get("parameter"):
            self._scalar(bool(leaf.get("requires_grad")))
            self._empty_odict()
            self._w(_TUPLE + _REDUCE)

    def _pairs(self, pairs, prefix) -> None:
        if pairs:
            self._w(_MARK)
            for k, v in pairs:
                self._node(k, None)
                self._node(v, _join(prefix, _key_value(k)))
            self._w(_SETITEMS)

    def _node(self, n, prefix) -> None:
        if not isinstance(n, dict):
            self._scalar(n)
            return
        if "tensor" in n:
            self._tensor(n)
            return
        for kind in ("odict", "dict", "odict_of_tensors", "dict_of_tensors"):
            if kind in n:
                if kind.startswith("odict"):
                    self._empty_odict()
                else:
                    self._w(_EMPTY_DICT)
                if kind.endswith("_of_tensors"):
                    pairs = [[k, {"tensor": _join(prefix, k)}] for k in n[kind]]
                else:
                    pairs = n[kind]
                self._pairs(pairs, prefix)
                if n.get("attrs"):
                    self._w(_EMPTY_DICT)
                    self._pairs([[k, v] for k, v in n["attrs"].items()], _join(prefix, "@attrs"))
                    self._w(_BUILD)
                return
        if "list" in n:
            self._w(_EMPTY_LIST)
            if n["list"]:
                self._w(_MARK)
                for i, v in enumerate(n["list"]):
                    self._node(v, _join(prefix, i))
                self._w(_APPENDS)
        elif "tuple" in n or "set" in n or "frozenset" in n:
            kind = next(k for k in ("tuple", "set", "frozenset") if k in n)
            if kind != "tuple":
                self._global("builtins", kind)
                self._w(_MARK + _EMPTY_LIST)
                if n[kind]:
                    self._w(_MARK)
            else:
                self._w(_MARK)
            for i, v in enumerate(n[kind]):
                self._node(v, _join(prefix, i))
            if kind == "tuple":
                self._w(_TUPLE)
            else:
                if n[kind]:
                    self._w(_APPENDS)
                self._w(_TUPLE + _REDUCE)
        elif "size" in n:
            self._global("torch", "Size")
            self._w(_MARK)
            self._tuple(n["size"])
            self._w(_TUPLE + _REDUCE)
        elif "device" in n:
            self._global("torch", "device")
            self._w(_MARK)
            self._str(n["device"])
            self._w(_TUPLE + _REDUCE)
        elif "dtype" in n:
            self._global("torch", dtypes.DTYPES[n["dtype"]].name)  # our table's spelling, never the file's
        elif "float" in n:
            self._scalar(float.fromhex(n["float"]))
        elif "bytes" in n:
            # protocol 2 spells bytes as _codecs.encode(latin-1 text), as torch itself does
            self._global("_codecs", "encode")
            self._w(_MARK)
            self._str(base64.b64decode(n["bytes"]).decode("latin1"))
            self._str("latin1")
            self._w(_TUPLE + _REDUCE)
        else:
            raise CheckpointError(f"unknown node in checkpoint tree: {sorted(n)}")


# ---------------------------------------------------------------------------- layout check

_FLAGS = ("requires_grad", "parameter")


def check_tree(tree, path: str) -> list[str]:
    """Check a tree from metadata node by node against what TreePickler emits; return its tensor
    leaves in pickle order. Every text that would reach a pickle as a GLOBAL (dtype names) comes
    from an allow-list; other strings are length-prefixed (binary-safe) opcodes."""
    from git_theta.formats import layout as checks

    checks.check_bounded(tree, path)
    names: list[str] = []

    def node(n, prefix) -> None:
        if n is None or isinstance(n, (bool, int, str, float)):
            return
        if isinstance(n, list):
            raise checks.fail("a list where a node belongs", path)
        if not isinstance(n, dict):
            raise checks.fail(f"a node of type {type(n).__name__}", path)
        if "tensor" in n:
            if not isinstance(n["tensor"], str) or set(n) - {"tensor", *_FLAGS}:
                raise checks.fail(f"tensor leaf {shorten(n)}", path)
            if any(not isinstance(n.get(f, False), bool) for f in _FLAGS):
                raise checks.fail("tensor flags are not true/false", path)
            names.append(n["tensor"])
            return
        kinds = [k for k in n if k != "attrs"]
        if len(kinds) != 1 or (
            "attrs" in n and kinds[0] not in ("odict", "dict", "odict_of_tensors", "dict_of_tensors")
        ):
            raise checks.fail(f"node with keys {shorten(sorted(n))}", path)
        kind, value = kinds[0], n[kinds[0]]
        if kind.endswith("_of_tensors"):
            if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
                raise checks.fail(f"{kind} is not a list of names", path)
            names.extend(_join(prefix, k) for k in value)
        elif kind in ("odict", "dict"):
            if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
                raise checks.fail(f"{kind} is not a list of pairs", path)
            for k, v in value:
                if isinstance(k, list) or (isinstance(k, dict) and "tensor" in k):
                    raise checks.fail("a list or a tensor as a key", path)
                node(k, None)
                node(v, _join(prefix, _key_value(k)))
        elif kind in ("list", "tuple", "set", "frozenset"):
            if not isinstance(value, list):
                raise checks.fail(f"{kind} is not a list", path)
            for i, v in enumerate(value):
                node(v, _join(prefix, i))
        elif kind == "size":
            if not isinstance(value, list) or not all(type(v) is int for v in value):
                raise checks.fail("size is not a list of integers", path)
        elif kind == "device":
            checks.check_text(value, "device", path, 100)
        elif kind == "dtype":
            if value not in dtypes.DTYPES:
                raise checks.fail(f"dtype {shorten(value)} is not a torch dtype", path)
        elif kind == "float":
            checks.check_float_hex(value, "float", path)
        elif kind == "bytes":
            checks.check_base64(value, "bytes", path)
        else:
            raise checks.fail(f"unknown node {shorten(kind)}", path)
        attrs = n.get("attrs")
        if attrs is not None:
            if not isinstance(attrs, dict):
                raise checks.fail("attrs is not a map", path)
            for v in attrs.values():
                node(v, _join(prefix, "@attrs"))

    node(tree, None)
    return names
