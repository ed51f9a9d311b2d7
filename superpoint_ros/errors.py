"""Errors a user can cause. The command line and the nodes print these as one line, never a
traceback; everything else is a bug and keeps its traceback."""


class SuperPointError(Exception):
    """Base class of errors caused by input, configuration or environment (not by a bug)."""


class ConfigError(SuperPointError, ValueError):
    """A configuration value or command-line option that cannot be used."""


class BackendUnavailable(SuperPointError):
    """The chosen inference backend is not installed or cannot run here (message says why)."""


class InputError(SuperPointError, ValueError):
    """An image or file that cannot be processed (empty, wrong dtype, unreadable...)."""


class ImageReadError(InputError):
    """An encoded image (file or compressed bytes) that is refused: unknown format, damaged,
    truncated or larger than the pixel limit (message says which)."""


class ImageConversionError(InputError):
    """An image message that cannot be converted (encoding, size, step or data length)."""


class PointCloudSchemaError(InputError):
    """A PointCloud2 whose fields or sizes do not follow the documented features/matches schema."""
