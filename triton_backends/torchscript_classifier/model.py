"""Triton python-based backend that runs a version's TorchScript classifier on CPU.

Every model whose config.pbtxt says `backend: "torchscript_classifier"` runs this one file, so
version directories hold data only. The launcher copies it into the backends directory it gives
Triton (`<backends>/torchscript_classifier/model.py`). It runs inside Triton's stub process and
reads tensor names from the model's config, so it imports nothing from this repository.

Dynamic batching hands `execute()` several requests at once. With `allow_ragged_batch` each keeps
its own `[n, L]` shape. Their rows are sorted by length and run in chunks of `chunk_rows`, each
chunk padded only to its own longest row, because chat lengths vary a lot and padding a whole
batch to its longest message wastes most of the compute. The scores are then split back per
request. A request that breaks the contract gets its own error and does not fail the others.
"""

import json
import os
import sys

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

MODEL_FILENAME = "model.pt"


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.ids_name, self.mask_name = (tensor["name"] for tensor in config["input"])
        self.scores_name = config["output"][0]["name"]
        parameters = config.get("parameters", {})
        threads = int(parameters.get("torch_num_threads", {}).get("string_value", "0") or 0)
        if threads > 0:
            torch.set_num_threads(threads)
        self.chunk_rows = max(1, int(parameters.get("chunk_rows", {}).get("string_value", "8") or 8))
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        model = torch.jit.load(os.path.join(version_dir, MODEL_FILENAME), map_location="cpu")
        # Weights may be stored in fp16 to keep the repository small; CPU computes in fp32.
        self.model = model.float().eval()
        self._forward(np.ones((1, 4), dtype=np.int64), np.ones((1, 4), dtype=np.int64))  # warm up

    def execute(self, requests):
        responses = [None] * len(requests)
        batch = []  # (request index, ids, mask)
        for index, request in enumerate(requests):
            ids = pb_utils.get_input_tensor_by_name(request, self.ids_name).as_numpy()
            mask = pb_utils.get_input_tensor_by_name(request, self.mask_name).as_numpy()
            problem = _check_shapes(ids, mask)
            if problem:
                responses[index] = pb_utils.InferenceResponse(error=pb_utils.TritonError(problem))
            else:
                batch.append((index, ids, mask))
        if batch:
            self._run_batch(batch, responses)
        return responses

    def _run_batch(self, batch, responses):
        longest = max(ids.shape[1] for _, ids, _ in batch)
        ids = np.concatenate([_pad(ids, longest) for _, ids, _ in batch])
        mask = np.concatenate([_pad(mask, longest) for _, _, mask in batch])
        try:
            scores = self._forward(ids, mask)
        except Exception:  # one bad request (e.g. ids past the vocabulary) must not fail the others
            if len(batch) > 1:
                for item in batch:
                    self._run_batch([item], responses)
                return
            error = pb_utils.TritonError(f"model forward failed: {_first_line(sys.exc_info()[1])}")
            responses[batch[0][0]] = pb_utils.InferenceResponse(error=error)
            return
        start = 0
        for index, request_ids, _ in batch:
            rows = request_ids.shape[0]
            output = pb_utils.Tensor(self.scores_name, scores[start : start + rows])
            responses[index] = pb_utils.InferenceResponse(output_tensors=[output])
            start += rows

    def _forward(self, ids, mask):
        """Scores rows shortest first, `chunk_rows` at a time, each chunk trimmed to its own length."""
        lengths = np.maximum(mask.sum(axis=1), 1)
        order = np.argsort(lengths, kind="stable")
        scores = None
        with torch.inference_mode():
            for start in range(0, len(order), self.chunk_rows):
                rows = order[start : start + self.chunk_rows]
                width = int(lengths[rows].max())
                chunk = self.model(torch.from_numpy(ids[rows, :width]), torch.from_numpy(mask[rows, :width]))
                chunk = chunk.float().numpy()
                if scores is None:
                    scores = np.empty((len(order), chunk.shape[1]), dtype=np.float32)
                scores[rows] = chunk
        return scores


def _check_shapes(ids, mask):
    if ids.ndim != 2 or ids.shape != mask.shape:
        return f"token ids {ids.shape} and attention mask {mask.shape} must be the same [batch, seq] shape"
    if ids.shape[1] == 0:
        return "token sequence is empty"
    return None


def _first_line(err):
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _pad(array, length):
    if array.shape[1] == length:
        return array
    return np.pad(array, ((0, 0), (0, length - array.shape[1])))
