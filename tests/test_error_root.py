"""Every exception medic defines derives from ``MedicError``, so a caller can
catch all of medic's own errors at once (each stage's kind may have its own
base under it: ``HostError``, ``CliError``, ``ApiError``)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import medic
from medic.core.errors import MedicError


def defined_exceptions() -> dict[str, type[Exception]]:
    """``module.Name`` -> class, for every Exception subclass a medic module defines."""
    found: dict[str, type[Exception]] = {}
    for info in pkgutil.walk_packages(medic.__path__, "medic."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue  # running it is the command itself
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, Exception)
                and obj.__module__ == module.__name__
            ):
                found[f"{module.__name__}.{name}"] = obj
    return found


def test_every_exception_medic_defines_derives_from_medic_error() -> None:
    exceptions = defined_exceptions()
    outside = sorted(
        qualified for qualified, cls in exceptions.items() if not issubclass(cls, MedicError)
    )
    assert outside == []


def test_the_walk_finds_the_errors_of_every_stage() -> None:
    names = {cls.__name__ for cls in defined_exceptions().values()}
    some = {"MedicError", "HostError", "CliError", "ApiError", "StartupError", "YamlSyntaxError"}
    assert some <= names
