"""Checkpoint formats: each turns a file's bytes into named tensors and back (plug-ins)."""
