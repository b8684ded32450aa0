"""Data access, one small module per aggregate. All SQL outside migrations lives here."""
