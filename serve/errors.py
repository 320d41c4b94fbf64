"""The one error the server launcher explains in one line."""
from ground.cli import Failure


class ServerError(Failure, RuntimeError):
    """The server could not be started or did not become ready."""
