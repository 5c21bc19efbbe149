import Foundation
import Testing
import TestSupport

/// The oracle's own rules: `initramfs-walk.py --extract` unpacks as the kernel does.
@Suite struct WalkerExtractTests {
    static func archive(_ stage: String, _ build: (String) throws -> Void, names: String = ".") throws -> [UInt8] {
        try FileManager.default.createDirectory(atPath: stage, withIntermediateDirectories: true)
        try build(stage)
        return try Command.run("sh", ["-c", "find \(names) | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -n"],
                               currentDirectory: stage).requireSuccess().stdoutBytes
    }

    @Test func laterWinsTruncatedAndNeverThroughASymlink() throws {
        let scratch = try TemporaryDirectory(prefix: "rehost-walker")
        let fm = FileManager.default
        let first = try Self.archive(scratch.file("a")) { stage in
            try fm.createDirectory(atPath: "\(stage)/usr/lib", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: "\(stage)/etc", withIntermediateDirectories: true)
            try fm.createSymbolicLink(atPath: "\(stage)/lib", withDestinationPath: "usr/lib")
            try writeFile(String(repeating: "long line\n", count: 20), to: "\(stage)/etc/a")
        }
        let second = try Self.archive(scratch.file("b"), { stage in
            try fm.createDirectory(atPath: "\(stage)/etc", withIntermediateDirectories: true)
            try writeFile("short\n", to: "\(stage)/etc/a")
        }, names: "etc/a")
        let good = scratch.file("good.img"), tree = scratch.file("tree")
        try writeFile(first + second, to: good)
        #expect(try Walker.walk(good, extractTo: tree).count == 2)
        #expect(try readText("\(tree)/etc/a") == "short\n", "the later file wins, with no old tail")
        #expect((try? fm.destinationOfSymbolicLink(atPath: "\(tree)/lib")) == "usr/lib")

        // An entry under the symlink is refused; a directory entry over it replaces it.
        let under = try Self.archive(scratch.file("c"), { stage in
            try fm.createDirectory(atPath: "\(stage)/lib/modules", withIntermediateDirectories: true)
        }, names: "lib/modules")
        try writeFile(first + under, to: scratch.file("under.img"))
        let refused = try Command.run(Walker.python, [Walker.script, "--extract", scratch.file("tree2"), scratch.file("under.img")])
        #expect(refused.status == 1 && refused.stderr.contains("a symlink"), "\(refused.stderr)")
        let over = try Self.archive(scratch.file("d"), { stage in
            try fm.createDirectory(atPath: "\(stage)/lib", withIntermediateDirectories: true)
        }, names: "lib")
        try writeFile(first + over, to: scratch.file("over.img"))
        _ = try Walker.walk(scratch.file("over.img"), extractTo: scratch.file("tree3"))
        var isDirectory: ObjCBool = false
        #expect(fm.fileExists(atPath: scratch.file("tree3/lib"), isDirectory: &isDirectory) && isDirectory.boolValue)
        #expect((try? fm.destinationOfSymbolicLink(atPath: scratch.file("tree3/lib"))) == nil, "the kernel's clean_path removed the link")
    }
}
