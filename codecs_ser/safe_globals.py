"""For plugin authors: checked constructors through which untrusted pickles use globals.

A plugin lists ``("module.Name", "pkg.mod:OBJECT")`` pairs in
``CodecSpec.safe_globals``; each object is a :class:`SafeGlobal` whose ``call``
(``REDUCE``), ``new`` (``NEWOBJ``) or ``state`` (``BUILD``) functions accept
exactly what the type's own pickling writes, charge what they build to the
:class:`PickleMeter`, and raise :class:`codecs_ser.errors.FormatError` (see
:func:`refused_args`) for anything else.  A ``SafeGlobal()`` with no function
lets the global be loaded as a value only (``torch.float32``).  The core's own
rules always win over a plugin's for the same name.
"""

from __future__ import annotations

from ._pickle_meter import PickleMeter
from ._safe_globals import SafeGlobal, refused_args

__all__ = ["PickleMeter", "SafeGlobal", "refused_args"]
