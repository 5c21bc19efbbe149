import Compression
import Foundation
import ImageCore
import ImageFormats
import Testing
import TestSupport

/// One way of making a qcow2 image with `qemu-img convert -O qcow2`.
struct QemuQCOW2Variant: CustomTestStringConvertible, Sendable {
    var name: String
    var options: [String]
    var version: UInt32 = 3
    /// "zlib" or "zstd" when the image holds compressed clusters.
    var compression: String?

    var testDescription: String { name }

    static let all: [QemuQCOW2Variant] = [
        QemuQCOW2Variant(name: "default", options: []),
        QemuQCOW2Variant(name: "compat=0.10", options: ["-o", "compat=0.10"], version: 2),
        QemuQCOW2Variant(name: "cluster_size=512", options: ["-o", "cluster_size=512"]),
        QemuQCOW2Variant(name: "cluster_size=2M", options: ["-o", "cluster_size=2M"]),
        QemuQCOW2Variant(name: "-c", options: ["-c"], compression: "zlib"),
        QemuQCOW2Variant(name: "-c zstd", options: ["-c", "-o", "compression_type=zstd"], compression: "zstd"),
        QemuQCOW2Variant(name: "-c compat=0.10", options: ["-c", "-o", "compat=0.10"], version: 2, compression: "zlib"),
        QemuQCOW2Variant(name: "-c cluster_size=512", options: ["-c", "-o", "cluster_size=512"], compression: "zlib"),
        QemuQCOW2Variant(name: "-c zstd cluster_size=2M", options: ["-c", "-o", "compression_type=zstd,cluster_size=2M"], compression: "zstd"),
        QemuQCOW2Variant(name: "preallocation=metadata", options: ["-o", "preallocation=metadata"]),
        QemuQCOW2Variant(name: "preallocation=full", options: ["-o", "preallocation=full"]),
        QemuQCOW2Variant(name: "refcount_bits=1", options: ["-o", "refcount_bits=1"]),
    ]
}

// MARK: - Helpers

private func qemu(_ tool: String, _ arguments: [String]) throws {
    _ = try Command.run(tool, arguments).requireSuccess()
}

/// `qemu-img create` of a LUKS-encrypted image. QEMU times PBKDF2 on the thread's CPU clock to
/// choose the iterations, and on a loaded machine that measurement can fail ("Unable to get
/// accurate CPU usage"): that one failure of qemu's, and only it, is tried again.
private func createLUKS(_ arguments: [String]) throws {
    for attempt in 1...5 {
        let result = try Command.run("qemu-img", arguments)
        if result.succeeded { return }
        guard attempt < 5, result.stderr.contains("Unable to get accurate CPU usage") else {
            _ = try result.requireSuccess()
            return
        }
    }
}

/// Reads `image` into a new sparse raw file at `output` through the pipeline's own helper.
@discardableResult
private func readIntoRaw(_ image: String, output: String) throws -> QCOW2Reader {
    let reader = try QCOW2Reader(path: image)
    try DiskImageReaders.copyToRaw(reader, file: RawFile(path: output, mode: .createExclusive))
    return reader
}

private func sameBytes(_ first: String, _ second: String) throws -> Bool {
    try Command.run("cmp", [first, second]).status == 0
}

/// Streams `reader`, checking every promise of `forEachDataPiece`, and returns the guest ranges
/// handed out, adjacent pieces merged.
private func pieces(of reader: QCOW2Reader) throws -> [Range<UInt64>] {
    var ranges: [Range<UInt64>] = []
    try reader.forEachDataPiece { offset, data in
        let end = offset + UInt64(data.count)
        #expect(data.count > 0 && data.count <= DiskImageReaders.maxPieceSize)
        #expect(offset % 512 == 0 && (data.count % 512 == 0 || end == reader.virtualSize))
        #expect(offset >= (ranges.last?.upperBound ?? 0) && end <= reader.virtualSize)
        if let last = ranges.last, last.upperBound == offset {
            ranges[ranges.count - 1] = last.lowerBound..<end
        } else {
            ranges.append(offset..<end)
        }
    }
    return ranges
}

