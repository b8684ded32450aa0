"""Number normalization rules (pure): the CUCM and FreeSWITCH cases of issue #13."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.rating import NumberRule, apply_rules, normalize_number, received_forms

# a CUCM cluster in the US: access code 9, international prefix 011, national 10 digits,
# callers written as +E.164 or as the 10-digit DID
CUCM_CALLEE = (
    NumberRule(strip="9011", min_length=8, max_length=20),
    NumberRule(strip="011", min_length=7, max_length=19),
    NumberRule(strip="91", add="1", min_length=12, max_length=12),  # 9 + 1 + 10 digits
    NumberRule(strip="9", add="1", min_length=11, max_length=11),  # 9 + 10 digits
    NumberRule(strip="", add="1", min_length=10, max_length=10),  # 10 digits
)
CUCM_CALLER = (
    NumberRule(strip="+"),
    NumberRule(strip="", add="1", min_length=10, max_length=10),
)
# a FreeSWITCH switch in Mexico: users dial 10-digit national numbers
FS_MX_CALLEE = (
    NumberRule(strip="00", min_length=8),  # international with the 00 prefix
    NumberRule(add="52", min_length=10, max_length=10),
)


@pytest.mark.parametrize(
    ("received", "e164"),
    [
        ("9011442079460000", "442079460000"),  # 9 + 011 + UK
        ("011442079460000", "442079460000"),  # 011 + UK, no access code
        ("915034401001", "15034401001"),  # 9 + 1 + national
        ("95034401001", "15034401001"),  # 9 + national
        ("5034401001", "15034401001"),  # national, no access code
        ("+15034401001", "15034401001"),  # already E.164: no rule, digits kept
        ("4401", "4401"),  # an extension: no rule applies
    ],
)
def test_cucm_callees(received: str, e164: str) -> None:
    assert apply_rules(received, CUCM_CALLEE) == e164


@pytest.mark.parametrize(
    ("received", "e164"),
    [("+15034401001", "15034401001"), ("5034401001", "15034401001"), ("4401", "4401")],
)
def test_cucm_callers(received: str, e164: str) -> None:
    assert apply_rules(received, CUCM_CALLER) == e164


def test_a_national_freeswitch_number() -> None:
    assert apply_rules("5512345678", FS_MX_CALLEE) == "525512345678"
    assert apply_rules("55 1234-5678", FS_MX_CALLEE) == "525512345678"  # punctuation dropped
    assert apply_rules("0015034401001", FS_MX_CALLEE) == "15034401001"
    assert apply_rules("525512345678", FS_MX_CALLEE) == "525512345678"  # 12 digits: untouched


def test_the_first_rule_that_applies_wins_and_lengths_count_digits() -> None:
    rules = (NumberRule(strip="1", add="7", max_length=5), NumberRule(strip="1"))
    assert apply_rules("1234", rules) == "7234"
    assert apply_rules("123456", rules) == "23456"  # 6 digits: past the first rule's 5
    assert apply_rules("+1234", rules) == "1234"  # "1" does not match "+1234": digits kept


def test_no_rules_keeps_digits_only() -> None:
    assert apply_rules("+51 (987) 654-321", ()) == normalize_number("+51 (987) 654-321")
    assert apply_rules("٥١٩", ()) == ""


@pytest.mark.parametrize(
    "bad",
    [
        {"strip": "9a"},
        {"strip": "++1"},
        {"add": "+1"},
        {"min_length": 0},
        {"min_length": 5, "max_length": 4},
        {"max_length": 33},
    ],
)
def test_malformed_rules_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        NumberRule(**bad)  # type: ignore[arg-type]


def test_an_account_holding_the_national_form_is_found_for_the_e164_caller() -> None:
    e164 = apply_rules("+15034401001", CUCM_CALLER)
    forms = received_forms(e164, CUCM_CALLER)
    assert forms[0] == "15034401001"
    assert "5034401001" in forms and "+15034401001" in forms
    assert "+5034401001" not in forms  # the + rule would make it 5034401001, not e164


@given(
    st.lists(
        st.builds(
            NumberRule,
            strip=st.sampled_from(["", "+", "0", "00", "9", "+1", "011"]),
            add=st.sampled_from(["", "1", "52", "44"]),
            min_length=st.integers(1, 12),
            max_length=st.just(32),
        ),
        max_size=4,
    ),
    st.text("+0123459", min_size=1, max_size=14),
)
def test_received_forms_are_exactly_the_numbers_that_normalize_to_it(rules, number) -> None:  # type: ignore[no-untyped-def]
    e164 = apply_rules(number, rules)
    forms = received_forms(e164, rules)
    assert all(apply_rules(f, rules) == e164 for f in forms)
    plain = ("+" if number.startswith("+") else "") + normalize_number(number)
    if normalize_number(number):
        assert plain in forms  # whatever was received is found again
