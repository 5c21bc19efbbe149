import Foundation
import ImageCore
import Yams

/// How to reach an OpenStack cloud, found the way the openstack client finds it: a named cloud in
/// `clouds.yaml` (merged with `secure.yaml`), else the `OS_*` environment.
///
/// Search path for both files, first found wins: `OS_CLIENT_CONFIG_FILE` (clouds.yaml only), the
/// current directory, `~/.config/openstack/`, `/etc/openstack/`.
public struct OpenStackCloud: Sendable, CustomStringConvertible {
    public enum Auth: Sendable {
        case password(username: String?, userID: String?, password: String, userDomain: String?,
                      projectName: String?, projectID: String?, projectDomain: String?)
        case applicationCredential(id: String?, name: String?, secret: String, username: String?, userDomain: String?)
        /// A token the user already holds.
        case token(String, projectName: String?, projectID: String?, projectDomain: String?)
    }

    public var name: String
    /// Keystone's URL, ending in the API version (`/v3` is added when missing).
    public var authURL: URL
    public var auth: Auth
    public var region: String?
    /// `public`, `internal` or `admin`, as in the catalog.
    public var interface: String
    /// `image_endpoint_override`: Glance's URL, skipping the catalog.
    public var imageEndpoint: URL?
    /// Where the settings came from, for messages: "clouds.yaml /home/u/.config/openstack/clouds.yaml" or "OS_* environment".
    public var source: String

    public var description: String {
        let kind: String
        switch auth {
        case .password: kind = "password"
        case .applicationCredential: kind = "application credential"
        case .token: kind = "token"
        }
        return "cloud \(name) (\(kind) auth at \(authURL.absoluteString), from \(source))"
    }

    /// The cloud `name` (or `OS_CLOUD`), else the `OS_*` environment.
    public static func load(name: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                            home: String? = nil, currentDirectory: String = FileManager.default.currentDirectoryPath) throws -> OpenStackCloud {
        let home = home ?? environment["HOME"] ?? NSHomeDirectory()
        if let cloudName = name ?? environment["OS_CLOUD"], !cloudName.isEmpty {
            let directories = [currentDirectory, home + "/.config/openstack", "/etc/openstack"]
            var cloudsCandidates = directories.map { $0 + "/clouds.yaml" }
            if let explicit = environment["OS_CLIENT_CONFIG_FILE"] { cloudsCandidates.insert(explicit, at: 0) }
            guard let cloudsPath = cloudsCandidates.first(where: { FileManager.default.isReadableFile(atPath: $0) }) else {
                throw CloudError.configuration("openstack: no clouds.yaml for cloud \(cloudName) (looked in \(cloudsCandidates.joined(separator: ", ")))")
            }
            var settings = try cloudSettings(cloudName, in: cloudsPath, required: true)
            if let securePath = directories.map({ $0 + "/secure.yaml" }).first(where: { FileManager.default.isReadableFile(atPath: $0) }) {
                settings = merge(settings, try cloudSettings(cloudName, in: securePath, required: false))
            }
            return try fromSettings(settings, name: cloudName, source: "clouds.yaml \(cloudsPath)")
        }
        return try fromEnvironment(environment)
    }

