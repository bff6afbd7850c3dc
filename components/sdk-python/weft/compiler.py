"""`weft.compile(pipeline, "pipeline.yaml")`: the Pipeline spec `wasm-run` and the operator run,
with each component built from its Python function into `components/NAME.wasm` beside it."""

import os
import shutil
import subprocess
from typing import Optional

from . import yaml
from .bundle import app_source
from .dsl import Component, Pipeline


def wasm_run_binary(explicit: Optional[str] = None) -> str:
    """`wasm-run`: the given path, `$WEFT_WASM_RUN`, or the one on PATH."""
    found = explicit or os.environ.get("WEFT_WASM_RUN") or shutil.which("wasm-run")
    if not found:
        raise FileNotFoundError(
            "wasm-run is not on PATH: install it (cargo install --path host/crates/cli) or set WEFT_WASM_RUN"
        )
    return found


def write_project(comp: Component, directory: str) -> str:
    """Writes the component project of `comp` (weft.toml + app.py) into `directory`."""
    os.makedirs(directory, exist_ok=True)
    packages = "".join(f"  {p!r},\n".replace("'", '"') for p in comp.packages_to_install)
    manifest = f'[component]\nname = "{comp.name}"\nlanguage = "python"\nworld = "step"\n'
    if packages:
        manifest += f"packages = [\n{packages}]\n"
    with open(os.path.join(directory, "weft.toml"), "w") as f:
        f.write(manifest)
    with open(os.path.join(directory, "app.py"), "w") as f:
        f.write(app_source(comp.python_func))
    return directory


def build_component(project: str, out_dir: str, wasm_run: Optional[str] = None) -> str:
    """Builds a component project with `wasm-run build`; returns the component's path."""
    cmd = [wasm_run_binary(wasm_run), "build", project, "--out-dir", out_dir]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building {project} failed:\n{done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


def compile(pipeline_func: Pipeline, package_path: str, build: bool = True, wasm_run: Optional[str] = None) -> dict:
    """Writes the pipeline's spec to `package_path` and, unless `build=False`, builds its
    components (sources under `components/src/NAME/`, components `components/NAME.wasm`)."""
    if not isinstance(pipeline_func, Pipeline):
        raise TypeError("compile() takes a @weft.pipeline function")
    doc = pipeline_func.build()
    base = os.path.dirname(os.path.abspath(package_path))
    for art in doc["spec"].get("artifacts", {}).values():
        art["path"] = os.path.relpath(os.path.abspath(art["path"]), base)
    components = os.path.join(base, "components")
    for name, comp in pipeline_func.components.items():
        project = write_project(comp, os.path.join(components, "src", name))
        if build:
            build_component(project, components, wasm_run)
    os.makedirs(base, exist_ok=True)
    with open(package_path, "w") as f:
        f.write(f"# Compiled by the weft Python SDK from {pipeline_func.pipeline_func.__module__}.{pipeline_func.__name__}.\n")
        f.write(yaml.dumps(doc))
    return doc


class Compiler:
    """KFP's spelling: `Compiler().compile(pipeline_func=p, package_path="p.yaml")`."""

    def compile(self, pipeline_func, package_path: str, **kwargs):
        return compile(pipeline_func, package_path, **kwargs)
