"""Lightning checkpoints that survive a kill anywhere, and are read without ever unpickling code.

Lightning's own atomic save (`lightning.fabric.utilities.cloud_io._atomic_save`) stages the file through fsspec in
`TMPDIR` and `shutil.move`s it into place. When `TMPDIR` is another filesystem than the run folder (a tmpfs, as on
many systemd and SLURM nodes), that move is a copy: a kill during it leaves `last.ckpt` truncated (0 bytes in the
issue's 13 of 13 kills) and the staged file leaked. `AtomicCheckpointIO` instead writes a temporary file in the
checkpoint's own folder, fsyncs it and `os.replace`s it onto the target: a reader sees the old file or the new one,
whole, whatever `TMPDIR` is. A staged file left by a killed process (its pid is in the name) is removed by the next
save into the same run (any of its version folders) and when a checkpoint of that folder is loaded to resume.

Loading (`--ckpt_path`) goes through `omnisense.weights.read_training_checkpoint`: `weights_only=True`, and a damaged,
empty, random-bytes, pickled or foreign checkpoint is one `WeightsError` line naming the file.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

_STAGED = re.compile(r"^\.(?P<name>.+)\.pid(?P<pid>\d+)\.[^.]+\.tmp$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_staged(folder: Path) -> list[Path]:
    """Remove the staged checkpoint files in `folder` whose writing process is gone; returns them."""
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        m = _STAGED.match(path.name)
        if m and not _alive(int(m.group("pid"))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _run_folders(folder: Path) -> list[Path]:
    """`folder`, and for Lightning's layout (`<run>/version_N/checkpoints`) the other versions' checkpoint
    folders: a run resumed after a kill writes into a new version, and its saves clean up after the killed one."""
    out = [folder]
    if folder.name == "checkpoints":
        out += [f for f in folder.parent.parent.glob("*/checkpoints") if f != folder]
    return out


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_atomic(checkpoint: dict[str, Any], path: str | Path) -> Path:
    """`torch.save` into a temporary file beside `path`, fsync, `os.replace` onto `path`; the staged file is
    removed on any failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for folder in _run_folders(path.parent):
        remove_stale_staged(folder)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.pid{os.getpid()}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's CheckpointIO with same-folder atomic saves and checked, never-unpickling loads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        save_atomic(checkpoint, path)

    def load_checkpoint(self, path, map_location: Optional[Callable] = None,
                        weights_only: Optional[bool] = None) -> dict[str, Any]:
        from omnisense.weights import read_training_checkpoint

        checkpoint = read_training_checkpoint(path)
        for folder in _run_folders(Path(path).parent):
            remove_stale_staged(folder)
        return checkpoint


def plug_into(trainer):
    """Give `trainer` the AtomicCheckpointIO unless a CheckpointIO of another kind was asked for; returns it."""
    current = getattr(trainer.strategy, "_checkpoint_io", None)
    if current is None or type(current) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
    return trainer


def check_ckpt_file(config) -> None:
    """The `--ckpt_path` of a parsed LightningCLI config, read and checked (`read_training_checkpoint`)."""
    sub = config.get("subcommand")
    ckpt_path = config[sub].get("ckpt_path") if sub else None
    if ckpt_path and str(ckpt_path) not in ("last", "best", "hpc", "registry"):
        from omnisense.weights import read_training_checkpoint

        read_training_checkpoint(ckpt_path)


def check_resume(model, ckpt_path) -> None:
    """Before `fit --ckpt_path`: the checkpoint is read (and checked) now, and its state dict must fit the model,
    so a foreign checkpoint is one line naming the file and the tensors, not a size-mismatch traceback."""
    if not ckpt_path or str(ckpt_path) in ("last", "best", "hpc", "registry"):
        return
    from omnisense._errors import WeightsError
    from omnisense.weights import compare_state, read_training_checkpoint

    ckpt = read_training_checkpoint(ckpt_path)
    own = model.state_dict()
    if not own:  # built lazily (configure_model): Lightning checks the keys when it loads them
        return
    report = compare_state(own, ckpt["state_dict"])
    if not report.ok:
        parts = []
        if report.mis_shaped:
            parts.append(f"{len(report.mis_shaped)} mis-shaped (e.g. {report.mis_shaped[0]})")
        if report.missing:
            parts.append(f"{len(report.missing)} missing (e.g. {report.missing[0]!r})")
        if report.unexpected:
            parts.append(f"{len(report.unexpected)} unexpected (e.g. {report.unexpected[0]!r})")
        raise WeightsError(ckpt_path, f"does not fit {type(model).__name__}: tensors " + ", ".join(parts))


