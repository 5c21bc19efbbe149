import Contextualization
import Foundation
import GuestFixups
import ISO9660
import Testing
import TestSupport

/// The OpenNebula / StratusLab context file, parsed back by the host's own tools: bash sources
/// it, base64 and gzip decode its values, and Python's email module parses the MIME message.
struct ContextFileTests {
    static let keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey1 alice@host", "ssh-rsa AAAAB3NzaC1yc2EKey2 it's bob"]
    static let script = Array("#!/bin/sh\necho \"it's $HOME\" > /tmp/ran\n".utf8)
    static let cloudConfig = Array("#cloud-config\nruncmd:\n  - [touch, /tmp/x]\n".utf8)
    static let binary: [UInt8] = [0, 1, 2, 0xff, 0xfe, 0x0a, 0x80] + Array(repeating: 0x41, count: 100)

    /// Sources the file in bash and prints each variable's value, NUL-terminated.
    func sourced(_ file: [UInt8], _ names: [String], in directory: TemporaryDirectory) throws -> [String: [UInt8]] {
        let path = directory.file("context.sh")
        try Data(file).write(to: URL(fileURLWithPath: path))
        let script = ". \"$1\" || exit 9; " + names.map { "printf '%s\\0' \"$\($0)\"" }.joined(separator: "; ")
        let out = try Command.run("/bin/bash", ["-c", script, "bash", path]).requireSuccess().stdoutBytes
        let values = out.split(separator: 0, omittingEmptySubsequences: false).dropLast()
        return Dictionary(uniqueKeysWithValues: zip(names, values.map(Array.init)))
    }

    func run(_ program: String, _ arguments: [String], stdin: [UInt8]) throws -> [UInt8] {
        try Command.run(program, arguments, stdin: stdin).requireSuccess().stdoutBytes
    }

    @Test func bashSourcesItAndTheHostDecodesEveryValue() throws {
        let directory = try TemporaryDirectory()
        let context = ContextFile(sshKeys: Self.keys, parts: [
            .init(mimeType: "x-shellscript", fileName: "run.sh", contents: Self.script),
            .init(mimeType: "text/cloud-config", fileName: "user.yaml", contents: Self.cloudConfig),
            .init(mimeType: "application/octet-stream", fileName: "blob", contents: Self.binary),
        ], extra: [(key: "HOSTNAME", value: "vm-1 'quoted' $notexpanded")])
        let names = ["CONTEXT_METHOD", "CLOUD_INIT_AUTHORIZED_KEYS", "CLOUD_INIT_USER_DATA", "SSH_PUBLIC_KEY", "USER_DATA",
                     "USER_DATA_ENCODING", "HOSTNAME"]
        let values = try sourced(try context.render(), names, in: directory)
        #expect(values["CONTEXT_METHOD"] == Array("cloud-init".utf8))
        #expect(values["USER_DATA_ENCODING"] == Array("base64".utf8))
        #expect(values["HOSTNAME"] == Array("vm-1 'quoted' $notexpanded".utf8))
        #expect(values["SSH_PUBLIC_KEY"] == Array(Self.keys.joined(separator: "\n").utf8))
        let keys = try run("/usr/bin/base64", ["-d"], stdin: values["CLOUD_INIT_AUTHORIZED_KEYS"] ?? [])
        #expect(keys == Array(Self.keys.map { $0 + "\n" }.joined().utf8))
        #expect(values["USER_DATA"] == values["CLOUD_INIT_USER_DATA"])
        let gzipped = try run("/usr/bin/base64", ["-d"], stdin: values["CLOUD_INIT_USER_DATA"] ?? [])
        #expect(gzipped.starts(with: [0x1f, 0x8b]))
        let message = try run("/bin/gzip", ["-dc"], stdin: gzipped)
        #expect(message == (try context.userData()))

        // Python's email module: three parts, their types, file names and exact payloads.
        let parse = """
            import email, sys, json
            msg = email.message_from_bytes(sys.stdin.buffer.read())
            assert msg.is_multipart() and msg.get_content_type() == "multipart/mixed", msg.get_content_type()
            parts = [p for p in msg.walk() if not p.is_multipart()]
            print(json.dumps([[p.get_content_type(), p.get_filename(), list(p.get_payload(decode=True))] for p in parts]))
            """
        let parsed = try run("/usr/bin/python3", ["-c", parse], stdin: message)
        let decoded = try JSONSerialization.jsonObject(with: Data(parsed)) as? [[Any]]
        #expect(decoded?.count == 3)
        #expect(decoded?.map { $0[0] as? String } == ["text/x-shellscript", "text/cloud-config", "application/octet-stream"])
        #expect(decoded?.map { $0[1] as? String } == ["run.sh", "user.yaml", "blob"])
        #expect(decoded?.map { ($0[2] as? [Int])?.map(UInt8.init) } == [Self.script, Self.cloudConfig, Self.binary])
        // Deterministic: the same parts give the same file.
        #expect(try context.render() == (try context.render()))
    }

