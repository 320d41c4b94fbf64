"""The one exception the export stage raises for problems a user can fix."""
from ground.cli import Failure


class ExportError(Failure):
    """Printed as a single line by the CLI, which then exits non-zero."""
