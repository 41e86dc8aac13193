"""Readers of the paper's datasets in their on-disk formats, encodings, and procedural tasks."""
