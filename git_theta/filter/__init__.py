"""The clean/smudge filter: checkpoint <-> metadata + LFS objects, per file or as a git process."""
