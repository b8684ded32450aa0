"""Seeded bench data: a rate plan of N prefixes, a 15-digit call mix, a bench database.

Everything is derived from a seed, so two runs with the same seed use the same plan and
the same numbers. Prefixes are real country codes extended with random digits, lengths
1-12, as wholesale decks look (many long prefixes under a few hundred country codes).
"""

from __future__ import annotations

import csv
import random
from decimal import Decimal
from pathlib import Path

import psycopg
from psycopg import sql

from sidecar.migrations import upgrade

# ITU country codes (a representative subset, all lengths 1-3)
COUNTRY_CODES = (
    "1",
    "7",
    "20",
    "27",
    "30",
    "31",
    "32",
    "33",
    "34",
    "36",
    "39",
    "40",
    "41",
    "43",
    "44",
    "45",
    "46",
    "47",
    "48",
    "49",
    "51",
    "52",
    "53",
    "54",
    "55",
    "56",
    "57",
    "58",
    "60",
    "61",
    "62",
    "63",
    "64",
    "65",
    "66",
    "81",
    "82",
    "84",
    "86",
    "90",
    "91",
    "92",
    "93",
    "94",
    "95",
    "98",
    "211",
    "212",
    "213",
    "216",
    "218",
    "220",
    "221",
    "233",
    "234",
    "254",
    "255",
    "256",
    "260",
    "263",
    "351",
    "352",
    "353",
    "354",
    "355",
    "356",
    "357",
    "358",
    "359",
    "370",
    "371",
    "372",
    "380",
    "381",
    "385",
    "386",
    "420",
    "421",
    "502",
    "503",
    "504",
    "505",
    "506",
    "507",
    "591",
    "593",
    "595",
    "598",
    "852",
    "853",
    "855",
    "880",
    "886",
    "960",
    "961",
    "962",
    "963",
    "964",
    "965",
    "966",
    "971",
    "972",
    "973",
    "974",
    "975",
    "976",
    "977",
    "992",
    "994",
    "995",
)
NUMBER_DIGITS = 15
EFFECTIVE_START = "2020-01-01T00:00:00+00:00"


def prefixes(count: int, seed: int = 1) -> list[str]:
    """``count`` distinct prefixes: every country code, then random extensions of them."""
    rng = random.Random(f"prefixes:{seed}")
    found = dict.fromkeys(COUNTRY_CODES[:count])
    while len(found) < count:
        cc = rng.choice(COUNTRY_CODES)
        length = rng.randint(len(cc) + 1, 12)
        found[cc + "".join(rng.choices("0123456789", k=length - len(cc)))] = None
    out = list(found)
    rng.shuffle(out)
    return out


def rate_of(prefix: str) -> Decimal:
    """A per-minute price that depends only on the prefix (0.001000-0.999000)."""
    return Decimal(1 + (int(prefix[:9]) * 7919) % 999) / 1000


def name_of(prefix: str) -> str:
    """Destination names as decks have them: one per country code and next two digits
    (about 10,000 distinct names for a million prefixes)."""
    cc = next(prefix[:n] for n in (3, 2, 1) if prefix[:n] in _CODES)
    return f"dest {cc}-{prefix[len(cc) : len(cc) + 2]}"


_CODES = frozenset(COUNTRY_CODES)


def write_rate_csv(path: Path, plan_prefixes: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(
            [
                "prefix",
                "name",
                "rate_per_minute",
                "connection_fee",
                "initial_increment",
                "increment",
                "effective_start",
            ]
        )
        for p in plan_prefixes:
            out.writerow([p, name_of(p), rate_of(p), "0", 1, 1, EFFECTIVE_START])


def call_numbers(count: int, plan_prefixes: list[str], seed: int = 1) -> list[str]:
    """15-digit numbers: 95 % start with a plan prefix, 5 % are random (mostly unrated)."""
    rng = random.Random(f"calls:{seed}")
    out = []
    for _ in range(count):
        head = rng.choice(plan_prefixes) if rng.random() < 0.95 else str(rng.randint(1, 9))
        out.append(head + "".join(rng.choices("0123456789", k=NUMBER_DIGITS - len(head))))
    return out


def account_numbers(count: int) -> list[str]:
    return [f"9{n:07d}" for n in range(1, count + 1)]


def with_db(url: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo("", **info)


def fresh_database(server_url: str, name: str) -> str:
    """Drop and recreate database ``name`` on the server of ``server_url``, migrated."""
    if name in ("apolo", "postgres", "template0", "template1") or not name.startswith("apolo_b"):
        raise ValueError(f"refusing to recreate database {name!r} (bench names start apolo_b)")
    with psycopg.connect(with_db(server_url, "postgres"), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_db(server_url, name)
    with psycopg.connect(url) as conn:
        upgrade(conn)
    return url


# The load generators play calls from a PBX at this address; its trunk bills the account
# whose ANI is the caller ID (the identity rule's trunk path, as upgraded installs use it).
PBX_TRUNK = "bench-pbx"
PBX_CIDR = "192.0.2.0/24"
PBX_IDENTITY = {"sip_network_ip": "192.0.2.10"}


def create_accounts(url: str, plan: str, numbers: list[str], balance: Decimal) -> None:
    """Prepaid accounts on ``plan`` (ANI = number), created the way the CLI creates them,
    and the trunk of the PBX their calls come from."""
    from psycopg.rows import dict_row

    from sidecar.repo import trunks as trunks_repo
    from sidecar.services.accounts import create_account
    from sidecar.services.trunks import create_trunk

    with psycopg.connect(url, row_factory=dict_row) as conn:
        for number in numbers:
            create_account(
                conn,
                actor="bench",
                number=number,
                plan=plan,
                type_="prepaid",
                balance=balance,
                anis=[number],
            )
        if trunks_repo.get(conn, PBX_TRUNK) is None:
            create_trunk(conn, actor="bench", name=PBX_TRUNK, cidrs=[PBX_CIDR],
                         trust_caller_id=True)  # fmt: skip
        conn.commit()
