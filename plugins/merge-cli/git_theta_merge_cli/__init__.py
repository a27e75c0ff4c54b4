"""Merge many models tracked by git-theta, streaming one parameter at a time (CPU or CUDA)."""
