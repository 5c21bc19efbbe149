import ImageCore

/// `modules.builtin` (kernels since 2.6.33): one path per driver compiled into the kernel image,
/// relative to /lib/modules/<version>, e.g. `kernel/drivers/tty/serial/8250/8250.ko`. Such a
/// driver needs no .ko file: modprobe succeeds for it without loading anything.
public struct BuiltinModules: Sendable, Equatable {
    /// The lines as given (blank lines dropped), for depmod's modules.builtin.bin.
    public var paths: [String]
    /// Normalized module names ("8250", "crc32c_generic").
    public var names: Set<String>

    public init(text: String) {
        paths = text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).map { $0.trimmingTrailingWhitespace() }.filter { !$0.isEmpty }
        names = Set(paths.map(ModuleName.fromPath))
    }

    public func contains(_ name: String) -> Bool { names.contains(ModuleName.fromPath(name)) }
}
