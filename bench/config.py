"""How big each benchmark is: the full run, `--quick` (under two minutes) and a toy for the smoke test.

The loads of the full run are the ones the issue names; the quick and toy scales keep their shape
at a size that proves the machinery works, not the bar.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Load:
    """`streams` answers of `tokens` tokens, `delay_ms` apart, their starts spread over `ramp_s`."""

    name: str
    title: str
    streams: int
    tokens: int
    delay_ms: float
    ramp_s: float = 0.0
    #: Sample the server's RSS and threads once every stream is open (the open-streams load).
    sample_open: bool = False
    #: Times the load runs for each way, the ways alternating, its numbers pooled: a bar's load
    #: is measured in rounds so that one unlucky minute on a shared machine does not decide it.
    rounds: int = 1

    @property
    def expected_tokens(self) -> int:
        return self.streams * self.tokens

    @property
    def stream_s(self) -> float:
        """How long one stream lasts: from its first token to its last."""
        return (self.tokens - 1) * self.delay_ms / 1000

    @property
    def duration_s(self) -> float:
        return self.ramp_s + self.stream_s


@dataclass(frozen=True)
class Scale:
    name: str
    loads: tuple[Load, ...]
    #: Sessions and messages seeded for the API's one user; the deep pages sit this many rows in.
    sessions: int
    messages: int
    deep_sessions: int
    deep_messages: int
    #: Requests per page kind for the latency comparisons.
    api_requests: int
    #: Throughput rounds (list vs values()), alternated, each `rps_seconds` long.
    rps_seconds: float
    rps_rounds: int
    rps_concurrency: int
    #: Concurrent writers for turn creation, and how long each configuration runs.
    writers: tuple[int, ...]
    turn_seconds: float
    #: Rounds per turn-creation configuration, ordered and unordered alternating.
    turn_rounds: int
    #: Users the streams are spread over (each opens at most a couple at once).
    proxy_users: int
    #: Pause between measurements, so the last saves and closes do not fall into the next one.
    settle_s: float = 1.0


FULL = Scale(
    name="full",
    loads=(
        Load("starts", "100 answers of 1 token, one every 100 ms", 100, 1, 10, ramp_s=10),
        Load("burst", "200 answers of 1 token, all at once (as the throughput load starts)", 200, 1, 10),
        Load("single", "1 stream x 200 tokens @ 10 ms", 1, 200, 10),
        Load("throughput", "200 streams x 500 tokens @ 20 ms (3 rounds)", 200, 500, 20, rounds=3),
        Load("ramp", "1,000 streams x 100 tokens @ 100 ms, ramped over 5 s", 1000, 100, 100, ramp_s=5),
        Load("open", "2,000 open streams x 40 tokens @ 4 s, ramped over 120 s", 2000, 40, 4000, 120, True),
        Load("long", "50 streams x 2,000 tokens @ 10 ms (start costs amortized)", 50, 2000, 10),
    ),
    sessions=100_000,
    messages=1_000_000,
    deep_sessions=50_000,
    deep_messages=100_000,
    api_requests=300,
    rps_seconds=5,
    rps_rounds=3,
    rps_concurrency=8,
    writers=(1, 8, 32),
    turn_seconds=5,
    turn_rounds=3,
    proxy_users=1000,
)

QUICK = Scale(
    name="quick",
    loads=(
        Load("starts", "30 answers of 1 token, one every 100 ms", 30, 1, 10, ramp_s=3),
        Load("burst", "50 answers of 1 token, all at once (as the throughput load starts)", 50, 1, 10),
        Load("single", "1 stream x 100 tokens @ 10 ms", 1, 100, 10),
        Load("throughput", "50 streams x 150 tokens @ 20 ms", 50, 150, 20),
        Load("ramp", "200 streams x 20 tokens @ 100 ms, ramped over 1 s", 200, 20, 100, ramp_s=1),
        Load("open", "100 open streams x 6 tokens @ 1 s, ramped over 4 s", 100, 6, 1000, 4, True),
    ),
    sessions=5_000,
    messages=50_000,
    deep_sessions=2_500,
    deep_messages=10_000,
    api_requests=50,
    rps_seconds=1.5,
    rps_rounds=2,
    rps_concurrency=8,
    writers=(1, 8),
    turn_seconds=1.0,
    turn_rounds=1,
    proxy_users=200,
    settle_s=0.3,
)

TOY = Scale(
    name="toy",
    loads=(
        Load("starts", "3 answers of 1 token, one every 100 ms", 3, 1, 10, ramp_s=0.3),
        Load("burst", "3 answers of 1 token, all at once (as the throughput load starts)", 3, 1, 10),
        Load("single", "1 stream x 5 tokens @ 5 ms", 1, 5, 5),
        Load("throughput", "3 streams x 5 tokens @ 10 ms (2 rounds)", 3, 5, 10, rounds=2),
        Load("ramp", "4 streams x 3 tokens @ 20 ms, ramped over 0.1 s", 4, 3, 20, ramp_s=0.1),
        Load("open", "5 open streams x 3 tokens @ 200 ms, ramped over 0.1 s", 5, 3, 200, 0.1, True),
    ),
    sessions=300,
    messages=1_200,
    deep_sessions=150,
    deep_messages=400,
    api_requests=5,
    rps_seconds=0.5,
    rps_rounds=1,
    rps_concurrency=2,
    writers=(1, 2),
    turn_seconds=0.3,
    turn_rounds=2,
    proxy_users=4,
    settle_s=0.1,
)

SCALES = {scale.name: scale for scale in (FULL, QUICK, TOY)}