/// The guest ranges `qemu-img map` says hold data (allocated clusters, compressed or not),
/// adjacent ones merged.
private func qemuDataRanges(_ image: String) throws -> [Range<UInt64>] {
    let result = try Command.run("qemu-img", ["map", "--output=json", "-f", "qcow2", image]).requireSuccess()
    let entries = try #require(try JSONSerialization.jsonObject(with: Data(result.stdoutBytes)) as? [[String: Any]])
    var ranges: [Range<UInt64>] = []
    for entry in entries where entry["data"] as? Bool == true {
        let start = try #require(entry["start"] as? UInt64), length = try #require(entry["length"] as? UInt64)
        if let last = ranges.last, last.upperBound == start {
            ranges[ranges.count - 1] = last.lowerBound..<(start + length)
        } else {
            ranges.append(start..<(start + length))
        }
    }
    return ranges
}

private func qemuVirtualSize(_ image: String) throws -> UInt64? {
    try qemuInfo(image)["virtual-size"] as? UInt64
}

/// Opens and streams `path`; the error it meets, if any.
private func readError(_ path: String) -> (any Error)? {
    do {
        let reader = try QCOW2Reader(path: path)
        try reader.forEachDataPiece { _, _ in }
        return nil
    } catch {
        return error
    }
}

/// What a hostile input must produce.
private enum Expected {
    case corrupt(at: UInt64)
    case truncated(at: UInt64)
    case unsupported(mentioning: String)
}

/// Checks that reading `path` fails as `expected`, in one line naming the file.
private func expectFailure(_ path: String, _ expected: Expected, sourceLocation: SourceLocation = #_sourceLocation) {
    guard let error = readError(path) else {
        Issue.record("\(path) was read without error; expected \(expected)", sourceLocation: sourceLocation)
        return
    }
    guard let failure = error as? ImageReadError else {
        Issue.record("expected an ImageReadError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        return
    }
    let message = failure.description
    #expect(message.hasPrefix(path + ": ") && !message.contains("\n"), "\(message)", sourceLocation: sourceLocation)
    switch (expected, failure) {
    case let (.corrupt(expectedOffset), .corrupt(format, _, offset, _)):
        #expect(format == .qcow2 && offset == expectedOffset, "\(message)", sourceLocation: sourceLocation)
    case let (.truncated(expectedOffset), .truncated(format, _, offset, _, _)):
        #expect(format == .qcow2 && offset == expectedOffset, "\(message)", sourceLocation: sourceLocation)
    case let (.unsupported(word), .unsupported(format, _, feature, advice)):
        #expect(format == .qcow2 && feature.contains(word) && advice.contains("qemu-img"), "\(message)", sourceLocation: sourceLocation)
    default:
        Issue.record("expected \(expected), got: \(message)", sourceLocation: sourceLocation)
    }
}

/// Writes a copy of `source` at `path` with `change` applied to its bytes.
private func patched(_ source: String, to path: String, _ change: (inout [UInt8]) -> Void) throws -> String {
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: source)))
    change(&bytes)
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}

/// The 8-byte big-endian value at `offset` of a file.
private func loadU64(_ path: String, at offset: UInt64) throws -> UInt64 {
    try RawFile(path: path, mode: .readOnly).read(count: 8, at: offset).loadBE(UInt64.self, at: 0)
}

// MARK: - Tests

@Suite struct QCOW2ReaderTests {
    /// 8 MiB + 3 sectors: not a multiple of any cluster size.
    static let diskSize: UInt64 = (8 << 20) + 3 * 512

    @Test(arguments: QemuQCOW2Variant.all)
    func readsWhatQemuWrites(_ variant: QemuQCOW2Variant) throws {
        let directory = try TemporaryDirectory(prefix: "rehost-qcow2-read")
        let raw = directory.file("source.raw"), image = directory.file("image.qcow2"), back = directory.file("back.raw")
        try SyntheticDisk.make(at: raw, size: Self.diskSize, seed: 21)
        try qemu("qemu-img", ["convert", "-f", "raw", "-O", "qcow2"] + variant.options + [raw, image])

        let reader = try readIntoRaw(image, output: back)
        #expect(reader.virtualSize == Self.diskSize)
        #expect(try reader.virtualSize == qemuVirtualSize(image))
        #expect(try sameBytes(raw, back), "\(variant.name): contents differ")
        // Exactly the clusters qemu calls data are handed out, nothing unallocated or zero.
        #expect(try pieces(of: reader) == qemuDataRanges(image))
        #expect(reader.header.version == variant.version)
        #expect(reader.variant.hasPrefix("qcow2 v\(variant.version), "), "\(reader.variant)")
        if let compression = variant.compression {
            #expect(reader.variant.contains("\(compression)-compressed"), "\(reader.variant)")
        } else {
            #expect(!reader.variant.contains("compressed"), "\(reader.variant)")
        }
    }

