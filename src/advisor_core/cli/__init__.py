"""advisor_core.cli.main."""
