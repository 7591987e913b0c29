"""Recording sources: the SBCs and PBXs the operator lets send SIPREC (SPEC section 2).

``registry`` is the SIP side's in-memory snapshot (who is this request from,
what may it do, how much is it using); ``identity`` parses and normalises
networks and certificate fingerprints; ``store`` validates and writes the
rows for the REST API, the CLI and the seeding of demos and tests.
"""
