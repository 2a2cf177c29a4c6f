"""advisor_core.data."""
