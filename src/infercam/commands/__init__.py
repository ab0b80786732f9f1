"""CLI subcommands: each module defines ``add_parser(subparsers)`` and a ``run(args) -> int``.

The modules are thin: they parse options and call the Python API.
"""
COMMANDS: tuple[str, ...] = (
    "cam",
    "infer",
    "split",
)
