"""Fuzzing the writers (metadata -> file) with hypothesis: a layout from a metadata file anyone
may commit is either refused in one line (CheckpointError) or written as a file that our reader
reads back to the same tensors; a torch pickle written never names a global outside the
allow-list, whatever strings (newlines, pickle opcodes) the layout holds."""

import copy
import io
import os
import pickletools
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from git_theta.errors import ThetaError
from git_theta.formats.detect import by_name
from git_theta.tensor import TensorSpec
from tests.fuzz.test_formats_fuzz import CASES

SETTINGS = settings(
    max_examples=int(os.environ.get("GIT_THETA_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "float32\n0cos\nsystem\n(Vtouch pwned\ntR0cbuiltins\nstr",
            "uint16",
            "torch.float32",
            "../../x",
            "a\nb",
            "dict",
            "tensor",
            "zz",
            "<f4",
            ">i8",
            "O",
        ]
    ),
    st.lists(st.integers(min_value=-3, max_value=2**40), max_size=4),
    st.just({"dtype": "float32\nINJECT"}),
    st.just({"tensor": "w"}),
    st.just({"list": [{"list": []}]}),
    st.dictionaries(
        st.sampled_from(["tensor", "dict", "odict", "list", "dtype", "raw", "attrs"]),
        st.text(max_size=5),
        max_size=2,
    ),
)

# every GLOBAL our torch writer may emit (module, name)
_ALLOWED_GLOBALS = {"collections", "torch._utils", "torch", "torch.storage", "builtins", "_codecs"}


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _mutate(doc, path, action, value):
    doc = copy.deepcopy(doc)
    if not path:
        return value if isinstance(value, dict) else doc
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if action == "delete":
        parent.pop(path[-1])
    else:
        parent[path[-1]] = value
    return doc


def _globals_in_pickles(blob: bytes) -> set[str]:
    """Modules named by GLOBAL opcodes of every pickle in a torch file."""
    found = set()
    if blob[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            pickles = [zf.read(n) for n in zf.namelist() if n.endswith(".pkl")]
    else:
        pickles, rest = [], io.BytesIO(blob)
        for _ in range(5):
            start = rest.tell()
            try:
                for op, _arg, pos in pickletools.genops(rest):  # noqa: B007 (pos: where it stopped)
                    if op.name == "STOP":
                        break
            except Exception:
                break
            rest.seek(start)
            pickles.append(rest.read(pos + 1))
            rest.seek(start + pos + 1)
    for p in pickles:
        for op, arg, _ in pickletools.genops(p):
            if op.name == "GLOBAL":
                module, _, name = arg.partition(" ")
                assert "\n" not in name
                found.add(module)
    return found


@pytest.mark.parametrize("case", range(len(CASES)))
@SETTINGS
@given(data=st.data())
def test_mutated_layouts_are_refused_or_written_safely(case, data):
    fmt_name, blob = CASES[case]
    fmt = by_name(fmt_name)
    ck = fmt.read(memoryview(blob), "m")
    specs = [TensorSpec(n, t.dtype, t.shape) for n, t in ck.tensors.items()]
    paths = list(_paths(ck.layout))
    path = data.draw(st.sampled_from(paths))
    action = data.draw(st.sampled_from(["delete", "replace"])) if path else "replace"
    layout = _mutate(ck.layout, path, action, data.draw(HOSTILE))
    out = io.BytesIO()
    try:
        fmt.check_layout(layout, specs, "m")
        fmt.write(layout, specs, list(ck.tensors.values()), out, "m")
    except ThetaError as exc:
        assert "\n" not in str(exc) and len(str(exc)) <= 600
        return
    written = out.getvalue()
    if fmt_name == "pytorch":
        assert _globals_in_pickles(written) <= _ALLOWED_GLOBALS
    back = fmt.read(memoryview(written), "m")  # what the writer wrote, the reader reads
    for name, tensor in back.tensors.items():
        if name in ck.tensors:
            assert bytes(tensor.data) == bytes(ck.tensors[name].data)
