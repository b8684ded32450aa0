"""Channel variables -> :class:`~sidecar.identity.CallerFacts`, for every route that asks who
is calling: the hook's ``variables`` (``/v1/authorize``), the ``variable_*`` fields of a
mod_xml_curl request and the ``<variables>`` of a mod_xml_cdr document.

Who sets each variable (FreeSWITCH 1.10 mod_sofia, ``sofia_handle_sip_i_invite`` and
``sofia_reg_parse_auth``):

* ``sip_network_ip`` / ``sip_received_ip``: the source address of the packet that carried the
  INVITE (``sofia_glue_get_addr``), not anything written inside it. Behind a SIP proxy it is
  the proxy's address.
* ``sip_authorized=true``: the INVITE passed digest auth, an ``apply-inbound-acl`` that
  authenticates, or ``blind-auth`` (which checks nothing: never use it with Apolo).
* ``sip_auth_username``, ``sip_auth_realm``, ``domain_name``, and the directory user's
  ``<variables>`` (``accountcode`` among them): added only after digest auth answered
  ``AUTH_OK``; ``domain_name`` is the directory domain the user was found in.
* ``accountcode`` can also come from the dialplan, from a user an ACL token names, or from a
  gateway's inbound variables; the identity rule trusts it on authenticated calls only.
* ``sip_h_<name>``: every ``X-``/``P-`` header of the INVITE, verbatim: the caller's.
* ``caller_id_number``: From, P-Asserted-Identity or Remote-Party-ID: the caller's.
"""

from collections.abc import Mapping
from typing import Final

from sidecar.freeswitch import channel_vars as cv
from sidecar.identity import CallerFacts

# What the hooks send and the routes read; nothing else counts.
IDENTITY_VARIABLES: Final = (
    cv.ACCOUNTCODE,
    cv.SIP_AUTHORIZED,
    cv.SIP_AUTH_USERNAME,
    cv.SIP_AUTH_REALM,
    cv.DOMAIN_NAME,
    cv.SIP_NETWORK_IP,
    cv.SIP_RECEIVED_IP,
    cv.SIP_H_X_BILLING_ACCOUNT,
)
_TRUE: Final = "true"  # what mod_sofia writes into sip_authorized


def _value(variables: Mapping[str, str], name: str) -> str | None:
    value = variables.get(name)
    return value.strip() or None if isinstance(value, str) else None


def caller_facts(variables: Mapping[str, str], caller_id: str) -> CallerFacts:
    """The facts in ``variables`` (channel variable name -> value, decoded once)."""

    def first(*names: str) -> str | None:
        for name in names:
            value = _value(variables, name)
            if value:
                return value
        return None

    return CallerFacts(
        caller_id=caller_id.strip(),
        accountcode=first(cv.ACCOUNTCODE),
        authenticated=(_value(variables, cv.SIP_AUTHORIZED) or "").lower() == _TRUE,
        sip_user=first(cv.SIP_AUTH_USERNAME),
        sip_domain=first(cv.DOMAIN_NAME, cv.SIP_AUTH_REALM),
        network_ip=first(cv.SIP_NETWORK_IP, cv.SIP_RECEIVED_IP),
        billing_header=first(cv.SIP_H_X_BILLING_ACCOUNT),
    )
