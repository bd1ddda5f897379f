"""identity.keystore.read_at_most reads what ``fh.read(limit + 1)`` would, without its buffer."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from identity.keystore import read_at_most


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3000), limit=st.integers(min_value=0, max_value=4000))
def test_same_bytes_as_a_full_read(data: bytes, limit: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f"
        path.write_bytes(data)
        with path.open("rb") as fh:
            assert read_at_most(fh, limit) == data[: limit + 1]
    assert read_at_most(io.BytesIO(data), limit) == data[: limit + 1]  # no descriptor


def test_a_file_that_grows_after_fstat_is_read_on(tmp_path: Path) -> None:
    path = tmp_path / "growing"
    path.write_bytes(b"a" * 10)

    class Growing(io.FileIO):
        def read(self, size: int | None = -1) -> bytes:
            if not getattr(self, "grown", False):  # the file grows between fstat and read
                self.grown = True
                with path.open("ab") as out:
                    out.write(b"b" * 100)
            return super().read(size)

    with Growing(path, "rb") as fh:
        assert read_at_most(fh, 50) == b"a" * 10 + b"b" * 41
