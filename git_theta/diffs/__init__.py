"""Model diffs: which parameters changed between two versions of a checkpoint, and how."""
