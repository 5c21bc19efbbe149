import Foundation

/// The offline Kubernetes manifest check: `Tests/Tools/k8s-validate.py` run with the Python of the
/// pinned venv (`kubernetes==37.0.2` + PyYAML) that `Tests/Tools/k8s-venv.sh install` makes and
/// `scripts/install-deps.sh` calls. It checks every document strictly against the client's API
/// models (unknown fields, types, required fields) plus the Job rules the API server enforces that
/// matter for an Indexed Job. No API server runs on this machine, so this is the whole check; a
/// missing venv throws (tests fail, never skip).
public enum KubernetesValidator {
    /// The venvs' directory, as the install scripts see it.
    public static var venvs: String {
        ProcessInfo.processInfo.environment["REHOST_CLOUD_VENVS"] ?? "/var/cache/rehost/cloud-venvs"
    }

    /// The venv's python.
    public static var python: String { "\(venvs)/k8s/bin/python" }

    /// The validator script.
    public static var script: String { "\(Fixture.repositoryRoot)/Tests/Tools/k8s-validate.py" }

    /// Runs the validator on a file. Throws when it cannot run or cannot read the file (exit 2).
    /// - Returns: `ok` (exit 0) and its output lines; on failure each line is `path: problem`,
    ///   the file name taken off.
    public static func validate(file: String) throws -> (ok: Bool, lines: [String]) {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw TestSupportError.toolMissing(tool: "\(python) (run Tests/Tools/k8s-venv.sh install)")
        }
        let result = try Command.run(python, [script, file], timeout: .seconds(120))
        guard !result.timedOut, result.status == 0 || result.status == 1 else {
            throw TestSupportError.commandFailed(commandLine: result.commandLine, status: result.status,
                                                 stderr: result.stdout + result.stderr)
        }
        let prefix = "\(file): "
        let lines = result.stdout.split(separator: "\n").map { line in
            line.hasPrefix(prefix) ? String(line.dropFirst(prefix.count)) : String(line)
        }
        return (result.status == 0, lines)
    }

    /// Runs the validator on YAML text (one or more documents).
    public static func validate(yaml: String) throws -> (ok: Bool, lines: [String]) {
        let directory = try TemporaryDirectory(prefix: "rehost-k8s")
        let file = directory.file("manifest.yaml")
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        return try validate(file: file)
    }
}