    /// Zero clusters, both kinds: with a preallocated cluster behind them ("write -z") and
    /// without ("write -z -u"); compat=0.10 has no zero flag and deallocates instead.
    @Test(arguments: ["1.1", "0.10"])
    func zeroClustersReadAsZeros(compat: String) throws {
        let directory = try TemporaryDirectory(prefix: "rehost-qcow2-read")
        let image = directory.file("zero.qcow2"), expected = directory.file("expected.raw"), back = directory.file("back.raw")
        try qemu("qemu-img", ["create", "-q", "-f", "qcow2", "-o", "compat=\(compat)", image, "4M"])
        try qemu("qemu-io", ["-f", "qcow2", "-c", "write -P 0xab 0 3M", "-c", "write -z 512k 512k",
                             "-c", "write -z -u 1M 256k", "-c", "write -P 0xcd 3584k 64k", image])
        try qemu("qemu-img", ["convert", "-f", "qcow2", "-O", "raw", image, expected])

        let before = try Data(contentsOf: URL(fileURLWithPath: image))
        let reader = try readIntoRaw(image, output: back)
        #expect(try sameBytes(expected, back))
        let ranges = try pieces(of: reader)
        #expect(try Data(contentsOf: URL(fileURLWithPath: image)) == before, "the reader changed its input")
        #expect(try ranges == qemuDataRanges(image))
        let zeroed: Range<UInt64> = (512 << 10)..<((1 << 20) + (256 << 10))
        #expect(!ranges.contains { $0.overlaps(zeroed) }, "\(ranges)")
        #expect(ranges.first == 0..<(512 << 10))

        // The image really holds zero-flagged L2 entries (v3), with and without a cluster.
        let l1Offset = try loadU64(image, at: 40)
        let l2Offset = try loadU64(image, at: l1Offset) & QCOW2Entry.offsetMask
        let entries = try (0..<64).map { try loadU64(image, at: l2Offset + UInt64($0) * 8) & ~QCOW2Entry.copied }
        let withCluster = entries[8..<16].filter { $0 & QCOW2Entry.zero != 0 && $0 & QCOW2Entry.offsetMask != 0 }.count
        let withoutCluster = entries[16..<20].filter { $0 == QCOW2Entry.zero }.count
        if compat == "1.1" {
            #expect(withCluster == 8 && withoutCluster == 4, "\(entries.map { String($0, radix: 16) })")
        } else {
            #expect(!entries.contains { $0 & QCOW2Entry.zero != 0 })
        }
    }

    static let writerCases: [QCOW2Case] = [
        QCOW2Case(version: 3, clusterSize: 65536, compression: .none),
        QCOW2Case(version: 2, clusterSize: 65536, compression: .none),
        QCOW2Case(version: 2, clusterSize: 512, compression: .none),
        QCOW2Case(version: 3, clusterSize: 65536, compression: .deflate),
        QCOW2Case(version: 2, clusterSize: 4096, compression: .deflate),
        QCOW2Case(version: 3, clusterSize: 512, compression: .zstd),
        QCOW2Case(version: 3, clusterSize: 65536, compression: .zstd),
        QCOW2Case(version: 3, clusterSize: 2 << 20, compression: .deflate),
        QCOW2Case(version: 3, clusterSize: 2 << 20, compression: .zstd),
    ]

    @Test(arguments: writerCases)
    func readsWhatRehostWrites(_ testCase: QCOW2Case) throws {
        let directory = try TemporaryDirectory(prefix: "rehost-qcow2-read")
        let raw = directory.file("source.raw"), image = directory.file("image.qcow2"), back = directory.file("back.raw")
        try SyntheticDisk.make(at: raw, size: Self.diskSize, seed: UInt64(testCase.clusterSize) + 3)
        _ = try convertToQCOW2(raw: raw, output: image, options: testCase.options)

        let reader = try readIntoRaw(image, output: back)
        #expect(reader.virtualSize == Self.diskSize)
        #expect(try sameBytes(raw, back), "\(testCase.testDescription): contents differ")
        #expect(try pieces(of: reader) == qemuDataRanges(image))
        #expect(reader.header.clusterSize == UInt64(testCase.clusterSize))
        switch testCase.compression {
        case .none: #expect(!reader.variant.contains("compressed"))
        case .deflate: #expect(reader.variant.contains("zlib-compressed"))
        case .zstd: #expect(reader.variant.contains("zstd-compressed"))
        }
    }

