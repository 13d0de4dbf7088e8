"""Kubeflow Pipelines components: thin adapters over the `isoclr` library.

Each component is a lightweight Python component whose body imports the
package installed in the project image and calls one library function.
"""

# The one image every component runs in; built from the repository's Dockerfile.
# Bump together with the package version in pyproject.toml.
IMAGE = "ghcr.io/isoclr/isoclr:0.1.0"
