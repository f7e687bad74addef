"""labkit: the helper library of the pre-trained models and transfer learning course.

Each module owns one idea; lessons import names explicitly, for example
``from labkit.device import get_device``. ``labkit.doctor()`` (lesson 00) checks a machine;
it is imported on first use, so ``import labkit`` stays light.
"""

__version__ = "0.1.0"
__all__ = ["doctor", "__version__"]


def __getattr__(name: str):
    if name == "doctor":
        from labkit.instructor.doctor import doctor

        return doctor
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")
