"""The ``infercam`` command line: a thin layer over the Python API (see ``infercam.commands``)."""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import shlex
import signal
import sys
from collections.abc import Iterator

from . import __version__
from .errors import NO_ROOM, InferCamError, describe_write_error
from .signals import catchable
from .commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infercam",
        description="Class-conditional CAM inference (InferCam, WACV 2022) for weakly supervised "
        "semantic segmentation: from a classifier checkpoint to refined CAMs, pseudo labels and "
        "evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"infercam {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    with interrupts_deferred():  # the commands import torch
        for name in COMMANDS:
            importlib.import_module(f"{__package__}.commands.{name}").add_parser(sub)
    return parser


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold a Ctrl-C back until the block ends, then raise it. Interrupted inside its C++ initialisation, torch's
    import aborts the process (SIGABRT) or leaves it set to die by SIGINT however the KeyboardInterrupt is handled;
    its import takes a second or two, so the Ctrl-C is taken that much later instead (where it may be caught:
    :func:`infercam.signals.catchable`)."""
    if not catchable(signal.SIGINT):
        yield
        return
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        raise KeyboardInterrupt


def refuse_torchrun(args: argparse.Namespace) -> None:
    """An error on every rank of a torchrun job running a command that does not share its work out (eval, report,
    training, ...): each rank would do it all and write the same files."""
    from .run.distributed import Rank  # imported with the commands by then

    if not getattr(args, "sharded", False) and Rank.from_env().distributed:
        raise InferCamError(f"{args.command} runs in one process: run it without torchrun (torchrun shares the "
                            "images of cam, infer, split and pseudo out among its processes)")


def one_line(exc: InferCamError) -> str:
    """The error's own message. An error raised in a DataLoader worker comes back with torch's "Caught ... in
    DataLoader worker process N. Original Traceback ..." around it: only the original message's last line is kept."""
    text = str(exc)
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = text.rstrip().splitlines()[-1]
        return last.split(": ", 1)[1] if last.startswith(type(exc).__module__) and ": " in last else last
    return text


def as_options(text: str, args: argparse.Namespace) -> str:
    """``text`` with each name in backticks (a Python API parameter, as errors name them) that is an option of this
    command written as the option is typed: `batch_size` -> --batch-size. Other backticked names stay as they are."""
    from .commands.common import option_name

    return re.sub(r"`(\w+)`", lambda m: option_name(m[1]) if m[1] in vars(args) else m[0], text)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler, ``timeout``, torchrun stopping a job), handled as Ctrl-C is: the clean-up of
    unfinished outputs runs instead of the process dying at once."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; user errors (and a full disk) print one line on stderr and give exit status 2; Ctrl-C
    gives 130 and SIGTERM 143, both after cleaning up."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:  # Ctrl-C while the commands (and torch) are imported: nothing was started
        print("infercam: interrupted", file=sys.stderr)
        return 130
    args.command_line = shlex.join(["infercam", *argv])  # for run manifests
    handles_term = catchable(signal.SIGTERM)  # handled as Ctrl-C is
    previous = signal.signal(signal.SIGTERM, _terminate) if handles_term else None
    try:
        refuse_torchrun(args)
        return int(args.func(args) or 0)
    except InferCamError as exc:
        print(f"infercam {args.command}: error: {as_options(one_line(exc), args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print(f"infercam {args.command}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 143 if terminated else 130
    except BrokenPipeError:  # e.g. `infercam eval ... | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        if exc.errno not in NO_ROOM:  # the machine's, wherever it comes from: one line like an InferCamError's
            raise
        print(f"infercam {args.command}: error: {describe_write_error(exc, exc.filename)}", file=sys.stderr)
        return 2
    finally:
        if handles_term:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
