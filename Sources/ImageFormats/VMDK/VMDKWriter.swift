import Compression
import ImageCore

/// Writes a VMDK sparse extent (streamOptimized or monolithicSparse, see `VMDK` for both
/// layouts) in one pass over the disk's data.
///
/// Data is gathered into whole 64 KiB grains, 16 MiB of them at a time; all-zero grains are
/// dropped. streamOptimized compresses a batch on every core, then appends markers and data in
/// ascending LBA order, each grain table right after its grains, with one sequential write per
/// batch: nothing is ever written behind the
/// current end, so the file can be hashed as it is written (OVA). monolithicSparse writes each
/// batch's grains with one write per run of adjacent grains, and each grain table (with its
/// redundant copy) once the data has moved past it.
public final class VMDKWriter: DiskImageWriter {
    public let format = ImageFormat.vmdk
    public let virtualSize: UInt64
    public let subformat: WriterOptions.VMDKSubformat
    /// The descriptor's CID.
    public let cid: UInt32
    /// How streamOptimized grains are compressed (zlib streams); settable before the first write.
    public var compressor: Compressor = .libdeflateZlib

    private let sink: OutputSink
    private let level: Int32
    private let capacitySectors: UInt64
    private let grainCount: UInt64
    private let grainTableCount: Int

    // Grains being gathered: `batchIndices[i]` is the grain held at `batch[i * grainBytes...]`.
    // 8 MiB: enough to keep every core busy, small enough that a VMDK and an OVA written in the
    // same pass stay well inside the memory budget.
    private static let batchGrains = 128
    private var batch: [UInt8]
    private var batchIndices: [UInt64] = []
    private var nextOffset: UInt64 = 0
    private var allocatedGrains: UInt64 = 0

    // Where the next byte of the file goes: streamOptimized appends, monolithicSparse appends
    // grains after the preallocated tables.
    private var fileEnd: UInt64 = 0

    // The one grain table being filled (both subformats).
    private var currentTable: (index: Int, entries: [UInt32])?
    // streamOptimized: the grain directory, filled as tables are written.
    private var streamDirectory: [UInt32] = []
    // monolithicSparse: where the preallocated metadata lives.
    private var sparseLayout: SparseLayout?
    private var finished = false

    /// Sector positions of monolithicSparse's preallocated metadata.
    struct SparseLayout {
        let redundantDirectory: UInt64
        let redundantTables: UInt64
        let directory: UInt64
        let tables: UInt64
        let overHead: UInt64
    }

    public convenience init(sink: OutputSink, virtualSize: UInt64, options: WriterOptions) throws {
        try self.init(sink: sink, virtualSize: virtualSize, options: options, extentFileName: nil)
    }

