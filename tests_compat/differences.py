"""The differences between the original Vaurien 1.9 and this vaurien that the differential
suite accepts, each with its reason, and both observations pinned (so that a change on either
side shows). Every reason is one of:

- an original bug listed in `shared/reference/vaurien-original.md` (the reference says what
  this project does instead);
- a 2.0 change: the reference describes Vaurien 2.0, which changed this after 1.9 (the
  reference wins);
- a deliberate departure (flags win over the ini file; the `--behavior` mix is kept under
  `--http`);
- an entry of the README's "What differs from the original".
"""
from __future__ import annotations

from typing import Dict

DIFFERENCES: Dict[str, Dict[str, str]] = {}
from differences_faces import DIFFERENCES_FACES; DIFFERENCES.update(DIFFERENCES_FACES)
