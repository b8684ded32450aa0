"""The operator CLI, ``apolo``."""
