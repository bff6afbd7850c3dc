"""Artifact types and the `Input[...]` / `Output[...]` markers, as the KFP SDK names them.

They are used twice: in a step's signature at authoring time (to know which arguments are
artifacts and which are parameters) and inside the component at run time (an argument annotated
`Input[Dataset]` receives an `Artifact` whose `path` is the granted sandbox path).
"""

from typing import Generic, TypeVar

__all__ = [
    "Artifact", "Dataset", "Model", "Metrics", "ClassificationMetrics", "Markdown", "HTML",
    "Input", "Output", "InputPath", "OutputPath",
]


class Artifact:
    """An artifact granted to a step.

    `path` is where to read it (an input: the file itself when the artifact is one file, else
    its directory) or where to write it (an output: a file named after the output inside the
    output's directory; write a directory there instead if you like, or use `dir`).
    """

    schema_title = "system.Artifact"

    def __init__(self, name: str, path: str, dir: str = None):
        self.name = name
        self.path = path
        self.dir = dir if dir is not None else path
        self.metadata = {}

    @property
    def uri(self) -> str:
        return self.path

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, path={self.path!r})"


class Dataset(Artifact):
    schema_title = "system.Dataset"


class Model(Artifact):
    schema_title = "system.Model"


class Markdown(Artifact):
    schema_title = "system.Markdown"


class HTML(Artifact):
    schema_title = "system.HTML"


class Metrics:
    """Scalar metrics of the step, reported to the host as they are logged (no file, no sidecar):
    `metrics.log_metric("accuracy", 0.97)`, or a series with `step=`."""

    schema_title = "system.Metrics"

    def log_metric(self, name: str, value: float, step: int = None) -> None:
        from . import guest

        guest.report(name, value, step)


class ClassificationMetrics(Metrics):
    schema_title = "system.ClassificationMetrics"


T = TypeVar("T")


class Input(Generic[T]):
    """`Input[Dataset]`: an input artifact of that type."""


class Output(Generic[T]):
    """`Output[Model]`: an output artifact of that type."""


class InputPath:
    """`InputPath("Dataset")`: an input artifact handed over as a plain path string."""

    def __init__(self, type: str = "Artifact"):
        self.type = type


class OutputPath:
    """`OutputPath("Model")`: an output artifact handed over as a plain path string to write."""

    def __init__(self, type: str = "Artifact"):
        self.type = type
