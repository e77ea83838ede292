"""The `demo` command: the Gradio page and API (the `[demo]` extra)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add `demo` to `commands` (argparse subparsers); returns its handler by name."""
    demo = commands.add_parser(
        "demo",
        help="serve the web demo (needs the [demo] extra)",
        description="Serve the Gradio demo page and API: upload an image, see its detections. Needs gradio: "
        "pip install 'faster-rcnn-hub[demo]'.",
    )
    demo.add_argument(
        "--model",
        dest="models",
        action="append",
        default=[],
        metavar="MODEL",
        help="converted model folder or Hub id to offer before the bundled synthetic-shapes model; repeat for "
        "several (the first is selected; the page names each by its folder name or Hub id)",
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    demo.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    demo.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    demo.add_argument(
        "--concurrency", type=int, default=1, help="detection requests run at once; others queue (default 1)"
    )
    demo.add_argument(
        "--queue-size", type=int, default=64, help="requests that may wait; more are turned away (default 64)"
    )
    return {"demo": run_demo}


def run_demo(args: argparse.Namespace) -> int:
    from ..demo import create_demo, import_gradio, launch_demo

    import_gradio()  # before loading any model: say at once when the extra is missing
    demo = create_demo(
        args.models, device=args.device, concurrency_limit=args.concurrency, max_queue_size=args.queue_size
    )
    launch_demo(demo, host=args.host, port=args.port)
    return 0


__all__ = ["add_commands", "run_demo"]
