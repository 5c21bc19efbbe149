#!/usr/bin/env python3
"""An independent reader of Rehost's disk digest (blk-sha256, README "Digests"), for the tests:
the digest of a raw disk image, computed the plain way from every byte of the file.

    block digest   = SHA-256(each 64 KiB block; the last may be shorter)
    segment digest = SHA-256(the block digests of 2048 blocks, concatenated; the last segment may have fewer)
    disk digest    = SHA-256(the segment digests, concatenated)

    Tests/Tools/blk-sha256.py disk.raw [more.raw ...]   # prints "HEX  path" per file
"""
import hashlib
import sys

BLOCK = 64 << 10
BLOCKS_PER_SEGMENT = 2048


def blk_sha256(path):
    disk = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            segment = hashlib.sha256()
            blocks = 0
            while blocks < BLOCKS_PER_SEGMENT:
                block = f.read(BLOCK)
                if not block:
                    break
                segment.update(hashlib.sha256(block).digest())
                blocks += 1
            if blocks == 0:
                break
            disk.update(segment.digest())
            if blocks < BLOCKS_PER_SEGMENT:
                break
    return disk.hexdigest()


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(f"{blk_sha256(path)}  {path}")
