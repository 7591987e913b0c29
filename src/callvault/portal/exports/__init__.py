"""Bulk download (SPEC 5, Callvoip) at the HTTP edge, as one feature folder.

``schemas``: the API's bodies; ``services``: an export of a tenant and its
state as the API and the pages show it; ``http``: the JSON routes (ask,
follow, download with Range); ``pages``: the list and the page the e-mail
links to. Building the ZIP files is ``callvault.exports`` (a job).
"""
