#!/usr/bin/python3
"""An initramfs walker for the tests, written from the kernel's rules (init/initramfs.c, see
shared/INITRD-FACTS.md section 1), independent of Rehost's own: lsinitramfs, lsinitrd and
unmkinitramfs stop at the first TRAILER!!! and so never see an appended archive.

    initramfs-walk.py IMAGE           JSON on stdout: {"members": [{"offset", "length",
                                      "compression", "entries": [{"name", "mode", "size",
                                      "sha256", "target"}]}]}
    initramfs-walk.py --extract DIR IMAGE
                                      also unpacks every member, in order, into DIR (created if
                                      missing), as the kernel's do_name/do_copy/do_symlink do:
      - a later entry wins; an existing entry of another type is removed first (a directory
        only if empty), so a directory entry over a symlink deletes the symlink;
      - a regular file is rewritten with O_TRUNC (no old tail survives); a directory over a
        directory keeps its contents and takes the new mode;
      - parents are not created: an entry whose parent directory is missing is skipped, as the
        kernel skips it (reported on stderr);
      - unlike the kernel, an entry whose parent path goes through a symlink is refused (exit 1):
        the extraction never follows a link, so it cannot write outside DIR, and such an entry
        is what this repository's tests require never to be written;
      - hard links (nlink >= 2, same ino/dev/mode within one archive) are linked to the first
        name, their data written without truncation; a TRAILER!!! forgets them;
      - devices, FIFOs and sockets are skipped (no root needed); owners and mtimes are not set.

Zero bytes between members are skipped; an uncompressed newc archive ("0707") is recognised only
at a 4-aligned offset; anything else must start with a compression magic. Exit 1 with one line
on stderr for anything the kernel would refuse.
"""
import bz2
import gzip
import hashlib
import json
import lzma
import os
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
        entry = {"name": name, "mode": mode, "size": filesize,
                 "_raw": (body, fields[0], fields[4], fields[7], fields[8])}
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
            members.append({"offset": offset, "length": end - offset, "compression": "none", "entries": entries,
                            "_archives": [entries]})
            offset = end
            continue
        content, length, name = decompress_member(data, offset)
        entries, archives, position = [], [], 0
        while position < len(content):
            if content[position] == 0:
                position += 1
                continue
            more, position = parse_cpio(content, position, len(content))
            entries += more
            archives.append(more)
        members.append({"offset": offset, "length": length, "compression": name, "entries": entries,
                        "_archives": archives})
        offset += length
    return members


def clean_name(name):
    """The path relative to the root, as the kernel's name lookup sees it ("" for the root)."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        fail(f"entry {name!r} has a '..' component")
    return "/".join(parts)


def extract(members, root):
    """Unpacks the members into root by the rules in this file's docstring."""
    os.makedirs(root, exist_ok=True)
    for member in members:
        for archive in member["_archives"]:
            links = {}
            for entry in archive:
                extract_entry(entry, root, links)


def extract_entry(entry, root, links):
    path = clean_name(entry["name"])
    mode = entry["mode"]
    kind = mode & 0o170000
    body, ino, nlink, major, minor = entry["_raw"]
    if path == "":
        if kind == 0o040000:
            os.chmod(root, mode & 0o7777)
        return
    parent = os.path.dirname(path)
    probe = root
    for part in parent.split("/") if parent else []:
        probe = os.path.join(probe, part)
        if os.path.islink(probe):
            fail(f"entry {entry['name']!r} lies under {os.path.relpath(probe, root)!r}, a symlink")
        if not os.path.isdir(probe):
            print(f"initramfs-walk: skipped {entry['name']!r}: no directory {parent!r}", file=sys.stderr)
            return
    full = os.path.join(root, path)
    existing = os.lstat(full).st_mode & 0o170000 if os.path.lexists(full) else None

    def clean(unless):
        # clean_path(): remove what is there when its type differs (rmdir fails on a full directory).
        if existing is None or existing == unless:
            return
        if existing == 0o040000:
            try:
                os.rmdir(full)
            except OSError:
                pass
        else:
            os.unlink(full)

    if kind == 0o100000:
        clean(kind)
        key = (ino, major, minor, mode)
        if nlink >= 2 and key in links:
            if os.path.lexists(full):
                os.unlink(full)
            os.link(links[key], full)
            flags = os.O_WRONLY
        else:
            if nlink >= 2:
                links[key] = full
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        descriptor = os.open(full, flags | os.O_NOFOLLOW, mode & 0o7777)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(body)
        os.chmod(full, mode & 0o7777)
    elif kind == 0o040000:
        clean(kind)
        if not os.path.isdir(full) or os.path.islink(full):
            os.mkdir(full)
        os.chmod(full, mode & 0o7777)
    elif kind == 0o120000:
        # do_symlink(): clean_path(name, 0) removes whatever is there.
        if existing == 0o040000:
            try:
                os.rmdir(full)
            except OSError:
                return
        elif existing is not None:
            os.unlink(full)
        os.symlink(body.decode("utf-8", "surrogateescape"), full)


def public(members):
    """The members without the keys extraction uses (those starting with "_")."""
    def visible(item):
        return {key: value for key, value in item.items() if not key.startswith("_")}
    return [visible(member) | {"entries": [visible(entry) for entry in member["entries"]]} for member in members]


if __name__ == "__main__":
    arguments = sys.argv[1:]
    target = None
    if len(arguments) == 3 and arguments[0] == "--extract":
        target, arguments = arguments[1], arguments[2:]
    if len(arguments) != 1:
        fail("usage: initramfs-walk.py [--extract DIR] IMAGE")
    with open(arguments[0], "rb") as handle:
        image = handle.read()
    walked = walk(image)
    if target is not None:
        extract(walked, target)
    json.dump({"members": public(walked)}, sys.stdout)
