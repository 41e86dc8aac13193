"""refsnn package."""
