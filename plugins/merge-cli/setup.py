"""git-theta-merge-cli: merge many models tracked by git-theta, one parameter at a time."""

import os
import runpy

from setuptools import find_packages, setup

# our methods: one table, also read by git_theta_merge_cli.methods (loaded by path: importing the
# package here would need git-theta and torch before they are installed)
TABLE = runpy.run_path(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "git_theta_merge_cli", "methods", "builtin.py")
)
METHODS = [f"{name} = {target}" for name, target in TABLE["METHODS"].items()]

setup(
    name="git-theta-merge-cli",
    version="0.3.0",
    description="Merge many git-theta tracked models (average, task arithmetic, TIES, DARE, Fisher, RegMean, MaTS, ...)",
    packages=find_packages(include=["git_theta_merge_cli", "git_theta_merge_cli.*"]),
    python_requires=">=3.10",
    install_requires=["git-theta", "torch", "numpy"],
    entry_points={
        "console_scripts": [
            "git-theta-merge-cli = git_theta_merge_cli.cli:main",
            "git-theta-merge-majority-sign = git_theta_merge_cli.majority_sign:main",
        ],
        TABLE["GROUP"]: METHODS,
    },
)
