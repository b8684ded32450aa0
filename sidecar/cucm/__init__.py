"""Cisco CUCM flat-file adapters: file names, CDR/CMR parsing, typed values, billing rules.

Pure functions only: nothing here imports Flask, SQL or Redis.
"""
