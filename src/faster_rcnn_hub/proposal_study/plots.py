"""The study's plots (matplotlib, the `[study]` extra): recall against proposals per image, recall against IoU at
300 and 2000 proposals (the Faster R-CNN paper's figure 4), and time per image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import MissingDependencyError

RECALL_VS_PROPOSALS = "recall_vs_proposals.png"
RECALL_VS_IOU = "recall_vs_iou.png"
TIME_PER_IMAGE = "time_per_image.png"
# The budgets of the recall-against-IoU panels: the paper's RPN at test time, and its selective search.
IOU_PANEL_BUDGETS = (300, 2000)
_STYLES = {
    "rpn": {"color": "tab:red", "marker": "o"},
    "selective_search_fast": {"color": "tab:blue", "marker": "s"},
    "selective_search_quality": {"color": "tab:green", "marker": "^"},
}


def require_matplotlib() -> Any:
    """`matplotlib.pyplot` on a file-only backend, or a clear error naming the extra."""
    try:
        import matplotlib
    except ImportError as error:
        raise MissingDependencyError(
            "proposals-study draws its plots with matplotlib: pip install 'faster-rcnn-hub[study]' "
            "(matplotlib==3.11.2)."
        ) from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def _recall_vs_proposals(pyplot: Any, methods: dict[str, Any], path: Path) -> None:
    figure, axes = pyplot.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for axis, iou in zip(axes, (0.5, 0.7)):
        for name, method in methods.items():
            column = method["iou_thresholds"].index(iou)
            axis.plot(method["budgets"], [row[column] for row in method["recall"]], label=method["label"],
                      **_STYLES.get(name, {}))  # fmt: skip
        axis.set_xscale("log")
        axis.set_xticks(methods[next(iter(methods))]["budgets"])
        axis.set_xticklabels([str(budget) for budget in methods[next(iter(methods))]["budgets"]])
        axis.set_title(f"IoU {iou}")
        axis.set_xlabel("proposals per image")
        axis.set_ylim(0, 1.02)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("recall")
    axes[0].legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def _recall_vs_iou(pyplot: Any, methods: dict[str, Any], path: Path) -> None:
    figure, axes = pyplot.subplots(1, len(IOU_PANEL_BUDGETS), figsize=(9, 3.6), sharey=True)
    for axis, budget in zip(axes, IOU_PANEL_BUDGETS):
        for name, method in methods.items():
            row = method["recall"][method["budgets"].index(budget)]
            axis.plot(method["iou_thresholds"], row, label=method["label"], **_STYLES.get(name, {}))
        axis.set_title(f"{budget} proposals per image")
        axis.set_xlabel("IoU")
        axis.set_ylim(0, 1.02)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("recall")
    axes[0].legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def _time_per_image(pyplot: Any, result: dict[str, Any], path: Path) -> None:
    methods = result["proposals"]["methods"]
    bars = [(method["label"], method["ms_per_image"], _STYLES[name]["color"]) for name, method in methods.items()]
    if "rpn_only_ms_per_image" in methods.get("rpn", {}):
        bars.insert(1, ("RPN alone (shared features)", methods["rpn"]["rpn_only_ms_per_image"], "salmon"))
    detectors = result.get("detection", {}).get("detectors", {})
    panels = 2 if detectors else 1
    figure, axes = pyplot.subplots(1, panels, figsize=(9 if panels == 2 else 5.5, 3.2), squeeze=False)
    axis = axes[0][0]
    axis.barh([label for label, _, _ in bars], [value for _, value, _ in bars], color=[color for _, _, color in bars])
    axis.set_xscale("log")
    axis.invert_yaxis()
    axis.set_xlabel("ms per image (log scale)")
    axis.set_title("proposals")
    for position, (_, value, _) in enumerate(bars):
        axis.text(value, position, f" {value:.0f}", va="center", fontsize=8)
    if detectors:
        axis = axes[0][1]
        names = [("faster_rcnn", "Faster R-CNN (RPN)"), ("fast_rcnn", "Fast R-CNN (selective search)")]
        present = [(key, label) for key, label in names if key in detectors and "network_ms_per_image" in detectors[key]]
        labels = [label for _, label in present]
        external = [detectors[key]["external_proposal_ms_per_image"] for key, _ in present]
        network = [detectors[key]["network_ms_per_image"] for key, _ in present]
        axis.barh(labels, external, color="tab:blue", label="selective search")
        axis.barh(labels, network, left=external, color="tab:gray", label="network (RPN included)")
        axis.invert_yaxis()
        axis.set_xlabel("ms per image, end to end")
        axis.set_title("detection")
        axis.legend(fontsize=8, loc="upper right")
        for position, (first, second) in enumerate(zip(external, network)):
            axis.text(first + second, position, f" {first + second:.0f}", va="center", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def draw_plots(result: dict[str, Any], output_dir: Path) -> list[Path]:
    """Write the three PNGs into `output_dir`; returns their paths."""
    pyplot = require_matplotlib()
    methods = result["proposals"]["methods"]
    paths = [output_dir / RECALL_VS_PROPOSALS, output_dir / RECALL_VS_IOU, output_dir / TIME_PER_IMAGE]
    _recall_vs_proposals(pyplot, methods, paths[0])
    _recall_vs_iou(pyplot, methods, paths[1])
    _time_per_image(pyplot, result, paths[2])
    return paths


__all__ = ["RECALL_VS_IOU", "RECALL_VS_PROPOSALS", "TIME_PER_IMAGE", "draw_plots", "require_matplotlib"]
