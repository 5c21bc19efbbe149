import ImageCore

/// A kernel's build configuration, `/boot/config-<version>` (the .config Kconfig wrote):
///
/// ```
/// CONFIG_VIRTIO_BLK=m
/// CONFIG_SERIAL_8250=y
/// # CONFIG_XEN_BLKDEV_FRONTEND is not set
/// CONFIG_LOCALVERSION=""
/// ```
/// `=y` is built into the kernel image, `=m` is a loadable module. Guests older than 2.6.33 have no
/// modules.builtin, so this is how to tell a built-in driver from a missing one there.
public struct KernelConfig: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case builtIn
        case module
        /// Not set, or not mentioned at all.
        case absent
    }

    /// Every `CONFIG_X=value` line, quotes kept as written; "is not set" lines are not here.
    public private(set) var values: [String: String] = [:]

    public init(text: String) {
        for rawLine in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = rawLine.trimmingTrailingWhitespace()
            guard line.hasPrefix("CONFIG_"), let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
    }

    /// The state of `symbol`, with or without its `CONFIG_` prefix.
    public func state(of symbol: String) -> State {
        switch value(of: symbol) {
        case "y": return .builtIn
        case "m": return .module
        default: return .absent
        }
    }

    public func value(of symbol: String) -> String? {
        values[symbol.hasPrefix("CONFIG_") ? symbol : "CONFIG_" + symbol]
    }

    public subscript(symbol: String) -> State { state(of: symbol) }
}
