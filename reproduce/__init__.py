"""Paper reproductions: ``make reproduce-<name>`` runs ``python -m reproduce.<name>`` and prints a table."""
