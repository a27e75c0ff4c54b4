"""A JSON checkpoint format for git-theta, registered through an entry point."""
