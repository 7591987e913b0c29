"""The native part of callvault's build: the media relay's batched UDP.

Everything else is in pyproject.toml. ``optional=True``: where the extension
cannot be compiled (no compiler, not Linux) the install still succeeds and the
relay uses its asyncio path (``callvault.media.relay.BATCHED`` says which).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "callvault.media._batchudp",
            sources=["src/callvault/media/_batchudp.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
