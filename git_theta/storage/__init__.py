"""Where tensors live: the local Git LFS object store and transfers to and from remotes."""
