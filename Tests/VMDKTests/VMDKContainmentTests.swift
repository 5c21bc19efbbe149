import Foundation
import ImageCore
import ImageFormats
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A descriptor may reach only regular files in its own directory unless external files are
/// allowed: every way out (absolute paths, `..`, subdirectories, symlinks, devices, FIFOs) is
/// refused before the file is opened, with the same message whether or not the target exists.
@Suite struct VMDKContainmentTests {
    /// A directory holding `images/` (where descriptors go) and `outside/secret.bin`.
    struct Layout {
        let root: TemporaryDirectory
        var images: String { root.file("images") }
        var secret: String { root.file("outside/secret.bin") }

        init() throws {
            root = try TemporaryDirectory(prefix: "rehost-vmdk-containment")
            try FileManager.default.createDirectory(atPath: root.file("images/sub"), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: root.file("outside"), withIntermediateDirectories: true)
            try writeRandomRaw(secret, size: 1 << 20, seed: 5)
            try writeRandomRaw(images + "/inside.bin", size: 1 << 20, seed: 6)
            try writeRandomRaw(images + "/sub/nested.bin", size: 1 << 20, seed: 7)
        }

        /// A descriptor in `images/` with one FLAT extent naming `reference`.
        func descriptor(naming reference: String, name: String = "disk.vmdk") throws -> String {
            let path = images + "/" + name
            try writeDescriptor(path, createType: "monolithicFlat", extents: ["RW 2048 FLAT \"\(reference)\" 0"])
            return path
        }
    }

    func expectRefused(_ descriptor: String, reason: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try VMDKReader(path: descriptor)
            Issue.record("\(descriptor): the extent was followed", sourceLocation: sourceLocation)
        } catch let error as ExternalFileError {
            #expect(error.description.contains(reason), "\(error)", sourceLocation: sourceLocation)
            #expect(error.description.contains("--allow-external-files"), sourceLocation: sourceLocation)
            #expect(error.description.hasPrefix(descriptor + ": VMDK extent line 7 (byte "), "\(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(descriptor): expected ExternalFileError, got \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func aFileBesideTheDescriptorIsRead() throws {
        let layout = try Layout()
        let reader = try VMDKReader(path: try layout.descriptor(naming: "inside.bin"))
        #expect(reader.inputFiles.count == 2)
        #expect(reader.inputFiles.last?.hasSuffix("/images/inside.bin") == true)
        // `./` and a detour that comes back stay inside.
        _ = try VMDKReader(path: try layout.descriptor(naming: "./inside.bin"))
        _ = try VMDKReader(path: try layout.descriptor(naming: "sub/../inside.bin"))
    }

    @Test func anAbsolutePathIsRefusedUnlessAllowed() throws {
        let layout = try Layout()
        let descriptor = try layout.descriptor(naming: layout.secret)
        expectRefused(descriptor, reason: "an absolute path")
        let reader = try VMDKReader(path: descriptor, externalFiles: .allowed)
        #expect(reader.inputFiles.last == layout.secret, "every file pulled in is listed")
        // Even an absolute path to a file beside the descriptor: the name alone decides.
        expectRefused(try layout.descriptor(naming: layout.images + "/inside.bin"), reason: "an absolute path")
    }

    @Test func parentDirectoriesAndSubdirectoriesAreRefused() throws {
        let layout = try Layout()
        expectRefused(try layout.descriptor(naming: "../outside/secret.bin"), reason: "outside the image's own directory")
        expectRefused(try layout.descriptor(naming: "sub/nested.bin"), reason: "outside the image's own directory")
        // A target that does not exist gets the same answer: no probing of the host's files.
        expectRefused(try layout.descriptor(naming: "../outside/none.bin"), reason: "outside the image's own directory")
        _ = try VMDKReader(path: try layout.descriptor(naming: "../outside/secret.bin"), externalFiles: .allowed)
    }

    @Test func symlinksAreJudgedWhereTheyLead() throws {
        let layout = try Layout()
        try FileManager.default.createSymbolicLink(atPath: layout.images + "/out.bin", withDestinationPath: layout.secret)
        try FileManager.default.createSymbolicLink(atPath: layout.images + "/dangling.bin", withDestinationPath: "/nonexistent/x")
        try FileManager.default.createSymbolicLink(atPath: layout.images + "/alias.bin", withDestinationPath: "inside.bin")
        try FileManager.default.createSymbolicLink(atPath: layout.images + "/dir", withDestinationPath: "../outside")
        let reason = "a symlink that does not resolve to a file in the image's own directory"
        expectRefused(try layout.descriptor(naming: "out.bin"), reason: reason)
        expectRefused(try layout.descriptor(naming: "dangling.bin"), reason: reason)
        expectRefused(try layout.descriptor(naming: "dir/secret.bin"), reason: "outside the image's own directory")
        let reader = try VMDKReader(path: try layout.descriptor(naming: "alias.bin"))
        #expect(reader.inputFiles.last?.hasSuffix("/images/inside.bin") == true, "the resolved path is what is read and listed")
        let followed = try VMDKReader(path: try layout.descriptor(naming: "out.bin"), externalFiles: .allowed)
        #expect(followed.inputFiles.last == layout.secret)
    }

    /// A FIFO beside the descriptor would block open and read for ever; it is refused at once
    /// (`extentsThatAreNotFilesAreRefusedWithoutBlocking` covers external ones).
    @Test func aFIFOBesideTheDescriptorIsRefused() throws {
        let layout = try Layout()
        #expect(mkfifo(layout.images + "/pipe.bin", 0o644) == 0)
        let error = #expect(throws: FileError.self) { _ = try VMDKReader(path: try layout.descriptor(naming: "pipe.bin")) }
        #expect(error?.description.contains("a FIFO") == true, "\(error?.description ?? "")")
    }

    /// The refusal happens in the open path every command uses.
    @Test func theGenericOpenAppliesTheRule() throws {
        let layout = try Layout()
        let descriptor = try layout.descriptor(naming: "../outside/secret.bin")
        #expect(throws: ExternalFileError.self) { try DiskImageReaders.open(path: descriptor) }
        let reader = try DiskImageReaders.open(path: descriptor, externalFiles: .allowed)
        #expect(reader.inputFiles == [descriptor, layout.secret])
    }
}
