"""Update types: how a parameter's new value is stored relative to what came before (plug-ins)."""


def objects_of(entry) -> dict[str, int]:
    """LFS objects (oid -> size) a metadata entry needs, whatever its update type."""
    from git_theta import plugins

    return plugins.updates.get(entry.update_type)().objects(entry)
