"""Weft in Jupyter: `%load_ext weft`, then a cell magic that makes the cell's function a sandboxed
component and runs it, and HTML views of runs (tables, metric series as inline SVG).

    %%weft_component NAME [--inputs K=V ...] [--outputs VAR[=OUTPUT] ...] [--packages P ...]
                          [--no-run] [--cache]
    def NAME(n: int, scale: float, metrics: Metrics, table: Output[Dataset]) -> float:
        ...

The cell is a lightweight component as KFP writes one, without the decorator: a function whose
typed signature declares its inputs and outputs (parameters, `Input[...]`/`Output[...]`
artifacts, `Metrics`, the return value). The cell runs in the kernel (so helpers it defines
exist), the function named NAME (`-` read as `_`; else the only function the cell defines)
becomes the `@weft.component` NAME, bound to its name in the notebook for use in a
`@weft.pipeline`. Unless `--no-run`, it is built (a component whose source is unchanged is not
rebuilt) and run by `wasm-run` as a one-task pipeline with `--inputs` (values are Python literals,
else strings; `{expr}` and `$var` are the notebook's, expanded by IPython; an `Input[...]`
artifact takes a file path), in this kernel's home, so the run is in `wasm-run runs list`. The
cell shows the run: outputs, artifacts and metrics as tables, a metric series as a plot.
`--outputs acc` binds output `acc` to a notebook variable (`VAR=Output` names the return value;
an output artifact is downloaded, the variable holds its path). `--cache` lets the run reuse a
cached result. A syntax error or a function that fails in the sandbox is shown in the cell with
the sandbox's error, not a traceback through this module.
"""

import argparse
import contextlib
import ast
import hashlib
import html
import linecache
import os
import shlex
import tempfile
import time
import types
from typing import Any, Dict, List, Optional


class WeftCellError(Exception):
    """A `%%weft_component` cell that could not be built or run; shown without a traceback."""

    def _render_traceback_(self):
        return [f"\x1b[31m{type(self).__name__}\x1b[0m: {self}"]


def to_frame(rows: List[Dict[str, Any]]):
    """`rows` as a pandas DataFrame when pandas is installed, else as they are."""
    try:
        import pandas
    except ImportError:
        return rows
    return pandas.DataFrame(rows)


# HTML.

def _esc(v: Any) -> str:
    return html.escape(v if isinstance(v, str) else repr(v))


def table_html(rows: List[Dict[str, Any]], columns: Optional[List[str]] = None, caption: str = "") -> str:
    """A list of dicts as an HTML table."""
    if not rows:
        return ""
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_esc(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows)
    cap = f"<caption style='text-align:left'>{_esc(caption)}</caption>" if caption else ""
    return f"<table class='weft'>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def series_svg(name: str, points: List[tuple], width: int = 360, height: int = 160) -> str:
    """A line plot of `(step, value)` points as inline SVG (no plotting library needed)."""
    pts = [(float(s), float(v)) for s, v in points if v == v and abs(v) != float("inf")]
    if not pts:
        return ""
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    pad = 28
    sx = (width - 2 * pad) / ((x1 - x0) or 1)
    sy = (height - 2 * pad) / ((y1 - y0) or 1)
    path = " ".join(f"{pad + (x - x0) * sx:.1f},{height - pad - (y - y0) * sy:.1f}" for x, y in pts)
    return (
        f"<svg class='weft-series' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='{_esc(name)}'>"
        f"<title>{_esc(name)}</title>"
        f"<rect x='{pad}' y='{pad}' width='{width - 2 * pad}' height='{height - 2 * pad}' fill='none' stroke='#ccc'/>"
        f"<polyline fill='none' stroke='#1f77b4' stroke-width='1.5' points='{path}'/>"
        f"<text x='{pad}' y='16' font-size='12' font-family='sans-serif'>{_esc(name)}</text>"
        f"<text x='{pad}' y='{height - 8}' font-size='10' font-family='sans-serif'>step {x0:g}..{x1:g}</text>"
        f"<text x='{width - pad}' y='16' font-size='10' font-family='sans-serif' text-anchor='end'>{y0:.4g}..{y1:.4g}</text>"
        "</svg>"
    )


def metrics_html(metrics: List[Dict[str, Any]]) -> str:
    """Final metric values as a table and each series (a metric reported at several steps) as a plot."""
    series: Dict[tuple, List[tuple]] = {}
    final: Dict[tuple, Any] = {}
    for m in metrics:
        key = (m.get("task", ""), m["name"])
        final[key] = m["value"]
        if m.get("step") is not None:
            series.setdefault(key, []).append((m["step"], m["value"]))
    out = table_html([{"task": t, "metric": n, "value": v} for (t, n), v in final.items()], caption="metrics")
    plots = [series_svg(f"{t}.{n}", sorted(pts)) for (t, n), pts in series.items() if len(pts) > 1]
    return out + "".join(plots)