def _config_paths(argv: list[str]) -> list[str]:
    out = []
    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and i + 1 < len(argv):
            out.append(argv[i + 1])
        elif arg.startswith("--config="):
            out.append(arg.split("=", 1)[1])
    return out


def _blame(configs: list[str], text: str) -> str:
    """The config file an error is about: the first unreadable one, else the one that holds the offending key
    (a quoted name in the message, or the last component of its key path), else all of them."""
    for config in configs:
        path = Path(config)
        if not path.is_file():
            return config
    words = re.findall(r"'([A-Za-z_][\w.]*)'", text) + re.findall(r"^([\w.]+):", text)
    leaves = {w.split(".")[-1] for w in words} | {w.split(".")[0] for w in words}
    for config in reversed(configs):
        try:
            content = Path(config).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return config
        if any(re.search(rf"^\s*{re.escape(leaf)}\s*:", content, re.M) for leaf in leaves if leaf):
            return config
    return ", ".join(configs)


def _summarise_parser_error(message: str) -> str:
    """jsonargparse's nested report as one line: the dotted key path and the innermost problem, e.g.
    `model.lr: Expected a <class 'float'>. Got value: x`."""
    keys, detail = [], None
    for raw in message.splitlines():
        line = raw.strip().lstrip("- ").strip()
        if not line:
            continue
        if line.startswith(("Expected a <class 'NoneType'>", "Given value")):
            break
        m = re.match(r'Parser key "([^"]+)":', line)
        if m:
            keys.append(m.group(1))
            continue
        if line.startswith(("Does not validate against", "Subtypes:", "Errors:", "Problem with given class_path")):
            continue
        detail = line
    detail = detail or (message.strip().splitlines() or ["invalid"])[0]
    text = f"{'.'.join(keys)}: {detail}" if keys else detail
    return re.sub(r"\s+", " ", text)[:400]


class config_errors_as_one_line:
    """Turn jsonargparse's errors (with `exit_on_error=False`) into one OmnisenseError line naming the config
    file and the key, instead of a usage dump and a multi-line message."""

    def __init__(self, argv: list[str]):
        self.argv = list(argv)

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        from jsonargparse import ArgumentError

        if exc is None or not isinstance(exc, (ArgumentError, UnicodeDecodeError)):
            return False
        from omnisense._errors import OmnisenseError

        configs = _config_paths(self.argv)
        text = _summarise_parser_error(str(exc)) if isinstance(exc, ArgumentError) else "not UTF-8 text"
        if text.startswith("unrecognized arguments"):
            raise OmnisenseError(f"command line: {text}") from None
        key = text.split(":", 1)[0].split(".")[-1]
        override = next((a for a in self.argv if a.startswith("--") and not a.startswith("--config")
                         and a.split("=", 1)[0].split(".")[-1] == key), None)
        if override is not None:
            raise OmnisenseError(f"command line ({override.split('=', 1)[0]}): {text}") from None
        config = _blame(configs, text) if configs else None
        if config is not None and config in configs:
            path = Path(config)
            if not path.exists():
                raise OmnisenseError(f"{config}: no such config file") from None
            if path.is_dir():
                raise OmnisenseError(f"{config}: is a directory, not a config file") from None
            try:
                content = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                raise OmnisenseError(f"{config}: not a readable text (YAML) file") from None
            if not content.strip():
                raise OmnisenseError(f"{config}: empty config file") from None
            import yaml

            try:
                loaded = yaml.safe_load(content)
            except yaml.YAMLError as err:
                mark = getattr(err, "problem_mark", None)
                where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
                problem = getattr(err, "problem", None) or str(err).splitlines()[0]
                raise OmnisenseError(f"{config}: YAML syntax error{where}: {problem}") from None
            if not isinstance(loaded, dict):
                raise OmnisenseError(f"{config}: a config must be a mapping of sections (trainer:, model:, data:), "
                                     f"not a {type(loaded).__name__}") from None
            raise OmnisenseError(f"{config}: {text}") from None
        if config is not None:  # several configs, none clearly at fault
            raise OmnisenseError(f"{config}: {text}") from None
        raise OmnisenseError(f"command line: {text}") from None
