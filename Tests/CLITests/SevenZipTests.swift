import Foundation
import Testing
import TestSupport

/// 7-Zip opens every disk image format Rehost writes and takes each to end exactly where the
/// file ends: no "data after the end of the archive", no errors.
struct SevenZipTests {
    @Test func sevenZipSeesEveryOutputWhole() throws {
        let sevenZip = try Command.require("7z")
        let dir = try TemporaryDirectory(prefix: "rehost-7z")
        let raw = dir.file("source.raw")
        try SyntheticDisk.make(at: raw, size: 64 << 20, seed: 7)
        let runs: [([String], [String])] = [
            (["disk.qcow2", "stream.vmdk", "disk.vdi", "disk.vhd", "vm.ova"], []),
            (["small-clusters.qcow2"], ["--cluster-size", "4K", "--compress", "deflate"]),
            (["v2.qcow2", "sparse.vmdk", "fixed.vhd", "fixed.vdi"],
             ["--qcow2-compat", "0.10", "--vmdk-subformat", "monolithicSparse", "--vhd-variant", "fixed", "--vdi-variant", "fixed"]),
        ]
        for (names, options) in runs {
            let outputs = names.map(dir.file)
            let result = try Command.runRehost(["export", raw, "-q", "--no-digest"] + outputs.flatMap { ["-o", $0] } + options)
            #expect(result.status == 0, "\(result.stderr)")
            for path in outputs {
                let listing = try Command.run(sevenZip, ["l", path])
                let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber).uint64Value
                #expect(listing.status == 0, "\(path): \(listing.stdout)\(listing.stderr)")
                #expect(!listing.stdout.contains("WARNING") && !listing.stdout.contains("ERROR"), "\(path): \(listing.stdout)")
                #expect(listing.stdout.contains("Physical Size = \(size)\n"), "\(path): \(listing.stdout)")
            }
        }
    }
}
