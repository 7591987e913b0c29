"""Retention (SPEC section 4): plans, the expiry rule, legal holds, the purge.

``access`` is the one place that says whether a recording's audio may still
be reached; every route that hands out audio (API, pages, share links,
exports, mail) asks it.
"""
