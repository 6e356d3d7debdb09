"""Errors meant for the person running exil: printed as one clear message, without a traceback."""


class ExilError(Exception):
    """A problem the user can fix (bad config, missing data, ...); the message says how."""


class ConfigError(ExilError):
    """An invalid configuration value; the message names the valid choices."""


class DataMissing(ExilError):
    """A dataset or weight file is not on disk; the message gives the command that fetches it."""


class RunStopped(BaseException):
    """A person (Ctrl-C, Ctrl-D at the terminal teacher's prompt) or the system (SIGTERM, as SLURM sends before
    a kill) stopped the run. Not an ``Exception``: nothing between the signal and the command line may take it
    for an error. Everything answered is in the journal already; the command line says how to resume and exits
    with ``status`` (130 after an interrupt, 143 after SIGTERM, as a shell reports a process those signals end)."""

    def __init__(self, how: str, status: int):
        super().__init__(how)
        self.how, self.status = how, status
