"""Errors meant for the person running exil: printed as one clear message, without a traceback."""


class ExilError(Exception):
    """A problem the user can fix (bad config, missing data, ...); the message says how."""


class ConfigError(ExilError):
    """An invalid configuration value; the message names the valid choices."""


class DataMissing(ExilError):
    """A dataset or weight file is not on disk; the message gives the command that fetches it."""
