"""The one exception the export stage raises for problems a user can fix."""


class ExportError(Exception):
    """Printed as a single line by the CLI, which then exits non-zero."""
