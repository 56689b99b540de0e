"""Project-wide test set-up."""

# Triton's bundled LLVM and Mesa's llvmpipe (VTK's software renderer) clash:
# importing triton after an OpenGL context exists segfaults the process, and
# torch imports triton lazily (e.g. when an optimizer is created). The suite
# renders and trains in one process, so triton is loaded before any rendering.
import torch._dynamo  # noqa: F401,E402
