"""An example git-theta format plug-in: checkpoints stored as JSON."""

from setuptools import setup

setup(
    name="git-theta-json-checkpoint",
    version="0.1.0",
    description="JSON checkpoints for git-theta (an example format plug-in)",
    packages=["git_theta_json"],
    python_requires=">=3.10",
    install_requires=["git-theta", "numpy"],
    entry_points={"git_theta.plugins.checkpoints": ["json = git_theta_json.format:JsonCheckpoint"]},
)
