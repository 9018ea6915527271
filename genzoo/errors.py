"""Errors a user can fix. The CLI prints each as one line and exits with status 2."""


class GenzooError(Exception):
    """Base class: the message says what went wrong and what to do next."""


class ConfigError(GenzooError):
    """A config file or a ``--set`` override names an unknown key or gives a wrong type."""


class DataError(GenzooError):
    """A dataset is neither on disk nor downloadable, or its files are unreadable."""


class CheckpointError(GenzooError):
    """A checkpoint is missing, corrupt, or carries something other than tensors and plain data."""


class TrainingDiverged(GenzooError):
    """Training kept producing a non-finite loss or gradient; the last good checkpoint is kept."""
