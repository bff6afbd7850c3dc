"""A served model in Python (the `weft:serve/predictor` world, KServe's predictor): loads the
logistic-regression `model.json` the iris pipeline's `train` step writes, and answers V2
inference requests with class probabilities and labels, the same answers as the Rust
iris-predictor.
"""

import json
import math

import weft
from weft import InvalidInput, Tensor, TensorSpec


@weft.predictor
class IrisModel:
    platform = "weft-logistic-regression-python"

    def __init__(self):
        self.model = None

    def load(self, model_dir):
        if model_dir is None:
            raise ValueError("this model needs a model directory holding model.json")
        with open(f"{model_dir}/model.json") as f:
            self.model = json.load(f)

    def inputs(self):
        width = len(self.model["features"]) if self.model else -1
        return [TensorSpec("input", "FP32", [-1, width])]

    def outputs(self):
        k = len(self.model["classes"]) if self.model else -1
        return [TensorSpec("probabilities", "FP32", [-1, k]), TensorSpec("label", "BYTES", [-1])]

    def predict(self, inputs):
        if "input" not in inputs:
            raise InvalidInput("expected an input named `input`")
        x = inputs["input"]
        width = len(self.model["features"])
        if len(x.shape) != 2 or x.shape[1] != width:
            raise InvalidInput(f"input shape must be [batch, {width}], got {x.shape}")
        if x.datatype not in ("FP32", "FP64"):
            raise InvalidInput(f"input datatype must be FP32 or FP64, got {x.datatype}")
        probabilities, labels = [], []
        for row in x.rows():
            p = self._proba(row)
            probabilities.extend(p)
            labels.append(self.model["classes"][max(range(len(p)), key=p.__getitem__)])
        batch, k = len(labels), len(self.model["classes"])
        return [
            Tensor("probabilities", "FP32", [batch, k], probabilities),
            Tensor("label", "BYTES", [batch], labels),
        ]

    def _proba(self, row):
        logits = [b + sum(w * v for w, v in zip(ws, row)) for ws, b in zip(self.model["weights"], self.model["bias"])]
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        total = sum(exps)
        return [e / total for e in exps]
