"""callvault: call recording for hosted telephony."""

import os

# numpy's BLAS (OpenBLAS) starts a thread per core for each matrix product. The
# products here are small (in-band key detection, live and when finishing), and
# on a core shared with capture those threads cost more than they save (issue 12:
# 22-25 ms per product with the default threads against 0.1-1.4 ms with one).
# Set before numpy is first imported; an operator's own setting is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
