"""Checkers for the lessons' code exercises, one module per lesson.

Importing a module registers its checkers with ``labkit.quiz.register_checker``; the quiz
package imports this package the first time it looks a checker up, so a lesson's quiz bank
can name them (``checker: vgg_block``) without any import in the notebook. Checkers import
torch inside the function: loading a quiz bank must stay cheap.
"""

from labkit.exercises import inception, resnet, transfer_demo, vgg  # noqa: F401  (registers)
from labkit.exercises import fine_tuning  # noqa: F401  (registers lessons 06 and 07)
from labkit.exercises import feature_extraction  # noqa: F401  (registers lesson 05's checker)
from labkit.exercises import bert  # noqa: F401  (registers lessons 08 and 09)
from labkit.exercises import capstone  # noqa: F401  (registers lessons 10 and 11)
