import Foundation
import ImageCore
import ImageFormats
import Testing
import TestSupport

/// One qcow2 configuration under test.
struct QCOW2Case: CustomTestStringConvertible, Sendable {
    var version: Int
    var clusterSize: Int
    var compression: WriterOptions.QCOW2Compression

    var options: WriterOptions {
        var options = WriterOptions()
        options.qcow2Version = version
        options.qcow2ClusterSize = clusterSize
        options.qcow2Compression = compression
        return options
    }

    var testDescription: String { "v\(version) \(clusterSize) B \(compression.rawValue)" }
}

/// Converts `raw` to qcow2 at `output` through the same reader and streamer the pipeline uses.
func convertToQCOW2(raw: String, output: String, options: WriterOptions) throws -> WriterSummary {
    let reader = try RawDiskReader(path: raw)
    let file = try RawFile(path: output, mode: .createExclusive)
    let writer = try QCOW2Writer(sink: OutputSink(file: file), virtualSize: reader.size, options: options)
    return try DiskStreamer.stream(reader, to: [writer])[0]
}

/// `qemu-img info --output=json` as a dictionary.
func qemuInfo(_ path: String) throws -> [String: Any] {
    let result = try Command.run("qemu-img", ["info", "--output=json", "-f", "qcow2", path]).requireSuccess()
    let object = try JSONSerialization.jsonObject(with: Data(result.stdoutBytes))
    return try #require(object as? [String: Any])
}

/// The guest clusters that hold the non-zero ranges SyntheticDisk reports.
func expectedDataClusters(_ ranges: [Range<UInt64>], clusterSize: UInt64) -> Set<UInt64> {
    var clusters = Set<UInt64>()
    for range in ranges where !range.isEmpty {
        for cluster in (range.lowerBound / clusterSize)...((range.upperBound - 1) / clusterSize) { clusters.insert(cluster) }
    }
    return clusters
}

