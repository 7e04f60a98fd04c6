"""deepsight's benchmarks: the streaming proxy and the API at scale, each beside its own baseline.

`python -m bench [--quick] [--only proxy|api|turns]` (or `make bench` / `make bench-quick`) runs
them on PostgreSQL and Redis when `DATABASE_URL` / `REDIS_URL` (or `BENCH_DATABASE_URL` /
`BENCH_REDIS_URL`) say so, on a SQLite file under `bench/results/` otherwise, and writes
`results.md`, `results.json` and `latency.png` there. Every comparison is a ratio of two
measurements taken in the same run, because absolute times drift on shared machines.
"""
