"""Update types: how a parameter's new value is stored relative to what came before (plug-ins)."""
