import ImageCore
import ImageFormats
import Zlib

/// The disk image readers (Sources/ImageFormats): each input is written to a file and opened
/// by the format's own reader, then walked within a budget.
extension FuzzTargets {
    static let imageTargets: [FuzzTarget] = [
        // QCOW2Inspector is left out: it checks images Rehost's own writer made (16-bit
        // refcounts, the writer's layout), in tests, and never sees a user's file.
        FuzzTarget(name: "qcow2", summary: "QCOW2Reader (header, extensions, L1/L2, compressed clusters)",
                   maxLength: 256 << 10) { data in
            try walk(QCOW2Reader(path: FuzzScratch.shared.write(data, as: "input.qcow2")))
        },
        FuzzTarget(name: "vmdk", summary: "VMDKReader on a sparse extent: monolithicSparse and streamOptimized",
                   maxLength: 256 << 10) { data in
            try walk(VMDKReader(path: FuzzScratch.shared.write(data, as: "input.vmdk")))
        },
        FuzzTarget(name: "vmdk-descriptor", summary: "VMDKReader on a text descriptor whose extents are flat files beside it",
                   maxLength: 16 << 10) { data in
            VMDKExtents.prepare()
            try walk(VMDKReader(path: FuzzScratch.shared.write(data, as: "descriptor.vmdk")))
        },
        FuzzTarget(name: "vdi", summary: "VDIReader (header, block map)", maxLength: 256 << 10) { data in
            try walk(VDIReader(path: FuzzScratch.shared.write(data, as: "input.vdi")))
        },
        FuzzTarget(name: "vhd", summary: "VHDReader (footer, dynamic header, BAT, sector bitmaps)", maxLength: 256 << 10) { data in
            try walk(VHDReader(path: FuzzScratch.shared.write(data, as: "input.vhd")))
        },
        // VHDX places every structure on a MiB boundary (headers, log, BAT, metadata): a real
        // image's structure spans 4 MiB, so this target takes 5.
        FuzzTarget(name: "vhdx", summary: "VHDXReader (headers, region tables, metadata items, BAT, sector bitmaps)",
                   maxLength: 5 << 20) { data in
            try walk(VHDXReader(path: FuzzScratch.shared.write(data, as: "input.vhdx")))
        },
        FuzzTarget(name: "ova", summary: "OVAReader (tar headers, PAX and GNU names, OVF references, the disk member)",
                   maxLength: 256 << 10) { data in
            let scratch = FuzzScratch.shared.subdirectory("ova-scratch")
            try walk(OVAReader(path: FuzzScratch.shared.write(data, as: "input.ova"), scratchDirectory: scratch))
        },
        FuzzTarget(name: "gzip", summary: "GzipDecompressor as GzipExpansion drives it (members, headers, trailers), fed in 4 KiB reads",
                   maxLength: 64 << 10) { data in
            let decompressor = try GzipDecompressor(name: "input.gz")
            var offset = 0
            var sink: UInt8 = 0
            while offset < data.count {
                let end = min(offset + 4096, data.count)
                try decompressor.decompress(UnsafeRawBufferPointer(rebasing: data[offset..<end])) { output in
                    // Touch both ends so a buffer that lies about its size meets the sanitizer.
                    if let first = output.first, let last = output.last { sink ^= first ^ last }
                    if decompressor.decompressedCount > 64 << 20 { throw BudgetReached() }
                }
                offset = end
            }
            try decompressor.finish()
            _ = sink
        },
        FuzzTarget(name: "input", summary: "InputImage.open on raw bytes: gzip expansion, MBR/GPT via libblkid, the ext superblock",
                   maxLength: 256 << 10) { data in
            // Disk image magics go to their own targets: here a hostile virtual size would only
            // make runs slow.
            guard !looksLikeDiskImage(data) else { return }
            let path = FuzzScratch.shared.write(data, as: "input.raw")
            _ = try InputImage.open(path: path, scratchDirectory: FuzzScratch.shared.subdirectory("input-scratch"))
        },
    ]

    /// qcow2, VMDK (sparse or descriptor), VDI, VHD (footer at either end), VHDX and tar magics.
    static func looksLikeDiskImage(_ data: UnsafeRawBufferPointer) -> Bool {
        func has(_ magic: String, at offset: Int) -> Bool {
            let bytes = Array(magic.utf8)
            guard offset >= 0, data.count >= offset + bytes.count else { return false }
            return data[offset..<offset + bytes.count].elementsEqual(bytes)
        }
        return has("QFI\u{FB}", at: 0) || has("KDMV", at: 0) || has("# Disk DescriptorFile", at: 0)
            || has("conectix", at: 0) || has("vhdxfile", at: 0) || has("conectix", at: data.count - 512) || has("ustar", at: 257)
            || (data.count >= 0x44 && data[0x40] == 0x7F && data[0x41] == 0x10 && data[0x42] == 0xDA && data[0x43] == 0xBE)
    }
}

/// Flat extent files a fuzzed descriptor may name: `flat.vmdk` (1 MiB of a pattern), `hole.vmdk`
/// (1 MiB, sparse) and `small.vmdk` (3 sectors). The descriptor is `descriptor.vmdk`.
enum VMDKExtents {
    nonisolated(unsafe) static var ready = false

    static func prepare() {
        guard !ready else { return }
        ready = true
        let pattern = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        _ = FuzzScratch.shared.write(pattern, as: "flat.vmdk")
        _ = FuzzScratch.shared.write([UInt8](repeating: 0, count: 1 << 20), as: "hole.vmdk")
        _ = FuzzScratch.shared.write([UInt8](repeating: 0xA5, count: 3 * 512), as: "small.vmdk")
    }
}
