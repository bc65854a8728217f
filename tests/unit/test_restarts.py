"""The supervisor's restart policy: back-off that doubles, resets after a stable run, gives up."""

from __future__ import annotations

from infra.restarts import RestartPolicy


def _crash_loop(policy: RestartPolicy, times: int, *, ran: float) -> list[tuple[bool, float]]:
    """Start at t, run ``ran`` seconds, crash, wait the delay, start again; ``times`` times."""
    now, out = 0.0, []
    for _ in range(times):
        policy.started(now)
        now += ran
        verdict = policy.crashed(now)
        out.append((verdict.give_up, verdict.delay))
        now += verdict.delay
    return out


def test_the_delay_doubles_up_to_its_cap_and_the_fifth_quick_crash_gives_up() -> None:
    """Crashes a second after each start: 1, 2, 4, 8 s of back-off, then it keeps crashing."""
    verdicts = _crash_loop(RestartPolicy(limit=5, window=300, max_delay=30), 5, ran=1)
    assert verdicts == [(False, 1), (False, 2), (False, 4), (False, 8), (True, 16)]


def test_the_delay_is_capped() -> None:
    """With no limit in sight, the delay stops growing at ``max_delay``."""
    verdicts = _crash_loop(RestartPolicy(limit=100, window=300, max_delay=5), 6, ran=1)
    assert [delay for _, delay in verdicts] == [1, 2, 4, 5, 5, 5]


def test_a_stable_run_resets_the_back_off() -> None:
    """A child that ran 60 s before it died starts again from the shortest delay."""
    policy = RestartPolicy(limit=5, window=300, stable_after=60)
    assert _crash_loop(policy, 3, ran=1)[-1] == (False, 4)
    policy.started(1000)
    assert policy.crashed(1061).delay == 1


def test_crashes_far_apart_never_give_up() -> None:
    """Crashes spread wider than the window are not "keeps crashing", however many there are."""
    verdicts = _crash_loop(RestartPolicy(limit=3, window=100, stable_after=60), 10, ran=61)
    assert not any(give_up for give_up, _ in verdicts)
    assert {delay for _, delay in verdicts} == {1}
