"""Development-only code: the embedded Redis and the demo model (the Messages API stand-in).

Imported by the CLI's `dev` command, the tests and the benchmarks only; the API and the worker
never import it.
"""
