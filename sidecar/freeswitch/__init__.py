"""Pure FreeSWITCH wire-format adapters (mod_xml_cdr, mod_xml_curl, API command strings)."""
