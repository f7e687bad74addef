"""Test settings for every pytest run in this repository, including one that collects only a
notebook (``pytest notebooks/02_vgg.ipynb``), which never loads tests/conftest.py.

Every kernel a test starts (nbval, papermill) inherits this process's environment, so
LABKIT_SMOKE_TEST puts every notebook in smoke mode, whichever runner executes it, and
LABKIT_STANDIN puts it in the offline stand-in mode (random weights, a banner says so): CI
reaches no model hub. Quiz answers given by tests go to a throwaway results file, never to the
learner's own.
"""

import os
import tempfile

os.environ["LABKIT_SMOKE_TEST"] = "1"
os.environ["LABKIT_STANDIN"] = "1"
os.environ["LABKIT_QUIZ_RESULTS"] = os.path.join(tempfile.mkdtemp(prefix="labkit-quiz-"),
                                                "quiz-results.json")
