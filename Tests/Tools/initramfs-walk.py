#!/usr/bin/env python3
"""An initramfs walker for the tests, written from the kernel's rules (init/initramfs.c, see
shared/INITRD-FACTS.md section 1), independent of Rehost's own: lsinitramfs, lsinitrd and
unmkinitramfs stop at the first TRAILER!!! and so never see an appended archive.

    initramfs-walk.py IMAGE           JSON on stdout: {"members": [{"offset", "length",
                                      "compression", "entries": [{"name", "mode", "size",
                                      "sha256", "target"}]}]}

Zero bytes between members are skipped; an uncompressed newc archive ("0707") is recognised only
at a 4-aligned offset; anything else must start with a compression magic. Exit 1 with one line
on stderr for anything the kernel would refuse.
"""
import bz2
import gzip
import hashlib
import json
import lzma
import struct
import sys
import zlib


def fail(message):
    print(f"initramfs-walk: {message}", file=sys.stderr)
    sys.exit(1)


def parse_cpio(data, start, limit):
    """newc/crc entries from data[start:limit] up to and including TRAILER!!!; returns (entries, end)."""
    entries = []
    position = start
    while True:
        if position + 110 > limit:
            if position >= limit:
                return entries, position
            fail(f"truncated cpio header at byte {position}")
        magic = data[position:position + 6]
        if magic not in (b"070701", b"070702"):
            fail(f"bad cpio magic {magic!r} at byte {position}")
        fields = [int(data[position + 6 + 8 * i: position + 14 + 8 * i], 16) for i in range(13)]
        mode, filesize, namesize, check = fields[1], fields[6], fields[11], fields[12]
        name_start = position + 110
        name = data[name_start:name_start + namesize - 1].decode("utf-8", "replace")
        data_start = (name_start + namesize + 3) & ~3
        body = data[data_start:data_start + filesize]
        if len(body) != filesize:
            fail(f"truncated cpio data for {name} at byte {data_start}")
        if magic == b"070702" and (sum(body) & 0xFFFFFFFF) != check:
            fail(f"bad checksum for {name} at byte {position}")
        position = (data_start + filesize + 3) & ~3
        if name == "TRAILER!!!":
            return entries, position
        kind = mode & 0o170000
        entry = {"name": name, "mode": mode, "size": filesize}
        if kind == 0o100000:
            entry["sha256"] = hashlib.sha256(body).hexdigest()
        elif kind == 0o120000:
            entry["target"] = body.decode("utf-8", "replace")
        entries.append(entry)


def decompress_member(data, offset):
    """(decompressed bytes, compressed length, name) of the member starting at offset."""
    head = data[offset:offset + 2]
    rest = data[offset:]
    if head in (b"\x1f\x8b", b"\x1f\x9e"):
        engine = zlib.decompressobj(wbits=31)
        out = engine.decompress(rest)
        if not engine.eof:
            fail(f"truncated gzip member at byte {offset}")
        return out, len(rest) - len(engine.unused_data), "gzip"
    if head == b"\xfd\x37":
        engine = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        out = engine.decompress(rest)
        if not engine.eof:
            fail(f"truncated xz member at byte {offset}")
        return out, len(rest) - len(engine.unused_data), "xz"
    if head == b"\x5d\x00":
        engine = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
        out = engine.decompress(rest)
        return out, len(rest) - len(engine.unused_data), "lzma"
    if head == b"\x42\x5a":
        engine = bz2.BZ2Decompressor()
        out = engine.decompress(rest)
        if not engine.eof:
            fail(f"truncated bzip2 member at byte {offset}")
        return out, len(rest) - len(engine.unused_data), "bzip2"
    if head == b"\x28\xb5":
        import zstandard
        engine = zstandard.ZstdDecompressor().decompressobj()
        out = engine.decompress(rest)
        if not engine.eof:
            fail(f"truncated zstd member at byte {offset}")
        return out, len(rest) - len(engine.unused_data), "zstd"
    if head == b"\x02\x21":
        import lz4.block
        # Legacy frame: magic, then {le32 size, block} until the input ends or a size is 0.
        position, out = offset + 4, bytearray()
        while position + 4 <= len(data):
            (size,) = struct.unpack_from("<I", data, position)
            if size == 0 or size == 0x184C2102:
                break
            block = data[position + 4:position + 4 + size]
            if len(block) != size:
                fail(f"truncated lz4 chunk at byte {position}")
            out += lz4.block.decompress(block, uncompressed_size=8 << 20)
            position += 4 + size
        return bytes(out), position - offset, "lz4"
    fail(f"no cpio and no known compression magic at byte {offset}: {head.hex()}")


def walk(data):
    members = []
    offset = 0
    while offset < len(data):
        if data[offset] == 0:
            offset += 1
            continue
        if data[offset:offset + 4] == b"0707":
            if offset & 3:
                fail(f"uncompressed cpio at byte {offset}, which is not 4-aligned: the kernel refuses it")
            entries, end = parse_cpio(data, offset, len(data))
            members.append({"offset": offset, "length": end - offset, "compression": "none", "entries": entries})
            offset = end
            continue
        content, length, name = decompress_member(data, offset)
        entries, position = [], 0
        while position < len(content):
            if content[position] == 0:
                position += 1
                continue
            more, position = parse_cpio(content, position, len(content))
            entries += more
        members.append({"offset": offset, "length": length, "compression": name, "entries": entries})
        offset += length
    return members


if __name__ == "__main__":
    if len(sys.argv) != 2:
        fail("usage: initramfs-walk.py IMAGE")
    with open(sys.argv[1], "rb") as handle:
        image = handle.read()
    json.dump({"members": walk(image)}, sys.stdout)
