"""`kfp.dsl` as a component's code sees it, mapped onto the weft guest SDK.

- `Input[Dataset]`, `Output[Model]`, ...: Weft's artifacts; `.path` is a file (an input: the
  artifact's file; an output: a file named after the output in its directory), `.uri` the same
  path, `.metadata` a dict that is not kept.
- `Output[Metrics]`: Weft's `Metrics`; `log_metric(name, value)` reports the metric to the run at
  once (Weft records metrics with the run, not as an artifact file).
- `InputPath("Dataset")` / `OutputPath("Model")`: plain path strings, as in KFP. A parameter
  passed as a file (`InputPath(str)`, `OutputPath(int)`) has no Weft counterpart: take the value
  as a parameter or return it.
- `@dsl.component` and friends leave a function as it is (helper code may still carry them).
"""

import weft as _weft
from weft import (  # noqa: F401
    HTML,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    Markdown,
    Metrics,
    Model,
)

__all__ = [
    "Artifact", "Dataset", "Model", "Metrics", "ClassificationMetrics", "HTML", "Markdown",
    "Input", "Output", "InputPath", "OutputPath", "component", "container_component", "pipeline",
]

_PARAMETER_TYPES = (str, int, float, bool, dict, list)


class Output:
    """`Output[Model]` is weft's `Output[Model]`; `Output[Metrics]` is weft's `Metrics`."""

    def __class_getitem__(cls, item):
        if isinstance(item, type) and issubclass(item, _weft.Metrics):
            return item
        return _weft.Output[item]


def _type_name(type, what):
    if type in _PARAMETER_TYPES:
        raise TypeError(
            f"{what}({type.__name__}): a parameter passed as a file has no Weft counterpart; "
            "take the value as a parameter (or return it)"
        )
    if type is None:
        return "Artifact"
    if isinstance(type, str):
        return type
    return getattr(type, "__name__", "Artifact")


def InputPath(type=None):  # noqa: N802 - KFP's name
    """An input artifact handed over as a plain path string."""
    return _weft.InputPath(_type_name(type, "InputPath"))


def OutputPath(type=None):  # noqa: N802 - KFP's name
    """An output artifact handed over as a plain path string to write."""
    return _weft.OutputPath(_type_name(type, "OutputPath"))


def _leave(func=None, **_kwargs):
    if func is None:
        return lambda f: f
    return func


component = _leave
container_component = _leave
pipeline = _leave
