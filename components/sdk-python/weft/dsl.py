"""Authoring pipelines the way the KFP SDK does: `@component` on a typed function, `@pipeline`
on a function that calls components, `If`/`Condition`, `ParallelFor`, `ExitHandler`, and the
task methods KFP users know (`after`, `set_retry`, `set_caching_options`, resources).

Porting a KFP pipeline is mostly `from kfp import dsl` -> `from weft import dsl` and
`kfp.compiler.Compiler().compile(...)` -> `weft.compiler.Compiler().compile(...)` (or
`weft.compile`). Differences are listed in components/sdk-python/README.md.
"""

import contextlib
import inspect
import re
from typing import Any, Dict, List, Optional

from .signature import PARAM_TYPES, signature_of
from .types import (  # noqa: F401  (re-exported: dsl.Input, dsl.Dataset, ...)
    HTML, Artifact, ClassificationMetrics, Dataset, Input, InputPath, Markdown, Metrics, Model,
    Output, OutputPath,
)

__all__ = [
    "component", "pipeline", "Component", "Pipeline", "PipelineTask", "PipelineParam", "If",
    "Elif", "Else", "Condition", "ParallelFor", "ExitHandler", "importer", "PipelineTaskFinalStatus",
    "Input", "Output", "Dataset", "Model", "Metrics", "Artifact", "ClassificationMetrics",
    "Markdown", "HTML", "InputPath", "OutputPath",
]


def _k8s_name(name: str) -> str:
    """A task or component name Weft accepts (letters, digits, `-`, `_`; at most 63)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "task"
    return name[:63]


class Component:
    """A step function made into a component (`@component`). Calling it inside a pipeline
    function adds a task; calling `.python_func` runs the plain function."""

    def __init__(self, fn, packages_to_install=None, name=None):
        self.python_func = fn
        self.signature = signature_of(fn)
        self.name = _k8s_name(name or fn.__name__.replace("_", "-"))
        self.packages_to_install = list(packages_to_install or [])
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def __call__(self, *args, **kwargs):
        ctx = _Builder.current()
        if ctx is None:
            raise RuntimeError(
                f"component {self.name} was called outside a @weft.pipeline function; to run the "
                f"function itself, call {self.__name__}.python_func(...)"
            )
        if args:
            raise TypeError(f"{self.name}: pass arguments by name, as KFP requires")
        return ctx.add_task(self, kwargs)

    def interface(self) -> Dict[str, Any]:
        """The component's `inputs`/`outputs` as the Pipeline spec declares them."""
        sig = self.signature
        params = {}
        for a in sig.of_kind("param"):
            decl = {"type": a.type}
            if a.optional:
                decl["default"] = a.default
            params[a.name] = decl
        inputs = {"params": params, "artifacts": {a.name: a.type for a in sig.of_kind("input")}}
        outputs = {
            "params": dict(sig.outputs),
            "artifacts": {a.name: a.type for a in sig.of_kind("output")},
        }
        return {"inputs": inputs, "outputs": outputs}


def component(func=None, *, packages_to_install: Optional[List[str]] = None, base_image=None, name=None, **_ignored):
    """`@component` or `@component(packages_to_install=[...])`. `packages_to_install` must be
    pure-Python packages: they are bundled into the component at build time, once (no pip per
    run). `base_image` has no meaning for a WebAssembly component and is ignored."""

    def wrap(fn):
        return Component(fn, packages_to_install=packages_to_install, name=name)

    return wrap(func) if func is not None else wrap


class PipelineParam:
    """A pipeline parameter inside the pipeline function (`{param: NAME}` in the spec)."""

    def __init__(self, name: str, type_: str):
        self.name = name
        self.type = type_

    def source(self):
        return {"param": self.name}

    def _compare(self, op, value):
        return _Comparison(self.source(), op, value)

    __eq__ = lambda self, v: self._compare("==", v)  # noqa: E731
    __ne__ = lambda self, v: self._compare("!=", v)  # noqa: E731
    __lt__ = lambda self, v: self._compare("<", v)  # noqa: E731
    __le__ = lambda self, v: self._compare("<=", v)  # noqa: E731
    __gt__ = lambda self, v: self._compare(">", v)  # noqa: E731
    __ge__ = lambda self, v: self._compare(">=", v)  # noqa: E731
    __hash__ = object.__hash__


