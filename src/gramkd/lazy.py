"""Names a package exports without importing their modules until first use (PEP 562)."""

import importlib
import sys


def lazy_exports(package: str, homes: dict[str, str]):
    """`__getattr__` and `__dir__` for `package`, whose names `homes` maps to the modules that
    define them; a name, once loaded, is kept in the package so later lookups skip the hook."""
    namespace = vars(sys.modules[package])

    def __getattr__(name: str):
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = namespace[name] = getattr(importlib.import_module(homes[name]), name)
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *homes})

    return __getattr__, __dir__
