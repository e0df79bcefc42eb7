"""Stage: deploy."""