class _TaskOutput(PipelineParam):
    """An output (parameter or artifact) of a task."""

    def __init__(self, task: "PipelineTask", name: str, kind: str):
        self.task, self.name, self.kind = task, name, kind

    def source(self):
        return {"task": self.task.name, "output": self.name}

    __eq__ = PipelineParam.__eq__
    __ne__ = PipelineParam.__ne__
    __hash__ = object.__hash__


class _LoopItem(PipelineParam):
    """`ParallelFor`'s loop variable, or one field of it (`item.field` / `item["field"]`)."""

    def __init__(self, loop: "ParallelFor", path: str = "."):
        self.loop, self.path = loop, path

    def source(self):
        return {"loopItem": self.path}

    def __getattr__(self, field):
        if field.startswith("_"):
            raise AttributeError(field)
        return _LoopItem(self.loop, f".{field}" if self.path == "." else f"{self.path}.{field}")

    __getitem__ = __getattr__
    __hash__ = object.__hash__


class _Comparison:
    def __init__(self, source, op, value):
        if isinstance(value, PipelineParam):
            raise TypeError("a condition compares a parameter or output with a constant")
        self.condition = {"input": source, "op": op, "value": value}


class PipelineTaskFinalStatus:
    """KFP's exit-handler status argument; in Weft an exit task reads `{runStatus: ...}`."""


class PipelineTask:
    """A task in a pipeline: a component called with its arguments."""

    def __init__(self, builder, component: Component, name: str, args: Dict[str, Any]):
        self.component = component
        self.name = name
        self.spec: Dict[str, Any] = {"component": component.name}
        self._after: List[str] = []
        builder.bind(self, args)

    @property
    def output(self) -> _TaskOutput:
        outs = self.component.signature.outputs
        if "Output" in outs:
            # The return value, even beside output artifacts (KFP would refuse).
            return self.outputs["Output"]
        arts = self.component.signature.of_kind("output")
        names = list(outs) + [a.name for a in arts]
        if len(names) != 1:
            raise AttributeError(
                f"task {self.name} has {len(names)} outputs ({', '.join(names) or 'none'}): use .outputs[NAME]"
            )
        return self.outputs[names[0]]

    @property
    def outputs(self) -> Dict[str, _TaskOutput]:
        sig = self.component.signature
        out = {n: _TaskOutput(self, n, "param") for n in sig.outputs}
        out.update({a.name: _TaskOutput(self, a.name, "artifact") for a in sig.of_kind("output")})
        return out

    def after(self, *tasks: "PipelineTask") -> "PipelineTask":
        self._after.extend(t.name for t in tasks)
        self.spec["after"] = sorted(set(self._after))
        return self

    def set_retry(self, num_retries: int, backoff_duration: Optional[str] = None, backoff_factor: Optional[float] = None, **_):
        retry = {"limit": int(num_retries)}
        if backoff_duration:
            retry["backoff"] = str(backoff_duration)
        if backoff_factor:
            retry["factor"] = float(backoff_factor)
        self.spec["retry"] = retry
        return self

    def set_caching_options(self, enable_caching: bool) -> "PipelineTask":
        self.spec["cache"] = bool(enable_caching)
        return self

    def _resources(self):
        return self.spec.setdefault("resources", {})

    def set_cpu_limit(self, cpu: str) -> "PipelineTask":
        self._resources()["cpu"] = str(cpu)
        return self

    set_cpu_request = set_cpu_limit

    def set_memory_limit(self, memory: str) -> "PipelineTask":
        self.spec["memory"] = _memory(memory)
        return self

    set_memory_request = set_memory_limit

    def set_accelerator_limit(self, limit: int) -> "PipelineTask":
        self._resources()["gpu"] = int(limit)
        return self

    def add_node_selector_constraint(self, label_key: str, label_value: str) -> "PipelineTask":
        self._resources().setdefault("nodeSelector", {})[label_key] = label_value
        return self

    def set_timeout(self, seconds: int) -> "PipelineTask":
        self.spec["timeout"] = f"{int(seconds)}s"
        return self

    def set_env_variable(self, name: str, value: str) -> "PipelineTask":
        self.spec.setdefault("env", {})[name] = str(value)
        return self

    def set_display_name(self, name: str) -> "PipelineTask":
        return self  # Weft shows the task's name; kept so KFP code runs unchanged


