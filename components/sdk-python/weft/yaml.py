"""A small block-style YAML writer for the Pipeline spec (the SDK has no dependencies, and
PyYAML is not in the standard library). Strings are written as JSON strings, which YAML reads
back exactly."""

import json


def _scalar(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    return json.dumps(str(v))


def _key(k) -> str:
    k = str(k)
    plain = k.replace("_", "").replace("-", "").isalnum() and not k[0].isdigit()
    return k if plain else json.dumps(k)


def dumps(obj, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        out = []
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{_key(k)}:\n{dumps(v, indent + 1)}")
            else:
                out.append(f"{pad}{_key(k)}: {_inline(v)}\n")
        return "".join(out)
    if isinstance(obj, list):
        if not obj:
            return pad + "[]\n"
        out = []
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                body = dumps(v, indent + 1)
                out.append(f"{pad}- {body.lstrip()}")
            else:
                out.append(f"{pad}- {_inline(v)}\n")
        return "".join(out)
    return pad + _scalar(obj) + "\n"


def _inline(v) -> str:
    if isinstance(v, dict):
        return "{}" if not v else json.dumps(v)
    if isinstance(v, list):
        return "[]" if not v else json.dumps(v)
    return _scalar(v)
