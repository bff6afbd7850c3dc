"""What a step function's signature declares: parameters, artifacts in and out, metrics, and the
output parameters its return value carries. Read the same way when a pipeline is compiled and
when the component runs, so the two can never disagree."""

import inspect
import typing
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from .types import Artifact, Input, InputPath, Metrics, Output, OutputPath

__all__ = ["Argument", "Signature", "signature_of", "PARAM_TYPES"]

#: Python parameter types and the Pipeline spec's names for them.
PARAM_TYPES = {str: "string", int: "int", float: "float", bool: "bool", dict: "json", list: "json"}

_NO_DEFAULT = inspect.Parameter.empty


@dataclass
class Argument:
    name: str
    #: `param`, `input`, `output`, or `metrics`.
    kind: str
    #: For a param: `string|int|float|bool|json`; for an artifact: its type's name (`Dataset`).
    type: str
    #: The Python type a param is converted to, or the Artifact class of an artifact.
    py: Any
    #: True when the step wants a plain path string (`InputPath`/`OutputPath`).
    as_path: bool = False
    default: Any = _NO_DEFAULT

    @property
    def optional(self) -> bool:
        return self.default is not _NO_DEFAULT


@dataclass
class Signature:
    name: str
    arguments: List[Argument]
    #: Output parameter name -> spec type; a plain return value is the output `Output`, as in KFP.
    outputs: Dict[str, str]
    #: For a NamedTuple return: its field names, in order. None for a single value or nothing.
    fields: Optional[List[str]]

    def of_kind(self, kind: str) -> List[Argument]:
        return [a for a in self.arguments if a.kind == kind]


def _param_type(py: Any, where: str) -> str:
    origin = typing.get_origin(py) or py
    if origin in PARAM_TYPES:
        return PARAM_TYPES[origin]
    raise TypeError(
        f"{where}: type {py!r} is not a parameter type (int, float, str, bool, dict, list) "
        "nor an artifact (Input[...], Output[...], InputPath, OutputPath, Metrics)"
    )


def _artifact_class(args) -> type:
    cls = args[0] if args else Artifact
    if not (isinstance(cls, type) and issubclass(cls, Artifact)):
        raise TypeError(f"{cls!r} is not an artifact type (Dataset, Model, Artifact, ...)")
    return cls


def _argument(fn_name: str, p: inspect.Parameter, hint: Any) -> Argument:
    where = f"{fn_name}({p.name})"
    origin = typing.get_origin(hint)
    if origin is Input or origin is Output:
        cls = _artifact_class(typing.get_args(hint))
        kind = "input" if origin is Input else "output"
        return Argument(p.name, kind, cls.__name__, cls)
    if isinstance(hint, (InputPath, OutputPath)):
        kind = "input" if isinstance(hint, InputPath) else "output"
        return Argument(p.name, kind, hint.type, Artifact, as_path=True)
    if isinstance(hint, type) and issubclass(hint, Metrics):
        return Argument(p.name, "metrics", hint.__name__, hint)
    if hint is _NO_DEFAULT or hint is Any:
        raise TypeError(f"{where}: every argument needs a type annotation")
    return Argument(p.name, "param", _param_type(hint, where), typing.get_origin(hint) or hint, default=p.default)


def _outputs(fn_name: str, ret: Any):
    if ret is None or ret is type(None) or ret is _NO_DEFAULT:
        return {}, None
    fields = getattr(ret, "_fields", None)
    if fields is not None:
        hints = getattr(ret, "__annotations__", {})
        return {f: _param_type(hints[f], f"{fn_name} -> {f}") for f in fields}, list(fields)
    return {"Output": _param_type(ret, f"{fn_name} -> return")}, None


def signature_of(fn) -> Signature:
    """Reads `fn`'s signature; raises TypeError naming the argument that Weft cannot map."""
    # Annotations as written (`InputPath("Dataset")` is an instance, which typing's hint
    # evaluation refuses), with string annotations evaluated.
    sig = inspect.signature(fn, eval_str=True)
    arguments = [_argument(fn.__name__, p, p.annotation) for p in sig.parameters.values()]
    outputs, fields = _outputs(fn.__name__, sig.return_annotation)
    return Signature(fn.__name__, arguments, outputs, fields)