def run_html(result, title: str = "", elapsed: Optional[float] = None) -> str:
    """A finished run (`weft.client.RunResult`) as HTML: state, task outputs, artifacts, metrics."""
    state = result.state
    colour = "#2ca02c" if state == "SUCCEEDED" else "#d62728"
    took = f" · {elapsed:.2f} s" if elapsed is not None else ""
    parts = [f"<div class='weft-run'><b>{_esc(title or 'run')}</b> · run <code>{_esc(result.run_id)}</code> · "
             f"<span style='color:{colour}'>{_esc(state)}</span>{took}"]
    outs = []
    for t in result.tasks:
        try:
            values = result.outputs(t.get("name"))
        except KeyError:
            values = {}
        for k, v in values.items():
            outs.append({"task": t.get("name"), "output": k, "value": v})
    parts.append(table_html(outs, caption="outputs"))
    arts = [{"task": a.get("task"), "artifact": a.get("name"), "digest": a.get("digest")}
            for a in result.artifacts if a.get("direction") == "output"]
    parts.append(table_html(arts, caption="artifacts"))
    parts.append(metrics_html(result.metrics))
    return "".join(parts) + "</div>"


# The cell magic.

def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="%%weft_component", add_help=False, exit_on_error=False)
    p.add_argument("name")
    p.add_argument("--inputs", nargs="*", default=[], metavar="K=V")
    p.add_argument("--outputs", nargs="*", default=[], metavar="VAR[=OUTPUT]")
    p.add_argument("--packages", nargs="*", default=[], metavar="PACKAGE")
    p.add_argument("--no-run", action="store_true")
    p.add_argument("--cache", action="store_true")
    return p


def _pairs(items: List[str], what: str) -> Dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise WeftCellError(f"{what} {item!r}: write NAME=VALUE")
        out[key.strip()] = value
    return out


class CellRun:
    """What a `%%weft_component` cell returns: the component, its run, and the time it took."""

    def __init__(self, component, result, elapsed: float):
        self.component = component
        self.result = result
        self.elapsed = elapsed

    @property
    def outputs(self) -> Dict[str, Any]:
        return self.result.outputs(self.component.name) if self.result else {}

    def _repr_html_(self):
        if self.result is None:
            return f"<div class='weft-run'>component <b>{_esc(self.component.name)}</b> built</div>"
        return run_html(self.result, f"component {self.component.name}", self.elapsed)

    def __repr__(self):
        if self.result is None:
            return f"CellRun({self.component.name}: built)"
        return f"CellRun({self.component.name}: {self.result.state}, outputs={self.outputs})"


