"""Git's external drivers for tracked checkpoints: diff (diff.theta) and merge (merge.theta)."""
