"""HTTP blueprints: one per resource or integration."""
