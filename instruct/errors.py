"""The one exception type a user sees: a problem they can fix, stated in one line."""


class InstructError(Exception):
    """A user-fixable problem (bad path, bad config value, too many bad lines).

    ``run.py`` prints it as a single ``error: …`` line and exits with status 2, without a traceback.
    """
