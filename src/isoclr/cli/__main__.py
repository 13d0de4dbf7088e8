"""`python -m isoclr.cli` (what torchrun launches: `torchrun -m isoclr.cli train ...`)."""

from isoclr.cli import app

app()
