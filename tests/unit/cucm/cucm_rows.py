"""Real CUCM fixture rows, and CUCM-style files rebuilt from them (for generated cases).

Generated files start from real rows and change only the named columns, so every other
value (and the layout) stays what CUCM wrote.
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from pathlib import Path

from fixtures_path import CUCM_FIXTURES

SIETE_CDR = CUCM_FIXTURES / "sieteunoseis-cisco-cucm-cdr" / "cdr.txt"
SIETE_CMR = CUCM_FIXTURES / "sieteunoseis-cisco-cucm-cdr" / "cmr.txt"
DAMHAU_CDR = CUCM_FIXTURES / "damhau-cucm-cdr" / "cdr_StandAloneCluster_02_201510091036_254831"
DAMHAU_CMR = CUCM_FIXTURES / "damhau-cucm-cdr" / "cmr_StandAloneCluster_02_201510091036_254831"
# the sieteunoseis files were renamed by their uploader: names in CUCM's pattern for them
SIETE_CDR_NAME = "cdr_cucmOHSUtest_02_202504181633_25447"
SIETE_CMR_NAME = "cmr_cucmOHSUtest_02_202504181633_25447"


@dataclass
class Table:
    header: list[str]
    types: list[str]
    rows: list[list[str]]

    def index(self, name: str) -> int:
        lowered = [h.lower() for h in self.header]
        return lowered.index(name.lower())

    def value(self, row: list[str], name: str) -> str:
        return row[self.index(name)]

    def changed(self, row: list[str], **changes: object) -> list[str]:
        new = list(row)
        for name, value in changes.items():
            new[self.index(name)] = str(value)
        return new

    def fresh(self, row: list[str], **changes: object) -> list[str]:
        """A copy of ``row`` under a new pkid, with ``changes``."""
        return self.changed(row, pkid=uuid.uuid4(), **changes)

    def to_bytes(self, rows: list[list[str]] | None = None, quoted: bool = True) -> bytes:
        """CUCM style: quoted names, unquoted types, quoted VARCHAR/UUID values."""
        out = io.StringIO()
        names = [f'"{h}"' if quoted else h for h in self.header]
        lines = [",".join(names), ",".join(self.types)]
        for row in self.rows if rows is None else rows:
            cells = []
            for type_, value in zip(self.types, row, strict=False):
                textual = not type_.upper().startswith("INT")
                cells.append(f'"{value}"' if quoted and textual else value)
            lines.append(",".join(cells))
        out.write("\n".join(lines))
        return out.getvalue().encode("utf-8")


def read_table(path: Path) -> Table:
    rows = list(csv.reader(io.StringIO(path.read_text("utf-8"), newline="")))
    return Table(rows[0], rows[1], rows[2:])


def siete() -> Table:
    return read_table(SIETE_CDR)


def damhau() -> Table:
    return read_table(DAMHAU_CDR)


def answered_row(table: Table) -> list[str]:
    """The fixture's answered call (dateTimeConnect set, longest duration first)."""
    answered = [r for r in table.rows if table.value(r, "dateTimeConnect") not in ("", "0")]
    return max(answered, key=lambda r: int(table.value(r, "duration")))


def fac_chain(
    table: Table, code: str, description: str, gateway: str, called: str, duration: int
) -> list[list[str]]:
    """A FAC call chain from the fixture's answered row: the zero-duration setup record
    carrying the FAC, and the talk-time record of the same globalCallID without it."""
    base = answered_row(table)
    origination = int(table.value(base, "dateTimeOrigination"))
    connect = int(table.value(base, "dateTimeConnect"))
    setup = table.fresh(
        base,
        authorizationCodeValue=code,
        authCodeDescription=description,
        authorizationLevel=1,
        dateTimeConnect=0,
        dateTimeDisconnect=origination,
        duration=0,
        destDeviceName=gateway,
        finalCalledPartyNumber=called,
        outpulsedCalledPartyNumber=called,
    )
    talk = table.fresh(
        base,
        origLegCallIdentifier=int(table.value(base, "origLegCallIdentifier")) + 7,
        dateTimeOrigination=origination + 1,
        dateTimeDisconnect=connect + duration,
        duration=duration,
        destDeviceName=gateway,
        finalCalledPartyNumber=called,
        outpulsedCalledPartyNumber=called,
    )
    return [setup, talk]
