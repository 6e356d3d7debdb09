"""``python -m exil`` is the ``exil`` command."""

from exil.common.cli import main

main()
