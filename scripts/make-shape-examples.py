"""Write the demo's synthetic-shape examples: images 1, 4 and 7 of the default model's held-out set (seed
1000003, never trained on), as PNG files in src/faster_rcnn_hub/demo/examples/shapes/.

Usage: python scripts/make-shape-examples.py
"""

from pathlib import Path

from faster_rcnn_hub.data.synthetic import generate_image

HELD_OUT_SEED = 1000003
INDICES = (1, 4, 7)
OUTPUT = Path(__file__).resolve().parents[1] / "src" / "faster_rcnn_hub" / "demo" / "examples" / "shapes"

if __name__ == "__main__":
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for index in INDICES:
        path = OUTPUT / f"shapes_{index}.png"
        generate_image(HELD_OUT_SEED, index).image.save(path, optimize=True)
        print(path)
