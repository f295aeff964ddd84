"""The `mirage` command line: one subcommand per job, each in its own module.

Each command module exposes ``add_arguments(parser)`` and ``run(args) -> int``; modules are
imported lazily so ``mirage --help`` stays fast. Errors the project raises on purpose
(:class:`MirageError`) are printed as one line on stderr with exit status 2; anything else is a
bug and keeps its traceback. Ctrl-C and SIGTERM both unwind the command (its ``finally`` blocks
stop the nodes it started) and exit with 130 / 143.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from mirage_ros.core.errors import MirageError

__all__ = ["COMMANDS", "Terminated", "build_parser", "main"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that cleanup code runs."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"signal {signum}")


#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("mirage_ros.bench", "benchmark the memory against the reference memories (JSON)"),
    "eval": ("mirage_ros.evaluation", "replay rosbags through the memory and write a report"),
    "train": ("mirage_ros.train", "train or fine-tune the latent codec"),
    "record-synthetic": ("mirage_ros.sim.record", "write a rosbag from the synthetic generator"),
    "replay": ("mirage_ros.replay", "play a rosbag into a live ROS 2 graph"),
    "demo": ("mirage_ros.demo", "the end-to-end demo: bag -> node over DDS -> predictions"),
    "soak": ("mirage_ros.soak", "run the node under sustained load and record its health"),
    "bench-node": ("mirage_ros.node_bench", "the node's ingest rate and service round trip"),
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mirage", description="mirage_ros: latent spatial memory and predicted camera views."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:  # import only the module that will run
            module = importlib.import_module(module_name)
            module.add_arguments(cmd)
            cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return 2
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args._run(args))
    except MirageError as exc:
        print(f"mirage {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"mirage {args.command}: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"mirage {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())
