"""Token buckets and the abuse verdict, driven by an explicit clock."""

from e2echat_server.ratelimit import ConnectionLimiter, TokenBucket, Verdict


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
