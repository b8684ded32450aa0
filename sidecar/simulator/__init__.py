"""Plays calls against a running sidecar the way FreeSWITCH would (``apolo simulate``)."""
