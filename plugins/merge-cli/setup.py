"""git-theta-merge-cli: merge many models tracked by git-theta, one parameter at a time."""

from setuptools import find_packages, setup

METHODS = [
    "average = git_theta_merge_cli.methods.linear:Average",
    "task-arithmetic = git_theta_merge_cli.methods.linear:TaskArithmetic",
    "dare-task-arithmetic = git_theta_merge_cli.methods.linear:DareTaskArithmetic",
    "ties = git_theta_merge_cli.methods.ties:Ties",
    "breadcrumbs = git_theta_merge_cli.methods.ties:Breadcrumbs",
    "della = git_theta_merge_cli.methods.ties:Della",
    "model-stock = git_theta_merge_cli.methods.linear:ModelStock",
    "fisher = git_theta_merge_cli.methods.weighted:Fisher",
    "reg-mean = git_theta_merge_cli.methods.weighted:RegMean",
    "mats = git_theta_merge_cli.methods.weighted:Mats",
    "covariance-mats = git_theta_merge_cli.methods.weighted:CovarianceMats",
    "slerp = git_theta_merge_cli.methods.spherical:Slerp",
    "multi-slerp = git_theta_merge_cli.methods.spherical:MultiSlerp",
]

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
        "git_theta_merge_cli.methods": METHODS,
    },
)
