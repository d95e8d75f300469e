"""Make spconv's CPU build usable for training on a machine without a GPU.

spconv 2.3.8 asks torch for the current CUDA stream in its backward (and in a few other ops) even for CPU
tensors, which fails with "Found no NVIDIA driver". On CPU the stream is never used, so when no GPU is
present `patch_spconv_for_cpu()` replaces `get_current_stream` by `lambda: 0` in spconv.pytorch.cppcore and
in every spconv.pytorch module that imported it by name (ops, hash, utils, ...). With the patch, SubMConv3d
gradients on CPU match a dense Conv3d (tests/perception3d/test_spconv_compat.py).
"""

from __future__ import annotations

import sys

import torch

_PATCHED = False


def _no_stream() -> int:
    return 0


def patch_spconv_for_cpu() -> bool:
    """Patch spconv when no CUDA GPU is visible; a no-op otherwise, and on a second call.

    Returns:
        True when spconv is now patched (now or earlier), False when a GPU is present.
    """
    global _PATCHED
    if torch.cuda.is_available():
        return False
    if _PATCHED:
        return True
    import spconv.pytorch  # noqa: F401  (loads cppcore, ops and the modules that import the function)
    from spconv.pytorch import cppcore

    original = cppcore.get_current_stream
    for name, module in list(sys.modules.items()):
        if (name == "spconv.pytorch" or name.startswith("spconv.pytorch.")) and \
                getattr(module, "get_current_stream", None) is original:
            module.get_current_stream = _no_stream
    _PATCHED = True
    return True
