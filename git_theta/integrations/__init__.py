"""Training-framework callbacks that commit models with git-theta (optional extras)."""
