"""Coverage-guided fuzzing of the IR loader and the signature parser with atheris (not part of CI).

Any exception other than the documented ones (IRFormatError, SignatureError) is a crash::

    pip install atheris
    python tests/fuzz/fuzz_loaders.py -atheris_runs=200000 -max_len=512

Runs on a seed-free corpus; pass a directory as the last argument to keep one.
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from dagwright.compiler.ir import Graph, IRFormatError
    from dagwright.compiler.signature import SignatureError, parse_signature


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeBool():
        with contextlib.suppress(IRFormatError):
            Graph.from_json(fdp.ConsumeBytes(fdp.remaining_bytes()))
    else:
        with contextlib.suppress(SignatureError):
            parse_signature(fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes()))


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
