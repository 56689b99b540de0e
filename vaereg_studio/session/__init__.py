"""The app's design session, below every widget (Qt-free): state with events, one task runner, save and reopen.

Widgets receive a :class:`DesignSession` (it carries its :class:`TaskRunner`),
observe ``session.events`` and call the session; nothing here imports Qt.
"""

from vaereg_studio.session.session import DesignSession, SessionEvents
from vaereg_studio.session.tasks import Task, TaskRunner

__all__ = ["DesignSession", "SessionEvents", "Task", "TaskRunner"]
