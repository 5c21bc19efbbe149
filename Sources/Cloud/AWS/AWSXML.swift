import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// A parsed XML element: S3 and EC2 answer in small XML documents, read here into a tree so the
/// clients can ask for `Response/imageId` instead of scanning text. Namespaces are dropped.
struct XMLTree: Sendable {
    var name: String
    var text: String
    var children: [XMLTree]

    /// The first child named `name`.
    subscript(_ name: String) -> XMLTree? { children.first { $0.name == name } }

    /// The children named `name`.
    func all(_ name: String) -> [XMLTree] { children.filter { $0.name == name } }

    /// The first element named `name` at any depth, this one included.
    func find(_ name: String) -> XMLTree? {
        if self.name == name { return self }
        for child in children { if let found = child.find(name) { return found } }
        return nil
    }

    /// The trimmed text of the child at `path` ("a/b/c").
    func value(_ path: String) -> String? {
        var node: XMLTree? = self
        for part in path.split(separator: "/") { node = node?[String(part)] }
        return node?.text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func parse(_ data: Data) -> XMLTree? {
        let delegate = Builder()
        let parser = XMLParser(data: data)
        parser.delegate = delegate
        guard parser.parse() else { return nil }
        return delegate.root
    }

    private final class Builder: NSObject, XMLParserDelegate {
        var stack: [XMLTree] = []
        var root: XMLTree?

        func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                    qualifiedName: String?, attributes: [String: String] = [:]) {
            let local = elementName.split(separator: ":").last.map(String.init) ?? elementName
            stack.append(XMLTree(name: local, text: "", children: []))
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            if !stack.isEmpty { stack[stack.count - 1].text += string }
        }

        func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName: String?) {
            guard let done = stack.popLast() else { return }
            if stack.isEmpty { root = done } else { stack[stack.count - 1].children.append(done) }
        }
    }
}

/// Reads AWS error answers into the `(code, message)` pair `HTTPClient.send` puts in its
/// one-line error: S3's `<Error><Code/><Message/>`, EC2's `<Response><Errors><Error>`, and the
/// JSON services' `{"message"}` with `__type` or the `x-amzn-errortype` header.
public enum AWSErrorParser {
    public static func parse(_ response: HTTPResponse) -> (code: String?, message: String) {
        let headerCode = response.header("x-amzn-errortype").map(shortCode)
        let trimmed = response.body.drop { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
        if trimmed.first == UInt8(ascii: "<"), let tree = XMLTree.parse(response.body), let error = tree.find("Error") {
            let code = error.value("Code")
            let message = error.value("Message") ?? ""
            return (code ?? headerCode, oneLine(message))
        }
        if trimmed.first == UInt8(ascii: "{"),
           let object = try? JSONSerialization.jsonObject(with: response.body) as? [String: Any] {
            let message = (object["message"] ?? object["Message"] ?? object["errorMessage"]) as? String ?? ""
            let type = (object["__type"] as? String).map(shortCode)
            let code = headerCode ?? type ?? (object["code"] as? String) ?? (object["Code"] as? String)
            return (code, oneLine(message))
        }
        if response.body.isEmpty || trimmed.first == UInt8(ascii: "<") {
            // A HEAD has no body, and an HTML page is no message.
            return (headerCode, "")
        }
        let plain = HTTPClient.plainMessage(response)
        return (headerCode ?? plain.code, plain.message)
    }

    /// `com.amazon.coral#ValidationException:http://…` → `ValidationException`.
    static func shortCode(_ raw: String) -> String {
        var code = Substring(raw)
        if let colon = code.firstIndex(of: ":") { code = code[..<colon] }
        if let hash = code.lastIndex(of: "#") { code = code[code.index(after: hash)...] }
        return code.trimmingCharacters(in: .whitespaces)
    }

    static func oneLine(_ text: String) -> String {
        String(text.split(whereSeparator: { $0.isNewline }).map { $0.trimmingCharacters(in: .whitespaces) }
            .joined(separator: " ").prefix(300))
    }
}
