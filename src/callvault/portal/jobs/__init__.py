"""Background jobs' progress at the HTTP edge (issue 8 section 1), as one feature folder.

``http``: ``/api/v1/tenants/{t}/jobs`` (admin, operator) and ``/api/v1/jobs``
(operator); ``pages``: the jobs page. Both read ``callvault.jobs.listing``.
"""
