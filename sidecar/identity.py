"""Who pays for a call: the one identity rule, as a pure function of the caller's facts.

The paying account comes only from facts the caller cannot set, in this order:

1. ``accountcode``: the directory's variable of a user FreeSWITCH authenticated. It counts
   only on an authenticated call (``sip_authorized``): on any other call it can only come from
   the dialplan or from a gateway's inbound variables, and mod_sofia picks that gateway from
   the ``gw=`` parameter of the caller's own Request-URI.
2. The SIP user FreeSWITCH authenticated by digest (``sip_auth_username`` at its directory
   domain), mapped to an account by the operator.
3. A trunk: the address the INVITE came from (``sip_network_ip``, the packet's source) lies in
   the CIDRs of a trunk the operator declared. The trunk's own account pays, or, only where the
   operator trusted that source, the account its billing header or its caller ID names.

Everything else in an INVITE is the caller's to write: the caller ID (From, P-Asserted-Identity,
Remote-Party-ID) and every ``X-``/``P-`` header (``sip_h_*``), ``X-Billing-Account`` included.
Such a value decides who pays only through a trunk that trusts it.

:func:`identify` turns the facts into candidates, best first; the first candidate that names
an existing account pays (a missing one gives way to the next, which is as unforgeable or as
explicitly trusted). No candidate at all means the call is refused as ``unidentified_caller``;
see :func:`refusal` for candidates that all name nothing.
This module holds no I/O: the adapters build :class:`CallerFacts`, the services look the
candidates up.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

Rule = Literal["accountcode", "sip_user", "trunk", "trunk_billing_header", "trunk_caller_id"]
# what a candidate's key is: an account number, a caller ID (ANI), or user@domain
LookupKind = Literal["number", "ani", "sip_user"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

UNIDENTIFIED: Final = "unidentified_caller"
ACCOUNT_NOT_FOUND: Final = "account_not_found"
MAX_KEY_LENGTH: Final = 128
# user@domain as an operator maps it (sql/008_identity.sql checks the same shape)
_SIP_USER_RE: Final = re.compile(r"([^@\s\x00-\x1f\x7f]{1,64})@([A-Za-z0-9.:_-]{1,190})")


@dataclass(frozen=True)
class CallerFacts:
    """What FreeSWITCH knows about who is calling; each field says who could have written it."""

    caller_id: str = ""  # caller_id_number: the caller's (From / PAI / RPID)
    accountcode: str | None = None  # the directory user's variable (see ``authenticated``)
    authenticated: bool = False  # sip_authorized=true: digest, ACL or (misconfigured) blind auth
    sip_user: str | None = None  # sip_auth_username: set only once digest auth succeeded
    sip_domain: str | None = None  # the directory domain of that user (domain_name / realm)
    network_ip: str | None = None  # sip_network_ip: the source address of the INVITE
    billing_header: str | None = None  # sip_h_X-Billing-Account: the caller's

    @property
    def sip_user_key(self) -> str | None:
        """``user@domain`` of the digest-authenticated user (domain in lower case), or None."""
        if not (self.authenticated and self.sip_user and self.sip_domain):
            return None
        return sip_user_key(self.sip_user, self.sip_domain)


@dataclass(frozen=True)
class Trunk:
    name: str
    networks: tuple[Network, ...]
    account: str | None  # the number of the account the trunk bills, if any
    trust_caller_id: bool = False
    trust_billing_header: bool = False

    def carries(self, address: Address) -> bool:
        return any(address.version == n.version and address in n for n in self.networks)


@dataclass(frozen=True)
class Candidate:
    """An account that may pay: look ``key`` up as ``kind``; ``rule`` says why it counts."""

    rule: Rule
    kind: LookupKind
    key: str
    trunk: str | None = None

    def describe(self) -> str:
        where = f" of trunk {self.trunk}" if self.trunk else ""
        return f"{self.rule.replace('_', ' ')}{where}: {self.key}"


def sip_user_key(user: str, domain: str) -> str:
    return f"{user}@{domain.lower()}"


def parse_sip_user(text: str) -> str | None:
    """``user@domain`` in the form the identity rule compares (domain in lower case), or
    None when ``text`` is not one."""
    match = _SIP_USER_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    return sip_user_key(match.group(1), match.group(2)) if match else None


def parse_address(text: str | None) -> Address | None:
    """An IP address (IPv4-mapped IPv6 as IPv4); None for anything else."""
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def trunk_of(address: str | None, trunks: Sequence[Trunk]) -> Trunk | None:
    """The trunk whose CIDRs hold ``address`` (trunks never overlap: at most one does)."""
    parsed = parse_address(address)
    if parsed is None:
        return None
    for trunk in trunks:
        if trunk.carries(parsed):
            return trunk
    return None


def _usable(value: str | None) -> str | None:
    value = (value or "").strip()
    return value if value and len(value) <= MAX_KEY_LENGTH else None


def identify(
    facts: CallerFacts, trunks: Sequence[Trunk], caller_forms: Sequence[str] = ()
) -> tuple[Candidate, ...]:
    """The accounts that may pay for the call, best first (empty: nobody identifies it).

    ``caller_forms``: other forms of the caller ID that the source's normalization rules turn
    into the same E.164 number (``+15034401001`` for an ANI held as ``5034401001``); they count
    only where the caller ID itself does, on a trunk that trusts it, after it."""
    found: list[Candidate] = []
    accountcode = _usable(facts.accountcode)
    if facts.authenticated and accountcode:
        found.append(Candidate("accountcode", "number", accountcode))
    sip_user = _usable(facts.sip_user_key)
    if sip_user:
        found.append(Candidate("sip_user", "sip_user", sip_user))
    trunk = trunk_of(facts.network_ip, trunks)
    if trunk is not None:
        header, caller_id = _usable(facts.billing_header), _usable(facts.caller_id)
        if trunk.trust_billing_header and header:
            found.append(Candidate("trunk_billing_header", "number", header, trunk.name))
        if trunk.trust_caller_id and caller_id:
            for form in dict.fromkeys((caller_id, *caller_forms)):
                if _usable(form):
                    found.append(Candidate("trunk_caller_id", "ani", form, trunk.name))
        if trunk.account:
            found.append(Candidate("trunk", "number", trunk.account, trunk.name))
    return tuple(found)


def refusal(candidates: Sequence[Candidate]) -> str:
    """Why nobody pays when none of ``candidates`` names an existing account.

    ``account_not_found``: an accountcode, a trusted header or caller ID, or a trunk's account
    names an account that does not exist. ``unidentified_caller``: nothing did; a SIP user
    nobody mapped identifies no payer, like an address no trunk covers.
    """
    named = any(c.kind != "sip_user" for c in candidates)
    return ACCOUNT_NOT_FOUND if named else UNIDENTIFIED
