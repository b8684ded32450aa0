"""Bulk imports and exports from files: pure parsing and validation, no SQL, no CLI."""
