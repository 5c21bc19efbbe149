import Cloud
import Foundation
import Synchronization
import TestSupport

/// moto in signature-checking mode on 127.0.0.1, started by this test process, until the shared
/// harness (Tests/TestSupport/CloudServers.swift) lands; then `MotoServer.start()` replaces it,
/// with the same members.
///
/// A small Python supervisor starts `moto_server` with INITIAL_NO_AUTH_ACTION_COUNT=3, spends
/// those three free calls making an IAM user with an allow-all policy and an access key, prints
/// the key, and stops moto (and removes its directory) when its stdin closes at `stop()`, or
/// when this process is gone.
final class LocalMoto: @unchecked Sendable {
    let endpoint: URL
    let accessKeyID: String
    let secretAccessKey: String
    /// An assumed role's key, secret and session token: moto checks the token.
    let temporaryCredentials: AWSCredentials
    let region = "us-east-1"
    private let process: Process
    private let input: Pipe
    private let directory: TemporaryDirectory
    private let stopped = Mutex(false)

    /// The Python with moto 5.2 and boto3 on this machine (pyenv's, not /usr/bin's).
    static let python = ProcessInfo.processInfo.environment["REHOST_MOTO_PYTHON"] ?? "/root/.pyenv/shims/python3"

    static let supervisor = #"""
    import json, os, socket, subprocess, sys, time
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    log = open(sys.argv[1], "w")
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close(); break
            except OSError:
                if moto.poll() is not None: raise SystemExit("moto exited")
                time.sleep(0.05)
        import boto3
        ep = "http://127.0.0.1:%d" % port
        iam = boto3.client("iam", endpoint_url=ep, region_name="us-east-1",
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="rehost")
        iam.put_user_policy(UserName="rehost", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="rehost")["AccessKey"]
        # Temporary credentials too (a role assumed with the key above), for session tokens.
        session = boto3.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                                region_name="us-east-1")
        role = session.client("iam", endpoint_url=ep).create_role(RoleName="rehost", AssumeRolePolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}))
        session.client("iam", endpoint_url=ep).put_role_policy(RoleName="rehost", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        temporary = session.client("sts", endpoint_url=ep).assume_role(RoleArn=role["Role"]["Arn"], RoleSessionName="rehost-test")
        t = temporary["Credentials"]
        print(ep, key["AccessKeyId"], key["SecretAccessKey"], t["AccessKeyId"], t["SecretAccessKey"], t["SessionToken"], flush=True)
        # Until stdin closes or the test process is gone (the child may hold the pipe's write
        # end too, so EOF alone is not enough).
        import select
        owner = int(sys.argv[2])
        while True:
            ready, _, _ = select.select([sys.stdin], [], [], 1.0)
            if ready and not os.read(sys.stdin.fileno(), 4096): break
            try: os.kill(owner, 0)
            except ProcessLookupError: break
    finally:
        moto.terminate()
        try: moto.wait(10)
        except subprocess.TimeoutExpired: moto.kill()
        import shutil
        shutil.rmtree(os.path.dirname(sys.argv[1]), ignore_errors=True)
    """#

    struct StartFailure: Error, Sendable, CustomStringConvertible {
        let description: String
    }

    private static let instance = Mutex<Result<LocalMoto, StartFailure>?>(nil)

    /// The one server of this test process (starting one costs about 10 s here, most of it
    /// importing boto3), made on first use. Tests keep apart by using buckets of their own; the
    /// supervisor stops moto when the process exits and its stdin closes.
    static func shared() throws -> LocalMoto {
        try instance.withLock { cached in
            if let cached { return cached }
            let made = Result { () throws(StartFailure) -> LocalMoto in
                do { return try LocalMoto() } catch let failure as StartFailure { throw failure } catch {
                    throw StartFailure(description: "moto did not start: \(error)")
                }
            }
            cached = made
            return made
        }.get()
    }

    private init() throws {
        directory = try TemporaryDirectory(prefix: "rehost-moto")
        let script = directory.file("supervisor.py")
        try Self.supervisor.write(toFile: script, atomically: true, encoding: .utf8)
        process = Process()
        process.executableURL = URL(fileURLWithPath: Self.python)
        process.arguments = [script, directory.file("moto.log"), "\(ProcessInfo.processInfo.processIdentifier)"]
        input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        // One line: endpoint, key id, secret, temporary key id, secret, token; EOF instead means the supervisor failed.
        var line = Data()
        while true {
            let byte = output.fileHandleForReading.readData(ofLength: 1)
            if byte.isEmpty || byte == Data([0x0A]) { break }
            line.append(byte)
        }
        let fields = String(decoding: line, as: UTF8.self).split(separator: " ").map(String.init)
        guard fields.count == 6, let url = URL(string: fields[0]) else {
            let log = (try? String(contentsOfFile: directory.file("moto.log"), encoding: .utf8)) ?? ""
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
            throw StartFailure(description: "moto did not start: \(log.suffix(2000))")
        }
        endpoint = url
        accessKeyID = fields[1]
        secretAccessKey = fields[2]
        temporaryCredentials = AWSCredentials(accessKeyID: fields[3], secretAccessKey: fields[4], sessionToken: fields[5])
    }

    /// Closes the supervisor's stdin (it stops moto) and waits for it.
    func stop() {
        let first = stopped.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    deinit { stop() }
}