def weft_component(line: str, cell: str, user_ns: Dict[str, Any], client=None) -> CellRun:
    """The `%%weft_component` magic (see this module's docstring)."""
    from . import dsl
    from . import types as types_mod
    from .client import Client, RunFailed

    try:
        args = _parser().parse_args(shlex.split(line))
    except (argparse.ArgumentError, SystemExit, ValueError) as e:
        raise WeftCellError(f"{e}\nusage: %%weft_component NAME [--inputs K=V ...] [--outputs VAR[=OUTPUT] ...] "
                            "[--packages P ...] [--no-run] [--cache]") from None
    inputs = {k: _value(v) for k, v in _pairs(args.inputs, "--inputs").items()}
    binds = {}
    for item in args.outputs:
        var, _, output = item.partition("=")
        binds[var] = output or var

    digest = hashlib.sha256(cell.encode()).hexdigest()[:12]
    filename = f"<weft-cell {args.name} {digest}>"
    linecache.cache[filename] = (len(cell), None, cell.splitlines(True), filename)
    try:
        code = compile(cell, filename, "exec")
    except SyntaxError as e:
        raise WeftCellError(f"line {e.lineno}: {e.msg}\n    {(e.text or '').rstrip()}") from None
    exec(code, user_ns)
    defined = [v for v in user_ns.values()
               if isinstance(v, types.FunctionType) and v.__code__.co_filename == filename]
    wanted = args.name.replace("-", "_")
    fn = next((f for f in defined if f.__name__ == wanted), None)
    if fn is None:
        if len(defined) != 1:
            raise WeftCellError(f"the cell defines {len(defined)} functions "
                                f"({', '.join(f.__name__ for f in defined) or 'none'}) and none is named {wanted}: "
                                "name the step function after the component")
        fn = defined[0]
    try:
        comp = dsl.Component(fn, packages_to_install=args.packages, name=args.name)
    except (TypeError, ValueError) as e:
        raise WeftCellError(f"{args.name}: {e}") from None
    user_ns[fn.__name__] = comp
    if args.no_run:
        return CellRun(comp, None, 0.0)

    sig = comp.signature
    params = {a.name for a in sig.of_kind("param")}
    artifacts_in = {a.name: a for a in sig.of_kind("input")}
    unknown = set(inputs) - params - set(artifacts_in)
    if unknown:
        raise WeftCellError(f"{args.name} has no input {', '.join(sorted(unknown))} "
                            f"(its inputs: {', '.join(sorted(params | set(artifacts_in))) or 'none'})")
    missing = [a.name for a in sig.of_kind("param") if not a.optional and a.name not in inputs]
    missing += [n for n in sorted(artifacts_in) if n not in inputs]
    if missing:
        raise WeftCellError(f"{args.name} needs --inputs for {', '.join(missing)}")

    def one_task():
        call = {}
        for k, v in inputs.items():
            if k in artifacts_in:
                kind = artifacts_in[k]
                cls = types_mod.Artifact if kind.as_path else kind.py
                path = os.path.abspath(str(v))
                if not os.path.exists(path):
                    raise WeftCellError(f"--inputs {k}: no file {path}")
                call[k] = dsl.importer(artifact_uri=path, artifact_class=cls, name=f"{k}-file").output
            else:
                call[k] = v
        comp(**call)

    pipe = dsl.Pipeline(one_task, name=f"cell-{comp.name}")
    package_dir = os.path.join(tempfile.gettempdir(), f"weft-cell-{os.getuid() if hasattr(os, 'getuid') else 0}",
                               comp.name)
    client = client or Client()
    with exclusive(package_dir + ".lock"):
        started = time.perf_counter()
        try:
            result = client.create_run_from_pipeline_func(pipe, enable_caching=args.cache, package_dir=package_dir)
        except RunFailed as e:
            raise WeftCellError(f"{args.name} failed in the sandbox (run {e.result.run_id}):\n{_task_errors(e.result)}") from None
        except RuntimeError as e:
            raise WeftCellError(f"{args.name}: {e}") from None
        elapsed = time.perf_counter() - started
        run = CellRun(comp, result, elapsed)
        _bind(binds, run, client, user_ns, package_dir)
    return run


@contextlib.contextmanager
def exclusive(path: str):
    """Holds an exclusive lock on the file `path` (made if absent): kernels of one user that
    build and run a cell component of the same name take turns in its package directory,
    which keeps its build cached between them. Where there is no `fcntl` (not POSIX), no lock."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        try:
            import fcntl
        except ImportError:
            yield
            return
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _task_errors(result) -> str:
    return "\n".join(f"{t.get('error')}" for t in result.tasks if t.get("state") == "FAILED") or result.state


def _bind(binds: Dict[str, str], run: CellRun, client, user_ns: Dict[str, Any], package_dir: str):
    if not binds:
        return
    values = run.outputs
    arts = {a["name"]: a["digest"] for a in run.result.artifacts
            if a.get("direction") == "output" and a.get("task") == run.component.name}
    for var, name in binds.items():
        if name in values:
            user_ns[var] = values[name]
        elif name in arts:
            to = os.path.join(package_dir, "outputs", name)
            client.download_artifact(arts[name], to)
            files = [os.path.join(d, f) for d, _, fs in os.walk(to) for f in fs]
            user_ns[var] = files[0] if len(files) == 1 else to
        else:
            raise WeftCellError(f"--outputs {var}: {run.component.name} has no output {name} "
                                f"(its outputs: {', '.join(sorted(set(values) | set(arts))) or 'none'})")


def load_ipython_extension(ipython):
    """`%load_ext weft`: registers `%%weft_component`, and puts the SDK's artifact and
    parameter types (`Input`, `Output`, `Dataset`, `Model`, `Metrics`, ...) into the notebook's
    namespace where the names are free, so a cell's signature can use them at once."""
    from . import types as weft_types

    for name in ("Input", "Output", "InputPath", "OutputPath", "Artifact", "Dataset", "Model", "Metrics",
                 "ClassificationMetrics", "HTML", "Markdown"):
        ipython.user_ns.setdefault(name, getattr(weft_types, name))

    def magic(line, cell):
        return weft_component(line, cell, ipython.user_ns)

    magic.__doc__ = __doc__
    ipython.register_magic_function(magic, magic_kind="cell", magic_name="weft_component")
