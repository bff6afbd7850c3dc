"""Registers a KFP function as the component's Weft step, with KFP's return conventions: a
function declaring a NamedTuple return may return it as a plain tuple (by position) or as any
object with those attributes, as KFP's executor accepts."""

import functools
import inspect

import weft


def step(fn):
    try:
        returns = inspect.signature(fn, eval_str=True).return_annotation
    except Exception:  # noqa: BLE001 - weft.step names what it cannot read
        returns = None
    fields = getattr(returns, "_fields", None)
    if not fields:
        return weft.step(fn)

    @functools.wraps(fn)
    def named_outputs(*args, **kwargs):
        result = fn(*args, **kwargs)
        if hasattr(result, "_asdict"):
            return result
        if type(result) is tuple:
            if len(result) != len(fields):
                raise RuntimeError(
                    f"Expected {len(fields)} return values from function `{fn.__name__}`, got {len(result)}"
                )
            return dict(zip(fields, result))
        return {f: getattr(result, f) for f in fields}

    return weft.step(named_outputs)
