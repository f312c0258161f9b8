"""Benchmarks of the book's code (``make bench``): see bench/RESULTS.md."""
