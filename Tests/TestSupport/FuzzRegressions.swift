import Foundation

/// Inputs a fuzz target once crashed on (Fuzz/Regressions/<target>/, README "Fuzzing"). Each
/// reader's tests feed them to the reader directly, no fuzzer needed, and expect a typed error.
public enum FuzzRegressions {
    /// The files in Fuzz/Regressions/`target`/, sorted by name; empty if there are none.
    public static func inputs(_ target: String) -> [String] {
        let directory = "\(Fixture.repositoryRoot)/Fuzz/Regressions/\(target)"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { "\(directory)/\($0)" }
    }
}
