"""The test suite: `python -m pytest` from the checkout (a package, so that `tests` is ours, not a same-named one
that an installed distribution ships)."""
