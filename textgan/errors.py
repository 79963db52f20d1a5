"""One exception type for mistakes a user can fix."""


class UserError(Exception):
    """A mistake the user can fix; the CLI prints it as one line and exits 2."""
