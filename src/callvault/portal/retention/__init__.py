"""Retention at the HTTP edge (SPEC 4, issue 8), as one feature folder.

``plans``: the operator's plans (the slider's range, the minute quota);
``holds``: legal holds; ``receipts``: deletion receipts and their files;
``termination`` and ``termination_pages``: a tenant's termination in two
operator steps. The rules themselves live in ``callvault.retention`` and
``callvault.tenants.termination``; these modules check who asks, audit and
answer.
"""