/// Everything qemu-img and our own decoder must agree on for an image converted from `raw`.
func verifyImage(raw: String, image: String, ranges: [Range<UInt64>], summary: WriterSummary, testCase: QCOW2Case) throws {
    let rawSize = try RawFile(path: raw, mode: .readOnly).size

    // qemu-img: clean check, identical contents, exact size and the expected variant.
    let check = try Command.run("qemu-img", ["check", "--output=json", "-f", "qcow2", image])
    #expect(check.status == 0, "qemu-img check: \(check.stdout) \(check.stderr)")
    let checkJSON = try #require(try JSONSerialization.jsonObject(with: Data(check.stdoutBytes)) as? [String: Any])
    for key in ["leaks", "corruptions", "check-errors", "leaks-fixed", "corruptions-fixed"] {
        #expect((checkJSON[key] as? Int ?? 0) == 0, "qemu-img check reports \(key): \(check.stdout)")
    }
    let compare = try Command.run("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", raw, image])
    #expect(compare.status == 0, "qemu-img compare: \(compare.stdout) \(compare.stderr)")

    // 7-Zip takes the image to end where its last table or data cluster ends (it does not follow
    // refcount blocks): the whole file, with no "data after the end of the archive".
    let listing = try Command.run(try Command.require("7z"), ["l", image])
    #expect(!listing.stdout.contains("after the end"), "7-Zip: \(listing.stdout)")
    let fileSize = try RawFile(path: image, mode: .readOnly).size
    #expect(listing.stdout.contains("Physical Size = \(fileSize)\n"), "7-Zip: \(listing.stdout)")

    let info = try qemuInfo(image)
    #expect(info["virtual-size"] as? UInt64 == rawSize)
    #expect(info["format"] as? String == "qcow2")
    #expect(info["cluster-size"] as? Int == testCase.clusterSize)
    #expect(info["backing-filename"] == nil)
    let specific = try #require((info["format-specific"] as? [String: Any])?["data"] as? [String: Any])
    #expect(specific["compat"] as? String == (testCase.version == 3 ? "1.1" : "0.10"))
    #expect(specific["compression-type"] as? String == (testCase.compression == .zstd ? "zstd" : "zlib"))
    #expect(specific["refcount-bits"] as? Int == 16)

    // Our own decoder: header fields per the specification.
    let inspector = try QCOW2Inspector(path: image)
    let header = inspector.header
    let clusterSize = UInt64(testCase.clusterSize)
    #expect(header.version == UInt32(testCase.version))
    #expect(header.clusterSize == clusterSize)
    #expect(header.size == rawSize)
    #expect(header.backingFileOffset == 0 && header.backingFileSize == 0)
    #expect(header.cryptMethod == 0 && header.snapshotCount == 0 && header.snapshotsOffset == 0)
    let guestClusters = (rawSize + clusterSize - 1) / clusterSize
    #expect(UInt64(header.l1Size) == (guestClusters + clusterSize / 8 - 1) / (clusterSize / 8))
    if testCase.version == 3 {
        #expect(header.headerLength == 112)
        #expect(header.refcountOrder == 4)
        #expect(header.incompatibleFeatures == (testCase.compression == .zstd ? QCOW2Header.compressionTypeFeature : 0))
        #expect(header.compatibleFeatures == 0 && header.autoclearFeatures == 0)
        #expect(header.compressionType == (testCase.compression == .zstd ? 1 : 0))
    } else {
        // A v2 header is 72 bytes: what follows it up to the first table is zero.
        let head = try RawFile(path: image, mode: .readOnly).read(count: 112, at: 0)
        #expect(head[72...].allSatisfy { $0 == 0 })
    }
    #expect(inspector.fileSize % clusterSize == 0)
    #expect(inspector.fileSize == summary.fileSize)

    // Mappings: exactly the clusters with data, flags right for their kind.
    let mapped = inspector.mappings.map(\.guestCluster)
    #expect(Set(mapped) == expectedDataClusters(ranges, clusterSize: clusterSize))
    #expect(UInt64(mapped.count) == summary.allocatedUnits)
    for entry in inspector.l1 where entry != 0 { #expect(entry & QCOW2Entry.copied != 0) }
    var compressedCount = 0
    for (guest, mapping) in inspector.mappings {
        switch mapping {
        case let .standard(host, copied):
            #expect(copied, "guest cluster \(guest) at \(host) lacks the copied flag")
            if testCase.compression == .none { continue }
        case let .compressed(_, sectors, copied):
            #expect(!copied, "compressed guest cluster \(guest) has the copied flag")
            #expect(sectors <= clusterSize / 256)
            compressedCount += 1
        }
    }
    if testCase.compression == .none { #expect(compressedCount == 0) } else { #expect(compressedCount > 0) }

    // Refcounts: what the image stores is exactly a recount, and every host cluster is used.
    let recount = inspector.recountedRefcounts()
    #expect(recount.count == inspector.storedRefcounts.count)
    let mismatches = zip(recount, inspector.storedRefcounts).enumerated().filter { $0.element.0 != UInt64($0.element.1) }
    #expect(mismatches.isEmpty, "refcount mismatches (cluster, recount, stored): \(mismatches.prefix(5).map { ($0.offset, $0.element.0, $0.element.1) })")
    #expect(!inspector.storedRefcounts.contains(0), "a host cluster inside the file is unused")
    if testCase.compression != .none {
        // Several compressed clusters share host clusters.
        #expect(inspector.storedRefcounts.contains { $0 > 1 })
    }
}

@Suite struct QCOW2WriterTests {
    static let matrix: [QCOW2Case] = {
        var cases: [QCOW2Case] = []
        for clusterSize in [512, 4096, 65536, 2 << 20] {
            for compression in WriterOptions.QCOW2Compression.allCases {
                cases.append(QCOW2Case(version: 3, clusterSize: clusterSize, compression: compression))
                if compression != .zstd { cases.append(QCOW2Case(version: 2, clusterSize: clusterSize, compression: compression)) }
            }
        }
        return cases
    }()

    /// 40 MiB + 3 sectors: not a multiple of any cluster size.
    @Test(arguments: matrix)
    func convertsLikeQemuReadsIt(_ testCase: QCOW2Case) throws {
        let directory = try TemporaryDirectory(prefix: "rehost-qcow2")
        let raw = directory.file("disk.raw"), image = directory.file("disk.qcow2")
        let ranges = try SyntheticDisk.make(at: raw, size: (40 << 20) + 3 * 512, seed: UInt64(testCase.clusterSize))
        let summary = try convertToQCOW2(raw: raw, output: image, options: testCase.options)
        #expect(summary.format == .qcow2 && summary.unitSize == UInt64(testCase.clusterSize))
        try verifyImage(raw: raw, image: image, ranges: ranges, summary: summary, testCase: testCase)
    }

    @Test(arguments: [QCOW2Case(version: 3, clusterSize: 65536, compression: .deflate),
                      QCOW2Case(version: 2, clusterSize: 4096, compression: .none)])
    func fiveGiBSparseDiskWithDataNearTheEnd(_ testCase: QCOW2Case) throws {
        let directory = try TemporaryDirectory(prefix: "rehost-qcow2")
        let raw = directory.file("disk.raw"), image = directory.file("disk.qcow2")
        let size: UInt64 = 5 << 30
        let ranges = try SyntheticDisk.make(at: raw, size: size, seed: 5)
        #expect(ranges.contains { $0.lowerBound > 4 << 30 })
        let summary = try convertToQCOW2(raw: raw, output: image, options: testCase.options)
        #expect(summary.fileSize < 64 << 20)
        try verifyImage(raw: raw, image: image, ranges: ranges, summary: summary, testCase: testCase)
        let inspector = try QCOW2Inspector(path: image)
        #expect(inspector.mappings.contains { $0.guestCluster * UInt64(testCase.clusterSize) >= 4 << 30 })
    }

    @Test(arguments: [QCOW2Case(version: 3, clusterSize: 2 << 20, compression: .zstd),
                      QCOW2Case(version: 3, clusterSize: 65536, compression: .none)])
    func oddSizedDisk(_ testCase: QCOW2Case) throws {
        let directory = try TemporaryDirectory(prefix: "rehost-qcow2")
        let raw = directory.file("disk.raw"), image = directory.file("disk.qcow2")
        let size: UInt64 = (100 << 20) + 3 * 512
        let ranges = try SyntheticDisk.make(at: raw, size: size, seed: 9)
        let summary = try convertToQCOW2(raw: raw, output: image, options: testCase.options)
        #expect(summary.virtualSize == size)
        try verifyImage(raw: raw, image: image, ranges: ranges, summary: summary, testCase: testCase)
        // The last sector's data made it into the last guest cluster.
        let inspector = try QCOW2Inspector(path: image)
        #expect(inspector.mappings.last?.guestCluster == (size - 1) / UInt64(testCase.clusterSize))
    }

    @Test func compressionShrinksTextAndKeepsRandomDataRaw() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-qcow2")
        let raw = directory.file("disk.raw")
        let ranges = try SyntheticDisk.make(at: raw, size: 32 << 20, seed: 3)
        var sizes: [WriterOptions.QCOW2Compression: UInt64] = [:]
        for compression in WriterOptions.QCOW2Compression.allCases {
            let image = directory.file("\(compression.rawValue).qcow2")
            var options = WriterOptions()
            options.qcow2Compression = compression
            sizes[compression] = try convertToQCOW2(raw: raw, output: image, options: options).fileSize
            guard compression != .none else { continue }
            // The text megabyte at 5 MiB is compressed; the random data at 0 stays raw.
            let inspector = try QCOW2Inspector(path: image)
            let byCluster = Dictionary(uniqueKeysWithValues: inspector.mappings.map { ($0.guestCluster, $0.mapping) })
            if case .compressed = byCluster[(5 << 20) / 65536] {} else { Issue.record("text cluster not compressed (\(compression))") }
            if case .standard = byCluster[0] {} else { Issue.record("random cluster not stored raw (\(compression))") }
        }
        let plain = try #require(sizes[.none])
        // The text megabyte shrinks to a few KiB: the saving is nearly all of it.
        #expect(try #require(sizes[.deflate]) + (900 << 10) < plain)
        #expect(try #require(sizes[.zstd]) + (900 << 10) < plain)
        _ = ranges
    }

    @Test func refusesWhatItCannotWrite() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-qcow2")
        func attempt(_ change: (inout WriterOptions) -> Void, size: UInt64 = 1 << 20) throws {
            var options = WriterOptions()
            change(&options)
            let path = directory.file("refused-\(UUID().uuidString).qcow2")
            _ = try QCOW2Writer(sink: OutputSink(file: RawFile(path: path, mode: .createExclusive)), virtualSize: size, options: options)
        }
        for size in [0, 256, 3000, 65536 + 512, 4 << 20] {
            #expect(throws: QCOW2Error.invalidClusterSize(size)) { try attempt { $0.qcow2ClusterSize = size } }
        }
        #expect(throws: QCOW2Error.zstdNeedsVersion3) {
            try attempt { $0.qcow2Version = 2; $0.qcow2Compression = .zstd }
        }
        #expect(throws: QCOW2Error.unsupportedVersion(1)) { try attempt { $0.qcow2Version = 1 } }
        #expect(throws: QCOW2Error.invalidCompressionLevel(compression: "deflate", level: 12, allowed: 1...9)) {
            try attempt { $0.qcow2Compression = .deflate; $0.compressionLevel = 12 }
        }
        #expect(throws: QCOW2Error.self) { try attempt({ _ in }, size: (1 << 20) + 100) }
        // 512-byte clusters map at most 128 GiB within qemu's 32 MiB L1 limit.
        #expect(throws: QCOW2Error.self) { try attempt({ $0.qcow2ClusterSize = 512 }, size: 256 << 30) }
        // Every refusal says what was wrong in one line.
        #expect(QCOW2Error.invalidClusterSize(3000).description.contains("3000"))
        #expect(!QCOW2Error.zstdNeedsVersion3.description.contains("\n"))
    }

    @Test func refusesOutOfOrderAndOversizedWrites() throws {
        let directory = try TemporaryDirectory(prefix: "rehost-qcow2")
        let file = try RawFile(path: directory.file("order.qcow2"), mode: .createExclusive)
        let writer = try QCOW2Writer(sink: OutputSink(file: file), virtualSize: 1 << 20, options: WriterOptions())
        let bytes = [UInt8](repeating: 7, count: 4096)
        try bytes.withUnsafeBytes { try writer.write($0, at: 65536) }
        #expect(throws: WriterError.self) { try bytes.withUnsafeBytes { try writer.write($0, at: 0) } }
        #expect(throws: WriterError.self) { try bytes.withUnsafeBytes { try writer.write($0, at: (1 << 20) - 512) } }
        _ = try writer.finish()
        #expect(throws: WriterError.self) { _ = try writer.finish() }
    }

    @Test func headerRoundTripsAndRejectsGarbage() throws {
        for version in [UInt32(2), 3] {
            for compression in [QCOW2Header.CompressionType.zlib, .zstd] where version == 3 || compression == .zlib {
                let header = QCOW2Header(version: version, clusterBits: 16, size: 5 << 30, l1Size: 10, l1TableOffset: 1 << 20,
                                         refcountTableOffset: 2 << 20, refcountTableClusters: 1, compressionType: compression)
                let bytes = header.encoded()
                #expect(bytes.count == (version == 3 ? 112 : 72))
                #expect(Array(bytes[0..<4]) == [0x51, 0x46, 0x49, 0xFB])
                #expect(try QCOW2Header.decode(bytes, path: "h") == header)
            }
        }
        var bad = QCOW2Header(version: 3, clusterBits: 16, size: 1 << 20, l1Size: 1, l1TableOffset: 65536,
                              refcountTableOffset: 131072, refcountTableClusters: 1, compressionType: .zlib).encoded()
        bad[104] = 1  // zstd without the incompatible bit
        #expect(throws: QCOW2Error.self) { _ = try QCOW2Header.decode(bad, path: "h") }
        bad[0] = 0
        #expect(throws: QCOW2Error.badField(path: "h", offset: 0, field: "magic", found: 0x0046_49FB,
                                            expected: "0x514649fb (\"QFI\\xfb\")")) { _ = try QCOW2Header.decode(bad, path: "h") }
    }

    @Test func compressedEntryEncoding() {
        // 64 KiB clusters: x = 62 - 8 = 54; 1000 bytes at byte 0x10_0123 (sector 0x800)
        // end at byte 0x10_050a (sector 0x802): three sectors, stored as 2.
        let entry = QCOW2Entry.compressedEntry(offset: 0x10_0123, length: 1000, clusterBits: 16)
        #expect(entry & QCOW2Entry.compressed != 0 && entry & QCOW2Entry.copied == 0)
        #expect(entry >> 54 & 0xFF == 2)
        #expect(entry & ((1 << 54) - 1) == 0x10_0123)
        let decoded = QCOW2Entry.decodeCompressed(entry, clusterBits: 16)
        #expect(decoded.offset == 0x10_0123 && decoded.sectors == 3)
        // 512-byte clusters leave one bit for the count: at most two sectors.
        let small = QCOW2Entry.compressedEntry(offset: 511, length: 511, clusterBits: 9)
        #expect(QCOW2Entry.decodeCompressed(small, clusterBits: 9).sectors == 2)
    }
}
