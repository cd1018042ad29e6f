"""Errors a task reports to its user: the message is what ``error`` of the task says."""


class TaskError(Exception):
    """Base: an expected failure with a message readable by the user who submitted the task."""


class InputError(TaskError):
    """The input cannot be processed (unreadable, corrupt, over a limit)."""


class FetchError(TaskError):
    """The input could not be downloaded."""


class CanceledError(TaskError):
    """The task was canceled while it ran."""


class StorageError(TaskError):
    """The output could not be stored. ``transient``: the store may take it when asked again (it
    answered 5xx, or nothing in time); otherwise asking again would get the same answer."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message, transient)  # every value in args: it pickles across processes
        self.transient = transient

    def __str__(self) -> str:
        return self.args[0]


class DiskFull(TaskError):
    """The data disk had no room left for a file of the task."""


class RequestRefused(Exception):
    """The service refuses a request (from a route or a Python handle call); the message says why.
    Subclasses name the reason; only the routes map them to HTTP statuses. Every value lives in
    ``args`` so the exception pickles across Ray processes."""

    def __str__(self) -> str:
        return self.args[0]


class InvalidRequest(RequestRefused):
    """A field out of bounds or a choice this build cannot serve; the message names the field."""


class ModelRefused(RequestRefused):
    """The model is unknown, unreadable, or has no replicas here."""


class CallbackRefused(RequestRefused):
    """The ``callback_url`` may not be called."""


class QueueFull(RequestRefused):
    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message, retry_after_s)
        self.retry_after_s = retry_after_s


class StreamsFull(QueueFull):
    """The ingress replica holds as many event streams open as it may: one more would take the
    room its other requests (``/health``, submissions, reads) need."""


class KeyConflict(RequestRefused):
    """The Idempotency-Key was used for a different request (``task_id``: the task it made)."""

    def __init__(self, message: str, task_id: str):
        super().__init__(message, task_id)
        self.task_id = task_id


class TaskNotFound(RequestRefused, LookupError):
    pass


class TaskFinished(RequestRefused):
    """Canceling a task that already ended (``status``: how it ended)."""

    def __init__(self, message: str, status: str):
        super().__init__(message, status)
        self.status = status


class Unauthorized(RequestRefused):
    """The API token is missing or wrong."""


class FileNotFound(RequestRefused):
    """No stored output or dashboard file under the path asked for."""
