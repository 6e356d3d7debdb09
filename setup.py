"""Which packages exil installs: everything under the one name ``exil``. The repository keeps its folders at
the top (``common/``, ``alice/``, ``caipi/``, ``xal/``, ``exbl/``; ``conf`` links to ``common/conf``) and each is
mapped into the package here, sub-folders included (configs, page assets), so a new one needs no listing.
The project's metadata is in pyproject.toml."""

from setuptools import find_namespace_packages, setup

FOLDERS = {"exil": "exil", "exil.common": "common", "exil.alice": "alice", "exil.caipi": "caipi",
           "exil.xal": "xal", "exil.exbl": "exbl"}

packages = [name for name in FOLDERS]
for name, folder in FOLDERS.items():
    packages += [f"{name}.{sub}" for sub in find_namespace_packages(folder, exclude=["*__pycache__*"])]

setup(package_dir=FOLDERS, packages=packages)
