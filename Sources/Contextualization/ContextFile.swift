import Compression
import ImageCore

/// An OpenNebula / StratusLab context file (`context.sh`): `KEY='VALUE'` lines a shell can
/// source, as OpenNebula writes on its context CD and cloud-init's OpenNebula datasource parses.
///
/// The variables, and where their conventions come from:
/// - `CONTEXT_METHOD='cloud-init'`, `CLOUD_INIT_AUTHORIZED_KEYS` (the SSH public keys, one a line,
///   base64) and `CLOUD_INIT_USER_DATA` (the user data, gzip-compressed, then base64): StratusLab's
///   cloud-init contextualization (`stratus-prepare-context`, StratusLab user guide, "CloudInit");
///   an empty part is the literal `none`.
/// - `SSH_PUBLIC_KEY` (the keys as text), `USER_DATA` (the same gzip+base64 blob as
///   `CLOUD_INIT_USER_DATA`) and `USER_DATA_ENCODING='base64'`: OpenNebula's context variables, as
///   cloud-init's OpenNebula datasource reads them (it base64-decodes `USER_DATA` when
///   `USER_DATA_ENCODING` says so, and cloud-init unpacks gzip-compressed user data itself).
///
/// The user data is built from parts given as `mimetype,file` (StratusLab's form): with one part
/// of the pseudo-type `none`, that file verbatim; otherwise a `multipart/mixed` MIME message, one
/// part per file, which cloud-init splits by each part's Content-Type (`text/x-shellscript`,
/// `text/cloud-config`, ...; a type without `/` gets `text/`).
public struct ContextFile: Sendable, Equatable {
    public struct Part: Sendable, Equatable {
        /// `none`, a MIME type, or a type without its `text/` prefix (`x-shellscript`).
        public var mimeType: String
        /// The file's name, for the part's Content-Disposition.
        public var fileName: String
        public var contents: [UInt8]

        public init(mimeType: String, fileName: String, contents: [UInt8]) {
            self.mimeType = mimeType
            self.fileName = fileName
            self.contents = contents
        }
    }

    public var sshKeys: [String]
    public var parts: [Part]
    /// Further `KEY=VALUE` variables (`--set`), written after the others.
    public var extra: [(key: String, value: String)]

    public init(sshKeys: [String], parts: [Part], extra: [(key: String, value: String)] = []) {
        self.sshKeys = sshKeys
        self.parts = parts
        self.extra = extra
    }

    public static func == (a: ContextFile, b: ContextFile) -> Bool {
        a.sshKeys == b.sshKeys && a.parts == b.parts && a.extra.map(\.key) == b.extra.map(\.key)
            && a.extra.map(\.value) == b.extra.map(\.value)
    }

    public enum Error: RehostError, Equatable {
        case noneWithOthers
        case badMimeType(String)
        case badKey(String)
        case reservedKey(String)

        public var description: String {
            switch self {
            case .noneWithOthers:
                return "--user-data none,FILE includes one file verbatim, so it cannot be combined with other --user-data parts"
            case let .badMimeType(type):
                return "--user-data \(type),FILE: '\(type)' is not a MIME type (expected none, x-shellscript, cloud-config, text/..., or type/subtype)"
            case let .badKey(key):
                return "--set \(key)=...: a variable name is upper-case letters, digits and _, starting with a letter"
            case let .reservedKey(key):
                return "--set \(key)=...: Rehost writes \(key) itself"
            }
        }
    }

    /// The variables Rehost writes itself, which `--set` cannot name.
    public static let reservedKeys: Set<String> = ["CONTEXT_METHOD", "CLOUD_INIT_AUTHORIZED_KEYS", "CLOUD_INIT_USER_DATA",
                                                   "SSH_PUBLIC_KEY", "USER_DATA", "USER_DATA_ENCODING"]

    /// The variables in the order they are written.
    public func variables() throws -> [(key: String, value: String)] {
        let keyText = sshKeys.isEmpty ? "" : sshKeys.map { $0 + "\n" }.joined()
        let userData = try self.userData()
        let userDataBlob = userData.map { Base64.encode(StreamCompression.gzip($0, level: 9)) }
        var variables: [(key: String, value: String)] = [
            ("CONTEXT_METHOD", "cloud-init"),
            ("CLOUD_INIT_AUTHORIZED_KEYS", keyText.isEmpty ? "none" : Base64.encode(Array(keyText.utf8))),
            ("CLOUD_INIT_USER_DATA", userDataBlob ?? "none"),
        ]
        if !sshKeys.isEmpty { variables.append(("SSH_PUBLIC_KEY", sshKeys.joined(separator: "\n"))) }
        if let userDataBlob {
            variables.append(("USER_DATA", userDataBlob))
            variables.append(("USER_DATA_ENCODING", "base64"))
        }
        for (key, value) in extra {
            guard Self.isVariableName(key) else { throw Error.badKey(key) }
            guard !Self.reservedKeys.contains(key) else { throw Error.reservedKey(key) }
            variables.append((key, value))
        }
        return variables
    }

