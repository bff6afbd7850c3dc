"""The runtime inside a Python predictor component (`weft:serve/predictor`, KServe's predictor):
a class marked `@weft.predictor` with `load(model_dir)` and `predict(inputs) -> outputs`, where
tensors are `weft.Tensor`s of plain Python values, not raw little-endian bytes.

Raise `weft.InvalidInput` for a bad request (the server answers 400); any other exception is the
model failing (500), reported as `TypeName: message` with the traceback in the server log.
"""

import json
import struct
import sys
import traceback
from dataclasses import dataclass, field
from typing import Dict, List, Optional

try:  # at build time, so componentize-py's snapshot holds them (see weft.guest)
    from componentize_py_types import Err
    from wit_world.imports import types as t
except ImportError:  # outside a component
    Err = t = None

__all__ = ["predictor", "Tensor", "TensorSpec", "InvalidInput", "Model"]

#: struct format letter per fixed-size V2 datatype.
_FORMATS = {
    "BOOL": "?", "UINT8": "B", "UINT16": "H", "UINT32": "I", "UINT64": "Q",
    "INT8": "b", "INT16": "h", "INT32": "i", "INT64": "q", "FP16": "e", "FP32": "f", "FP64": "d",
}


class InvalidInput(Exception):
    """The request is wrong (shape, datatype, a missing input): the server answers 400."""


@dataclass
class TensorSpec:
    name: str
    datatype: str
    shape: List[int]


@dataclass
class Tensor:
    """A V2 tensor: `values` flat in row-major order (str for BYTES), `shape` its dimensions."""

    name: str
    datatype: str
    shape: List[int]
    values: list = field(default_factory=list)

    def rows(self) -> List[list]:
        """The values as a list of rows (a 2-D tensor; a 1-D one is one value per row)."""
        if len(self.shape) == 1:
            return [[v] for v in self.values]
        if len(self.shape) != 2:
            raise InvalidInput(f"{self.name}: expected a 2-D tensor, got shape {self.shape}")
        width = self.shape[1]
        return [self.values[i:i + width] for i in range(0, len(self.values), width)]


_MODEL = None


def predictor(cls):
    """Marks `cls` as this component's model; it is instantiated once, at build time."""
    global _MODEL
    if _MODEL is not None:
        raise RuntimeError("a predictor component has one model class")
    _MODEL = cls()
    return cls


def _datatype_name(dt) -> str:
    return {"BOOL_": "BOOL"}.get(dt.name, dt.name).upper().replace("%", "")


def _decode(tensor) -> Tensor:
    name = _datatype_name(tensor.datatype)
    data = bytes(tensor.data)
    if name == "BYTES":
        values, at = [], 0
        while at < len(data):
            (n,) = struct.unpack_from("<I", data, at)
            values.append(data[at + 4:at + 4 + n].decode("utf-8", "replace"))
            at += 4 + n
    elif name in ("BF16",):
        raise InvalidInput(f"{tensor.name}: datatype {name} is not supported by the Python SDK")
    else:
        fmt = _FORMATS[name]
        values = list(struct.unpack(f"<{len(data) // struct.calcsize(fmt)}{fmt}", data))
    return Tensor(tensor.name, name, list(tensor.shape), values)


def _wit_datatype(name: str):
    for dt in t.Datatype:
        if _datatype_name(dt) == name.upper():
            return dt
    raise ValueError(f"unknown datatype {name!r}")


def _encode(tensor: Tensor):
    name = tensor.datatype.upper()
    if name == "BYTES":
        parts = []
        for v in tensor.values:
            b = v if isinstance(v, bytes) else str(v).encode()
            parts.append(struct.pack("<I", len(b)) + b)
        data = b"".join(parts)
    else:
        fmt = _FORMATS[name]
        data = struct.pack(f"<{len(tensor.values)}{fmt}", *tensor.values)
    return t.Tensor(tensor.name, _wit_datatype(name), [int(d) for d in tensor.shape], data)


def _spec(s: TensorSpec):
    return t.TensorSpec(s.name, _wit_datatype(s.datatype), [int(d) for d in s.shape])


def _failure(e: BaseException) -> str:
    traceback.print_exc(file=sys.stderr)
    sys.stderr.flush()
    return " ".join(f"{type(e).__name__}: {e}".split())[:2000]


class Model:
    """The `weft:serve/model` export componentize-py looks for."""

    def load(self, model_dir: Optional[str]) -> None:
        try:
            _MODEL.load(model_dir)
        except Exception as e:  # noqa: BLE001 - the load failure is the server's answer
            raise Err(_failure(e))

    def metadata(self):
        m = _MODEL
        return t.ModelMetadata(
            getattr(m, "platform", "weft-python"),
            [_spec(s) for s in m.inputs()],
            [_spec(s) for s in m.outputs()],
        )

    def infer(self, request):
        try:
            inputs: Dict[str, Tensor] = {x.name: _decode(x) for x in request.inputs}
            params = json.loads(request.parameters or "{}")
            outputs = _MODEL.predict(inputs, params) if _takes_params() else _MODEL.predict(inputs)
            wanted = set(request.outputs)
            encoded = [_encode(o) for o in outputs if not wanted or o.name in wanted]
            return t.InferResponse(encoded, "{}")
        except InvalidInput as e:
            raise Err(t.InferError_InvalidInput(" ".join(str(e).split())[:2000]))
        except (struct.error, KeyError, ValueError, TypeError) as e:
            raise Err(t.InferError_InvalidInput(_failure(e)))
        except Exception as e:  # noqa: BLE001
            raise Err(t.InferError_Failed(_failure(e)))


def _takes_params() -> bool:
    import inspect

    return len(inspect.signature(_MODEL.predict).parameters) >= 2
