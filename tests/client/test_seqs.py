"""SeqWindow: every seq is processed exactly once whatever the arrival order."""

from hypothesis import given, settings
from hypothesis import strategies as st

from e2echat.client.seqs import SeqWindow


def test_floor_follows_contiguous_seqs() -> None:
    window = SeqWindow(3)
    assert not window.add(2)
    assert window.add(5)
    assert window.floor == 3
    assert window.add(4)
    assert window.floor == 5
    assert not window.add(5)


def test_synced_moves_the_floor_over_gaps() -> None:
    window = SeqWindow()
    window.add(9)
    window.advance_to(7)
    assert window.floor == 7
    window.add(8)
    assert window.floor == 9
    window.advance_to(2)
    assert window.floor == 9


@settings(max_examples=80, deadline=None)
@given(st.permutations(list(range(1, 30))), st.lists(st.integers(1, 29), max_size=20))
def test_any_order_with_duplicates_processes_each_once(order: list[int], dups: list[int]) -> None:
    window = SeqWindow()
    accepted = [seq for seq in order + dups if window.add(seq)]
    assert sorted(accepted) == list(range(1, 30))
    assert window.floor == 29
    assert not any(window.add(seq) for seq in range(1, 30))