    /// The file's text: a comment line, then one `KEY='VALUE'` line per variable (a value's `'`
    /// written as `'\''`, so any bytes survive `. context.sh`).
    public func render() throws -> [UInt8] {
        var text = "# Context variables generated by rehost context (OpenNebula / StratusLab cloud-init format)\n"
        for (key, value) in try variables() {
            text += "\(key)='\(value.replacingAll("'", with: "'\\''"))'\n"
        }
        return Array(text.utf8)
    }

    /// The user data: nil when there are no parts, the file itself for one `none` part, else a
    /// multipart MIME message.
    public func userData() throws -> [UInt8]? {
        guard !parts.isEmpty else { return nil }
        if parts.contains(where: { $0.mimeType == "none" }) {
            guard parts.count == 1 else { throw Error.noneWithOthers }
            return parts[0].contents
        }
        return try MultipartMessage.render(parts.map { part in
            (try Self.fullMimeType(part.mimeType), part.fileName, part.contents)
        })
    }

    /// `x-shellscript` -> `text/x-shellscript`; a full `type/subtype` is kept.
    public static func fullMimeType(_ type: String) throws -> String {
        let token = { (text: Substring) in
            !text.isEmpty && text.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "+-._".unicodeScalars.contains($0)) }
        }
        let pieces = type.split(separator: "/", omittingEmptySubsequences: false)
        switch pieces.count {
        case 1 where token(pieces[0]): return "text/" + type
        case 2 where token(pieces[0]) && token(pieces[1]): return type
        default: throw Error.badMimeType(type)
        }
    }

    static func isVariableName(_ key: String) -> Bool {
        guard let first = key.unicodeScalars.first, ("A"..."Z").contains(first) else { return false }
        return key.unicodeScalars.allSatisfy { ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
    }
}

/// A `multipart/mixed` message as cloud-init reads it (what its `make-mime` tool and Python's
/// `email.mime` write): a header, then each part with its Content-Type, Content-Disposition and,
/// for text that is not 7-bit clean, base64 transfer encoding.
public enum MultipartMessage {
    public static func render(_ parts: [(mimeType: String, fileName: String, contents: [UInt8])]) -> [UInt8] {
        let encoded = parts.map { part -> (header: String, body: [UInt8]) in
            let sevenBit = part.contents.allSatisfy { $0 == 0x0a || $0 == 0x09 || ($0 >= 0x20 && $0 < 0x7f) }
                && part.contents.split(separator: 0x0a, omittingEmptySubsequences: false).allSatisfy { $0.count <= 998 }
            var header = "Content-Type: \(part.mimeType)"
            if sevenBit && part.mimeType.hasPrefix("text/") { header += "; charset=\"us-ascii\"" }
            header += "\nMIME-Version: 1.0\n"
            header += "Content-Transfer-Encoding: \(sevenBit ? "7bit" : "base64")\n"
            header += "Content-Disposition: attachment; filename=\"\(quoted(part.fileName))\"\n\n"
            // The line break before a boundary belongs to the boundary (RFC 2046 5.1.1): one is
            // added after every body, so a part's own last newline is kept.
            let body = (sevenBit ? part.contents : Array(Base64.encodeLines(part.contents).utf8)) + [0x0a]
            return (header, body)
        }
        // The boundary must not occur in any part; the first free one is taken, so the message is
        // the same for the same parts.
        var counter = 0
        var boundary = "===============rehost-context-0=="
        while encoded.contains(where: { contains($0.body, Array(boundary.utf8)) || $0.header.contains(boundary) }) {
            counter += 1
            boundary = "===============rehost-context-\(counter)=="
        }
        var message = Array("Content-Type: multipart/mixed; boundary=\"\(boundary)\"\nMIME-Version: 1.0\n\n".utf8)
        for part in encoded {
            message += Array("--\(boundary)\n".utf8) + Array(part.header.utf8) + part.body
        }
        message += Array("--\(boundary)--\n".utf8)
        return message
    }

    static func quoted(_ name: String) -> String {
        String(name.unicodeScalars.map { scalar -> Character in
            scalar == "\"" || scalar == "\\" || scalar.value < 0x20 || scalar.value >= 0x7f ? "_" : Character(scalar)
        })
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<start + needle.count].elementsEqual(needle) { return true }
        }
        return false
    }
}

/// RFC 4648 base64, the standard alphabet with padding.
public enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index + 3 <= bytes.count {
            let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            out += [alphabet[Int(value >> 18 & 63)], alphabet[Int(value >> 12 & 63)], alphabet[Int(value >> 6 & 63)], alphabet[Int(value & 63)]]
            index += 3
        }
        let rest = bytes.count - index
        if rest == 1 {
            let value = UInt32(bytes[index]) << 16
            out += [alphabet[Int(value >> 18 & 63)], alphabet[Int(value >> 12 & 63)], 61, 61]
        } else if rest == 2 {
            let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
            out += [alphabet[Int(value >> 18 & 63)], alphabet[Int(value >> 12 & 63)], alphabet[Int(value >> 6 & 63)], 61]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Base64 in lines of 76 characters, as MIME wants (RFC 2045 6.8).
    public static func encodeLines(_ bytes: [UInt8]) -> String {
        let text = Array(encode(bytes).utf8)
        return stride(from: 0, to: text.count, by: 76).map {
            String(decoding: text[$0..<min($0 + 76, text.count)], as: UTF8.self) + "\n"
        }.joined()
    }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
