"""Ways to cut a byte stream before feeding it to a sans-IO parser.

A parser must read the same thing whatever the reads it is given: whole, byte
by byte, or in random chunks (seeded by the data's length, so that a failure
reproduces).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

Split = Callable[[bytes], Iterator[bytes]]


def whole(data: bytes) -> Iterator[bytes]:
    yield data


def bytewise(data: bytes) -> Iterator[bytes]:
    for index in range(len(data)):
        yield data[index : index + 1]


def random_chunks(most: int) -> Split:
    """A split into chunks of 1 to ``most`` bytes."""

    def chunks(data: bytes) -> Iterator[bytes]:
        rng = random.Random(len(data))
        index = 0
        while index < len(data):
            step = rng.randint(1, most)
            yield data[index : index + step]
            index += step

    chunks.__name__ = f"chunks_of_1_to_{most}"
    return chunks
