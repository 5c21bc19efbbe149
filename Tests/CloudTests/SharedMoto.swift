import Cloud
import Foundation
import Synchronization
import TestSupport

/// One moto (the harness's `MotoServer`, signature-checking mode) for this test process, started
/// on first use and stopped by its watchdog when the process ends; tests keep apart by using
/// buckets and names of their own.
enum SharedMoto {
    private static let instance = Mutex<Result<MotoServer, CloudServerError>?>(nil)

    static func server() throws -> MotoServer {
        try instance.withLock { cached in
            if let cached { return cached }
            let made = Result { () throws(CloudServerError) -> MotoServer in
                do { return try MotoServer.start() } catch let failure as CloudServerError { throw failure } catch {
                    throw CloudServerError(server: "moto", reason: "\(error)")
                }
            }
            cached = made
            return made
        }.get()
    }

    /// Temporary credentials (a role assumed with the server's key, by boto3): moto checks the
    /// session token they carry.
    static func temporaryCredentials(_ moto: MotoServer) throws -> AWSCredentials {
        let script = #"""
        import json, sys, boto3
        ep, key, secret = sys.argv[1:4]
        session = boto3.Session(aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1")
        iam = session.client("iam", endpoint_url=ep)
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
        try:
            role = iam.create_role(RoleName="rehost", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
        except iam.exceptions.EntityAlreadyExistsException:
            role = iam.get_role(RoleName="rehost")["Role"]
        iam.put_role_policy(RoleName="rehost", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        t = session.client("sts", endpoint_url=ep).assume_role(RoleArn=role["Arn"], RoleSessionName="rehost-test")["Credentials"]
        print(t["AccessKeyId"], t["SecretAccessKey"], t["SessionToken"])
        """#
        let result = try Command.run(CloudServers.motoPython, ["-c", script, moto.endpoint.absoluteString, moto.accessKeyID,
                                                               moto.secretAccessKey]).requireSuccess()
        let fields = result.stdout.split(whereSeparator: \.isWhitespace).map(String.init)
        guard fields.count == 3 else { throw CloudServerError(server: "moto", reason: "assume-role printed \(result.stdout)") }
        return AWSCredentials(accessKeyID: fields[0], secretAccessKey: fields[1], sessionToken: fields[2])
    }
}
