"""Point-cloud registration: RoITr matching, pose estimation (LGR, RANSAC), FPFH + RANSAC baseline, metrics,
training pairs and dataset readers. `register(source, target, model=...)` is the entry point."""

from __future__ import annotations

_LAZY = {name: "perception3d.registration.inference"
         for name in ("Registration", "RegistrationSpec", "plot_registration", "register")}
_LAZY.update({name: "perception3d.registration.view" for name in ("write_aligned_ply", "write_registration_view")})

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'perception3d.registration' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)