    /// `none`: one file verbatim, no MIME; no keys and no user data: the `none` literal.
    @Test func noneAndEmptyParts() throws {
        let directory = try TemporaryDirectory()
        let literal = ContextFile(sshKeys: [], parts: [.init(mimeType: "none", fileName: "user.yaml", contents: Self.cloudConfig)])
        let values = try sourced(try literal.render(), ["CLOUD_INIT_AUTHORIZED_KEYS", "CLOUD_INIT_USER_DATA", "SSH_PUBLIC_KEY"], in: directory)
        #expect(values["CLOUD_INIT_AUTHORIZED_KEYS"] == Array("none".utf8))
        #expect(values["SSH_PUBLIC_KEY"] == [])
        let gzipped = try run("/usr/bin/base64", ["-d"], stdin: values["CLOUD_INIT_USER_DATA"] ?? [])
        #expect(try run("/bin/gzip", ["-dc"], stdin: gzipped) == Self.cloudConfig)

        let empty = ContextFile(sshKeys: Self.keys, parts: [])
        let text = String(decoding: try empty.render(), as: UTF8.self)
        #expect(text.contains("\nCLOUD_INIT_USER_DATA='none'\n"))
        #expect(!text.contains("USER_DATA='") || !text.contains("\nUSER_DATA="))

        #expect(throws: ContextFile.Error.noneWithOthers) {
            try ContextFile(sshKeys: [], parts: [.init(mimeType: "none", fileName: "a", contents: []),
                                                .init(mimeType: "x-shellscript", fileName: "b", contents: [])]).render()
        }
        #expect(throws: ContextFile.Error.badMimeType("text/")) {
            try ContextFile(sshKeys: [], parts: [.init(mimeType: "text/", fileName: "a", contents: [])]).render()
        }
        #expect(throws: ContextFile.Error.reservedKey("USER_DATA")) {
            try ContextFile(sshKeys: [], parts: [], extra: [(key: "USER_DATA", value: "x")]).render()
        }
        #expect(throws: ContextFile.Error.badKey("lower")) {
            try ContextFile(sshKeys: [], parts: [], extra: [(key: "lower", value: "x")]).render()
        }
    }

    /// A part holding the boundary text gets another boundary.
    @Test func boundaryNeverOccursInAPart() throws {
        let tricky = Array("--===============rehost-context-0==\n".utf8)
        let message = MultipartMessage.render([("text/plain", "a", tricky), ("text/plain", "b", Array("x\n".utf8))])
        let text = String(decoding: message, as: UTF8.self)
        #expect(text.contains("boundary=\"===============rehost-context-1==\""))
    }

    /// The OpenNebula CD holds context.sh under its exact name, labelled CONTEXT; the NoCloud CD
    /// holds user-data and meta-data, labelled cidata.
    @Test func contextAndSeedCDs() throws {
        let isoinfo = try Command.require("isoinfo")
        let directory = try TemporaryDirectory()
        let file = try ContextFile(sshKeys: Self.keys, parts: []).render()
        let context = directory.file("context.iso")
        try Data(try ContextMedia.openNebulaISO(contextFile: file, time: 0)).write(to: URL(fileURLWithPath: context))
        #expect(try Command.run(isoinfo, ["-d", "-i", context]).requireSuccess().stdout.contains("Volume id: CONTEXT"))
        #expect(try Command.run(isoinfo, ["-J", "-i", context, "-x", "/context.sh"]).requireSuccess().stdoutBytes == file)
        let seed = directory.file("seed.iso")
        let nocloud = NoCloudSeed(userData: Self.cloudConfig)
        try Data(try ContextMedia.noCloudISO(seed: nocloud, time: 0)).write(to: URL(fileURLWithPath: seed))
        #expect(try Command.run(isoinfo, ["-d", "-i", seed]).requireSuccess().stdout.contains("Volume id: cidata"))
        #expect(try Command.run(isoinfo, ["-J", "-i", seed, "-x", "/user-data"]).requireSuccess().stdoutBytes == Self.cloudConfig)
        #expect(try Command.run(isoinfo, ["-J", "-i", seed, "-x", "/meta-data"]).requireSuccess().stdoutBytes == nocloud.effectiveMetaData)
    }
}
