"""Errors a task reports to its user: the message is what ``error`` of the task says."""


class TaskError(Exception):
    """Base: an expected failure with a message readable by the user who submitted the task."""


class InputError(TaskError):
    """The input cannot be processed (unreadable, corrupt, over a limit)."""


class FetchError(TaskError):
    """The input could not be downloaded."""


class CanceledError(TaskError):
    """The task was canceled while it ran."""
