"""The `faster-rcnn-hub` command line (`main`), one module per group of commands."""

from .main import build_parser, convert_main, main

__all__ = ["build_parser", "convert_main", "main"]
