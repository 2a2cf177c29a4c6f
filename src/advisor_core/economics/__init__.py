"""advisor_core.economics."""
