import ImageCore

#if canImport(Glibc)
import Glibc
#endif

enum FileHandleOutput {
    static func writeStandardError(_ string: String) {
        var bytes = Array(string.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }

    static var standardErrorIsTerminal: Bool { isatty(2) != 0 }
}

/// A one-line progress bar on standard error, redrawn at most ten times a second; silent when
/// standard error is not a terminal.
final class TerminalProgress: ProgressSink {
    private var stage = ""
    private var total: UInt64?
    private var started = 0.0
    private var lastDraw = 0.0
    private let enabled: Bool

    init(enabled: Bool = FileHandleOutput.standardErrorIsTerminal) { self.enabled = enabled }

    func begin(stage: String, totalBytes: UInt64?) {
        self.stage = stage
        total = totalBytes
        started = monotonicSeconds()
        lastDraw = 0
        if enabled { draw(0, force: true) }
    }

    func advance(to bytesDone: UInt64) {
        if enabled { draw(bytesDone, force: false) }
    }

    func end() {
        if enabled { FileHandleOutput.writeStandardError("\r\u{1B}[K") }
    }

    func note(_ text: String) {
        if enabled { FileHandleOutput.writeStandardError("\r\u{1B}[K" + text.escapedForTerminal() + "\n") }
    }

    private func draw(_ done: UInt64, force: Bool) {
        let t = monotonicSeconds()
        guard force || t - lastDraw >= 0.1 else { return }
        lastDraw = t
        let elapsed = max(t - started, 0.001)
        let rate = Double(done) / elapsed
        var line = "\(stage): \(ByteCount.format(done))"
        if let total, total > 0 {
            let fraction = min(1, Double(done) / Double(total))
            let width = 24
            let filled = Int(fraction * Double(width))
            let eta = rate > 0 ? Int(Double(total - min(done, total)) / rate) : 0
            line = "\(stage) [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] "
                + "\(ByteCount.format(done)) / \(ByteCount.format(total)) \(Int(fraction * 100))% "
                + "\(ByteCount.format(UInt64(rate)))/s ETA \(eta / 60)m\(eta % 60)s"
        }
        FileHandleOutput.writeStandardError("\r\u{1B}[K" + line.escapedForTerminal())
    }
}