    static func cloudSettings(_ name: String, in path: String, required: Bool) throws -> [String: Any] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw CloudError.configuration("openstack: cannot read \(path)")
        }
        let document: Any?
        do { document = try Yams.load(yaml: text) } catch {
            throw CloudError.configuration("openstack: \(path) is not valid YAML: \(String(describing: error).split(separator: "\n").first ?? "")")
        }
        guard let clouds = (document as? [String: Any])?["clouds"] as? [String: Any] else {
            if required { throw CloudError.configuration("openstack: \(path) has no `clouds:` mapping") }
            return [:]
        }
        guard let cloud = clouds[name] as? [String: Any] else {
            if required {
                throw CloudError.configuration("openstack: \(path) has no cloud \(name) (it has: \(clouds.keys.sorted().joined(separator: ", ")))")
            }
            return [:]
        }
        return cloud
    }

    /// secure.yaml's values over clouds.yaml's, nested mappings merged key by key.
    static func merge(_ base: [String: Any], _ over: [String: Any]) -> [String: Any] {
        var merged = base
        for (key, value) in over {
            if let inner = value as? [String: Any], let existing = merged[key] as? [String: Any] {
                merged[key] = merge(existing, inner)
            } else {
                merged[key] = value
            }
        }
        return merged
    }

    static func fromSettings(_ settings: [String: Any], name: String, source: String) throws -> OpenStackCloud {
        let auth = settings["auth"] as? [String: Any] ?? [:]
        func value(_ key: String) -> String? {
            if let text = auth[key] as? String, !text.isEmpty { return text }
            if let text = settings[key] as? String, !text.isEmpty { return text }
            return nil
        }
        let authType = (settings["auth_type"] as? String) ?? (auth["auth_type"] as? String) ?? "password"
        return try make(name: name, source: source, authType: authType, authURL: value("auth_url"), value: value,
                        region: (settings["region_name"] as? String) ?? (settings["region"] as? String),
                        interface: (settings["interface"] as? String) ?? (settings["endpoint_type"] as? String),
                        imageEndpoint: settings["image_endpoint_override"] as? String)
    }

    static func fromEnvironment(_ environment: [String: String]) throws -> OpenStackCloud {
        guard environment["OS_AUTH_URL"] != nil else {
            throw CloudError.configuration("openstack: no cloud given: pass --os-cloud NAME (clouds.yaml) or set OS_CLOUD, or the OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME environment")
        }
        func value(_ key: String) -> String? {
            let name = "OS_" + key.uppercased()
            guard let text = environment[name], !text.isEmpty else { return nil }
            return text
        }
        return try make(name: "environment", source: "OS_* environment", authType: value("auth_type") ?? "password",
                        authURL: value("auth_url"), value: value, region: value("region_name"), interface: value("interface"),
                        imageEndpoint: value("image_url"))
    }

    private static func make(name: String, source: String, authType: String, authURL: String?, value: (String) -> String?,
                             region: String?, interface: String?, imageEndpoint: String?) throws -> OpenStackCloud {
        guard let authURL, let url = URL(string: authURL), url.scheme == "http" || url.scheme == "https" else {
            throw CloudError.configuration("openstack: cloud \(name) has no usable auth_url (from \(source))")
        }
        let auth: Auth
        switch authType {
        case "password", "v3password":
            guard let password = value("password") else {
                throw CloudError.configuration("openstack: cloud \(name) has no password (from \(source))")
            }
            guard value("username") != nil || value("user_id") != nil else {
                throw CloudError.configuration("openstack: cloud \(name) has no username or user_id (from \(source))")
            }
            auth = .password(username: value("username"), userID: value("user_id"), password: password,
                             userDomain: value("user_domain_name") ?? value("user_domain_id") ?? value("domain_name"),
                             projectName: value("project_name") ?? value("tenant_name"), projectID: value("project_id") ?? value("tenant_id"),
                             projectDomain: value("project_domain_name") ?? value("project_domain_id") ?? value("domain_name"))
        case "v3applicationcredential", "applicationcredential", "application_credential":
            guard let secret = value("application_credential_secret") else {
                throw CloudError.configuration("openstack: cloud \(name) has no application_credential_secret (from \(source))")
            }
            guard value("application_credential_id") != nil || value("application_credential_name") != nil else {
                throw CloudError.configuration("openstack: cloud \(name) has no application_credential_id (from \(source))")
            }
            auth = .applicationCredential(id: value("application_credential_id"), name: value("application_credential_name"),
                                          secret: secret, username: value("username"), userDomain: value("user_domain_name"))
        case "token", "v3token":
            guard let token = value("token") else { throw CloudError.configuration("openstack: cloud \(name) has no token (from \(source))") }
            auth = .token(token, projectName: value("project_name"), projectID: value("project_id"),
                          projectDomain: value("project_domain_name"))
        default:
            throw CloudError.configuration("openstack: cloud \(name): auth_type \(authType) is not supported (use password, v3applicationcredential or token)")
        }
        let override = try imageEndpoint.map { text -> URL in
            guard let url = URL(string: text), url.scheme != nil else {
                throw CloudError.configuration("openstack: cloud \(name): image_endpoint_override \(text) is not a URL")
            }
            return url
        }
        return OpenStackCloud(name: name, authURL: url, auth: auth, region: region, interface: interface ?? "public",
                              imageEndpoint: override, source: source)
    }
}
