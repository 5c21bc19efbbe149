import Foundation

/// A Keystone v3 token and the image endpoint its catalog names.
public struct KeystoneSession: Sendable {
    public var token: String
    /// Glance's root URL (without `/v2`).
    public var imageEndpoint: URL
    public var projectID: String?
}

/// Keystone v3 authentication (`POST /v3/auth/tokens`): password or application credential.
public enum Keystone {
    public static func authenticate(_ cloud: OpenStackCloud, client: HTTPClient) throws -> KeystoneSession {
        var base = cloud.authURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        if !base.hasSuffix("/v3") { base += "/v3" }
        guard let url = URL(string: base + "/auth/tokens") else {
            throw CloudError.configuration("openstack: auth_url \(cloud.authURL) is not usable")
        }
        let body = try JSONSerialization.data(withJSONObject: ["auth": authBody(cloud.auth)])
        let request = HTTPRequest("POST", url, headers: ["Content-Type": "application/json", "Accept": "application/json"],
                                  body: .bytes(body), service: "keystone", operation: "authenticate")
        let response = try client.send(request, errorMessage: openStackMessage)
        guard let token = response.header("X-Subject-Token"), !token.isEmpty else {
            throw CloudError.badResponse(service: "keystone", operation: "authenticate", what: "no X-Subject-Token header")
        }
        let document = (try? JSONSerialization.jsonObject(with: response.body)) as? [String: Any]
        let tokenInfo = document?["token"] as? [String: Any]
        let projectID = (tokenInfo?["project"] as? [String: Any])?["id"] as? String
        if let override = cloud.imageEndpoint {
            return KeystoneSession(token: token, imageEndpoint: override, projectID: projectID)
        }
        let catalog = tokenInfo?["catalog"] as? [[String: Any]] ?? []
        guard let endpoint = imageEndpoint(in: catalog, interface: cloud.interface, region: cloud.region) else {
            let regionText = cloud.region.map { " in region \($0)" } ?? ""
            throw CloudError.configuration("openstack: the catalog of \(cloud.name) has no \(cloud.interface) image (Glance) endpoint\(regionText); set image_endpoint_override")
        }
        return KeystoneSession(token: token, imageEndpoint: endpoint, projectID: projectID)
    }

    static func authBody(_ auth: OpenStackCloud.Auth) -> [String: Any] {
        func domain(_ value: String?) -> [String: Any] {
            // A 32-hex value is an id; anything else a name ("Default").
            guard let value else { return ["name": "Default"] }
            let isID = value.count == 32 && value.allSatisfy(\.isHexDigit) || value == "default"
            return isID ? ["id": value] : ["name": value]
        }
        func scope(name: String?, id: String?, domainValue: String?) -> [String: Any]? {
            if let id { return ["project": ["id": id]] }
            if let name { return ["project": ["name": name, "domain": domain(domainValue)]] }
            return nil
        }
        switch auth {
        case let .password(username, userID, password, userDomain, projectName, projectID, projectDomain):
            var user: [String: Any] = ["password": password]
            if let userID { user["id"] = userID } else {
                user["name"] = username ?? ""
                user["domain"] = domain(userDomain)
            }
            var body: [String: Any] = ["identity": ["methods": ["password"], "password": ["user": user]]]
            body["scope"] = scope(name: projectName, id: projectID, domainValue: projectDomain)
            return body
        case let .applicationCredential(id, name, secret, username, userDomain):
            var credential: [String: Any] = ["secret": secret]
            if let id { credential["id"] = id } else {
                credential["name"] = name ?? ""
                credential["user"] = ["name": username ?? "", "domain": domain(userDomain)]
            }
            return ["identity": ["methods": ["application_credential"], "application_credential": credential]]
        case let .token(token, projectName, projectID, projectDomain):
            var body: [String: Any] = ["identity": ["methods": ["token"], "token": ["id": token]]]
            body["scope"] = scope(name: projectName, id: projectID, domainValue: projectDomain)
            return body
        }
    }

    static func imageEndpoint(in catalog: [[String: Any]], interface: String, region: String?) -> URL? {
        for service in catalog where service["type"] as? String == "image" {
            for endpoint in service["endpoints"] as? [[String: Any]] ?? [] where endpoint["interface"] as? String == interface {
                if let region, (endpoint["region_id"] as? String ?? endpoint["region"] as? String) != region { continue }
                if let text = endpoint["url"] as? String, let url = URL(string: text) { return url }
            }
        }
        return nil
    }
}

/// The message an OpenStack service put in its error answer: Keystone's and Glance's JSON
/// (`{"error": {"message": …}}`, `{"message": …}`), or the text of webob's HTML pages.
public func openStackMessage(_ response: HTTPResponse) -> (code: String?, message: String) {
    if let document = (try? JSONSerialization.jsonObject(with: response.body)) as? [String: Any] {
        let inner = document["error"] as? [String: Any] ?? document
        if let message = inner["message"] as? String ?? inner["title"] as? String {
            return (inner["title"] as? String, String(message.prefix(300)))
        }
    }
    var text = response.text
    if text.contains("<") {
        // Drop the <title> (it repeats the status), then the tags.
        text = text.replacingOccurrences(of: "<title>[^<]*</title>", with: " ", options: .regularExpression)
        text = text.replacingOccurrences(of: "<h1>[^<]*</h1>", with: " ", options: .regularExpression)
        text = text.replacingOccurrences(of: "<[^>]*>", with: " ", options: .regularExpression)
    }
    let words = text.split(whereSeparator: { $0.isWhitespace })
    return (nil, String(words.joined(separator: " ").prefix(300)))
}
