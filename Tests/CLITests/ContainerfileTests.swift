import Foundation
import Testing
import TestSupport

/// The repository's Containerfile against the real rehost binary. No container engine or registry
/// is reachable here, so the image is never built; instead `ldd` on the rehost built alongside
/// these tests lists every library it loads, `dpkg -S` names each one's Debian package, and every
/// package of a library outside the Swift toolchain must be in the runtime stage's
/// `apt-get install` (the toolchain's own libraries are copied from the build stage). The runtime
/// stage must also run as a user other than root and install no qemu.
struct ContainerfileTests {
    /// One stage of a Containerfile: its FROM line and its instructions, continuation lines joined.
    struct Stage {
        var from: String
        var instructions: [(keyword: String, arguments: String)] = []
    }

    static func stages(of text: String) -> [Stage] {
        var logical: [String] = [], current = ""
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("#") { continue }  // comments, also inside a continued instruction
            if line.hasSuffix("\\") {
                current += line.dropLast() + " "
            } else {
                current += line
                if !current.trimmingCharacters(in: .whitespaces).isEmpty { logical.append(current) }
                current = ""
            }
        }
        var stages: [Stage] = []
        for line in logical {
            let parts = line.split(separator: " ", maxSplits: 1)
            let keyword = parts[0].uppercased(), arguments = parts.count > 1 ? String(parts[1]) : ""
            if keyword == "FROM" {
                stages.append(Stage(from: arguments))
            } else if !stages.isEmpty {
                stages[stages.count - 1].instructions.append((keyword, arguments))
            }
        }
        return stages
    }

    /// The packages named by every `apt-get install` in a stage's RUN instructions.
    static func installedPackages(_ stage: Stage) -> Set<String> {
        var packages: Set<String> = []
        for (keyword, arguments) in stage.instructions where keyword == "RUN" {
            var words = arguments.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)[...]
            while let start = words.firstIndex(of: "install") {
                // `apt-get [-options] install`: the word before the options must be apt-get.
                let command = words[..<start].last { !$0.hasPrefix("-") }
                words = words[(start + 1)...]
                guard let command, command == "apt-get" || command.hasSuffix("/apt-get") else { continue }
                for word in words {
                    if ["&&", "||", ";", "|"].contains(word) || word.hasSuffix(";") { break }
                    if word.hasPrefix("-") { continue }
                    packages.insert(word)
                }
            }
        }
        return packages
    }

    static var containerfile: String { "\(Fixture.repositoryRoot)/Containerfile" }

    /// The path itself, its symlink target, and each with and without the /usr prefix: Debian 12 is
    /// merged-/usr, so ldd may say /lib/... while dpkg knows /usr/lib/..., or the reverse.
    static func pathVariants(_ path: String) -> [String] {
        let real = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)).map {
            $0.hasPrefix("/") ? $0 : (path as NSString).deletingLastPathComponent + "/" + $0
        }
        var variants = [path] + (real.map { [$0] } ?? [])
        for variant in variants {
            variants.append(variant.hasPrefix("/usr/") ? String(variant.dropFirst(4)) : "/usr" + variant)
        }
        return variants
    }

    /// The Debian package owning each path (without its `:arch`), from one `dpkg -S` over every
    /// variant of every path; a path no package owns is missing from the result.
    static func debianPackages(of paths: [String]) throws -> [String: String] {
        let variants = paths.map { ($0, pathVariants($0)) }
        // dpkg -S exits 1 when any argument is unowned but still prints the owned ones.
        let result = try Command.run("dpkg", ["-S"] + variants.flatMap(\.1))
        #expect(result.status == 0 || result.status == 1, "\(result.commandLine): \(result.stderr)")
        var owner: [String: String] = [:]
        for line in result.stdout.split(separator: "\n") {
            guard let separator = line.range(of: ": ") else { continue }
            let package = line[..<separator.lowerBound].split(separator: ",").first ?? ""
            let name = package.split(separator: ":").first.map(String.init) ?? String(package)
            owner[String(line[separator.upperBound...])] = name.trimmingCharacters(in: .whitespaces)
        }
        var packages: [String: String] = [:]
        for (path, candidates) in variants {
            packages[path] = candidates.lazy.compactMap { owner[$0] }.first
        }
        return packages
    }

    /// Every library ldd resolves for the binary, as (name, path).
    static func lddLibraries(_ binary: String) throws -> [(name: String, path: String)] {
        let result = try Command.run("ldd", [binary]).requireSuccess()
        var libraries: [(String, String)] = []
        for line in result.stdout.split(separator: "\n") {
            let text = line.trimmingCharacters(in: .whitespaces)
            #expect(!text.contains("not found"), "ldd: \(text)")
            if let arrow = text.range(of: " => ") {
                let target = text[arrow.upperBound...].split(separator: " ").first.map(String.init) ?? ""
                if target.hasPrefix("/") { libraries.append((String(text[..<arrow.lowerBound]), target)) }
            } else if text.hasPrefix("/") {
                libraries.append((String(text.split(separator: " ")[0]), String(text.split(separator: " ")[0])))
            }
        }
        return libraries
    }

    /// The packages the runtime stage must install: those of every library outside the Swift toolchain.
    static func requiredRuntimePackages() throws -> [String: [String]] {
        let binary = try Command.rehostExecutable()
        let libraries = try lddLibraries(binary)
        #expect(libraries.contains { $0.name.hasPrefix("libswiftCore") }, "ldd shows no Swift runtime: \(libraries)")
        let outside = libraries.filter { !$0.path.contains("/lib/swift/") }
        let owners = try debianPackages(of: outside.map(\.path))
        var required: [String: [String]] = [:]
        for library in outside {
            let package = try #require(owners[library.path], "no Debian package owns \(library.path)")
            required[package, default: []].append(library.name)
        }
        return required
    }

    @Test func runtimeStageInstallsThePackageOfEveryLinkedLibrary() throws {
        let text = try String(contentsOfFile: Self.containerfile, encoding: .utf8)
        let stages = Self.stages(of: text)
        try #require(stages.count >= 2, "Containerfile needs a build and a runtime stage")
        let runtime = stages[stages.count - 1]
        #expect(runtime.from.contains("debian:12"), "runtime stage is \(runtime.from)")
        #expect(stages[0].from.contains("swift:6") && stages[0].from.contains("bookworm"), "build stage is \(stages[0].from)")
        let installed = Self.installedPackages(runtime)
        let required = try Self.requiredRuntimePackages()
        #expect(required.count >= 10, "\(required)")
        for (package, libraries) in required.sorted(by: { $0.key < $1.key }) {
            #expect(installed.contains(package), "runtime stage does not install \(package) (for \(libraries.joined(separator: ", ")))")
        }
        for package in ["grub-common", "grub-pc-bin"] {
            #expect(installed.contains(package), "runtime stage does not install \(package)")
        }
        // The Swift runtime comes from the build stage, into the directory the binary's RUNPATH names.
        #expect(runtime.instructions.contains { $0.keyword == "COPY" && $0.arguments.contains("--from=") && $0.arguments.contains("/usr/lib/swift/linux") })
    }

    @Test func runtimeStageRunsAsNonRootWithoutQemu() throws {
        let text = try String(contentsOfFile: Self.containerfile, encoding: .utf8)
        let runtime = try #require(Self.stages(of: text).last)
        let users = runtime.instructions.filter { $0.keyword == "USER" }.map(\.arguments)
        let user = try #require(users.last, "runtime stage has no USER")
        let name = user.split(separator: ":").first.map(String.init) ?? user
        #expect(!["root", "0", ""].contains(name), "runtime stage runs as \(user)")
        #expect(user == "65534:65534")
        let installed = Self.installedPackages(runtime)
        #expect(!installed.contains { $0.contains("qemu") }, "runtime stage installs \(installed.filter { $0.contains("qemu") })")
        #expect(!text.lowercased().split(separator: "\n").contains { !$0.hasPrefix("#") && $0.contains("qemu") },
                "qemu appears outside a comment")
        #expect(runtime.instructions.contains { $0.keyword == "ENTRYPOINT" && $0.arguments.contains("\"rehost\"") })
    }

    /// The parser itself: a package taken out of the list is noticed, so the check above can fail.
    @Test func parserSeesARemovedPackage() throws {
        let text = try String(contentsOfFile: Self.containerfile, encoding: .utf8)
        let runtime = try #require(Self.stages(of: text).last)
        let installed = Self.installedPackages(runtime)
        #expect(installed.contains("libext2fs2") && installed.contains("libcurl4"), "\(installed.sorted())")
        #expect(!installed.contains("apt-get") && !installed.contains("rm") && !installed.contains("&&"), "\(installed.sorted())")
        let trimmed = text.replacingOccurrences(of: " libext2fs2 ", with: " ")
        let trimmedInstalled = Self.installedPackages(try #require(Self.stages(of: trimmed).last))
        #expect(!trimmedInstalled.contains("libext2fs2"))
        #expect(trimmedInstalled.count == installed.count - 1)
    }
}
