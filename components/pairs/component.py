from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def pairs(params: dict, data_dir: str, transcripts: Input[Dataset], groups: Output[Dataset]):
    """Isoform groups, paralog families, homology groups and the split by homology group."""
    from dataclasses import asdict
    from pathlib import Path

    from isoclr.config import Config
    from isoclr.pairs import run_pairs

    summary = run_pairs(Config.model_validate(params), Path(data_dir), Path(transcripts.path), Path(groups.path))
    groups.metadata.update(asdict(summary))
