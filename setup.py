"""git-theta: version control for machine-learning model checkpoints, parameter by parameter."""

import glob
import os
import pathlib
import runpy

from setuptools import find_packages, setup
from setuptools.dist import Distribution

# our formats, update types and merge strategies: one table, also read by git_theta.plugins (loaded
# by path: importing the package here would need its dependencies before they are installed)
HERE = os.path.dirname(os.path.abspath(__file__))
PLUGINS = runpy.run_path(os.path.join(HERE, "git_theta", "builtin_plugins.py"))["entry_points"]()

EXTRAS = {
    "pytorch": ["torch"],
    "safetensors": ["safetensors"],
    "tensorflow": ["tensorflow"],
    "flax": ["flax"],
    "keras": ["h5py"],
    "hdf5": ["h5py"],
    "gguf": ["gguf"],
    "onnx": ["onnx"],
    "plot": ["matplotlib"],
    "transformers": ["transformers", "accelerate"],
    "lightning": ["lightning"],
    "test": ["pytest>=7", "torch", "safetensors", "matplotlib", "pexpect"],
}
EXTRAS["all"] = sorted(
    {d for k in ("pytorch", "safetensors", "tensorflow", "flax", "plot") for d in EXTRAS[k]}
)
EXTRAS["all"] = sorted(set(EXTRAS["all"]) | set(EXTRAS["keras"]))
# the merge CLI plug-in ships in this repository (plugins/merge-cli); `.[all]` installs it from there
_MERGE_CLI = os.path.join(HERE, "plugins", "merge-cli")
if os.path.isdir(_MERGE_CLI):
    EXTRAS["all"].append(f"git-theta-merge-cli @ {pathlib.Path(_MERGE_CLI).as_uri()}")


class _Distribution(Distribution):
    """Editable installs copy data_files too: setuptools' editable_wheel asks has_data(), which it lacks."""

    def has_data(self) -> bool:
        return self.has_data_files()


setup(
    distclass=_Distribution,
    name="git-theta",
    version="0.3.0",
    description="Version machine-learning checkpoints in git, parameter by parameter",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["git_theta", "git_theta.*"]),
    python_requires=">=3.10",
    install_requires=[
        "click>=8",
        "numpy>=1.24",
        "tensorstore>=0.1.50",
        "numcodecs>=0.13",  # Blosc straight into numpy arrays: the codec's hot path (git_theta/chunks.py)
        "zstandard>=0.20",  # byte planes' compression (git_theta/planes.py): its match-finder settings
        "msgpack>=1.0",
        # fast CRC-32 for .pt checkouts (git_theta/formats/zipio.py); zlib's is used where it has no wheels
        'isal>=1.6; platform_machine in "x86_64 AMD64 aarch64 arm64"',
        "GitPython>=3.1",
        "prompt_toolkit>=3",
    ],
    extras_require=EXTRAS,
    # man-db finds <prefix>/share/man from <prefix>/bin on PATH, so `git theta --help` shows git-theta.1
    data_files=[("share/man/man1", sorted(glob.glob("man/man1/git-theta*.1")))],
    entry_points={
        "console_scripts": [
            "git-theta = git_theta.entry:main",
            "git-theta-filter = git_theta.filter.main:main",
            "git-theta-diff = git_theta.drivers.diff:main",
            "git-theta-merge = git_theta.drivers.merge:main",
        ],
        **PLUGINS,
    },
)
