"""The one base class of the errors fastrnn raises for what a user gave it."""


class FastrnnError(Exception):
    """A file, text, checkpoint, run or option fastrnn cannot use. The message is one line,
    meant for the user; the command line prints it after "Error: " and exits with 1."""


class CheckpointError(FastrnnError, ValueError):
    """A checkpoint or model file that cannot be used; the message is meant for the user."""
