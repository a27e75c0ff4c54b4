"""Our own plug-ins, by entry-point group: the one table setup.py registers as entry points and
git_theta.plugins reads. Plain data with no imports, so setup.py can load it before any of the
package's dependencies are installed."""

CHECKPOINTS = "git_theta.plugins.checkpoints"
UPDATES = "git_theta.plugins.updates"
MERGES = "git_theta.plugins.merges"

BUILTINS: dict[str, dict[str, str]] = {
    CHECKPOINTS: {
        "pytorch": "git_theta.formats.pytorch:PyTorchCheckpoint",
        "safetensors": "git_theta.formats.safetensors:SafetensorsCheckpoint",
        "numpy": "git_theta.formats.numpy_format:NumpyCheckpoint",
        "flax": "git_theta.formats.flax:FlaxCheckpoint",
        "tensorflow": "git_theta.formats.tf_bundle:TensorFlowCheckpoint",
        "hdf5": "git_theta.formats.hdf5:HDF5Checkpoint",
        "keras": "git_theta.formats.keras:KerasCheckpoint",
        "gguf": "git_theta.formats.gguf_format:GGUFCheckpoint",
        "onnx": "git_theta.formats.onnx_format:ONNXCheckpoint",
    },
    UPDATES: {
        "auto": "git_theta.updates.auto:AutoUpdate",
        "dense": "git_theta.updates.dense:DenseUpdate",
        "sparse": "git_theta.updates.sparse:SparseUpdate",
        "bitdelta": "git_theta.updates.bitdelta:BitDeltaUpdate",
        "low-rank": "git_theta.updates.lowrank:LowRankUpdate",
        "ia3": "git_theta.updates.ia3:IA3Update",
    },
    MERGES: {
        "take_us": "git_theta.merges.strategies:TakeOurs",
        "take_them": "git_theta.merges.strategies:TakeTheirs",
        "take_original": "git_theta.merges.strategies:TakeOriginal",
        "average-ours-theirs": "git_theta.merges.strategies:AverageOursTheirs",
        "average-all": "git_theta.merges.strategies:AverageAll",
        "average-ours-original": "git_theta.merges.strategies:AverageOursOriginal",
        "average-theirs-original": "git_theta.merges.strategies:AverageTheirsOriginal",
        "weighted-average": "git_theta.merges.strategies:WeightedAverage",
        "task-arithmetic": "git_theta.merges.strategies:TaskArithmetic",
        "context": "git_theta.merges.strategies:Context",
    },
}

# The original git-theta's names for our formats, also registered as entry points for tools that
# look them up there (git-theta itself finds every alias on the classes: `aliases`).
ENTRY_POINT_ALIASES: dict[str, dict[str, str]] = {
    CHECKPOINTS: {
        "pickled-dict": "pytorch",
        "safetensors-checkpoint": "safetensors",
        "flax-checkpoint": "flax",
        "tf": "tensorflow",
        "tensorflow-checkpoint": "tensorflow",
        "tf-savedmodel": "tensorflow",
        "tensorflow-savedmodel": "tensorflow",
    },
}


def entry_points() -> dict[str, list[str]]:
    """setup.py's entry points for every group: each built-in, then each alias, as `name = target`."""
    out = {}
    for group, table in BUILTINS.items():
        aliases = ENTRY_POINT_ALIASES.get(group, {})
        out[group] = [f"{name} = {target}" for name, target in table.items()]
        out[group] += [f"{alias} = {table[name]}" for alias, name in aliases.items()]
    return out