    /// Writes the header and descriptor at once, so a sink that is to be hashed must have had
    /// `startDigest` called before this.
    /// - Parameter extentFileName: the name in the descriptor's extent line; by default the base
    ///   name of the sink's file (give it when the sink is a region of another file, as in an OVA).
    public init(sink: OutputSink, virtualSize: UInt64, options: WriterOptions, extentFileName: String?) throws {
        guard virtualSize % UInt64(VMDK.sectorSize) == 0 else {
            throw WriterError.unsupported(format: .vmdk, what: "a virtual size of \(virtualSize) bytes is not a whole number of 512-byte sectors")
        }
        guard virtualSize > 0 else {
            throw WriterError.unsupported(format: .vmdk, what: "an empty (0-byte) disk cannot be a sparse extent")
        }
        guard virtualSize <= VMDK.maximumVirtualSize else {
            throw WriterError.unsupported(format: .vmdk, what: "a virtual size of \(virtualSize) bytes exceeds the sparse extent limit of \(VMDK.maximumVirtualSize) bytes (u32 grain table entries)")
        }
        self.sink = sink
        self.virtualSize = virtualSize
        subformat = options.vmdkSubformat
        level = options.compressionLevel
        capacitySectors = virtualSize / UInt64(VMDK.sectorSize)
        grainCount = (capacitySectors + VMDK.grainSectors - 1) / VMDK.grainSectors
        grainTableCount = Int((grainCount + UInt64(VMDK.entriesPerGrainTable) - 1) / UInt64(VMDK.entriesPerGrainTable))
        // 0xFFFFFFFF means "no parent" in parentCID: never a CID.
        cid = options.vmdkCID ?? min(Reproducibility.uint32(for: "vmdk cid"), 0xFFFF_FFFD)
        batch = [UInt8](repeating: 0, count: Self.batchGrains * VMDK.grainBytes)
        batchIndices.reserveCapacity(Self.batchGrains)

        let fileName = extentFileName ?? String(sink.path.split(separator: "/").last ?? "disk.vmdk")
        // VMware ends longContentID with the CID; the rest is random (fixed when the CID is).
        var generator = SplitMix64(seed: options.vmdkCID.map { UInt64($0) }
                                   ?? Reproducibility.bytes(8, for: "vmdk long content id").withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let longContentID = (0..<3).map { _ in VMDKDescriptor.hex8(UInt32(truncatingIfNeeded: generator.next())) }.joined()
            + VMDKDescriptor.hex8(cid)
        let createType = subformat == .streamOptimized ? "streamOptimized" : "monolithicSparse"
        let descriptor = Array(VMDKDescriptor.text(createType: createType, capacitySectors: capacitySectors,
                                                   fileName: fileName, cid: cid, longContentID: longContentID,
                                                   options: options).utf8)
        guard descriptor.count <= Int(VMDK.descriptorSectors) * VMDK.sectorSize else {
            throw WriterError.unsupported(format: .vmdk, what: "the descriptor (\(descriptor.count) bytes) does not fit its \(VMDK.descriptorSectors) sectors; shorten the file name")
        }
        let descriptorEnd = VMDK.descriptorOffset + VMDK.descriptorSectors

        switch subformat {
        case .streamOptimized:
            // Header, descriptor and zeros up to the first grain boundary, all written out, as
            // a stream must be.
            let overHead = roundUp(descriptorEnd, to: VMDK.grainSectors)
            var head = streamHeader(gdOffset: VMDK.gdAtEnd, overHead: overHead).encoded()
            head += descriptor
            head += [UInt8](repeating: 0, count: Int(overHead) * VMDK.sectorSize - head.count)
            try sink.write(head, at: 0)
            fileEnd = UInt64(head.count)
            streamDirectory = [UInt32](repeating: 0, count: grainTableCount)
        case .monolithicSparse:
            let directorySectors = roundUp(UInt64(grainTableCount * 4), to: UInt64(VMDK.sectorSize)) / UInt64(VMDK.sectorSize)
            let tablesSectors = UInt64(grainTableCount) * VMDK.grainTableSectors
            let redundantDirectory = descriptorEnd
            let redundantTables = redundantDirectory + directorySectors
            let directory = redundantTables + tablesSectors
            let tables = directory + directorySectors
            let layout = SparseLayout(redundantDirectory: redundantDirectory, redundantTables: redundantTables,
                                      directory: directory, tables: tables,
                                      overHead: roundUp(tables + tablesSectors, to: VMDK.grainSectors))
            sparseLayout = layout
            let header = sparseHeader(layout)
            try sink.write(header.encoded() + descriptor, at: 0)
            // Both directories point at every (preallocated, still zero) table; the tables
            // themselves stay holes until they get entries.
            for (directoryAt, tablesAt) in [(layout.redundantDirectory, layout.redundantTables), (layout.directory, layout.tables)] {
                var entries = [UInt8](repeating: 0, count: Int(directorySectors) * VMDK.sectorSize)
                for table in 0..<grainTableCount {
                    entries.storeLE(UInt32(tablesAt + UInt64(table) * VMDK.grainTableSectors), at: table * 4)
                }
                try sink.write(entries, at: directoryAt * UInt64(VMDK.sectorSize))
            }
            fileEnd = layout.overHead * UInt64(VMDK.sectorSize)
        }
    }

    private func streamHeader(gdOffset: UInt64, overHead: UInt64) -> VMDKHeader {
        VMDKHeader(version: 3, flags: [.validNewlineDetection, .compressedGrains, .markers], capacity: capacitySectors,
                   gdOffset: gdOffset, overHead: overHead, compressAlgorithm: 1)
    }

    private func sparseHeader(_ layout: SparseLayout) -> VMDKHeader {
        VMDKHeader(version: 1, flags: [.validNewlineDetection, .redundantGrainTable], capacity: capacitySectors,
                   rgdOffset: layout.redundantDirectory, gdOffset: layout.directory, overHead: layout.overHead,
                   compressAlgorithm: 0)
    }

    public func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard !finished, offset >= nextOffset else {
            throw WriterError.outOfOrder(format: format, offset: offset, expectedAtLeast: nextOffset)
        }
        guard offset + UInt64(data.count) <= virtualSize else {
            throw WriterError.beyondEnd(format: format, offset: offset, virtualSize: virtualSize)
        }
        let grainBytes = UInt64(VMDK.grainBytes)
        var consumed = 0
        while consumed < data.count {
            let position = offset + UInt64(consumed)
            let grain = position / grainBytes
            let inGrain = Int(position % grainBytes)
            let count = min(VMDK.grainBytes - inGrain, data.count - consumed)
            if batchIndices.last != grain {
                if batchIndices.count == Self.batchGrains { try flushBatch() }
                batchIndices.append(grain)
                // A grain filled whole needs no clearing; otherwise the unwritten parts are zeros.
                if !(inGrain == 0 && count == VMDK.grainBytes) {
                    let slot = (batchIndices.count - 1) * VMDK.grainBytes
                    _ = batch.withUnsafeMutableBytes { UnsafeMutableRawBufferPointer(rebasing: $0[slot..<(slot + VMDK.grainBytes)]).initializeMemory(as: UInt8.self, repeating: 0) }
                }
            }
            let destination = (batchIndices.count - 1) * VMDK.grainBytes + inGrain
            batch.withUnsafeMutableBytes { buffer in
                UnsafeMutableRawBufferPointer(rebasing: buffer[destination..<(destination + count)])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: data[consumed..<(consumed + count)]))
            }
            consumed += count
        }
        nextOffset = offset + UInt64(data.count)
    }

    private func flushBatch() throws {
        guard !batchIndices.isEmpty else { return }
        switch subformat {
        case .streamOptimized: try flushCompressedBatch()
        case .monolithicSparse: try flushSparseBatch()
        }
        batchIndices.removeAll(keepingCapacity: true)
    }

    private func grainIsZero(_ slot: Int) -> Bool {
        batch.withUnsafeBytes {
            ZeroDetection.isAllZero(UnsafeRawBufferPointer(rebasing: $0[(slot * VMDK.grainBytes)..<((slot + 1) * VMDK.grainBytes)]))
        }
    }

    // MARK: streamOptimized

    private func flushCompressedBatch() throws {
        let grainBytes = VMDK.grainBytes
        let compressor = self.compressor, level = self.level
        // Incompressible data grows by a few bytes of deflate block headers; 1 KiB is ample.
        let limit = grainBytes + 1024
        let compressed: [[UInt8]?] = batch.withUnsafeBytes { buffer in
            parallelMap(batchIndices.count) { slot -> [UInt8]? in
                let grain = UnsafeRawBufferPointer(rebasing: buffer[(slot * grainBytes)..<((slot + 1) * grainBytes)])
                if ZeroDetection.isAllZero(grain) { return nil }
                // Every grain of a stream is deflate data: one that will not compress goes into
                // stored blocks (level 0) instead of making the compressor search in vain.
                let grainLevel = Incompressibility.check(grain) ? 0 : level
                return compressor.compress(grain, level: grainLevel, limit: limit) ?? []
            }
        }
        var output: [UInt8] = []
        output.reserveCapacity(compressed.reduce(0) { $0 + ($1?.count ?? 0) + VMDK.sectorSize })
        for (slot, data) in compressed.enumerated() {
            guard let data else { continue }
            guard !data.isEmpty else {
                throw WriterError.unsupported(format: .vmdk, what: "internal: grain \(batchIndices[slot]) did not compress into \(limit) bytes")
            }
            let grain = batchIndices[slot]
            let table = Int(grain / UInt64(VMDK.entriesPerGrainTable))
            if currentTable?.index != table {
                // The previous table's grains are all out: it follows them, as VMware writes it.
                try appendCurrentStreamTable(to: &output)
                currentTable = (table, [UInt32](repeating: 0, count: VMDK.entriesPerGrainTable))
            }
            currentTable!.entries[Int(grain % UInt64(VMDK.entriesPerGrainTable))] =
                try tableEntry((fileEnd + UInt64(output.count)) / UInt64(VMDK.sectorSize))
            var marker = [UInt8](repeating: 0, count: VMDKMarker.grainHeaderSize)
            marker.storeLE(grain * VMDK.grainSectors, at: 0)
            marker.storeLE(UInt32(data.count), at: 8)
            output += marker
            output += data
            appendSectorPadding(&output)
            allocatedGrains += 1
        }
        try appendToStream(output)
    }

    /// A grain table entry is a u32 sector: a near-2 TiB disk of incompressible data can outgrow it.
    private func tableEntry(_ sector: UInt64) throws -> UInt32 {
        guard let entry = UInt32(exactly: sector) else {
            throw WriterError.unsupported(format: .vmdk, what: "the image grew past 2 TiB (sector \(sector)), beyond what a u32 grain table entry addresses")
        }
        return entry
    }

    /// A GT marker and the table being filled, whose sector goes into the grain directory.
    private func appendCurrentStreamTable(to output: inout [UInt8]) throws {
        guard let table = currentTable else { return }
        output += VMDKMarker.metadataSector(.grainTable, numSectors: VMDK.grainTableSectors)
        streamDirectory[table.index] = try tableEntry((fileEnd + UInt64(output.count)) / UInt64(VMDK.sectorSize))
        output += encodedTable(table.entries)
        currentTable = nil
    }

    private func encodedTable(_ entries: [UInt32]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: VMDK.grainTableBytes)
        for (i, entry) in entries.enumerated() where entry != 0 { bytes.storeLE(entry, at: i * 4) }
        return bytes
    }

    private func appendSectorPadding(_ output: inout [UInt8]) {
        let remainder = output.count % VMDK.sectorSize
        if remainder != 0 { output += Self.zeroSector[remainder...] }
    }

    private static let zeroSector = [UInt8](repeating: 0, count: VMDK.sectorSize)

    private func appendToStream(_ bytes: [UInt8]) throws {
        guard !bytes.isEmpty else { return }
        try sink.write(bytes, at: fileEnd)
        fileEnd += UInt64(bytes.count)
    }

    /// The last grain table, the grain directory, the footer and the end-of-stream marker.
    private func finishStream() throws {
        var output: [UInt8] = []
        try appendCurrentStreamTable(to: &output)
        var directory = [UInt8](repeating: 0, count: Int(roundUp(UInt64(grainTableCount * 4), to: UInt64(VMDK.sectorSize))))
        for (index, sector) in streamDirectory.enumerated() where sector != 0 { directory.storeLE(sector, at: index * 4) }
        output += VMDKMarker.metadataSector(.grainDirectory, numSectors: UInt64(directory.count / VMDK.sectorSize))
        let directorySector = (fileEnd + UInt64(output.count)) / UInt64(VMDK.sectorSize)
        output += directory
        output += VMDKMarker.metadataSector(.footer, numSectors: 1)
        output += streamHeader(gdOffset: directorySector, overHead: roundUp(VMDK.descriptorOffset + VMDK.descriptorSectors, to: VMDK.grainSectors)).encoded()
        output += VMDKMarker.metadataSector(.endOfStream, numSectors: 0)
        try appendToStream(output)
    }

    // MARK: monolithicSparse

    private func flushSparseBatch() throws {
        let sectorSize = UInt64(VMDK.sectorSize)
        var runStart: Int? = nil
        func writeRun(_ start: Int, _ end: Int) throws {
            try batch.withUnsafeBytes {
                try sink.write(UnsafeRawBufferPointer(rebasing: $0[(start * VMDK.grainBytes)..<(end * VMDK.grainBytes)]), at: fileEnd)
            }
            fileEnd += UInt64((end - start) * VMDK.grainBytes)
        }
        var runSector = fileEnd / sectorSize
        for slot in 0...batchIndices.count {
            let isData = slot < batchIndices.count && !grainIsZero(slot)
            if isData {
                if runStart == nil { runStart = slot; runSector = fileEnd / sectorSize }
                try recordSparseEntry(grain: batchIndices[slot],
                                      sector: try tableEntry(runSector + UInt64(slot - runStart!) * VMDK.grainSectors))
                allocatedGrains += 1
            } else if let start = runStart {
                try writeRun(start, slot)
                runStart = nil
            }
        }
    }

    private func recordSparseEntry(grain: UInt64, sector: UInt32) throws {
        let table = Int(grain / UInt64(VMDK.entriesPerGrainTable))
        if currentTable?.index != table {
            try writeCurrentTable()
            currentTable = (table, [UInt32](repeating: 0, count: VMDK.entriesPerGrainTable))
        }
        currentTable!.entries[Int(grain % UInt64(VMDK.entriesPerGrainTable))] = sector
    }

    /// Writes the table being filled at its place and at its redundant copy's.
    private func writeCurrentTable() throws {
        guard let table = currentTable, let layout = sparseLayout else { return }
        let bytes = encodedTable(table.entries)
        for base in [layout.redundantTables, layout.tables] {
            try sink.write(bytes, at: (base + UInt64(table.index) * VMDK.grainTableSectors) * UInt64(VMDK.sectorSize))
        }
        currentTable = nil
    }

    public func finish() throws -> WriterSummary {
        guard !finished else { throw WriterError.unsupported(format: format, what: "internal: finish called twice") }
        try flushBatch()
        finished = true
        let variant: String
        switch subformat {
        case .streamOptimized:
            try finishStream()
            variant = "VMDK streamOptimized, deflate-compressed 64 KiB grains"
        case .monolithicSparse:
            try writeCurrentTable()
            try sink.extend(to: fileEnd)
            variant = "VMDK monolithicSparse, 64 KiB grains"
        }
        return WriterSummary(format: format, variant: variant, virtualSize: virtualSize, fileSize: fileEnd,
                             allocatedUnits: allocatedGrains, unitSize: UInt64(VMDK.grainBytes))
    }
}

private func roundUp(_ value: UInt64, to multiple: UInt64) -> UInt64 {
    (value + multiple - 1) / multiple * multiple
}

/// A small deterministic generator for the descriptor's longContentID.
private struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
