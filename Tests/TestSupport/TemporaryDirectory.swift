import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under /tmp, removed when the last reference goes away.
/// Set REHOST_KEEP_TEST_FILES=1 to keep it for a post-mortem; its path is then printed.
public final class TemporaryDirectory: Sendable {
    public let path: String

    public init(prefix: String = "rehost-test") throws {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else {
            throw TestSupportError.temporaryDirectory(path: "/tmp/\(prefix)-XXXXXX", errno: errno)
        }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit {
        if ProcessInfo.processInfo.environment["REHOST_KEEP_TEST_FILES"] == "1" {
            print("REHOST_KEEP_TEST_FILES: keeping \(path)")
        } else {
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// The path of `name` inside this directory.
    public func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Lets a test that runs a program as `nobody` create files here; /tmp itself is traversable.
    public func makeWorldWritable() throws {
        guard chmod(path, 0o777) == 0 else {
            throw TestSupportError.temporaryDirectory(path: path, errno: errno)
        }
    }
}
