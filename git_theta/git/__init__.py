"""Git plumbing: the few git commands git-theta needs, in one place."""
