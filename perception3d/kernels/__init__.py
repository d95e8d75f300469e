"""Sparse attention kernels for voxel and pillar tokens: flattened windows (FlatFormer) and dynamic sets (DSVT).

Tokens are `feats: Tensor[M, C]` with integer `coords: LongTensor[M, 4]` as (batch, z, y, x) grid
indices (`perception3d.voxelize(...).coords`). Each encoder splits into index work (`prepare`: sorting
and partitioning, no gradients) and the network (`encode`), which compiles with
`torch.compile(fullgraph=True)` and exports to ONNX through `ExportableEncoder`.

Attention runs on equal-size groups through `F.scaled_dot_product_attention` ("sdpa") or a slow
group-by-group reference ("reference"); pass `backend=` to the modules, or set
`OMNISENSE_KERNEL_BACKEND=reference|sdpa` to override `backend="auto"`.

- `FlatFormer(...)` / `flatformer("waymo" | "waymo_code_defaults" | "tiny")`: `forward(feats, coords,
  batch_size) -> Tensor[M, C]`; `scatter_to_bev(feats, coords, batch_size, (ny, nx))` makes the BEV map.
- `DSVT(...)` / `dsvt("pillar_waymo" | "voxel_waymo" | "pillar_nuscenes" | "pillar_tiny" | "voxel_tiny")`:
  `forward(feats, coords, batch_size) -> (Tensor[M', C], LongTensor[M', 4])`.
"""

from perception3d.kernels._attention import BACKEND_ENV, GroupAttention, GroupPartition, resolve_backend
from perception3d.kernels._export import ExportableEncoder, flatten_inputs
from perception3d.kernels.dsvt import (
    DSVT,
    DSVT_CONFIGS,
    DSVTBlock,
    DSVTEncoderLayer,
    PoolAttention,
    PoolingIndex,
    SetAttention,
    dsvt,
    pooling_index,
    set_partition,
    window_partition,
)
from perception3d.kernels.flatformer import (
    FLATFORMER_CONFIGS,
    FlatFormer,
    FlatFormerBlock,
    FlatWindowLayer,
    equal_size_groups,
    flat_window_keys,
    flat_window_partitions,
    flatformer,
    scatter_to_bev,
    sinusoidal_position_embedding,
)

__all__ = [
    "BACKEND_ENV",
    "DSVT",
    "DSVTBlock",
    "DSVTEncoderLayer",
    "DSVT_CONFIGS",
    "ExportableEncoder",
    "FLATFORMER_CONFIGS",
    "FlatFormer",
    "FlatFormerBlock",
    "FlatWindowLayer",
    "GroupAttention",
    "GroupPartition",
    "PoolAttention",
    "PoolingIndex",
    "SetAttention",
    "dsvt",
    "equal_size_groups",
    "flat_window_keys",
    "flat_window_partitions",
    "flatformer",
    "flatten_inputs",
    "pooling_index",
    "resolve_backend",
    "scatter_to_bev",
    "set_partition",
    "sinusoidal_position_embedding",
    "window_partition",
]
