"""The real-switch bench's rate ladder (bench/e2e_switch.py), driven by a fake switch."""

from __future__ import annotations

from bench.e2e_switch import climb


def _switch(capacity: int, asked: list[int]):
    """A switch that fails 5% of the calls above ``capacity`` calls/s."""

    def step(rate: int) -> dict[str, int]:
        asked.append(rate)
        calls = rate * 8
        failed = calls // 20 if rate > capacity else 0
        return {"rate": rate, "calls": calls, "ok": calls - failed, "failed": failed}

    return step


def test_the_ladder_refines_between_its_last_rate_sustained_and_its_first_failed() -> None:
    asked: list[int] = []
    out = climb((20, 30, 40, 50), _switch(37, asked), refine=5)
    assert asked == [20, 30, 40, 35]
    assert out["sustained_calls_per_s"] == 35
    assert not out["top_of_ladder"]
    assert [s["rate"] for s in out["steps"]] == asked


def test_a_wide_gap_is_bisected_to_the_refinement() -> None:
    asked: list[int] = []
    out = climb((10, 40), _switch(22, asked), refine=5)
    assert asked == [10, 40, 25, 15, 20]
    assert out["sustained_calls_per_s"] == 20
    asked.clear()
    assert climb((100, 200), _switch(163, asked), refine=5)["sustained_calls_per_s"] == 160
    assert asked == [100, 200, 150, 175, 160, 165]


def test_a_switch_that_sustains_every_rate_is_a_floor_not_a_figure() -> None:
    asked: list[int] = []
    out = climb((20, 30), _switch(100, asked), refine=5)
    assert asked == [20, 30]
    assert out == {"sustained_calls_per_s": 30, "steps": out["steps"], "top_of_ladder": True}


def test_nothing_sustained_is_not_refined_below_the_first_rate() -> None:
    asked: list[int] = []
    out = climb((20, 30), _switch(10, asked), refine=5)
    assert asked == [20]
    assert out["sustained_calls_per_s"] == 0


def test_one_failed_call_in_a_hundred_is_a_failed_rate() -> None:
    def step(rate: int) -> dict[str, int]:
        return {
            "rate": rate,
            "calls": 100,
            "ok": 99 if rate > 20 else 100,
            "failed": 1 if rate > 20 else 0,
        }

    assert climb((20, 30), step, refine=0)["sustained_calls_per_s"] == 20
