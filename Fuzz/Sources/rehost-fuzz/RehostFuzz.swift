import CLibFuzzer
import ImageCore
#if canImport(Glibc)
import Glibc
#endif

/// `rehost-fuzz TARGET [libFuzzer options and corpus directories]`: one libFuzzer executable for
/// every reader Rehost points at untrusted bytes (`rehost-fuzz list` names them). Built by
/// scripts/fuzz.sh with `-sanitize=fuzzer,address -DFUZZING`; built plainly (as `swift build`
/// does with everything else) it replays instead: `rehost-fuzz TARGET FILE|DIR...` runs each
/// input once and prints what it threw, which is how a crash file is reproduced in a debugger.
///
/// Every thrown `RehostError` is a fine outcome: hostile bytes must be refused with a message.
/// A trap, a sanitizer report, an untyped error, a timeout or an allocation past
/// `-rss_limit_mb` is a finding.
@main
struct RehostFuzz {
    static func main() {
        let arguments = CommandLine.arguments
        // libFuzzer's -jobs/-fork workers are started with argv as libFuzzer saw it, without the
        // target name: they find it in REHOST_FUZZ_TARGET, which the first process sets.
        let inherited = ProcessInfoLite.environment["REHOST_FUZZ_TARGET"]
        let named = arguments.count >= 2 ? FuzzTargets.all.first(where: { $0.name == arguments[1] }) : nil
        let firstOption = named == nil && inherited != nil ? 1 : 2
        if named == nil && inherited == nil {
            guard arguments.count >= 2, arguments[1] != "list", arguments[1] != "--help" else {
                usage(exitCode: arguments.count >= 2 ? 0 : 2)
            }
            if arguments[1] == "names" {
                // For scripts/fuzz.sh: "NAME MAX_LEN" per line.
                for target in FuzzTargets.all { print(target.name, target.maxLength) }
                exit(0)
            }
        }
        guard let target = named ?? FuzzTargets.all.first(where: { $0.name == inherited }) else {
            complain("rehost-fuzz: no target \(inherited ?? arguments[1]); targets: \(FuzzTargets.all.map(\.name).joined(separator: " "))")
            exit(2)
        }
        FuzzTargets.selected = target
        #if FUZZING
        setenv("REHOST_FUZZ_TARGET", target.name, 1)
        // libFuzzer sees argv without the target name.
        let count = Int(CommandLine.argc) - firstOption + 1
        let argv = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: count + 1)
        argv[0] = CommandLine.unsafeArgv[0]
        for index in firstOption..<Int(CommandLine.argc) { argv[index - firstOption + 1] = CommandLine.unsafeArgv[index] }
        argv[count] = nil
        var argc = Int32(count)
        var argvPointer: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
        exit(LLVMFuzzerRunDriver(&argc, &argvPointer) { data, size in rehostFuzzTestOneInput(data, size) })
        #else
        let status = replay(target, paths: Array(arguments.dropFirst(firstOption)))
        FuzzScratch.shared.removeAll()
        exit(status)
        #endif
    }

    static func usage(exitCode: Int32) -> Never {
        var lines = ["usage: rehost-fuzz TARGET [libFuzzer options] [CORPUS_DIR...]   (fuzzing build)",
                     "       rehost-fuzz TARGET FILE|DIR...                           (plain build: replay)",
                     "targets:"]
        for target in FuzzTargets.all {
            lines.append("  " + target.name.padding(toLength: 18, withPad: " ", startingAt: 0) + target.summary)
        }
        print(lines.joined(separator: "\n"))
        exit(exitCode)
    }

    /// Runs each file (each file of each directory) once and reports what the target threw.
    static func replay(_ target: FuzzTarget, paths: [String]) -> Int32 {
        var files: [String] = []
        for path in paths {
            var st = stat()
            guard stat(path, &st) == 0 else { complain("rehost-fuzz: cannot stat \(path)"); return 2 }
            if st.st_mode & S_IFMT == S_IFDIR {
                guard let dir = opendir(path) else { complain("rehost-fuzz: cannot list \(path)"); return 2 }
                var names: [String] = []
                while let entry = readdir(dir) {
                    let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                    if !name.hasPrefix(".") { names.append(name) }
                }
                closedir(dir)
                files += names.sorted().map { path + "/" + $0 }
            } else {
                files.append(path)
            }
        }
        for file in files {
            do {
                let handle = try RawFile(path: file, mode: .readOnly)
                let bytes = try handle.read(count: Int(try handle.size), at: 0)
                let outcome = bytes.withUnsafeBytes { FuzzTargets.outcome(of: target, $0) }
                print("\(file): \(outcome)")
            } catch {
                complain("rehost-fuzz: \(error)")
                return 2
            }
        }
        return 0
    }
}

func complain(_ message: String) {
    let line = message + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

#if FUZZING
/// libFuzzer's runtime references this symbol (its own unused `main` calls it); it runs the
/// target chosen on the command line, as the driver callback does.
@_cdecl("LLVMFuzzerTestOneInput")
public func rehostFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTargets.runSelected(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
#endif
