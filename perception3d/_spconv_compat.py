"""Make spconv's CPU build usable for training on a machine without a GPU.

spconv 2.3.8 asks torch for the current CUDA stream in its backward (and in a few other ops) even for CPU
tensors, which fails with "Found no NVIDIA driver". On CPU the stream is never used, so when no GPU is
present `patch_spconv_for_cpu()` replaces `get_current_stream` by `lambda: 0` in spconv.pytorch.cppcore and
in every spconv.pytorch module that imported it by name (ops, hash, utils, ...).

A second problem, found while testing this: with more than one torch thread, spconv's CPU gather-mm-scatter
(`spconv.pytorch.ops.indice_conv` and friends) gives wrong, run-to-run different outputs from about the
second call on (errors of 0.1-0.4 on unit-scale features, the rulebook itself identical), while one thread is
always right. The patch therefore also runs spconv's CPU compute ops with torch limited to one thread (and
restores the count after). With both, SubMConv3d forward and gradients on CPU match a dense Conv3d call after
call (tests/perception3d/test_spconv_compat.py).
"""

from __future__ import annotations

import functools
import sys

import torch

_PATCHED = False


def _no_stream() -> int:
    return 0


# spconv.pytorch.ops functions that compute on features (functional.py calls them as `ops.<name>`)
_COMPUTE_OPS = ("indice_conv", "indice_conv_backward", "implicit_gemm", "implicit_gemm_backward", "indice_maxpool",
                "indice_maxpool_backward", "indice_maxpool_implicit_gemm", "indice_maxpool_implicit_gemm_backward",
                "indice_avgpool_implicit_gemm", "indice_avgpool_implicit_gemm_backward")


def _single_threaded(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        if threads == 1:
            return fn(*args, **kwargs)
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    wrapper._omnisense_single_threaded = True
    return wrapper


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
    from spconv.pytorch import ops

    for name in _COMPUTE_OPS:
        fn = getattr(ops, name, None)
        if fn is not None and not getattr(fn, "_omnisense_single_threaded", False):
            setattr(ops, name, _single_threaded(fn))
    _PATCHED = True
    return True
