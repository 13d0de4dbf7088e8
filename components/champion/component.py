from kfp import dsl

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def champion(registry_uri: str) -> str:
    """The registry's champion version now ("" when there is none).

    Never cached: it is the one task that reads the registry's moving pointer, and it hands the
    version to the probe as an input, so the probe task can be cached safely.
    """
    from isoclr.registry import champion as current

    return current(registry_uri) or ""
