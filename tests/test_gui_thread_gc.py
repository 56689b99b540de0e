"""Garbage cycles are freed on the GUI thread, never on a worker that happens to allocate."""

from __future__ import annotations

import gc
import threading

import pytest

from vaereg_studio.gui_thread_gc import GuiThreadCollector

# Not marked "gui": the GUI tests' own collector (conftest) must not hide this one.
CYCLES = 3 * gc.get_threshold()[0]


class Cycle:
    """A reference cycle that records the thread it is freed on."""

    freed_on: list[str] = []

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        Cycle.freed_on.append(threading.current_thread().name)


def test_cycles_made_on_a_worker_are_freed_on_the_gui_thread(qtbot):
    collector = GuiThreadCollector(interval_ms=50)
    collector.start()
    try:
        assert not gc.isenabled()
        Cycle.freed_on.clear()

        def worker():
            # More cycles than the youngest generation's threshold: with automatic
            # collection on, some would be freed here, on the worker.
            for _ in range(CYCLES):
                Cycle()

        thread = threading.Thread(target=worker, name="worker")
        thread.start()
        thread.join()
        assert Cycle.freed_on == []
        qtbot.waitUntil(lambda: len(Cycle.freed_on) == CYCLES, timeout=5_000)
        assert set(Cycle.freed_on) == {threading.main_thread().name}
    finally:
        collector.stop()
    assert gc.isenabled()


@pytest.mark.gui
def test_the_app_collects_on_the_gui_thread(qtbot, tmp_path):
    from app_helpers import private_settings
    from PySide6.QtWidgets import QApplication

    from vaereg_studio.__main__ import launch

    window = launch([], settings=private_settings(tmp_path))
    qtbot.addWidget(window)
    collectors = QApplication.instance().findChildren(GuiThreadCollector)
    assert len(collectors) == 1 and collectors[0].is_active
