"""The runtime inside a Python step component: turns the host's `step-input` into the step
function's typed arguments, its return value into output parameters, and an exception into the
task's failure cause (`TypeName: message`) with the traceback in the task log.

Only importable inside a component built by `wasm-run build` (componentize-py generates the
`wit_world` bindings it calls); at authoring time nothing here is imported.
"""

import json
import sys
import traceback

from .signature import signature_of

try:
    # Imported here, at build time, so componentize-py's snapshot holds them: a module first
    # imported at run time is not in the component.
    from componentize_py_types import Err
    from wit_world.imports import log as wit_log
    from wit_world.imports import metrics as wit_metrics
    from wit_world.imports import types as t
except ImportError:  # outside a component (authoring, tests): nothing here runs then
    Err = wit_log = wit_metrics = t = None

__all__ = ["step", "report", "log", "Task"]

_STEP = None
#: The host keeps a failure cause to one line; a longer message is cut here, with a mark.
_MAX_CAUSE = 2000


def step(fn):
    """Marks `fn` as the component's step. Exactly one per component."""
    global _STEP
    if _STEP is not None and _STEP[0] is not fn:
        raise RuntimeError(f"a component has one step; {_STEP[0].__name__} and {fn.__name__} both claim it")
    _STEP = (fn, signature_of(fn))
    return fn


def report(name: str, value: float, step: int = None) -> None:
    """Reports a metric to the host (`weft:pipeline/metrics.report`)."""
    wit_metrics.report(name, float(value), None if step is None else int(step))


class _Log:
    """`weft.log.info("loaded", rows=150)`: a structured record in the task's log."""

    def _emit(self, level: str, message: str, fields):
        wit_log.emit(getattr(wit_log.Level, level.upper()), str(message), [(k, str(v)) for k, v in fields.items()])

    def trace(self, message, **fields):
        self._emit("trace", message, fields)

    def debug(self, message, **fields):
        self._emit("debug", message, fields)

    def info(self, message, **fields):
        self._emit("info", message, fields)

    def warn(self, message, **fields):
        self._emit("warn", message, fields)

    def error(self, message, **fields):
        self._emit("error", message, fields)


log = _Log()


class StepError(Exception):
    """Raise to fail the task with exactly this message (no type name in front)."""


def _from_wit(value):
    """A `param-value` as a Python value."""
    if isinstance(value, t.ParamValue_Json):
        return json.loads(value.value)
    return value.value


def _to_wit(name: str, spec_type: str, value):
    if spec_type == "json":
        v = t.ParamValue_Json(json.dumps(value))
    elif spec_type == "bool":
        v = t.ParamValue_Boolean(bool(value))
    elif spec_type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"output {name}: expected int, got {type(value).__name__}")
        v = t.ParamValue_Int(value)
    elif spec_type == "float":
        v = t.ParamValue_Float(float(value))
    else:
        v = t.ParamValue_Str(str(value))
    return t.Param(name, v)


def _convert(arg, value):
    """A parameter value as the type the function declares (an int given for a float is fine)."""
    want = arg.py
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want in (dict, list) and isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, want) or (want is int and isinstance(value, bool)):
        raise TypeError(f"parameter {arg.name}: expected {arg.type}, got {type(value).__name__} {value!r}")
    return value


def _arguments(signature, step_input):
    params = {p.name: _from_wit(p.value) for p in step_input.params}
    inputs = {a.name: a.path for a in step_input.inputs}
    outputs = {a.name: a.path for a in step_input.outputs}
    kwargs = {}
    for arg in signature.arguments:
        if arg.kind == "metrics":
            kwargs[arg.name] = arg.py()
        elif arg.kind == "param":
            if arg.name in params:
                kwargs[arg.name] = _convert(arg, params[arg.name])
            elif not arg.optional:
                raise TypeError(f"parameter {arg.name} was not given and has no default")
        else:
            granted = inputs if arg.kind == "input" else outputs
            if arg.name not in granted:
                raise TypeError(f"{arg.kind} artifact {arg.name} was not granted to the step")
            path = granted[arg.name]
            if arg.kind == "output":
                # A file named after the output inside its directory, as KFP's `.path` is a file.
                file = path.rstrip("/") + "/" + arg.name
                kwargs[arg.name] = file if arg.as_path else arg.py(arg.name, file, dir=path)
            else:
                file = _sole_file(path)
                kwargs[arg.name] = file if arg.as_path else arg.py(arg.name, file, dir=path)
    return kwargs


def _sole_file(path):
    """A pipeline hands every artifact over as a directory; one holding a single file is that
    file (what the step that wrote it meant), as KFP's `.path` is."""
    import os

    if not os.path.isdir(path):
        return path
    entries = [e for e in os.scandir(path) if not e.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_file(follow_symlinks=False):
        return entries[0].path
    return path


def _outputs(signature, result):
    if not signature.outputs:
        if result is not None:
            raise TypeError(f"{signature.name} returned {type(result).__name__} but declares no return type")
        return []
    if signature.fields is None:
        return [_to_wit("Output", signature.outputs["Output"], result)]
    values = result._asdict() if hasattr(result, "_asdict") else dict(result)
    return [_to_wit(f, signature.outputs[f], values[f]) for f in signature.fields]


def _cause(e: BaseException) -> str:
    if isinstance(e, StepError):
        text = str(e)
    else:
        text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    text = " ".join(text.split())
    return text if len(text) <= _MAX_CAUSE else text[:_MAX_CAUSE] + " [cut]"


class Task:
    """The `weft:pipeline/task` export componentize-py looks for."""

    def run(self, step_input):
        if _STEP is None:
            raise Err("the component has no step: decorate its function with @weft.step")
        fn, signature = _STEP
        try:
            kwargs = _arguments(signature, step_input)
            result = fn(**kwargs)
            return t.StepOutput(_outputs(signature, result))
        except Exception as e:  # noqa: BLE001 - every failure becomes the task's cause
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            raise Err(_cause(e))
