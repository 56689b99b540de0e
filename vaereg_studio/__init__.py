"""VAEReg Studio: the PySide6 desktop application over :mod:`vaereg_core`.

A thin Qt layer in the manner of napari: every computation (I/O, surfaces,
descriptors, physics, the model) lives in ``vaereg_core``; this package only
arranges windows, runs that work on worker threads and shows the results.
"""

__version__ = "0.1.0"

APP_NAME = "VAEReg Studio"
ORGANIZATION = "VAEReg"
