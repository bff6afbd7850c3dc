"""Weft's Python SDK.

Inside a component: `@weft.step` marks the step function; `weft.log` and `Metrics` talk to the
host. Authoring (as with the KFP SDK): `@weft.component`, `@weft.pipeline`, `weft.If`,
`weft.ParallelFor`, `weft.ExitHandler`, `weft.compile(pipeline, "pipeline.yaml")` and
`weft.Client()` (see `weft.dsl`, `weft.compiler`, `weft.client`); tuning:
`weft.Client().tune(...)` over `weft.search.double/int/categorical/discrete` (see `weft.tune`).
In Jupyter: `%load_ext weft` for the `%%weft_component` cell magic (see `weft.notebook`).
"""

from .types import (  # noqa: F401
    HTML, Artifact, ClassificationMetrics, Dataset, Input, InputPath, Markdown, Metrics, Model,
    Output, OutputPath,
)


def step(fn):
    """Marks `fn` as this component's step (see `weft.guest`)."""
    from . import guest

    return guest.step(fn)


def predictor(cls):
    """Marks `cls` as this component's model (see `weft.serving`)."""
    from . import serving as runtime

    return runtime.predictor(cls)


def load_ipython_extension(ipython):
    """`%load_ext weft`: the `%%weft_component` cell magic (see `weft.notebook`)."""
    from . import notebook

    notebook.load_ipython_extension(ipython)


def __getattr__(name):
    # Authoring and the guest runtimes are imported only when asked for: inside a component
    # only the runtime is bundled, and authoring code never needs the runtime.
    if name in ("component", "pipeline", "If", "Condition", "ParallelFor", "ExitHandler", "importer"):
        from . import dsl

        return getattr(dsl, name)
    if name == "compile":
        from .compiler import compile

        return compile
    if name == "Client":
        from .client import Client

        return Client
    if name in ("search", "Search"):
        from . import tune

        return getattr(tune, name)
    if name in ("dsl", "compiler", "tune", "notebook"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    if name in ("log", "StepError"):
        from . import guest

        return getattr(guest, name)
    if name in ("Tensor", "TensorSpec", "InvalidInput"):
        from . import serving as runtime

        return getattr(runtime, name)
    raise AttributeError(name)
