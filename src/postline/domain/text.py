"""Which characters a stored text may hold, and which a mail header may.

PostgreSQL refuses NUL in `text` and `\\u0000` in `jsonb`, and one refused
row would fail every request stored in the same statement; no provider
wants the other controls either. A text that ends up in a mail header
(subject, display name, attachment filename and type) must also hold no
line break of any kind, or it could start a header of its own.
"""

from __future__ import annotations

import re

# C0/C1 controls other than tab, newline and carriage return.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Every C0/C1 control, tab and line breaks included: for keys and identifiers.
ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Controls and line breaks (CR, LF, NEL, LINE and PARAGRAPH SEPARATOR); tab is
# folding white space in a header, so it may stay.
HEADER_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
