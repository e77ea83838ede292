"""A model-zoo entry for the tiny fixture checkpoint, and a local HTTP server to download it from."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch

from conftest import MMDET, write_seeded_checkpoint
from faster_rcnn_hub.zoo import table as zoo
from faster_rcnn_hub.conversion import parse_config_text
from faster_rcnn_hub.zoo import ZooEntry, compact_mmdet_config

TINY_COCO = MMDET / "tiny_r50_fpn_coco" / "tiny_r50_fpn_coco.pth"
ENTRY_NAME = "faster-rcnn_tiny-r50_fpn_1x_coco"
TINY_CASCADE = "tiny_cascade_r50_fpn_coco"
CASCADE_ENTRY_NAME = "cascade-rcnn_tiny-r50_fpn_1x_coco"
TINY_MASK = "tiny_mask_r50_fpn_coco"
MASK_ENTRY_NAME = "mask-rcnn_tiny-r50_fpn_1x_coco"


def tiny_zoo_checkpoint() -> tuple[str, bytes, ZooEntry]:
    """The tiny checkpoint *without* its embedded config, under an mmdetection-style name with its SHA-256
    prefix, and a table entry (box AP 12.3, URL to be filled in) holding the config in the table's form."""
    checkpoint = torch.load(TINY_COCO, weights_only=True)
    config = compact_mmdet_config(parse_config_text(checkpoint["meta"].pop("config")))
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    data = buffer.getvalue()
    prefix = hashlib.sha256(data).hexdigest()[:8]
    filename = f"faster_rcnn_tiny_r50_fpn_1x_coco_20240101_000000-{prefix}.pth"
    entry = ZooEntry(
        name=ENTRY_NAME,
        config_file="faster_rcnn/faster-rcnn_tiny-r50_fpn_1x_coco.py",
        url=f"https://download.example/{filename}",
        sha256_prefix=prefix,
        box_ap=12.3,
        eval_dataset="COCO",
        training_data="COCO",
        mmdet_config=config,
    )
    return filename, data, entry


def tiny_cascade_zoo_checkpoint(folder: Path) -> tuple[str, bytes, ZooEntry]:
    """The tiny Cascade R-CNN checkpoint, rebuilt from its manifest's seed *without* its embedded config, under an
    mmdetection-style name with its SHA-256 prefix, and a table entry holding the config in the table's form."""
    return _tiny_seeded_zoo_checkpoint(
        folder, TINY_CASCADE, CASCADE_ENTRY_NAME, "cascade_rcnn/cascade-rcnn_tiny-r50_fpn_1x_coco.py"
    )


def tiny_mask_zoo_checkpoint(folder: Path) -> tuple[str, bytes, ZooEntry]:
    """The tiny Mask R-CNN checkpoint, served as `tiny_cascade_zoo_checkpoint` serves the cascade one."""
    return _tiny_seeded_zoo_checkpoint(
        folder, TINY_MASK, MASK_ENTRY_NAME, "mask_rcnn/mask-rcnn_tiny-r50_fpn_1x_coco.py", mask_ap=21.0
    )


def _tiny_seeded_zoo_checkpoint(
    folder: Path, case: str, name: str, config_file: str, mask_ap: float | None = None
) -> tuple[str, bytes, ZooEntry]:
    manifest = json.loads((MMDET / case / "manifest.json").read_text())
    meta = dict(manifest["meta"])
    config = compact_mmdet_config(parse_config_text(meta.pop("cfg")))
    data = write_seeded_checkpoint(manifest, folder / f"{case}.pth", manifest["seed"], meta).read_bytes()
    prefix = hashlib.sha256(data).hexdigest()[:8]
    filename = f"{name.replace('-', '_')}_20240101_000000-{prefix}.pth"
    entry = ZooEntry(
        name=name,
        config_file=config_file,
        url=f"https://download.example/{filename}",
        sha256_prefix=prefix,
        box_ap=23.4,
        eval_dataset="COCO",
        training_data="COCO",
        mmdet_config=config,
        mask_ap=mask_ap,
    )
    return filename, data, entry


def add_to_zoo_table(monkeypatch, *entries: ZooEntry) -> None:
    table = {**zoo._load_table(), **{entry.name: entry for entry in entries}}
    monkeypatch.setattr(zoo, "_load_table", lambda: table)


class CheckpointServer:
    """Serves `files` (path -> bytes) on 127.0.0.1 with HTTP Range support, recording every request.

    `drop_after = n` makes the next response send only `n` bytes of its body and close the connection.
    """

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[tuple[str, str | None]] = []
        self.drop_after: int | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{path}"

    def __enter__(self) -> CheckpointServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requested_range = self.headers.get("Range")
                server.requests.append((self.path, requested_range))
                data = server.files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                start = int(requested_range.removeprefix("bytes=").split("-")[0]) if requested_range else 0
                if start >= len(data):
                    self.send_error(416)
                    return
                body = data[start:]
                self.send_response(206 if requested_range else 200)
                self.send_header("Content-Length", str(len(body)))
                if requested_range:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if server.drop_after is not None:
                    body, server.drop_after = body[: server.drop_after], None
                    self.close_connection = True
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def cached_files(cache_dir: Path) -> list[str]:
    folder = cache_dir / "checkpoints"
    return sorted(path.name for path in folder.iterdir() if not path.name.endswith(".lock")) if folder.exists() else []
