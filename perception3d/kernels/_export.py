"""Plain-tensor wrappers of the two encoders, for ONNX export (and TensorRT after it).

The index work (`prepare`: sorting, unique, set partition) stays outside the exported graph, as in
DSVT's official deployment; the exported graph is the network (`encode`), whose inputs are the
features and the prepared index tensors. Every shape is dynamic: one export serves any frame.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from perception3d.kernels._attention import GroupPartition
from perception3d.kernels.dsvt import DSVT, DSVTStageInputs, PoolingIndex
from perception3d.kernels.flatformer import ORDERINGS, FlatFormer, FlatFormerInputs


def _partition_tensors(p: GroupPartition) -> list[Tensor]:
    mask = p.key_padding_mask
    if mask is None:  # a graph input must always be there; an all-false mask changes nothing
        mask = torch.zeros_like(p.index, dtype=torch.bool)
    return [p.index, mask, p.token_slot]


def flatten_inputs(model: nn.Module, inputs: Any) -> tuple[list[Tensor], list[str]]:
    """The prepared inputs of `model` as a flat list of tensors, with their names."""
    tensors: list[Tensor] = []
    names: list[str] = []
    if isinstance(model, FlatFormer):
        tensors.append(inputs.pe)
        names.append("pe")
        for o in ORDERINGS:
            tensors += _partition_tensors(inputs.partitions[o])
            names += [f"{o}_index", f"{o}_mask", f"{o}_slot"]
        return tensors, names
    if isinstance(model, DSVT):
        for s, stage in enumerate(inputs):
            tensors.append(stage.coords)
            names.append(f"s{s}_coords")
            for shift in range(2):
                for axis in range(2):
                    tensors += _partition_tensors(stage.partitions[shift][axis])
                    names += [f"s{s}_shift{shift}_axis{axis}_{k}" for k in ("index", "mask", "slot")]
                tensors.append(stage.locations[shift])
                names.append(f"s{s}_shift{shift}_location")
            if stage.pooling is not None:
                tensors += [stage.pooling.pool_index, stage.pooling.index_in_pool]
                names += [f"s{s}_pool_index", f"s{s}_index_in_pool"]
        return tensors, names
    raise TypeError(f"not an encoder of perception3d.kernels: {type(model).__name__}")


class ExportableEncoder(nn.Module):
    """`forward(feats, *tensors)` runs `model.encode` on inputs given as `flatten_inputs` lays them out.

    Args:
        model: a FlatFormer or DSVT (in eval mode for export).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if not isinstance(model, (FlatFormer, DSVT)):
            raise TypeError(f"not an encoder of perception3d.kernels: {type(model).__name__}")
        self.model = model

    def forward(self, feats: Tensor, *tensors: Tensor) -> Tensor:
        it = iter(tensors)
        if isinstance(self.model, FlatFormer):
            pe = next(it)
            partitions = {o: GroupPartition(next(it), next(it), next(it)) for o in ORDERINGS}
            return self.model.encode(feats, FlatFormerInputs(pe, partitions))
        raw = []
        for s in range(self.model.num_stages):
            coords = next(it)
            partitions, locations = [], []
            for _ in range(2):
                partitions.append(tuple(GroupPartition(next(it), next(it), next(it)) for _ in range(2)))
                locations.append(next(it))
            pool = (next(it), next(it)) if s < self.model.num_stages - 1 else None
            raw.append((coords, tuple(partitions), tuple(locations), pool))
        stages = []
        for s, (coords, partitions, locations, pool) in enumerate(raw):
            pooling = None
            if pool is not None:  # the pooled voxels are the next stage's voxels
                volume = 1
                for v in self.model.downsample_stride[s]:
                    volume *= v
                pooling = PoolingIndex(pool[0], pool[1], raw[s + 1][0], volume)
            stages.append(DSVTStageInputs(coords, partitions, locations, pooling))
        return self.model.encode(feats, stages)
