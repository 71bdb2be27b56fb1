"""Fixtures of tests/loop: `kernel`, a namespace `tcpip-l<pid>-<n>` with TAP `tap0` (kernel 198.18.0.1/24) for a
StackLoop (198.18.0.2/24) to run unchanged libraries against (helpers in loop_support)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from loop_support import Kernel, kernel_namespace


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    yield from kernel_namespace(tmp_path)
