"""IsoCLR: contrastive RNA encoders trained on splice isoforms and paralogs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("isoclr")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"
