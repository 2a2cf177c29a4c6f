"""advisor_core.models."""
