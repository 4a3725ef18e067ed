"""The public errors (the seed's ``from medic.errors import ...``).

They are defined in ``medic.core.errors`` beside the root ``MedicError``;
this module keeps the documented import path.
"""

from medic.core.errors import *  # noqa: F403 - the public names, listed in its __all__
from medic.core.errors import __all__ as __all__
