"""IsoCLR: contrastive RNA encoders trained on splice isoforms and paralogs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("isoclr")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

# `from isoclr import Encoder` without loading torch on `import isoclr` (the CLI's --help stays instant).
_LAZY = {"Encoder": "isoclr.embed", "Embeddings": "isoclr.embed"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'isoclr' has no attribute {name!r}")
