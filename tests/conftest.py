"""Project-wide test set-up."""

# Triton's bundled LLVM and Mesa's llvmpipe (VTK's software renderer) clash:
# importing triton after an OpenGL context exists segfaults the process, and
# torch imports triton lazily (e.g. when an optimizer is created). The suite
# renders and trains in one process, so triton is loaded before any rendering.
import torch._dynamo  # noqa: F401,I001

import gc
import sys

import pytest


@pytest.fixture(autouse=True)
def gui_thread_gc(request):
    """In GUI tests, collect garbage on the GUI thread only, as the app does."""
    if request.node.get_closest_marker("gui") is None:
        yield
        return
    request.getfixturevalue("qapp")
    from vaereg_studio.gui_thread_gc import GuiThreadCollector

    collector = GuiThreadCollector()
    collector.start()
    yield
    collector.stop()  # after the test's widgets are closed; the teardown hook collects what they left
    collector.deleteLater()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item):
    """Delete the test's closed windows and collect their cycles now, on the main thread.

    pytest-qt closes a test's widgets with ``deleteLater``, which otherwise runs
    inside the *next* test's event loop, and Python's cyclic collector may run
    on a worker thread; a render window must be torn down on the GUI thread.
    """
    result = yield
    qt_core = sys.modules.get("PySide6.QtCore")
    if qt_core is not None and qt_core.QCoreApplication.instance() is not None:
        qt_core.QCoreApplication.sendPostedEvents(None, qt_core.QEvent.Type.DeferredDelete)
    gc.collect()
    return result
