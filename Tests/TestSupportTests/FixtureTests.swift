import Foundation
import Synchronization
import Testing
import TestSupport

@Suite struct FixtureTests {
    /// A stand-in for Fixtures/make-xen-instance.sh with the same contract: `SCRIPT OUTDIR` writes
    /// OUTDIR/xen-instance.img and OUTDIR/xen-instance.env. It counts its runs in OUTDIR/runs.
    static func standInScript(in directory: TemporaryDirectory, failing: Bool = false) throws -> String {
        let script = directory.file(failing ? "failing.sh" : "make-xen-instance.sh")
        let body = failing ? """
            #!/bin/bash
            set -euo pipefail
            echo "progress line" >&2
            echo "stand-in: no kernel package found" >&2
            exit 7
            """ : """
            #!/bin/bash
            set -euo pipefail
            out="$1"
            echo run >> "$out/runs"
            sleep 0.3
            mke2fs -q -F -t ext3 -I 128 -L / "$out/xen-instance.img" 4M
            cat > "$out/xen-instance.env" <<'ENV'
            # written by the stand-in
            FS_LABEL=/
            export FS_UUID="0b7e3a57-1c1f-4d5e-9e55-6b1bd0b1c0de"
            KERNEL_VERSION='6.1.0-28-amd64'
            KERNEL_PATH=/boot/vmlinuz-6.1.0-28-amd64

            QUOTED="say \\"hi\\""
            ENV
            """
        try Data(body.utf8).write(to: URL(fileURLWithPath: script))
        return script
    }

    @Test func runsTheScriptOnceAndParsesItsEnvironment() async throws {
        let directory = try TemporaryDirectory()
        let script = try Self.standInScript(in: directory)
        let output = directory.file("out")
        // Parallel callers must share one run.
        let images = try await withThrowingTaskGroup(of: FixtureImage.self) { group in
            for _ in 0..<6 { group.addTask { try Fixture.xenInstance(script: script, directory: output) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(images.count == 6)
        #expect(Set(images.map(\.imagePath)) == [output + "/xen-instance.img"])
        let runs = try String(contentsOfFile: output + "/runs", encoding: .utf8)
        #expect(runs == "run\n")
        let image = try #require(images.first)
        #expect(image.environment == [
            "FS_LABEL": "/",
            "FS_UUID": "0b7e3a57-1c1f-4d5e-9e55-6b1bd0b1c0de",
            "KERNEL_VERSION": "6.1.0-28-amd64",
            "KERNEL_PATH": "/boot/vmlinuz-6.1.0-28-amd64",
            "QUOTED": "say \"hi\"",
        ])
        #expect(image["FS_LABEL"] == "/")
        #expect(image.directory == output)
        // The image it names is a real filesystem the manifest can read.
        let manifest = try ExtTreeManifest.read(image: image.imagePath)
        #expect(manifest["/lost+found"]?.kind == .directory)
    }

    @Test func aFailingScriptIsReportedWithItsLastErrorLine() throws {
        let directory = try TemporaryDirectory()
        let script = try Self.standInScript(in: directory, failing: true)
        #expect {
            try Fixture.xenInstance(script: script, directory: directory.file("out"))
        } throws: { error in
            let text = "\(error)"
            return text.contains(script) && text.contains("status 7") && text.contains("no kernel package found")
        }
    }

    @Test func aMissingScriptIsAClearError() throws {
        let directory = try TemporaryDirectory()
        let missing = directory.file("nope.sh")
        #expect(throws: TestSupportError.fixtureFailed(script: missing, reason: "no such file")) {
            try Fixture.xenInstance(script: missing, directory: directory.file("out"))
        }
    }

    @Test func defaultsPointIntoThisRepository() {
        #expect(Fixture.defaultScript.hasSuffix("/Fixtures/make-xen-instance.sh"))
        #expect(FileManager.default.fileExists(atPath: Fixture.repositoryRoot + "/Package.swift"))
        #expect(Fixture.defaultDirectory == "/tmp/rehost-fixture-\(getuid())")
    }
}
