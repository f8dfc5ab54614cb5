"""Benchmarks of the local lakehouse (issue #7): `python -m bench`, see bench/__main__.py."""
