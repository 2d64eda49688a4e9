"""Build arguments with secret-like names, as BuildKit records them in ``history[].created_by``.

``RUN |2 NPM_TOKEN=abc DEBUG=1 /bin/sh -c npm ci`` keeps every ARG value used by a RUN step in the
image for anyone to read.  A value whose name says token/password/secret/key is reported even when
it is short or of low entropy: the name is the evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..models import Severity
from .interface import Detector, Match

_FIELD = b"created_by="
_PREFIX = re.compile(rb"(?:RUN )?\|(\d+) ")
_SECRET_NAME = re.compile(
    rb"(?i)(?:passw(?:or)?d|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|auth|credential|pat$)"
)


class BuildArgDetector(Detector):
    name = "build-arg"
    max_match_len = 4096

    def find(self, data: bytes) -> Iterator[Match]:
        # metadata strings come as key=value (see scanner.archive.iter_json_strings)
        m = _PREFIX.match(data, len(_FIELD) if data.startswith(_FIELD) else 0)
        if not m:
            return
        pos = m.end()
        for _ in range(int(m.group(1))):
            end = data.find(b" ", pos)
            end = len(data) if end == -1 else end
            name, sep, value = data[pos:end].partition(b"=")
            if sep and value and _SECRET_NAME.search(name):
                start = pos + len(name) + 1
                yield Match(
                    rule_id="build-arg-secret",
                    severity=Severity.HIGH,
                    description=f"build argument {name.decode('ascii', 'replace')} recorded in the image history",
                    start=start,
                    end=end,
                    secret=value,
                )
            pos = end + 1
