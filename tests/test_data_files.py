"""The data files shipped inside the package are byte-exact (git must not rewrite their line endings)."""

import hashlib
from importlib import resources
from pathlib import Path

import pytest

SHA256 = {
    "829-0.txt": "d00e12fdea8297f153d92e4ccbeb29aa996f04b1d6c038d78a3d84e6cd0fdd52",
    "gpt2.tiktoken": "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
}
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def package_file(name):
    return resources.files("gpt_lesson") / "data" / name


@pytest.mark.parametrize("name", sorted(SHA256))
def test_sha256(name):
    assert hashlib.sha256(package_file(name).read_bytes()).hexdigest() == SHA256[name]


def test_book_keeps_crlf_and_bom():
    data = package_file("829-0.txt").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.count(b"\r\n") == data.count(b"\n") == 9_919


@pytest.mark.parametrize("name", sorted(SHA256))
def test_same_as_shared_data(name):
    if not (SHARED_DATA / name).is_file():
        pytest.skip(f"no {SHARED_DATA / name} to compare with")
    assert package_file(name).read_bytes() == (SHARED_DATA / name).read_bytes()
