"""The scripted server moved to :mod:`sftselect.testing.server`; tests import it from there."""

from sftselect.testing.server import *  # noqa: F403
from sftselect.testing.server import __all__  # noqa: F401
