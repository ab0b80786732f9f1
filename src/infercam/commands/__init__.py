"""CLI subcommands: each module defines ``add_parser(subparsers)`` and a ``run(args) -> int``.

The modules are thin: they parse options and call the Python API.
"""
COMMANDS: tuple[str, ...] = (
    "cam",
    "demo",
    "eval",
    "infer",
    "make_photos",
    "make_synthetic",
    "pseudo",
    "report",
    "split",
    "train_aff",
    "train_cls",
    "train_seg",
)
