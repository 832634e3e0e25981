"""Token buckets and the abuse verdict, driven by an explicit clock."""

import pytest
from e2echat_server.ratelimit import (
    AddressBudgets,
    ConnectionLimiter,
    TokenBucket,
    Verdict,
    address_group,
)


def test_bucket_allows_a_burst_then_refills_at_rate() -> None:
    bucket = TokenBucket.full(rate=10, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.05) is False  # half a token
    assert bucket.take(0.1) is True
    assert bucket.take(100.0) is True
    assert bucket.tokens == 2  # refilled to the burst, not beyond, then one taken


def test_limiter_refuses_then_closes_persistent_abuse() -> None:
    limiter = ConnectionLimiter.create(rate=1, burst=3, now=0.0)
    verdicts = [limiter.admit(0.0) for _ in range(7)]
    assert verdicts == [Verdict.ALLOW] * 3 + [Verdict.REFUSE] * 3 + [Verdict.CLOSE]


def test_occasional_slips_are_forgiven() -> None:
    limiter = ConnectionLimiter.create(rate=1, burst=2, now=0.0)
    for second in range(100):
        assert limiter.strike(float(second)) == Verdict.REFUSE
    assert limiter.admit(100.0) == Verdict.ALLOW


def test_bucket_says_how_long_until_a_token_and_when_it_is_full() -> None:
    bucket = TokenBucket.full(rate=2, burst=2, now=0.0)
    assert bucket.wait(0.0) == 0.0
    assert bucket.take(0.0)
    assert bucket.take(0.0)
    assert bucket.wait(0.0) == 0.5
    assert bucket.wait(0.25) == 0.25
    assert not bucket.full_at(0.5)
    assert bucket.full_at(1.0)


@pytest.mark.parametrize(
    ("address", "group"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("-", "-"),
    ],
)
def test_addresses_are_grouped_by_what_one_client_controls(address: str, group: str) -> None:
    assert address_group(address) == group


def test_address_budgets_are_per_group_and_forget_refilled_buckets() -> None:
    budgets = AddressBudgets(rate=1 / 60, burst=2)
    assert budgets.take("2001:db8::1", 0.0)
    assert budgets.take("2001:db8::2", 0.0)
    assert not budgets.take("2001:db8::3", 0.0)  # the same /64: the same budget
    assert budgets.take("203.0.113.7", 0.0)  # another address has its own
    assert budgets.take("2001:db8::1", 60.0)  # one per minute
    assert not budgets.take("2001:db8::1", 60.0)
    assert budgets.prune(60.0) == 1  # 203.0.113.7 refilled: its bucket holds nothing
    assert set(budgets.buckets) == {"2001:db8::/64"}
    assert budgets.prune(179.0) == 0
    assert budgets.prune(180.0) == 1
    assert budgets.buckets == {}
