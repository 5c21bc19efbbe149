import Foundation

/// An access key pair, with the session token of temporary credentials. Its description, debug
/// description and mirror (what `dump` and default struct printing use) show only the key id:
/// the secret and the token never reach a message or a log.
public struct AWSCredentials: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    public var description: String {
        "AWS key \(accessKeyID)\(sessionToken == nil ? "" : " (temporary, with a session token)")"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(self, children: ["accessKeyID": accessKeyID, "secretAccessKey": "(hidden)",
                                "sessionToken": sessionToken == nil ? "none" : "(hidden)"])
    }
}

/// Credentials, region and endpoints, found the way the AWS CLI finds them, so a user who has
/// the CLI set up needs to set nothing more for rehost.
public struct AWSConfiguration: Sendable {
    public var credentials: AWSCredentials
    public var region: String
    /// Endpoint overrides by lower-case service name ("s3", "ec2", "ebs"); "" holds the global one.
    public var endpoints: [String: URL]

    public init(credentials: AWSCredentials, region: String, endpoints: [String: URL] = [:]) {
        self.credentials = credentials
        self.region = region
        self.endpoints = endpoints
    }

    /// The base URL of `service`: an override (per service, then global), else AWS's public one.
    public func endpoint(for service: String) -> URL {
        let key = service.lowercased()
        if let url = endpoints[key] ?? endpoints[""] { return url }
        return URL(string: "https://\(key).\(region).amazonaws.com")!
    }

    /// A signer for `service` with these credentials and this region.
    public func signer(for service: String) -> SigV4Signer {
        SigV4Signer(credentials: credentials, region: region, service: service)
    }

    /// Reads, in the AWS CLI's order: the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_SESSION_TOKEN, AWS_REGION, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL[_SERVICE]), then the
    /// profile (AWS_PROFILE, else `profile`, else "default") in the shared credentials file and the
    /// config file (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, else under `home`/.aws).
    public static func load(environment: [String: String] = ProcessInfo.processInfo.environment,
                            profile: String? = nil, home: String? = nil) throws -> AWSConfiguration {
        func env(_ name: String) -> String? {
            guard let value = environment[name]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
            return value
        }
        let profileName = profile ?? env("AWS_PROFILE") ?? "default"
        let homeDirectory = home ?? env("HOME") ?? NSHomeDirectory()
        let credentialsPath = env("AWS_SHARED_CREDENTIALS_FILE") ?? "\(homeDirectory)/.aws/credentials"
        let configPath = env("AWS_CONFIG_FILE") ?? "\(homeDirectory)/.aws/config"

        let credentialsFile = try IniFile.read(credentialsPath)
        let configFile = try IniFile.read(configPath)
        // The credentials file names sections bare; the config file says "profile NAME", except
        // for "default".
        let fromCredentials = credentialsFile?.sections[profileName] ?? [:]
        let configSectionName = profileName == "default" ? "default" : "profile \(profileName)"
        let fromConfig = configFile?.sections[configSectionName]
            ?? (profileName == "default" ? [:] : configFile?.sections[profileName]) ?? [:]
        func profileValue(_ key: String) -> String? { fromCredentials[key] ?? fromConfig[key] }

        let credentials: AWSCredentials
        if let keyID = env("AWS_ACCESS_KEY_ID") {
            guard let secret = env("AWS_SECRET_ACCESS_KEY") else {
                throw CloudError.configuration("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both")
            }
            credentials = AWSCredentials(accessKeyID: keyID, secretAccessKey: secret, sessionToken: env("AWS_SESSION_TOKEN"))
        } else if let keyID = profileValue("aws_access_key_id") {
            guard let secret = profileValue("aws_secret_access_key") else {
                throw CloudError.configuration("AWS profile \(profileName) has aws_access_key_id but no aws_secret_access_key (\(credentialsPath))")
            }
            credentials = AWSCredentials(accessKeyID: keyID, secretAccessKey: secret, sessionToken: profileValue("aws_session_token"))
        } else {
            throw CloudError.configuration("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                + "or aws_access_key_id and aws_secret_access_key for profile \(profileName) in \(credentialsPath)")
        }

        guard let region = env("AWS_REGION") ?? env("AWS_DEFAULT_REGION") ?? fromConfig["region"] ?? fromCredentials["region"] else {
            throw CloudError.configuration("no AWS region: set AWS_REGION, or region for profile \(profileName) in \(configPath)")
        }

        var endpoints: [String: URL] = [:]
        func url(_ text: String, from origin: String) throws -> URL {
            guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
                  url.host != nil else {
                throw CloudError.configuration("\(origin) is not an http(s) URL: \(text)")
            }
            return url
        }
        // Lowest precedence first, so later assignments win: config file, then environment.
        if let global = fromConfig["endpoint_url"] { endpoints[""] = try url(global, from: "endpoint_url in \(configPath)") }
        if let servicesName = fromConfig["services"], let services = configFile?.subsections["services \(servicesName)"] {
            for (service, values) in services {
                if let value = values["endpoint_url"] {
                    endpoints[service.lowercased()] = try url(value, from: "endpoint_url for \(service) in \(configPath)")
                }
            }
        }
        if let global = env("AWS_ENDPOINT_URL") {
            endpoints = endpoints.filter { $0.key.isEmpty }
            endpoints[""] = try url(global, from: "AWS_ENDPOINT_URL")
        }
        for service in ["S3", "EC2", "EBS"] {
            if let value = env("AWS_ENDPOINT_URL_\(service)") {
                endpoints[service.lowercased()] = try url(value, from: "AWS_ENDPOINT_URL_\(service)")
            }
        }
        return AWSConfiguration(credentials: credentials, region: region, endpoints: endpoints)
    }
}

/// The AWS CLI's INI dialect: `[section]`, `key = value`, `#`/`;` comments, and indented
/// `key = value` lines under a `name =` line (the nested form `services` sections use).
struct IniFile {
    var sections: [String: [String: String]] = [:]
    /// section → nested name → key → value, for `[services NAME]` blocks.
    var subsections: [String: [String: [String: String]]] = [:]

    /// nil when the file does not exist; a configuration error when it cannot be read.
    static func read(_ path: String) throws -> IniFile? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CloudError.configuration("cannot read \(path)")
        }
        return parse(String(decoding: data, as: UTF8.self))
    }

    static func parse(_ text: String) -> IniFile {
        var file = IniFile()
        var section: String?
        var nested: String?
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let indented = rawLine.first == " " || rawLine.first == "\t"
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                let name = line.dropFirst().dropLast().split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
                section = name
                nested = nil
                if file.sections[name] == nil { file.sections[name] = [:] }
                continue
            }
            guard let section, let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if indented, let nested {
                file.subsections[section, default: [:]][nested, default: [:]][key] = value
            } else if value.isEmpty {
                nested = key
            } else {
                nested = nil
                file.sections[section, default: [:]][key] = value
            }
        }
        return file
    }
}
