"""A stand-in for the KFP SDK inside a Weft component made by `wasm-run pipeline import-kfp`.

KFP ships a lightweight component's function with `import kfp`, `from kfp import dsl` and
`from kfp.dsl import *` in front of it; this package lets that source run unchanged as a Weft
step, with `kfp.dsl`'s names mapped onto the weft guest SDK. Only what a component's code uses
at run time is here: pipelines are Weft's now (pipeline.yaml beside the components).
"""

from . import dsl  # noqa: F401
