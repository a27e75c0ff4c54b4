"""The merge CLI's own merge methods: the one table its setup.py registers as entry points and
git_theta_merge_cli.methods reads. Plain data with no imports, so setup.py can load it by path."""

GROUP = "git_theta_merge_cli.methods"
METHODS: dict[str, str] = {
    "average": "git_theta_merge_cli.methods.linear:Average",
    "task-arithmetic": "git_theta_merge_cli.methods.linear:TaskArithmetic",
    "dare-task-arithmetic": "git_theta_merge_cli.methods.linear:DareTaskArithmetic",
    "model-stock": "git_theta_merge_cli.methods.linear:ModelStock",
    "ties": "git_theta_merge_cli.methods.ties:Ties",
    "breadcrumbs": "git_theta_merge_cli.methods.ties:Breadcrumbs",
    "della": "git_theta_merge_cli.methods.ties:Della",
    "fisher": "git_theta_merge_cli.methods.weighted:Fisher",
    "reg-mean": "git_theta_merge_cli.methods.weighted:RegMean",
    "mats": "git_theta_merge_cli.methods.weighted:Mats",
    "covariance-mats": "git_theta_merge_cli.methods.weighted:CovarianceMats",
    "slerp": "git_theta_merge_cli.methods.spherical:Slerp",
    "multi-slerp": "git_theta_merge_cli.methods.spherical:MultiSlerp",
}
