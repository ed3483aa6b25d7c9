"""Package discovery plus the mapping of the top-level ``embedded/`` folder (the embedded table) into the wheel as
``robustbench201._data``.

Everything else lives in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["robustbench201", "robustbench201.*"]), "robustbench201._data"],
    package_dir={"robustbench201._data": "embedded"},
)
