"""labkit: the helper library of the pre-trained models and transfer learning course.

Each module owns one idea; lessons import names explicitly, for example
``from labkit.device import get_device``.
"""

from labkit.diagnose import doctor

__version__ = "0.1.0"
__all__ = ["doctor", "__version__"]
