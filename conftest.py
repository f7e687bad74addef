"""Test settings for every pytest run in this repository, including one that collects only a
notebook (``pytest notebooks/02_vgg.ipynb``), which never loads tests/conftest.py.

Every kernel a test starts (nbval, papermill) inherits this process's environment, so
LABKIT_SMOKE_TEST puts every notebook in smoke mode, whichever runner executes it, and
LABKIT_STANDIN puts it in the offline stand-in mode (random weights, a banner says so): CI
reaches no model hub. Quiz answers given by tests go to a throwaway results file, never to the
learner's own.

Under pytest-xdist each worker, and each kernel it starts, gets its share of the CPU cores for
torch's threads: two processes that each spin up a thread per core slow each other down many
times over (a 9 s training test took 154 s beside a notebook run on 2 cores).
"""

import os
import tempfile

workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if workers > 1:  # set before torch is imported, and inherited by every kernel
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, threads)

os.environ["LABKIT_SMOKE_TEST"] = "1"
os.environ["LABKIT_STANDIN"] = "1"
os.environ["LABKIT_QUIZ_RESULTS"] = os.path.join(tempfile.mkdtemp(prefix="labkit-quiz-"),
                                                "quiz-results.json")