def _memory(text: str) -> str:
    """KFP's "512M"/"2G" to Weft's "512MiB"/"2GiB" (Kubernetes' Mi/Gi pass through)."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(i?)B?\s*", str(text))
    if not m:
        raise ValueError(f"memory {text!r}: expected a size such as 512M, 2G or 1Gi")
    number, unit, _ = m.groups()
    return f"{number}{unit}iB" if unit else f"{number}B"


class _Builder:
    """The pipeline being built while its function runs."""

    _stack: List["_Builder"] = []

    def __init__(self):
        self.tasks: Dict[str, PipelineTask] = {}
        self.artifacts: Dict[str, Dict[str, Any]] = {}
        self.components: Dict[str, Component] = {}
        self.conditions: List[Dict[str, Any]] = []
        self.loops: List["ParallelFor"] = []
        self.exit_task: Optional[PipelineTask] = None
        #: Names taken by tasks no longer in `tasks` (the exit handler's).
        self.reserved: set = set()

    @classmethod
    def current(cls) -> Optional["_Builder"]:
        return cls._stack[-1] if cls._stack else None

    def add_task(self, comp: Component, args) -> PipelineTask:
        known = self.components.get(comp.name)
        if known is not None and known is not comp:
            raise ValueError(f"two different components are both named {comp.name}")
        self.components[comp.name] = comp
        name, n = comp.name, 1
        while name in self.tasks or name in self.reserved:
            n += 1
            name = _k8s_name(f"{comp.name}-{n}")
        task = PipelineTask(self, comp, name, args)
        self.tasks[name] = task
        return task

    def bind(self, task: PipelineTask, args: Dict[str, Any]):
        sig = task.component.signature
        params, artifacts = {}, {}
        declared = {a.name: a for a in sig.arguments}
        for key, value in args.items():
            arg = declared.get(key)
            if arg is None or arg.kind in ("output", "metrics"):
                raise TypeError(f"{task.component.name}() got an unexpected argument {key!r}")
            if arg.kind == "input":
                if not isinstance(value, (_TaskOutput, _Importer)) or getattr(value, "kind", "artifact") != "artifact":
                    raise TypeError(f"{task.name}: artifact input {key} needs a task's output artifact or an importer")
                artifacts[key] = value.source()
            elif isinstance(value, PipelineParam):
                params[key] = value.source()
            else:
                params[key] = {"value": value}
        for arg in sig.of_kind("param") + sig.of_kind("input"):
            if arg.name not in args and not arg.optional:
                raise TypeError(f"{task.name}: {task.component.name}() is missing the argument {arg.name!r}")
        if params:
            task.spec["params"] = params
        if artifacts:
            task.spec["artifacts"] = artifacts
        self._enclose(task)

    def _enclose(self, task: PipelineTask):
        if self.conditions:
            conds = [c for c in self.conditions]
            task.spec["when"] = conds[0] if len(conds) == 1 else {"all": conds}
        if self.loops:
            if len(self.loops) > 1:
                raise NotImplementedError("nested ParallelFor: make the inner loop a pipeline of its own")
            loop = self.loops[-1]
            if loop.task is not None:
                raise NotImplementedError(
                    f"ParallelFor runs one task per iteration in Weft; {loop.task.name} and {task.name} "
                    "are both in this loop (make the body a pipeline of its own)"
                )
            loop.task = task
            spec = {"items": loop.items_source()}
            if loop.parallelism:
                spec["parallelism"] = int(loop.parallelism)
            task.spec["parallelFor"] = spec


class _Importer:
    kind = "artifact"

    def __init__(self, name: str):
        self.name = name

    def source(self):
        return {"artifact": self.name}

    @property
    def output(self):
        return self


def importer(artifact_uri: str, artifact_class=Artifact, reimport: bool = False, name: Optional[str] = None, **_):
    """An artifact from outside the pipeline (a local path), as a pipeline input artifact."""
    ctx = _Builder.current()
    if ctx is None:
        raise RuntimeError("importer() is used inside a @weft.pipeline function")
    base = _k8s_name(name or re.sub(r"\.[^.]*$", "", str(artifact_uri).rstrip("/").split("/")[-1]) or "data")
    key, n = base, 1
    while key in ctx.artifacts and ctx.artifacts[key]["path"] != str(artifact_uri):
        n += 1
        key = f"{base}-{n}"
    ctx.artifacts[key] = {"type": artifact_class.__name__, "path": str(artifact_uri)}
    return _Importer(key)


class Condition(contextlib.AbstractContextManager):
    """`with Condition(task.output == "x"):` (and `If`): tasks inside run only when it holds."""

    def __init__(self, comparison, name: Optional[str] = None):
        if not isinstance(comparison, _Comparison):
            raise TypeError("Condition takes a comparison of a parameter or output with a constant")
        self.condition = comparison.condition

    def __enter__(self):
        _Builder.current().conditions.append(self.condition)
        return self

    def __exit__(self, *exc):
        _Builder.current().conditions.pop()
        return False


If = Condition


class Elif(Condition):
    def __init__(self, *a, **k):
        raise NotImplementedError("dsl.Elif: write an If with the negated conditions")


class Else(Condition):
    def __init__(self, *a, **k):
        raise NotImplementedError("dsl.Else: write an If with the negated condition")


class ParallelFor(contextlib.AbstractContextManager):
    """`with ParallelFor(items) as item:` runs the task inside once per item."""

    def __init__(self, items, parallelism: Optional[int] = None, name: Optional[str] = None):
        self.items = items
        self.parallelism = parallelism
        self.task: Optional[PipelineTask] = None

    def items_source(self):
        if isinstance(self.items, PipelineParam):
            return self.items.source()
        return {"value": list(self.items)}

    def __enter__(self):
        _Builder.current().loops.append(self)
        return _LoopItem(self)

    def __exit__(self, *exc):
        _Builder.current().loops.pop()
        return False


class ExitHandler(contextlib.AbstractContextManager):
    """`with ExitHandler(cleanup_task):` the exit task runs last, whatever happened inside."""

    def __init__(self, exit_task: PipelineTask, name: Optional[str] = None):
        ctx = _Builder.current()
        if ctx.exit_task is not None:
            raise NotImplementedError("a pipeline has one ExitHandler")
        ctx.tasks.pop(exit_task.name, None)
        ctx.reserved.add(exit_task.name)
        ctx.exit_task = exit_task

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Pipeline:
    """A pipeline function (`@pipeline`); `weft.compile` turns it into a Pipeline spec."""

    def __init__(self, fn, name=None, description=None):
        self.pipeline_func = fn
        self.name = _k8s_name(name or fn.__name__.replace("_", "-"))
        self.description = description or (inspect.getdoc(fn) or "").split("\n\n")[0] or None
        self.__name__ = fn.__name__

    def params(self) -> Dict[str, Dict[str, Any]]:
        out = {}
        for p in inspect.signature(self.pipeline_func, eval_str=True).parameters.values():
            ann = p.annotation
            if ann not in PARAM_TYPES:
                raise TypeError(f"pipeline {self.name}: parameter {p.name} needs one of int, float, str, bool, dict, list")
            decl = {"type": PARAM_TYPES[ann]}
            if p.default is not inspect.Parameter.empty:
                decl["default"] = p.default
            out[p.name] = decl
        return out

    def build(self) -> Dict[str, Any]:
        """Runs the pipeline function and returns the Pipeline spec (a dict)."""
        params = self.params()
        builder = _Builder()
        _Builder._stack.append(builder)
        try:
            self.pipeline_func(**{n: PipelineParam(n, d["type"]) for n, d in params.items()})
        finally:
            _Builder._stack.pop()
        spec: Dict[str, Any] = {}
        if self.description:
            spec["description"] = self.description
        spec["params"] = params
        if builder.artifacts:
            spec["artifacts"] = builder.artifacts
        spec["components"] = {n: {"source": f"components/{n}.wasm", **c.interface()} for n, c in sorted(builder.components.items())}
        spec["tasks"] = {n: t.spec for n, t in builder.tasks.items()}
        if builder.exit_task is not None:
            spec["exitHandler"] = builder.exit_task.spec
        self.components = builder.components
        return {"apiVersion": "weft.dev/v1alpha1", "kind": "Pipeline", "metadata": {"name": self.name}, "spec": spec}


def pipeline(func=None, *, name: Optional[str] = None, description: Optional[str] = None, **_ignored):
    """`@pipeline` or `@pipeline(name=..., description=...)`."""

    def wrap(fn):
        return Pipeline(fn, name=name, description=description)

    return wrap(func) if func is not None else wrap
