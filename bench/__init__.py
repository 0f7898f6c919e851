"""Benchmarks of the template: what users of a rendered project wait for.

``uvx nox -s bench`` runs ``python -m bench.run``. Each figure is a median of
repeated runs with its ratio to a baseline measured in the same run, so the
ratios hold from one machine to another even where the seconds do not.
"""
