"""Data sets the package makes itself: synthetic shapes with exact boxes (`synthetic.py`), on which the bundled
default model is trained and evaluated."""
