import Cloud
import Foundation
import Testing
import TestSupport

/// Where credentials, region and endpoints come from, with explicit environments and temp files:
/// the machine's own ~/.aws never enters a test.
struct AWSConfigurationTests {
    @Test func environmentWins() throws {
        let home = try TemporaryDirectory()
        try write("[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = FILESECRET\n", to: home.file(".aws/credentials"))
        let config = try AWSConfiguration.load(environment: [
            "AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "ENVSECRET", "AWS_SESSION_TOKEN": "ENVTOKEN",
            "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-west-2",
        ], home: home.path)
        #expect(config.credentials.accessKeyID == "ENVKEY")
        #expect(config.credentials.secretAccessKey == "ENVSECRET")
        #expect(config.credentials.sessionToken == "ENVTOKEN")
        #expect(config.region == "eu-west-1")
        #expect(config.endpoint(for: "s3").absoluteString == "https://s3.eu-west-1.amazonaws.com")
        #expect(config.endpoint(for: "ec2").absoluteString == "https://ec2.eu-west-1.amazonaws.com")
        #expect(config.endpoint(for: "ebs").absoluteString == "https://ebs.eu-west-1.amazonaws.com")
    }

    @Test func namedProfileFromBothFiles() throws {
        let home = try TemporaryDirectory()
        try write("""
            [default]
            aws_access_key_id = DEFAULTKEY
            aws_secret_access_key = DEFAULTSECRET
            [work]
            aws_access_key_id = WORKKEY
            # a comment
            aws_secret_access_key = WORKSECRET
            aws_session_token = WORKTOKEN
            """, to: home.file(".aws/credentials"))
        try write("""
            [default]
            region = us-east-2
            [profile work]
            region = ap-south-1
            endpoint_url = http://127.0.0.1:5000
            """, to: home.file(".aws/config"))
        let byArgument = try AWSConfiguration.load(environment: [:], profile: "work", home: home.path)
        #expect(byArgument.credentials.accessKeyID == "WORKKEY")
        #expect(byArgument.credentials.sessionToken == "WORKTOKEN")
        #expect(byArgument.region == "ap-south-1")
        #expect(byArgument.endpoint(for: "ec2").absoluteString == "http://127.0.0.1:5000")
        let byEnvironment = try AWSConfiguration.load(environment: ["AWS_PROFILE": "work", "AWS_DEFAULT_REGION": "sa-east-1"], home: home.path)
        #expect(byEnvironment.credentials.secretAccessKey == "WORKSECRET")
        #expect(byEnvironment.region == "sa-east-1")
        let byDefault = try AWSConfiguration.load(environment: [:], home: home.path)
        #expect(byDefault.credentials.accessKeyID == "DEFAULTKEY")
        #expect(byDefault.region == "us-east-2")
        #expect(byDefault.endpoint(for: "s3").absoluteString == "https://s3.us-east-2.amazonaws.com")
    }

    @Test func fileLocationsFromTheEnvironment() throws {
        let dir = try TemporaryDirectory()
        try write("[default]\naws_access_key_id = K\naws_secret_access_key = S\n", to: dir.file("creds"))
        try write("[default]\nregion = eu-north-1\nservices = local\n[services local]\ns3 =\n  endpoint_url = http://127.0.0.1:9000\n",
                  to: dir.file("conf"))
        let config = try AWSConfiguration.load(environment: ["AWS_SHARED_CREDENTIALS_FILE": dir.file("creds"),
                                                             "AWS_CONFIG_FILE": dir.file("conf")], home: "/nonexistent")
        #expect(config.credentials.accessKeyID == "K")
        #expect(config.region == "eu-north-1")
        #expect(config.endpoint(for: "s3").absoluteString == "http://127.0.0.1:9000")
        #expect(config.endpoint(for: "ec2").absoluteString == "https://ec2.eu-north-1.amazonaws.com")
    }

    @Test func endpointPrecedence() throws {
        let base = ["AWS_ACCESS_KEY_ID": "K", "AWS_SECRET_ACCESS_KEY": "S", "AWS_REGION": "us-east-1"]
        let global = try AWSConfiguration.load(environment: base.merging(["AWS_ENDPOINT_URL": "http://127.0.0.1:5000"]) { $1 }, home: "/nonexistent")
        #expect(global.endpoint(for: "s3").absoluteString == "http://127.0.0.1:5000")
        let perService = try AWSConfiguration.load(environment: base.merging([
            "AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "AWS_ENDPOINT_URL_EC2": "http://127.0.0.1:5001",
        ]) { $1 }, home: "/nonexistent")
        #expect(perService.endpoint(for: "ec2").absoluteString == "http://127.0.0.1:5001")
        #expect(perService.endpoint(for: "ebs").absoluteString == "http://127.0.0.1:5000")
        #expect(throws: CloudError.self) {
            try AWSConfiguration.load(environment: base.merging(["AWS_ENDPOINT_URL_S3": "not a url"]) { $1 }, home: "/nonexistent")
        }
    }

    @Test func missingPiecesAreOneLineErrorsNamingWhatToSet() throws {
        let home = try TemporaryDirectory()
        let noKeys = error { try AWSConfiguration.load(environment: ["AWS_REGION": "us-east-1"], home: home.path) }
        #expect(noKeys.contains("AWS_ACCESS_KEY_ID") && !noKeys.contains("\n"))
        let noSecret = error { try AWSConfiguration.load(environment: ["AWS_ACCESS_KEY_ID": "K", "AWS_REGION": "us-east-1"], home: home.path) }
        #expect(noSecret.contains("AWS_SECRET_ACCESS_KEY"))
        let noRegion = error { try AWSConfiguration.load(environment: ["AWS_ACCESS_KEY_ID": "K", "AWS_SECRET_ACCESS_KEY": "SECRETVALUE"], home: home.path) }
        #expect(noRegion.contains("AWS_REGION") && !noRegion.contains("SECRETVALUE"))
    }

    private func write(_ text: String, to path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    private func error(_ body: () throws -> AWSConfiguration) -> String {
        do {
            _ = try body()
            return "no error"
        } catch let error as CloudError {
            if case .configuration = error { return "\(error)" }
            return "wrong case: \(error)"
        } catch {
            return "wrong type: \(error)"
        }
    }
}
