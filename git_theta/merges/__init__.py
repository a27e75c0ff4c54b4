"""Merge strategies: how a parameter changed on both sides of a merge is resolved (plug-ins)."""
