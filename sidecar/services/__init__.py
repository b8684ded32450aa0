"""Business operations. Services use the caller's connection and never commit."""
