"""The roles one ``callvault serve`` process can run (issue 13; setting ``roles``).

- ``media.py``: SIP, RTP capture, the B2BUA, and finishing this node's spools;
- ``web.py``: the portal and API;
- ``worker.py``: the job runner (retention, exports, mail, push).

``callvault.app.Application`` composes the roles a process runs from typed
settings; ``directory.py`` keeps every media node's directory in step with
the database; ``http.py`` serves the portal, or the health routes alone in a
process without the web role.
"""
