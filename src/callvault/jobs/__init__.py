"""Background jobs: retention purge, exports, mail, clean-up (SPEC sections 4, 5).

``queue`` keeps jobs in the database (they survive restarts; a scheduled job
exists once per slot), ``registry`` maps a job's kind to its handler, and
``runner`` claims due jobs and runs them, retrying failures with backoff.
"""
