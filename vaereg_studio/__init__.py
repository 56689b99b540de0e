"""VAEReg Studio: the PySide6 desktop application over :mod:`vaereg_core`.

A thin Qt layer in the manner of napari: every computation (I/O, surfaces,
descriptors, physics, the model) lives in ``vaereg_core``; this package only
arranges windows, runs that work on worker threads and shows the results.
"""

import sys

# Triton's bundled LLVM and Mesa's llvmpipe (VTK's software renderer) clash:
# importing triton once an OpenGL context exists segfaults the process, and
# torch imports it lazily. The app only runs inference, which never needs
# triton, so it is kept out before anything renders.
sys.modules.setdefault("triton", None)

__version__ = "0.1.0"

APP_NAME = "VAEReg Studio"
ORGANIZATION = "VAEReg"
