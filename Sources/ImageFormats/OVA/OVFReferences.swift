/// The disk references of an OVF descriptor, found by a small scan of its XML start tags:
/// ```
/// <References>
///   <File ovf:id="file1" ovf:href="vm-disk1.vmdk" ovf:size="..." [ovf:compression="gzip"] [ovf:chunkSize="..."]/>
/// </References>
/// <DiskSection>
///   <Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="..." .../>
/// </DiskSection>
/// ```
/// Namespace prefixes are ignored (elements and attributes are matched by local name), comments,
/// processing instructions and CDATA are skipped, and the five predefined entities are decoded
/// in attribute values. Anything else about the document is left unchecked: Rehost needs only
/// which member holds the first disk.
struct OVFReferences: Equatable, Sendable {
    struct File: Equatable, Sendable {
        var id: String
        var href: String
        var compression: String?
        var chunkSize: String?
    }

    /// The `<File>` elements, in document order.
    var files: [File] = []
    /// The `ovf:fileRef` of each `<Disk>` element, in document order (nil when a disk has none:
    /// an empty disk the VM creates).
    var diskFileRefs: [String?] = []

    /// The file holding the first disk that has one.
    var firstDiskFile: File? {
        for case let ref? in diskFileRefs {
            if let file = files.first(where: { $0.id == ref }) { return file }
        }
        return nil
    }

    init(xml: String) {
        let text = Array(xml.utf8)
        var index = 0
        while let open = text[index...].firstIndex(of: UInt8(ascii: "<")) {
            index = open + 1
            if text[index...].starts(with: Array("!--".utf8)) {
                index = Self.find(Array("-->".utf8), in: text, from: index) ?? text.count
                continue
            }
            if text[index...].starts(with: Array("![CDATA[".utf8)) {
                index = Self.find(Array("]]>".utf8), in: text, from: index) ?? text.count
                continue
            }
            guard index < text.count, text[index] != UInt8(ascii: "/"), text[index] != UInt8(ascii: "?"),
                  text[index] != UInt8(ascii: "!") else { continue }
            let (name, attributes, end) = Self.startTag(text, from: index)
            index = end
            switch Self.localName(name) {
            case "File":
                if let id = attributes["id"], let href = attributes["href"] {
                    files.append(File(id: id, href: href, compression: attributes["compression"], chunkSize: attributes["chunkSize"]))
                }
            case "Disk":
                diskFileRefs.append(attributes["fileRef"])
            default:
                break
            }
        }
    }

    private static func localName(_ name: String) -> String {
        name.split(separator: ":").last.map(String.init) ?? name
    }

    private static func find(_ needle: [UInt8], in text: [UInt8], from start: Int) -> Int? {
        guard text.count >= needle.count else { return nil }
        var index = start
        while index + needle.count <= text.count {
            if text[index..<(index + needle.count)].elementsEqual(needle) { return index + needle.count }
            index += 1
        }
        return nil
    }

    /// Reads `name attr="value" attr='value' ... >` from just after the `<`; returns the element
    /// name, its attributes by local name, and the index after the tag.
    private static func startTag(_ text: [UInt8], from start: Int) -> (String, [String: String], Int) {
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0a || byte == 0x0d }
        var index = start
        while index < text.count, !isSpace(text[index]), text[index] != UInt8(ascii: ">"), text[index] != UInt8(ascii: "/") {
            index += 1
        }
        let name = String(decoding: text[start..<index], as: UTF8.self)
        var attributes: [String: String] = [:]
        while index < text.count {
            while index < text.count, isSpace(text[index]) || text[index] == UInt8(ascii: "/") { index += 1 }
            guard index < text.count, text[index] != UInt8(ascii: ">") else { break }
            let nameStart = index
            while index < text.count, text[index] != UInt8(ascii: "="), text[index] != UInt8(ascii: ">"), !isSpace(text[index]) {
                index += 1
            }
            let attribute = String(decoding: text[nameStart..<index], as: UTF8.self)
            while index < text.count, isSpace(text[index]) { index += 1 }
            guard index < text.count, text[index] == UInt8(ascii: "=") else { continue }
            index += 1
            while index < text.count, isSpace(text[index]) { index += 1 }
            guard index < text.count, text[index] == UInt8(ascii: "\"") || text[index] == UInt8(ascii: "'") else { continue }
            let quote = text[index]
            let valueStart = index + 1
            guard let valueEnd = text[valueStart...].firstIndex(of: quote) else { index = text.count; break }
            attributes[localName(attribute)] = unescape(String(decoding: text[valueStart..<valueEnd], as: UTF8.self))
            index = valueEnd + 1
        }
        return (name, attributes, min(index + 1, text.count))
    }

    private static func unescape(_ value: String) -> String {
        guard value.contains("&") else { return value }
        return value.replacingEntities()
    }
}

extension String {
    fileprivate func replacingEntities() -> String {
        var result = ""
        var rest = Substring(self)
        let entities = ["&lt;": "<", "&gt;": ">", "&quot;": "\"", "&apos;": "'", "&amp;": "&"]
        while let amp = rest.firstIndex(of: "&") {
            result += rest[..<amp]
            rest = rest[amp...]
            if let (entity, character) = entities.first(where: { rest.hasPrefix($0.key) }) {
                result += character
                rest = rest.dropFirst(entity.count)
            } else {
                result += "&"
                rest = rest.dropFirst()
            }
        }
        return result + rest
    }
}
