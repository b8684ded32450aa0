"""Mid-call control over the FreeSWITCH event socket (the ``apolo control`` process)."""