    /// 25 MiB of mostly compressible clusters, with incompressible and zero clusters between
    /// them: several parallel batches, each mixing compressed clusters and plain runs.
    @Test func readsManyCompressedBatches() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-qcow2-read")
        let raw = directory.file("source.raw")
        let clusters = 400
        var generator = SplitMix(seed: 20)
        var bytes = [UInt8](repeating: 0, count: clusters << 16)
        for cluster in 0..<clusters where cluster % 11 != 5 {
            let start = cluster << 16
            if cluster % 7 == 3 {
                for index in start..<(start + 65536) { bytes[index] = UInt8(truncatingIfNeeded: generator.next()) }
            } else {
                let line = Array("cluster \(cluster): compressible text for the batches\n".utf8)
                for index in 0..<65536 { bytes[start + index] = line[index % line.count] }
            }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: raw))
        let zlib = directory.file("zlib.qcow2"), zstd = directory.file("zstd.qcow2"), rehost = directory.file("rehost.qcow2")
        try qemu("qemu-img", ["convert", "-c", "-f", "raw", "-O", "qcow2", raw, zlib])
        try qemu("qemu-img", ["convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "compression_type=zstd,cluster_size=2M", raw, zstd])
        var options = WriterOptions()
        options.qcow2ClusterSize = 4096
        options.qcow2Compression = .deflate
        _ = try convertToQCOW2(raw: raw, output: rehost, options: options)
        for image in [zlib, zstd, rehost] {
            let back = image + ".raw"
            let reader = try readIntoRaw(image, output: back)
            #expect(try sameBytes(raw, back), "\(image)")
            #expect(try pieces(of: reader) == qemuDataRanges(image))
            let compressedClusters = try QCOW2Inspector(path: image).mappings.filter {
                if case .compressed = $0.mapping { return true } else { return false }
            }.count
            // More compressed guest data than two batches hold.
            #expect(compressedClusters * Int(reader.header.clusterSize) > 16 << 20, "\(image): \(compressedClusters)")
        }
    }

    /// More than 4 GiB, sparse, with data near the end, from qemu (compressed) and from Rehost.
    @Test func readsFiveGiBDisks() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-qcow2-read")
        let size: UInt64 = (5 << 30) + 3 * 512
        let raw = directory.file("source.raw")
        let ranges = try SyntheticDisk.make(at: raw, size: size, seed: 7)
        #expect(ranges.contains { $0.lowerBound > 4 << 30 })
        let fromQemu = directory.file("qemu.qcow2"), fromRehost = directory.file("rehost.qcow2")
        try qemu("qemu-img", ["convert", "-c", "-f", "raw", "-O", "qcow2", raw, fromQemu])
        var options = WriterOptions()
        options.qcow2Version = 2
        options.qcow2ClusterSize = 4096
        _ = try convertToQCOW2(raw: raw, output: fromRehost, options: options)
        for image in [fromQemu, fromRehost] {
            let back = image + ".raw"
            let reader = try readIntoRaw(image, output: back)
            #expect(reader.virtualSize == size)
            #expect(try reader.virtualSize == qemuVirtualSize(image))
            // qemu-img compare skips holes, where cmp would read 5 GiB of them.
            let compare = try Command.run("qemu-img", ["compare", "-f", "raw", "-F", "raw", raw, back])
            #expect(compare.status == 0, "\(compare.stdout) \(compare.stderr)")
            #expect(try RawFile(path: back, mode: .readOnly).dataRanges().reduce(0) { $0 + $1.count } < 64 << 20)
        }
    }

    /// A header size that is not whole sectors: qemu drops the partial sector, and so do we.
    @Test func virtualSizeIsWholeSectorsLikeQemu() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-qcow2-read")
        let image = directory.file("odd.qcow2")
        try qemu("qemu-img", ["create", "-q", "-f", "qcow2", image, "1M"])
        try qemu("qemu-io", ["-f", "qcow2", "-c", "write -P 0x77 0 1M", image])
        let odd = try patched(image, to: directory.file("odd-size.qcow2")) { $0.storeBE(UInt64((1 << 20) + 100), at: 24) }
        let reader = try QCOW2Reader(path: odd)
        #expect(reader.virtualSize == 1 << 20)
        #expect(try qemuVirtualSize(odd) == 1 << 20)
        #expect(try pieces(of: reader) == [0..<(1 << 20)])
    }

    /// Only the active state of an image with internal snapshots is read.
    @Test func readsTheActiveStateBesideSnapshots() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-qcow2-read")
        let image = directory.file("snap.qcow2"), expected = directory.file("expected.raw"), back = directory.file("back.raw")
        try qemu("qemu-img", ["create", "-q", "-f", "qcow2", image, "4M"])
        try qemu("qemu-io", ["-f", "qcow2", "-c", "write -P 0x11 0 2M", image])
        try qemu("qemu-img", ["snapshot", "-c", "before", image])
        try qemu("qemu-io", ["-f", "qcow2", "-c", "write -P 0x22 1M 2M", "-c", "write -z 0 64k", image])
        try qemu("qemu-img", ["convert", "-f", "qcow2", "-O", "raw", image, expected])
        let reader = try readIntoRaw(image, output: back)
        #expect(try sameBytes(expected, back))
        #expect(reader.variant.contains("1 internal snapshot (active state read)"), "\(reader.variant)")
    }

    /// The dirty and corrupt bits do not stop a read-only open (qemu allows it too).
    @Test func readsDirtyAndCorruptMarkedImages() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-qcow2-read")
        let image = directory.file("plain.qcow2"), expected = directory.file("expected.raw")
        try qemu("qemu-img", ["create", "-q", "-f", "qcow2", image, "2M"])
        try qemu("qemu-io", ["-f", "qcow2", "-c", "write -P 0x5a 64k 128k", image])
        try qemu("qemu-img", ["convert", "-f", "qcow2", "-O", "raw", image, expected])
        for (bit, note) in [(0, "dirty"), (1, "marked corrupt")] {
            let marked = try patched(image, to: directory.file("bit\(bit).qcow2")) { $0[79] |= 1 << UInt8(bit) }
            let back = directory.file("bit\(bit).raw")
            let reader = try readIntoRaw(marked, output: back)
            #expect(try sameBytes(expected, back))
            #expect(reader.variant.hasSuffix(note), "\(reader.variant)")
        }
    }

    @Test func refusesFeaturesItDoesNotRead() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-qcow2-read")
        func file(_ name: String) -> String { directory.file(name) }
        try qemu("qemu-img", ["create", "-q", "-f", "raw", file("base.raw"), "1M"])
        try qemu("qemu-img", ["create", "-q", "-f", "qcow2", "-b", file("base.raw"), "-F", "raw", file("backed.qcow2")])
        expectFailure(file("backed.qcow2"), .unsupported(mentioning: "backing file (\"\(file("base.raw"))\")"))

        try createLUKS(["create", "-q", "-f", "qcow2", "--object", "secret,id=sec0,data=rehost",
                       "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", file("luks.qcow2"), "1M"])
        expectFailure(file("luks.qcow2"), .unsupported(mentioning: "LUKS encryption"))

        try qemu("qemu-img", ["create", "-q", "-f", "qcow2", "-o", "extended_l2=on", file("subclusters.qcow2"), "1M"])
        expectFailure(file("subclusters.qcow2"), .unsupported(mentioning: "extended L2"))

        try qemu("qemu-img", ["create", "-q", "-f", "qcow2", "-o", "data_file=\(file("data.raw"))", file("external.qcow2"), "1M"])
        expectFailure(file("external.qcow2"), .unsupported(mentioning: "external data file (\"\(file("data.raw"))\")"))

        let plain = file("plain.qcow2")
        try qemu("qemu-img", ["create", "-q", "-f", "qcow2", plain, "1M"])
        expectFailure(try patched(plain, to: file("aes.qcow2")) { $0.storeBE(UInt32(1), at: 32) }, .unsupported(mentioning: "AES"))
        expectFailure(try patched(plain, to: file("bit10.qcow2")) { $0[78] |= 0x04 }, .unsupported(mentioning: "bit 10"))
        // qemu's feature name table names the bits it knows; a name found there is used.
        expectFailure(try patched(plain, to: file("named10.qcow2")) { bytes in
            let name = Array("extended L2 entries".utf8)
            guard let at = (0..<(bytes.count - name.count)).first(where: { Array(bytes[$0..<($0 + name.count)]) == name }) else { return }
            bytes[at - 1] = 10
            bytes[78] |= 0x04
        }, .unsupported(mentioning: "\"extended L2 entries\" (bit 10)"))
        // A name from the file stays on one line.
        try qemu("qemu-img", ["create", "-q", "-f", "qcow2", "-u", "-b", "two\nlines.raw", "-F", "raw", file("newline.qcow2"), "1M"])
        expectFailure(file("newline.qcow2"), .unsupported(mentioning: "two\\x0alines.raw"))
        expectFailure(try patched(plain, to: file("type2.qcow2")) { $0[79] |= 0x08; $0[104] = 2 }, .unsupported(mentioning: "compression type 2"))
        expectFailure(try patched(plain, to: file("v1.qcow2")) { $0.storeBE(UInt32(1), at: 4) }, .unsupported(mentioning: "version 1"))
    }

    /// Header fields out of range, each named by its byte.
    @Test func rejectsCorruptHeaders() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-qcow2-read")
        let image = directory.file("good.qcow2")
        try qemu("qemu-img", ["create", "-q", "-f", "qcow2", image, "4M"])
        try qemu("qemu-io", ["-f", "qcow2", "-c", "write -P 0x42 0 128k", image])
        #expect(readError(image) == nil)
        let fileSize = try RawFile(path: image, mode: .readOnly).size
        let beyond = (fileSize / 65536 + 4) * 65536
        var index = 0
        func check(_ expected: Expected, _ change: (inout [UInt8]) -> Void, sourceLocation: SourceLocation = #_sourceLocation) throws {
            index += 1
            expectFailure(try patched(image, to: directory.file("bad\(index).qcow2"), change), expected, sourceLocation: sourceLocation)
        }
        try check(.corrupt(at: 0)) { $0[0] = 0x51; $0[3] = 0xFC }
        try check(.corrupt(at: 4)) { $0.storeBE(UInt32(4), at: 4) }
        try check(.corrupt(at: 20)) { $0.storeBE(UInt32(8), at: 20) }
        try check(.corrupt(at: 20)) { $0.storeBE(UInt32(22), at: 20) }
        try check(.corrupt(at: 100)) { $0.storeBE(UInt32(100), at: 100) }
        try check(.corrupt(at: 100)) { $0.storeBE(UInt32(1 << 20), at: 100) }
        try check(.corrupt(at: 96)) { $0.storeBE(UInt32(7), at: 96) }
        try check(.corrupt(at: 104)) { $0[104] = 1 }  // zstd without incompatible bit 3
        try check(.corrupt(at: 36)) { $0.storeBE(UInt32.max, at: 36) }
        try check(.corrupt(at: 36)) { $0.storeBE(UInt32(0), at: 36) }
        try check(.corrupt(at: 36)) { $0.storeBE(UInt64(1) << 62, at: 24) }  // the L1 table no longer covers the disk
        try check(.corrupt(at: 40)) { $0.storeBE(UInt64(0x30008), at: 40) }
        try check(.truncated(at: beyond)) { $0.storeBE(beyond, at: 40) }
        try check(.corrupt(at: 40)) { $0.storeBE(UInt32(1 << 22), at: 36); $0.storeBE(UInt64.max & ~0xFFFF, at: 40) }  // ends beyond 2^64
        try check(.corrupt(at: 48)) { $0.storeBE(UInt64(0x10200), at: 48) }
        try check(.truncated(at: beyond)) { $0.storeBE(beyond, at: 48) }
        try check(.corrupt(at: 56)) { $0.storeBE(UInt32(0), at: 56) }
        try check(.corrupt(at: 56)) { $0.storeBE(UInt32(1 << 20), at: 56) }
        try check(.corrupt(at: 60)) { $0.storeBE(UInt32(70000), at: 60) }
        try check(.truncated(at: beyond)) { $0.storeBE(UInt32(2), at: 60); $0.storeBE(beyond, at: 64) }
        try check(.corrupt(at: 32)) { $0.storeBE(UInt32(3), at: 32) }
        try check(.corrupt(at: 8)) { $0.storeBE(UInt64(1 << 20), at: 8); $0.storeBE(UInt32(4), at: 16) }
        // A header extension longer than the header cluster.
        try check(.corrupt(at: 116)) { $0.storeBE(UInt32(0x1234_5678), at: 112); $0.storeBE(UInt32(1 << 20), at: 116) }
    }

    /// L1 and L2 entries that point outside the file, off the cluster grid, or at a shared table.
    @Test func rejectsCorruptTableEntries() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-qcow2-read")
        let image = directory.file("good.qcow2")
        // 1 GiB: two L1 entries with 64 KiB clusters.
        try qemu("qemu-img", ["create", "-q", "-f", "qcow2", image, "1G"])
        try qemu("qemu-io", ["-f", "qcow2", "-c", "write -P 0x42 0 128k", "-c", "write -P 0x43 600M 64k", image])
        #expect(readError(image) == nil)
        let fileSize = try RawFile(path: image, mode: .readOnly).size
        let l1 = try loadU64(image, at: 40)
        let l2 = try loadU64(image, at: l1) & QCOW2Entry.offsetMask
        let firstData = try loadU64(image, at: l2)
        #expect(firstData & QCOW2Entry.offsetMask != 0)
        var index = 0
        func check(_ expected: Expected, _ change: (inout [UInt8]) -> Void, sourceLocation: SourceLocation = #_sourceLocation) throws {
            index += 1
            expectFailure(try patched(image, to: directory.file("bad\(index).qcow2"), change), expected, sourceLocation: sourceLocation)
        }
        let past = (fileSize / 65536 + 1) * 65536
        try check(.corrupt(at: l1)) { $0.storeBE(QCOW2Entry.copied | past, at: Int(l1)) }
        try check(.corrupt(at: l1)) { $0.storeBE(QCOW2Entry.copied | (l2 + 512), at: Int(l1)) }
        try check(.corrupt(at: l1 + 8)) { $0.storeBE(QCOW2Entry.copied | l2, at: Int(l1) + 8) }  // shares L1[0]'s table
        try check(.corrupt(at: l2 + 8)) { $0.storeBE(firstData, at: Int(l2) + 8) }  // shares guest cluster 0's data
        try check(.corrupt(at: l2)) { $0.storeBE(QCOW2Entry.copied | past, at: Int(l2)) }
        try check(.corrupt(at: l2 + 8)) { $0.storeBE(firstData + 4096, at: Int(l2) + 8) }
        try check(.corrupt(at: l2)) {
            // Compressed data whose first byte is past the end of the file.
            $0.storeBE(QCOW2Entry.compressedEntry(offset: fileSize + 1000, length: 100, clusterBits: 16), at: Int(l2))
        }
        // A zero flag pointing off the grid.
        try check(.corrupt(at: l2)) { $0.storeBE((firstData & QCOW2Entry.offsetMask) + 512 | QCOW2Entry.zero, at: Int(l2)) }
        // Compressed entries may end anywhere in their last sector, even past the end of the file
        // (qemu reads zeros there), but their last sector must start inside it.
        let lastSector = (fileSize - 1) / 512 * 512
        try check(.corrupt(at: l2)) {
            $0.storeBE(QCOW2Entry.compressed | (2 << 54) | lastSector, at: Int(l2))
        }

        // Version 2 has no zero flag.
        let v2 = directory.file("v2.qcow2")
        try qemu("qemu-img", ["convert", "-f", "qcow2", "-O", "qcow2", "-o", "compat=0.10", image, v2])
        let v2L2 = try loadU64(v2, at: try loadU64(v2, at: 40)) & QCOW2Entry.offsetMask
        expectFailure(try patched(v2, to: directory.file("v2zero.qcow2")) { $0[Int(v2L2) + 7] |= 1 }, .corrupt(at: v2L2))
    }

    /// Compressed data that does not inflate to exactly one cluster fails while streaming, at its
    /// host offset.
    @Test func rejectsBadCompressedData() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-qcow2-read")
        let raw = directory.file("source.raw")
        try SyntheticDisk.make(at: raw, size: 8 << 20, seed: 4)
        for type in ["zlib", "zstd"] {
            let image = directory.file("\(type).qcow2")
            try qemu("qemu-img", ["convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "compression_type=\(type)", raw, image])
            let inspector = try QCOW2Inspector(path: image)
            let compressed = inspector.mappings.compactMap { item -> UInt64? in
                if case let .compressed(host, _, _) = item.mapping { return host } else { return nil }
            }
            let host = try #require(compressed.dropFirst(3).first)
            #expect(readError(image) == nil)
            // Garbage where the data was.
            expectFailure(try patched(image, to: directory.file("\(type)-garbage.qcow2")) {
                for index in 0..<16 { $0[Int(host) + index] = 0xA5 ^ UInt8(index) }
            }, .corrupt(at: host))
            // A valid stream of the wrong size: 4 KiB instead of a 64 KiB cluster.
            let short = try [UInt8](repeating: 0x61, count: 4096).withUnsafeBytes { bytes in
                try #require((type == "zlib" ? Compressor.zlibRawDeflate4K : .zstd).compress(bytes, level: 1, limit: 512))
            }
            expectFailure(try patched(image, to: directory.file("\(type)-short.qcow2")) {
                $0.replaceSubrange(Int(host)..<(Int(host) + short.count), with: short)
            }, .corrupt(at: host))
        }
    }

    /// Files cut short: in the header, in the tables, in the data.
    @Test func rejectsTruncatedFiles() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-qcow2-read")
        let raw = directory.file("source.raw")
        try SyntheticDisk.make(at: raw, size: 8 << 20, seed: 5)
        let fromQemu = directory.file("qemu.qcow2"), fromRehost = directory.file("rehost.qcow2")
        try qemu("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, fromQemu])
        _ = try convertToQCOW2(raw: raw, output: fromRehost, options: WriterOptions())
        func cut(_ image: String, at length: Int, _ expected: Expected, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let path = directory.file("cut-\(length)-\(URL(fileURLWithPath: image).lastPathComponent)")
            expectFailure(try patched(image, to: path) { $0.removeSubrange(length...) }, expected, sourceLocation: sourceLocation)
        }
        try cut(fromQemu, at: 0, .truncated(at: 0))
        try cut(fromQemu, at: 50, .truncated(at: 0))
        try cut(fromQemu, at: 100, .truncated(at: 0))
        // qemu's layout: header, refcount table, refcount block, L1 table, L2 table, data.
        let l1 = try loadU64(fromQemu, at: 40)
        let l2 = try loadU64(fromQemu, at: l1) & QCOW2Entry.offsetMask
        let data = try loadU64(fromQemu, at: l2) & QCOW2Entry.offsetMask
        try cut(fromQemu, at: Int(l1) + 4, .truncated(at: l1))
        try cut(fromQemu, at: Int(l2) + 100, .corrupt(at: l1))
        try cut(fromQemu, at: Int(data) + 1000, .corrupt(at: l2))
        // Rehost's layout puts the tables at the end: a cut anywhere loses the L1 table.
        let rehostL1 = try loadU64(fromRehost, at: 40)
        try cut(fromRehost, at: 3 << 20, .truncated(at: rehostL1))
    }

    /// Seeded byte flips in the metadata of small images, qemu's and Rehost's, compressed or not:
    /// each read either fails with a typed error or streams to the end, within bounds.
    @Test func survivesFlippedMetadata() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-qcow2-read")
        let plain = directory.file("plain.qcow2"), compressed = directory.file("compressed.qcow2")
        let rehost = directory.file("rehost.qcow2"), raw = directory.file("source.raw")
        try qemu("qemu-img", ["create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", plain, "2M"])
        try qemu("qemu-io", ["-f", "qcow2", "-c", "write -P 0x11 0 256k", "-c", "write -z 64k 16k",
                             "-c", "write -P 0x22 1M 64k", "-c", "write -P 0x33 2044k 4k", plain])
        try qemu("qemu-img", ["convert", "-f", "qcow2", "-O", "raw", plain, raw])
        try qemu("qemu-img", ["convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096", raw, compressed])
        var options = WriterOptions()
        options.qcow2Version = 2
        options.qcow2ClusterSize = 4096
        options.qcow2Compression = .deflate
        _ = try convertToQCOW2(raw: raw, output: rehost, options: options)

        var generator = SplitMix(seed: 0x5EED)
        var outcomes = (read: 0, refused: 0)
        let target = directory.file("fuzzed.qcow2")
        for image in [plain, compressed, rehost] {
            // The metadata: the header cluster, the L1 table and every L2 table.
            let inspector = try QCOW2Inspector(path: image)
            let clusterSize = Int(inspector.header.clusterSize)
            var regions = [0..<clusterSize,
                           Int(inspector.header.l1TableOffset)..<(Int(inspector.header.l1TableOffset) + Int(inspector.header.l1Size) * 8)]
            for entry in inspector.l1 where entry != 0 {
                let offset = Int(entry & QCOW2Entry.offsetMask)
                regions.append(offset..<(offset + clusterSize))
            }
            let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: image)))
            for _ in 0..<100 {
                var bytes = original
                for _ in 0...generator.below(4) {
                    // Half the flips in the first 112 bytes, where every byte is a field.
                    let region = generator.below(2) == 0 ? 0..<112 : regions[generator.below(regions.count)]
                    bytes[region.lowerBound + generator.below(region.count)] ^= UInt8(1 + generator.below(255))
                }
                try Data(bytes).write(to: URL(fileURLWithPath: target))
                do {
                    let reader = try QCOW2Reader(path: target)
                    var end: UInt64 = 0
                    try reader.forEachDataPiece { offset, data in
                        #expect(offset >= end)
                        end = offset + UInt64(data.count)
                        #expect(end <= reader.virtualSize)
                    }
                    outcomes.read += 1
                } catch is ImageReadError {
                    outcomes.refused += 1
                } catch is FileError {
                    outcomes.refused += 1
                }
            }
        }
        // Both outcomes happen: the fuzzing reaches past the header checks.
        #expect(outcomes.read > 10 && outcomes.refused > 10, "\(outcomes)")
    }
}
